"""Portal sessions bound to the key that opened them.

* ``portal_sessions.key_binding`` (new, ``VARCHAR(64)``, nullable): HMAC-SHA256, keyed by the session
  token (which only the browser holds), of the SHA-256 of the API key that opened the session
  (:func:`datamarket.service.portal.session.key_binding`). A session is live only while the key of
  whom it acts for still hashes to the same value: rotating the admin key (the service restarted
  with another one) ends every operator session, and replacing a participant's key ends its sessions.
  Sessions opened before this revision have ``NULL`` and are refused: their browsers sign in again.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("portal_sessions", sa.Column("key_binding", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("portal_sessions") as batch:
        batch.drop_column("key_binding")
