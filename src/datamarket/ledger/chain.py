"""The append-only ledger: hash-chained entries in three formats, balanced single-currency rounds.

Each entry ``e_n`` (sequence number ``n = 1, 2, ...``) stores ``prev_hash = h_{n-1}`` (``h_0 = 0^{64}``)
and its own hash ``h_n``, a SHA-256 over canonical JSON (sorted keys, no spaces):

* **format 3** (every entry written since schema revision 0007) hashes *every* column of the row,
  including a random per-entry ``salt`` (32 bytes from :mod:`secrets`, stored hex in the row)::

      h_n = SHA256(json{v: 3, seq, round, market, participant, account, kind, amount_minor,
                        currency, memo, created_at, salt, prev})

  The salt is what keeps a receipt private: every other field of an entry is known to or guessable
  by a participant of its round (sequence numbers, ids, account names, the round's timestamp), so
  an unsalted hash of another participant's entry lets a loop over plausible amounts recover it.
  With 256 unknown bits in every hash, the chain head, the Merkle tree of a round and the sibling
  hashes of an inclusion proof reveal nothing about the entries behind them. There is no server
  secret: the salt lives in the row, so the operator and an auditor with the database (or its
  export) recompute every hash offline; a participant receives only the salts of its own entries
  (:mod:`datamarket.ledger.receipts`);
* **format 2** (entries written from revision 0003 to 0006) hashes every column but the salt (then
  absent: ``NULL``) with ``v: 2``; ``ENTRY_COLUMNS`` lists the columns and a test keeps it equal to
  the table's;
* **format 1** (entries written before revision 0003) hashes ``seq, round, account, amount_minor,
  memo, prev``. Their other columns were filled by the migration and are checked against the rest of
  the database instead (:mod:`datamarket.ledger.audit`).

Entries of formats 1 and 2 keep their hashes (history is not rewritten, so checkpoints kept from them
still verify); formats never go down along the chain.

Appending locks the single ``ledger_head`` row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite
serialises writers itself), so concurrent rounds extend the chain one after the other. A round's
entries are appended in the caller's transaction, in the currency of the round's market, must sum to
zero (:func:`append_round` refuses otherwise), and get a ``ledger_rounds`` record (count, first/last
sequence number, Merkle root of their hashes, head after the round) that receipts hand to
participants as a checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from datamarket.core.errors import InvalidMarketError

# the pure half of the chain (no database) lives in entries; its names are re-exported from here too
from datamarket.ledger.entries import ENTRY_COLUMNS as ENTRY_COLUMNS
from datamarket.ledger.entries import FORMAT_VERSION, EntryRecord, entry_hash_v3, new_salt
from datamarket.ledger.entries import GENESIS as GENESIS
from datamarket.ledger.entries import SALT_BYTES as SALT_BYTES
from datamarket.ledger.entries import canonical_time as canonical_time
from datamarket.ledger.entries import entry_hash as entry_hash
from datamarket.ledger.entries import entry_hash_v2 as entry_hash_v2
from datamarket.ledger.entries import is_salt as is_salt
from datamarket.ledger.merkle import merkle_root
from datamarket.ledger.models import LedgerEntry, LedgerHead, LedgerRound, Market, Round, utcnow
from datamarket.ledger.money import MAX_MINOR, Currency, Posting, check_minor


def append_round(
    session: Session,
    round_id: int,
    postings: Sequence[Posting],
    participant_ids: Mapping[str, int] | None = None,
    currency: str | None = None,
) -> list[LedgerEntry]:
    """Append one round's postings to the chain inside the caller's transaction.

    The entries are in the currency of the round's market; ``currency``, when given, must be that
    currency (a round is in one currency only). Raises :class:`InvalidMarketError` when the postings
    do not sum to zero minor units, when the round was booked already, or when an account's balance
    would leave the 64-bit range. The caller commits; on rollback nothing of the round remains.
    """
    market, code = _bookable(session, round_id, postings, currency)
    ids = participant_ids or {}
    head = session.execute(select(LedgerHead).where(LedgerHead.id == 1).with_for_update()).scalar_one()
    _check_balances(session, postings, code)  # under the head lock: no concurrent round in between
    now = utcnow()
    entries, seq, prev = _chained(postings, round_id, market.id, ids, code, head.seq, head.hash, now)
    session.add_all(entries)
    session.add(
        LedgerRound(
            round_id=round_id,
            market_id=market.id,
            currency=code,
            entry_count=len(entries),
            first_seq=entries[0].seq if entries else None,
            last_seq=entries[-1].seq if entries else None,
            merkle_root=merkle_root([e.hash for e in entries]),
            head_seq=seq,
            head_hash=prev,
            created_at=now,
        )
    )
    head.seq, head.hash, head.rounds = seq, prev, head.rounds + 1
    session.flush()
    return entries


def _bookable(
    session: Session, round_id: int, postings: Sequence[Posting], currency: str | None
) -> tuple[Market, str]:
    """The round's market and currency code, after checking that the round exists, is in ``currency``
    (when given), balances to zero and is not booked yet."""
    rnd = session.get(Round, round_id)
    if rnd is None:
        raise InvalidMarketError("round_id", f"round {round_id} does not exist")
    market = session.get(Market, rnd.market_id)
    assert market is not None  # foreign key
    cur = Currency.parse(market.currency, stored=True)
    if currency is not None and Currency.parse(currency).code != cur.code:
        raise InvalidMarketError(
            "currency",
            f"round {round_id} is in {cur.code} (market {market.id}), not {currency}: one currency per round",
        )
    total = sum(check_minor(p.amount_minor) for p in postings)
    if total != 0:
        raise InvalidMarketError("postings", f"round {round_id} does not balance: sum is {total} minor units")
    if session.get(LedgerRound, round_id) is not None:
        raise InvalidMarketError("round_id", f"round {round_id} is already booked in the ledger")
    return market, cur.code


def _chained(
    postings: Sequence[Posting],
    round_id: int,
    market_id: int,
    ids: Mapping[str, int],
    code: str,
    seq: int,
    prev: str,
    now: Any,
) -> tuple[list[LedgerEntry], int, str]:
    """One entry per posting, numbered after ``seq`` and hash-chained after ``prev``; also the last
    entry's number and hash (``seq`` and ``prev`` when there are no postings)."""
    entries = []
    for p in postings:
        seq += 1
        fields: dict[str, Any] = {
            "seq": seq,
            "round_id": round_id,
            "market_id": market_id,
            "participant_id": ids.get(p.account),
            "account": p.account,
            "kind": p.kind,
            "amount_minor": p.amount_minor,
            "currency": code,
            "memo": p.memo,
            "created_at": now,
            "prev_hash": prev,
            "salt": new_salt(),
        }
        prev = entry_hash_v3(**fields)
        entries.append(LedgerEntry(version=FORMAT_VERSION, hash=prev, **fields))
    return entries, seq, prev


def _check_balances(session: Session, postings: Sequence[Posting], currency: str) -> None:
    """Refuse a round after which an account's balance in ``currency`` leaves the 64-bit range.

    The database sums (index on account and currency); SQLite's ``SUM`` raises when a partial sum leaves
    64 bits, which is refused the same way (conservative: only balances near 2^63 get there).
    """
    delta: dict[str, int] = {}
    for p in postings:
        delta[p.account] = delta.get(p.account, 0) + p.amount_minor
    if not delta:
        return
    q = (
        select(LedgerEntry.account, func.sum(LedgerEntry.amount_minor))
        .where(LedgerEntry.account.in_(list(delta)), LedgerEntry.currency == currency)
        .group_by(LedgerEntry.account)
    )
    try:
        for account, total in session.execute(q):
            delta[account] += int(total)
    except OperationalError as exc:
        if "overflow" not in str(exc):
            raise
        raise InvalidMarketError(
            "amount_minor", f"a {currency} balance overflows 2^63 - 1 minor units"
        ) from None
    for account, bal in delta.items():
        if abs(bal) > MAX_MINOR:
            raise InvalidMarketError(
                "amount_minor",
                f"the balance of {account!r} would be {bal} {currency} minor units, beyond 2^63 - 1",
            )


def records(session: Session, after: int = 0, limit: int | None = None) -> list[EntryRecord]:
    """The entries in sequence order (those with ``seq > after``, ``limit`` at most), as
    :class:`EntryRecord`."""
    q = select(LedgerEntry).where(LedgerEntry.seq > after).order_by(LedgerEntry.seq).limit(limit)
    return [EntryRecord.from_row(e) for e in session.execute(q).scalars()]


def dump(session: Session, after: int = 0, limit: int | None = None) -> dict[str, Any]:
    """The entries (all, or :func:`records`' window) and the head as JSON-safe data (deterministic
    order)."""
    entries = []
    for r in records(session, after, limit):
        d = r.to_dict()
        d["amount_minor"] = int(r.amount_minor)
        entries.append(d)
    head = session.execute(select(LedgerHead).where(LedgerHead.id == 1)).scalar_one_or_none()
    return {
        "entries": entries,
        "head": None if head is None else {"seq": head.seq, "hash": head.hash, "rounds": head.rounds},
    }


def balances(session: Session, account: str | None = None) -> dict[str, dict[str, int]]:
    """Net minor units per account (only ``account`` when given) and currency; amounts of different
    currencies are never added.

    Summed exactly in Python: SQLite's ``SUM`` fails when a partial sum leaves 64 bits, even if the
    total fits.
    """
    out: dict[str, dict[str, int]] = {}
    q = select(LedgerEntry.account, LedgerEntry.currency, LedgerEntry.amount_minor)
    if account is not None:
        q = q.where(LedgerEntry.account == account)
    for acc, cur, amount in session.execute(q):
        per = out.setdefault(acc, {})
        per[cur] = per.get(cur, 0) + int(amount)
    return out


def round_sums(session: Session) -> dict[int, int]:
    """Sum of minor units per round (a round is in one currency; every value is 0 in a sound ledger)."""
    out: dict[int, int] = {}
    for rid, amount in session.execute(select(LedgerEntry.round_id, LedgerEntry.amount_minor)):
        out[int(rid)] = out.get(int(rid), 0) + int(amount)
    return out
