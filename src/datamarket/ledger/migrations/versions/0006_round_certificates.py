"""Round certificates: the checks behind a cleared round's claims.

* ``rounds.certificate`` (new, JSON, nullable): the certificate the mechanism's adapter returned with
  the outcome (:mod:`datamarket.core.certificates`): each claim, its check, residual and tolerance. A
  round whose certificate fails is recorded with status ``unverified`` and books nothing; its inputs
  stay unconsumed. Rounds cleared before this revision have ``NULL``.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("rounds", sa.Column("certificate", sa.JSON, nullable=True))


def downgrade() -> None:
    op.drop_column("rounds", "certificate")
