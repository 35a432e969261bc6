"""Receipts that explain each line.

* ``deliverables.charges`` (new, JSON, nullable): per participant of a cleared round, the explanation
  of each of its receipt lines (rule, exact amount, terms, inputs:
  :mod:`datamarket.service.adapters.charges`). Rounds cleared before this revision have ``NULL``:
  their receipts say that no explanation was recorded.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("deliverables", sa.Column("charges", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliverables") as batch:
        batch.drop_column("charges")
