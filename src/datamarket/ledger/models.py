"""SQLAlchemy 2 models of the marketplace ledger (the schema; migrations create it).

Tables
------
``participants``  registered participants; only a SHA-256 hash of each API key is stored.
``markets``       a market of one mechanism kind with its JSON parameters, its currency (ISO 4217 code
                  or named unit ``NAME:e``) and money scale (``10^e`` minor units per major unit).
``submissions``   a participant's input to a market (dataset blob with content hash and its parsed
                  arrays, bid, cost, task); ``consumed_round_id`` is set, in the clearing
                  transaction, when a round uses it; ``excluded_at``/``excluded_reason`` when the
                  operator excluded it or its owner withdrew it (it then never enters a round).
``rounds``        one clearing of a market: status ``pending/running/cleared/failed/unverified``, the
                  certificate of its outcome (revision 0006), progress, the
                  snapshot of input ids, the outcome (JSON, :meth:`Outcome.to_dict`), attempts, the
                  seed with its commitment; at most one ``pending``/``running`` round per market
                  (partial unique index ``uq_round_active``); the lease of the service process
                  clearing it (``claimed_by``, ``lease_expires_at``, ``lease_expiries``).
``deliverables``  what a participant receives from a round (model, estimate, gain): readable only
                  by that participant and the operator.
``ledger_entries`` append-only postings in integer minor units (64-bit; on SQLite a ``CHECK`` on
                  ``typeof``), each with its round, market, currency, kind and format ``version``,
                  chained by SHA-256 hashes over every column, a random per-entry ``salt``
                  included since revision 0007 (:mod:`datamarket.ledger.chain`).
``ledger_rounds`` one row per booked round: entry count, first/last sequence number, Merkle root of
                  its entry hashes, currency and the chain head after it (what receipts carry).
``ledger_head``   one row: the last sequence number and hash and the number of booked rounds;
                  locked while appending so that concurrent writers serialise on the chain.
``portal_sessions`` the web portal's signed-in browsers: SHA-256 of the session token, the
                  participant (or the operator), the session's CSRF token and its expiry.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

ROUND_STATUSES = ("pending", "running", "cleared", "failed", "unverified")
ACTIVE_SQL = "status IN ('pending', 'running')"  # at most one such round per market (uq_round_active)


def utcnow() -> datetime:
    """Timezone-aware current time (UTC)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp; SQLite drops the zone, so naive values read back are UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    """Declarative base of every ledger table."""


class Participant(Base):
    __tablename__ = "participants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    api_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Market(Base):
    __tablename__ = "markets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(50))
    name: Mapped[str] = mapped_column(String(200), default="")
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    scale: Mapped[int] = mapped_column(Integer, default=100)
    currency: Mapped[str] = mapped_column(String(40), default="USD")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Submission(Base):
    __tablename__ = "submissions"
    __table_args__ = (UniqueConstraint("participant_id", "idempotency_key", name="uq_submission_idem"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    market_id: Mapped[int] = mapped_column(ForeignKey("markets.id"), index=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    blob: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    media_type: Mapped[str | None] = mapped_column(String(100), nullable=True)
    filename: Mapped[str | None] = mapped_column(String(255), nullable=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    consumed_round_id: Mapped[int | None] = mapped_column(ForeignKey("rounds.id"), nullable=True)
    parsed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    excluded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    excluded_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Round(Base):
    __tablename__ = "rounds"
    __table_args__ = (
        UniqueConstraint("market_id", "idempotency_key", name="uq_round_idem"),
        Index(
            "uq_round_active",
            "market_id",
            unique=True,
            postgresql_where=text(ACTIVE_SQL),
            sqlite_where=text(ACTIVE_SQL),
        ),
        Index("ix_rounds_status_lease", "status", "lease_expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    market_id: Mapped[int] = mapped_column(ForeignKey("markets.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    stage: Mapped[str] = mapped_column(String(100), default="")
    seed: Mapped[int] = mapped_column(BigInteger, default=0)
    input_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    request_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    seed_commit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    seed_salt: Mapped[str | None] = mapped_column(String(64), nullable=True)
    seed_source: Mapped[str] = mapped_column(String(20), default="operator", server_default="operator")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    outcome: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    certificate: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lease_expiries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Deliverable(Base):
    __tablename__ = "deliverables"
    __table_args__ = (UniqueConstraint("round_id", "participant_id", name="uq_deliverable"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), index=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # the explanation of each of the participant's receipt lines (revision 0009; NULL before)
    charges: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True, default=None)


class LedgerEntry(Base):
    """One posting. ``version`` 1 (written before revision 0003) hashes seq, round, account, amount,
    memo and the previous hash; version 2 (revisions 0003 to 0006) every column but ``salt``
    (``NULL``); version 3 (since revision 0007) every column, its random ``salt`` included
    (:func:`~datamarket.ledger.chain.entry_hash_v3`)."""

    __tablename__ = "ledger_entries"
    __table_args__ = (Index("ix_ledger_entries_account_currency", "account", "currency"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(Integer, default=2)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), index=True)
    market_id: Mapped[int] = mapped_column(ForeignKey("markets.id"))
    account: Mapped[str] = mapped_column(String(100))
    participant_id: Mapped[int | None] = mapped_column(ForeignKey("participants.id"), nullable=True)
    kind: Mapped[str] = mapped_column(String(20))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(40))
    memo: Mapped[str] = mapped_column(String(100))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    salt: Mapped[str | None] = mapped_column(String(64), nullable=True)


class LedgerRound(Base):
    """What the ledger booked for one round (written with its entries, in the same transaction)."""

    __tablename__ = "ledger_rounds"

    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), primary_key=True, autoincrement=False)
    market_id: Mapped[int] = mapped_column(ForeignKey("markets.id"))
    currency: Mapped[str] = mapped_column(String(40))
    entry_count: Mapped[int] = mapped_column(Integer)
    first_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    merkle_root: Mapped[str] = mapped_column(String(64))
    head_seq: Mapped[int] = mapped_column(Integer)
    head_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerHead(Base):
    __tablename__ = "ledger_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    hash: Mapped[str] = mapped_column(String(64))
    rounds: Mapped[int] = mapped_column(Integer, default=0)


class PortalSession(Base):
    """A browser signed in to the web portal; only the hash of its session token is stored."""

    __tablename__ = "portal_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    participant_id: Mapped[int | None] = mapped_column(ForeignKey("participants.id"), nullable=True)
    is_operator: Mapped[bool] = mapped_column(Boolean)
    csrf_token: Mapped[str] = mapped_column(String(64))
    # HMAC (keyed by the session token) of the hash of the key that opened it (migration 0008)
    key_binding: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
