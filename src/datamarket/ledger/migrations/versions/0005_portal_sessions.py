"""Web portal sessions: an API key exchanged once for a session cookie, kept server-side.

* ``portal_sessions`` (new): one row per signed-in browser: the SHA-256 of the session token (the
  token itself lives only in the browser's HttpOnly cookie), the participant it acts for (``NULL``
  for the operator, with ``is_operator`` set), the per-session CSRF token every form must carry,
  and the creation and expiry times. Logging out deletes the row, so every service process sharing
  the database forgets the session at once.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "portal_sessions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("participant_id", sa.Integer, sa.ForeignKey("participants.id"), nullable=True),
        sa.Column("is_operator", sa.Boolean, nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("expires_at", ts, nullable=False),
    )
    op.create_index("ix_portal_sessions_expires_at", "portal_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_portal_sessions_expires_at", "portal_sessions")
    op.drop_table("portal_sessions")
