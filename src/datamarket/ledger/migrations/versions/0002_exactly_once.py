"""Exactly-once rounds: one round in progress per market, parsed uploads, exclusions, seed commit.

* ``uq_round_active``: a partial unique index on ``rounds(market_id)`` over the rows whose status is
  ``pending`` or ``running``: the database, not the service, guarantees at most one round in progress
  per market (a second insert or retry fails with an integrity error, answered 409).
* ``rounds.request_hash``: SHA-256 of the request that created the round; an ``Idempotency-Key``
  reused with another body is a 409.
* ``rounds.seed_commit``, ``seed_salt``, ``seed_source``: commit-reveal of the round seed (the hash is
  published when the round opens, the seed and salt revealed in the receipts).
* ``submissions.parsed``: the upload parsed once at upload time (an uncompressed NPZ of the
  validated arrays); rounds and plans load it instead of parsing the original bytes again.
* ``submissions.excluded_at``, ``excluded_reason``: an operator's exclusion or a participant's
  withdrawal of an unconsumed submission; excluded rows never enter a round.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ACTIVE = sa.text("status IN ('pending', 'running')")


def upgrade() -> None:
    with op.batch_alter_table("rounds") as b:
        b.add_column(sa.Column("request_hash", sa.String(64), nullable=True))
        b.add_column(sa.Column("seed_commit", sa.String(64), nullable=True))
        b.add_column(sa.Column("seed_salt", sa.String(64), nullable=True))
        b.add_column(sa.Column("seed_source", sa.String(20), nullable=False, server_default="operator"))
    with op.batch_alter_table("submissions") as b:
        b.add_column(sa.Column("parsed", sa.LargeBinary, nullable=True))
        b.add_column(sa.Column("excluded_at", sa.DateTime(timezone=True), nullable=True))
        b.add_column(sa.Column("excluded_reason", sa.Text, nullable=True))
    op.create_index(
        "uq_round_active",
        "rounds",
        ["market_id"],
        unique=True,
        postgresql_where=ACTIVE,
        sqlite_where=ACTIVE,
    )


def downgrade() -> None:
    op.drop_index("uq_round_active", table_name="rounds")
    with op.batch_alter_table("submissions") as b:
        for name in ("excluded_reason", "excluded_at", "parsed"):
            b.drop_column(name)
    with op.batch_alter_table("rounds") as b:
        for name in ("seed_source", "seed_salt", "seed_commit", "request_hash"):
            b.drop_column(name)
