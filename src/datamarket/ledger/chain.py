"""The append-only ledger: hash-chained entries, balanced rounds, verification and dumps.

Each entry ``e_n`` (sequence number ``n = 1, 2, ...``) stores ``prev_hash = h_{n-1}`` and

.. math:: h_n = \\mathrm{SHA256}(\\mathrm{json}(n, r_n, a_n, m_n, \\mathrm{memo}_n, h_{n-1})),
          \\qquad h_0 = 0^{64},

over its round ``r``, account ``a`` and amount ``m`` (integer minor units), with canonical JSON (sorted
keys, no spaces). Changing, deleting or reordering any entry breaks every later link, which
:func:`verify` reports. The single ``ledger_head`` row holds ``(n, h_n)`` of the last entry; appending
locks it (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite serialises writers itself), so concurrent
rounds extend the chain one after the other. A round's entries are appended in the caller's
transaction and must sum to zero (:func:`append_round` refuses otherwise): the ledger is balanced
round by round, not only in total. Integrity against an attacker who can also rewrite the head and
recompute every hash needs the head published elsewhere (e.g. in receipts); see ``docs/service.md``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from datamarket.core.errors import InvalidMarketError
from datamarket.ledger.models import LedgerEntry, LedgerHead
from datamarket.ledger.money import Posting

GENESIS = "0" * 64


def entry_hash(seq: int, round_id: int, account: str, amount_minor: int, memo: str, prev_hash: str) -> str:
    """SHA-256 hex digest of one entry's canonical JSON (module docstring).

    >>> entry_hash(1, 1, "platform", 0, "x", GENESIS)[:12]
    'e10d92056670'
    """
    body = json.dumps(
        {
            "seq": int(seq),
            "round": int(round_id),
            "account": account,
            "amount_minor": int(amount_minor),
            "memo": memo,
            "prev": prev_hash,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(body.encode()).hexdigest()


def append_round(
    session: Session,
    round_id: int,
    postings: Sequence[Posting],
    participant_ids: Mapping[str, int] | None = None,
) -> list[LedgerEntry]:
    """Append one round's postings to the chain inside the caller's transaction.

    Raises :class:`InvalidMarketError` (``postings``) when they do not sum to zero minor units. The
    caller commits; on rollback nothing of the round remains.
    """
    total = sum(p.amount_minor for p in postings)
    if total != 0:
        raise InvalidMarketError("postings", f"round {round_id} does not balance: sum is {total} minor units")
    ids = participant_ids or {}
    head = session.execute(select(LedgerHead).where(LedgerHead.id == 1).with_for_update()).scalar_one()
    seq, prev = head.seq, head.hash
    entries = []
    for p in postings:
        seq += 1
        h = entry_hash(seq, round_id, p.account, p.amount_minor, p.memo, prev)
        entries.append(
            LedgerEntry(
                seq=seq,
                round_id=round_id,
                account=p.account,
                participant_id=ids.get(p.account),
                amount_minor=p.amount_minor,
                memo=p.memo,
                prev_hash=prev,
                hash=h,
            )
        )
        prev = h
    session.add_all(entries)
    head.seq, head.hash = seq, prev
    session.flush()
    return entries


@dataclass(frozen=True)
class VerifyReport:
    """Result of :func:`verify`: ``ok`` and every problem found (first broken link first)."""

    ok: bool
    entries: int
    rounds: int
    head_hash: str
    problems: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "rounds": self.rounds,
            "head_hash": self.head_hash,
            "problems": list(self.problems),
        }


def verify(session: Session) -> VerifyReport:
    """Recompute the chain; check links, sequence numbers, the head and that every round sums to 0."""
    problems: list[str] = []
    prev, expected_seq = GENESIS, 1
    sums: dict[int, int] = {}
    n = 0
    for e in session.execute(select(LedgerEntry).order_by(LedgerEntry.seq)).scalars():
        n += 1
        if e.seq != expected_seq:
            problems.append(f"entry {e.seq}: expected sequence number {expected_seq} (entry missing)")
        if e.prev_hash != prev:
            problems.append(f"entry {e.seq}: prev_hash does not match the previous entry's hash")
        h = entry_hash(e.seq, e.round_id, e.account, e.amount_minor, e.memo, e.prev_hash)
        if h != e.hash:
            problems.append(f"entry {e.seq}: hash mismatch (entry was modified)")
        sums[e.round_id] = sums.get(e.round_id, 0) + int(e.amount_minor)
        prev, expected_seq = e.hash, e.seq + 1
    head = session.execute(select(LedgerHead).where(LedgerHead.id == 1)).scalar_one_or_none()
    if head is None:
        problems.append("ledger_head row is missing")
    elif (head.seq, head.hash) != (expected_seq - 1, prev):
        problems.append(
            f"ledger head (seq {head.seq}) does not match the last entry (seq {expected_seq - 1})"
        )
    for rid, s in sorted(sums.items()):
        if s != 0:
            problems.append(f"round {rid}: entries sum to {s} minor units, not 0")
    return VerifyReport(not problems, n, len(sums), prev, tuple(problems))


def dump(session: Session) -> dict[str, Any]:
    """Every entry and the head as JSON-safe data (deterministic order; timestamps excluded)."""
    entries = [
        {
            "seq": e.seq,
            "round_id": e.round_id,
            "account": e.account,
            "participant_id": e.participant_id,
            "amount_minor": int(e.amount_minor),
            "memo": e.memo,
            "prev_hash": e.prev_hash,
            "hash": e.hash,
        }
        for e in session.execute(select(LedgerEntry).order_by(LedgerEntry.seq)).scalars()
    ]
    head = session.execute(select(LedgerHead).where(LedgerHead.id == 1)).scalar_one_or_none()
    return {
        "entries": entries,
        "head": None if head is None else {"seq": head.seq, "hash": head.hash},
    }


def balances(session: Session) -> dict[str, int]:
    """Net minor units per account over the whole ledger."""
    rows = session.execute(
        select(LedgerEntry.account, func.sum(LedgerEntry.amount_minor)).group_by(LedgerEntry.account)
    )
    return {a: int(s) for a, s in rows}


def round_sums(session: Session) -> dict[int, int]:
    """Sum of minor units per round (every value is 0 in a sound ledger)."""
    rows = session.execute(
        select(LedgerEntry.round_id, func.sum(LedgerEntry.amount_minor)).group_by(LedgerEntry.round_id)
    )
    return {int(r): int(s) for r, s in rows}
