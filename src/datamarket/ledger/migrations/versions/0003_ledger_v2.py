"""Ledger format v2: currencies, every column in the entry hash, round records, integer amounts.

* ``markets.currency``: the scale of an existing market becomes a currency (100 -> ``USD``, ``10^e``
  -> the named unit ``UNIT:e``, any other ``n`` -> ``UNIT/n``).
* ``ledger_entries``: ``version`` (existing entries are format 1 and keep their hashes; new ones are
  format 2), ``market_id``, ``currency`` and ``kind`` (filled from the round's market and the memo),
  and on SQLite ``CHECK (typeof(amount_minor) = 'integer')`` (PostgreSQL's BIGINT already refuses a
  fraction).
* ``ledger_rounds`` (new): for every round that has entries or is ``cleared``, its entry count,
  first/last sequence number, Merkle root and the chain head after it.
* ``ledger_head.rounds``: the number of rows of ``ledger_rounds``.

Touches only the ledger's tables and ``markets.currency``; no entry is rehashed, so chains written
before still verify (:func:`datamarket.ledger.chain.verify` checks format-1 entries with the format-1
hash).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from datamarket.ledger.merkle import merkle_root
from datamarket.ledger.money import ENTRY_KINDS, Currency

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def upgrade() -> None:
    conn = op.get_bind()
    sqlite = conn.dialect.name == "sqlite"
    # markets is referenced by other tables: SQLite cannot rebuild it with foreign keys on, so the
    # column is added in place (NOT NULL needs a server default there) and then filled
    op.add_column("markets", sa.Column("currency", sa.String(40), nullable=False, server_default="USD"))
    markets = sa.table("markets", sa.column("id"), sa.column("scale"), sa.column("currency"))
    currency = {}
    for mid, scale in conn.execute(sa.select(markets.c.id, markets.c.scale)).all():
        currency[mid] = Currency.for_scale(int(scale)).code
        conn.execute(markets.update().where(markets.c.id == mid).values(currency=currency[mid]))

    with op.batch_alter_table("ledger_entries") as b:
        b.add_column(sa.Column("version", sa.Integer, nullable=True))
        b.add_column(sa.Column("market_id", sa.Integer, nullable=True))
        b.add_column(sa.Column("kind", sa.String(20), nullable=True))
        b.add_column(sa.Column("currency", sa.String(40), nullable=True))
    entries = sa.table(
        "ledger_entries",
        *(
            sa.column(c)
            for c in ("seq", "round_id", "memo", "hash", "version", "market_id", "kind", "currency")
        ),
    )
    rounds = sa.table("rounds", sa.column("id"), sa.column("market_id"), sa.column("status"))
    market_of = dict(conn.execute(sa.select(rounds.c.id, rounds.c.market_id)).all())
    by_round: dict[int, list[tuple[int, str]]] = {}
    rows = conn.execute(
        sa.select(entries.c.seq, entries.c.round_id, entries.c.memo, entries.c.hash).order_by(entries.c.seq)
    )
    for seq, rid, memo, h in rows.all():
        mid = market_of[rid]
        conn.execute(
            entries.update()
            .where(entries.c.seq == seq)
            .values(version=1, market_id=mid, kind=ENTRY_KINDS.get(memo, "other"), currency=currency[mid])
        )
        by_round.setdefault(rid, []).append((seq, h))
    with op.batch_alter_table("ledger_entries") as b:
        b.alter_column("version", existing_type=sa.Integer, nullable=False)
        b.alter_column("market_id", existing_type=sa.Integer, nullable=False)
        b.alter_column("kind", existing_type=sa.String(20), nullable=False)
        b.alter_column("currency", existing_type=sa.String(40), nullable=False)
        b.create_foreign_key("fk_ledger_entries_market_id", "markets", ["market_id"], ["id"])
        if sqlite:
            b.create_check_constraint("ck_ledger_amount_integer", "typeof(amount_minor) = 'integer'")

    op.create_index("ix_ledger_entries_account_currency", "ledger_entries", ["account", "currency"])
    ts = sa.DateTime(timezone=True)
    table = op.create_table(
        "ledger_rounds",
        sa.Column("round_id", sa.Integer, sa.ForeignKey("rounds.id"), primary_key=True, autoincrement=False),
        sa.Column("market_id", sa.Integer, sa.ForeignKey("markets.id"), nullable=False),
        sa.Column("currency", sa.String(40), nullable=False),
        sa.Column("entry_count", sa.Integer, nullable=False),
        sa.Column("first_seq", sa.Integer, nullable=True),
        sa.Column("last_seq", sa.Integer, nullable=True),
        sa.Column("merkle_root", sa.String(64), nullable=False),
        sa.Column("head_seq", sa.Integer, nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("created_at", ts, nullable=False),
    )
    now = datetime.now(UTC)
    cleared = {
        rid
        for rid, status in conn.execute(sa.select(rounds.c.id, rounds.c.status)).all()
        if status == "cleared"
    }
    records, head = [], (0, GENESIS)
    order = sorted(by_round, key=lambda r: by_round[r][0][0])
    last_by_round = {rid: by_round[rid][-1] for rid in order}
    for rid in sorted(set(by_round) | cleared):
        es = by_round.get(rid, [])
        if es:
            head = last_by_round[rid]
        else:  # the head when it cleared is not recorded: take the last entry of an earlier round id
            earlier = [last_by_round[r] for r in order if r < rid]
            head = max(earlier) if earlier else (0, GENESIS)
        records.append(
            {
                "round_id": rid,
                "market_id": market_of[rid],
                "currency": currency[market_of[rid]],
                "entry_count": len(es),
                "first_seq": es[0][0] if es else None,
                "last_seq": es[-1][0] if es else None,
                "merkle_root": merkle_root([h for _, h in es]),
                "head_seq": head[0],
                "head_hash": head[1],
                "created_at": now,
            }
        )
    if records:
        op.bulk_insert(table, records)
    with op.batch_alter_table("ledger_head") as b:
        b.add_column(sa.Column("rounds", sa.Integer, nullable=False, server_default="0"))
    op.execute(sa.text("UPDATE ledger_head SET rounds = :n").bindparams(n=len(records)))
    with op.batch_alter_table("ledger_head") as b:
        b.alter_column("rounds", existing_type=sa.Integer, server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("ledger_head") as b:
        b.drop_column("rounds")
    op.drop_table("ledger_rounds")
    op.drop_index("ix_ledger_entries_account_currency", "ledger_entries")
    with op.batch_alter_table("ledger_entries") as b:
        if op.get_bind().dialect.name == "sqlite":
            b.drop_constraint("ck_ledger_amount_integer", type_="check")
        b.drop_constraint("fk_ledger_entries_market_id", type_="foreignkey")
        for name in ("currency", "kind", "market_id", "version"):
            b.drop_column(name)
    op.drop_column("markets", "currency")
