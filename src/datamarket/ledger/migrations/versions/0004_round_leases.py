"""Round leases: several service processes share one database and claim rounds instead of assuming them.

* ``rounds.claimed_by``: the instance id (``host-pid-random``, not a secret) of the process that holds
  the round while it is ``running``; kept after it clears (who cleared it).
* ``rounds.lease_expires_at``: until when the holder's claim is valid; the holder extends it by
  heartbeat. Another process takes a ``running`` round over only once this time has passed.
* ``rounds.lease_expiries``: how many times a lease of the round expired since it was opened or last
  retried; after the configured number of attempts the round is failed instead of taken over.
* ``ix_rounds_status_lease``: the claim query's index (``status``, ``lease_expires_at``).

Rounds left ``pending`` or ``running`` by a version without leases have no lease: a ``running`` one
with a null expiry counts as expired, so the first process started on the new schema takes it over.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rounds") as b:
        b.add_column(sa.Column("claimed_by", sa.String(100), nullable=True))
        b.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
        b.add_column(sa.Column("lease_expiries", sa.Integer, nullable=False, server_default="0"))
    op.create_index("ix_rounds_status_lease", "rounds", ["status", "lease_expires_at"])


def downgrade() -> None:
    op.drop_index("ix_rounds_status_lease", table_name="rounds")
    with op.batch_alter_table("rounds") as b:
        for name in ("lease_expiries", "lease_expires_at", "claimed_by"):
            b.drop_column(name)
