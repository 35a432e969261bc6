"""Ledger format 3: a random salt in every new entry, so that receipts reveal nothing of others.

* ``ledger_entries.salt`` (new, ``VARCHAR(64)``, nullable): 32 random bytes (hex) drawn for each entry
  appended from this revision on; format-3 entries (``version = 3``) hash it with every other column
  (:func:`datamarket.ledger.chain.entry_hash_v3`).

Existing entries keep their format (1 or 2), their hashes and a ``NULL`` salt: nothing is rehashed,
so chains written before still verify, and so do the checkpoints participants kept from them. Their
rounds' receipts carry no checkpoint any more (:mod:`datamarket.ledger.receipts`): an unsalted hash
of a round would let a co-participant test guesses of the other amounts.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ledger_entries", sa.Column("salt", sa.String(64), nullable=True))


def downgrade() -> None:
    entries = sa.table("ledger_entries", sa.column("version"))
    salted = op.get_bind().execute(sa.select(sa.func.count()).where(entries.c.version == 3)).scalar()
    if salted:
        raise RuntimeError(f"{salted} format-3 entries hash their salt: downgrading would break the chain")
    with op.batch_alter_table("ledger_entries") as b:
        b.drop_column("salt")
