"""Initial schema: participants, markets, submissions, rounds, deliverables, hash-chained ledger.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "participants",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("api_key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", ts, nullable=False),
    )
    op.create_table(
        "markets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("scale", sa.Integer, nullable=False),
        sa.Column("created_at", ts, nullable=False),
    )
    op.create_table(
        "rounds",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("market_id", sa.Integer, sa.ForeignKey("markets.id"), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("progress", sa.Float, nullable=False),
        sa.Column("stage", sa.String(100), nullable=False),
        sa.Column("seed", sa.BigInteger, nullable=False),
        sa.Column("input_ids", sa.JSON, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("outcome", sa.JSON, nullable=True),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("updated_at", ts, nullable=False),
        sa.UniqueConstraint("market_id", "idempotency_key", name="uq_round_idem"),
    )
    op.create_index("ix_rounds_market_id", "rounds", ["market_id"])
    op.create_table(
        "submissions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("market_id", sa.Integer, sa.ForeignKey("markets.id"), nullable=False),
        sa.Column("participant_id", sa.Integer, sa.ForeignKey("participants.id"), nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("blob", sa.LargeBinary, nullable=True),
        sa.Column("media_type", sa.String(100), nullable=True),
        sa.Column("filename", sa.String(255), nullable=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("consumed_round_id", sa.Integer, sa.ForeignKey("rounds.id"), nullable=True),
        sa.Column("created_at", ts, nullable=False),
        sa.UniqueConstraint("participant_id", "idempotency_key", name="uq_submission_idem"),
    )
    op.create_index("ix_submissions_market_id", "submissions", ["market_id"])
    op.create_index("ix_submissions_participant_id", "submissions", ["participant_id"])
    op.create_table(
        "deliverables",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("round_id", sa.Integer, sa.ForeignKey("rounds.id"), nullable=False),
        sa.Column("participant_id", sa.Integer, sa.ForeignKey("participants.id"), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.UniqueConstraint("round_id", "participant_id", name="uq_deliverable"),
    )
    op.create_index("ix_deliverables_round_id", "deliverables", ["round_id"])
    op.create_index("ix_deliverables_participant_id", "deliverables", ["participant_id"])
    op.create_table(
        "ledger_entries",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("round_id", sa.Integer, sa.ForeignKey("rounds.id"), nullable=False),
        sa.Column("account", sa.String(100), nullable=False),
        sa.Column("participant_id", sa.Integer, sa.ForeignKey("participants.id"), nullable=True),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("memo", sa.String(100), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", ts, nullable=False),
    )
    op.create_index("ix_ledger_entries_round_id", "ledger_entries", ["round_id"])
    head = op.create_table(
        "ledger_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": GENESIS}])


def downgrade() -> None:
    for name in ("ledger_head", "ledger_entries", "deliverables", "submissions", "rounds"):
        op.drop_table(name)
    op.drop_table("markets")
    op.drop_table("participants")
