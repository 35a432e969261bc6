"""Verification of the ledger: the chain itself, its ties to the rest of the database, checkpoints.

:func:`verify` checks, and names the entry or round of every problem it finds:

1. **the chain** (:func:`check_records`, also run offline on an export): sequence numbers 1, 2, ...
   without gaps; each ``prev_hash`` is the previous entry's hash; each hash recomputes in its format
   (1, 2 or 3, formats never going down; a format-3 entry has a salt, an older one none); amounts
   are 63-bit integers (a REAL or text
   amount on SQLite is reported); currencies are valid; a round's entries are contiguous, in one
   market and one currency, and sum to zero;
2. **the head**: ``ledger_head`` is the last entry's ``(seq, hash)`` and counts the booked rounds;
3. **the round records**: each ``ledger_rounds`` row matches its entries (count, first/last
   sequence number, Merkle root, currency, market, head after the round is an entry of the chain);
4. **the rest of the database**: every ``cleared`` round has a record and every record or entry a
   ``cleared`` round (so deleting a cleared round's entries, or the last round with the head
   rewritten to the previous hash, is reported); an entry's market is its round's market and its
   currency the market's; an entry's participant bears the entry's account name; when the round
   stored its outcome, its entries are exactly the outcome's postings (:func:`~datamarket.ledger.
   money.outcome_postings`); every consumed submission and every deliverable points at a cleared
   round.

A **checkpoint** (what a receipt carries: the chain head after a round, the Merkle root of the
round's entry hashes and the participant's inclusion proofs; :mod:`datamarket.ledger.receipts`) lets
a participant check later that the current chain *extends* the one it saw
(:func:`~datamarket.ledger.receipts.check_checkpoint`, run here for each checkpoint given).
What an attacker with full database access can and cannot hide is in ``docs/service.md``
("Ledger").
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from datamarket.core.errors import DatamarketError
from datamarket.core.types import Outcome
from datamarket.ledger.chain import GENESIS, EntryRecord, is_salt, records
from datamarket.ledger.merkle import merkle_root
from datamarket.ledger.models import (
    Deliverable,
    LedgerHead,
    LedgerRound,
    Market,
    Participant,
    Round,
    Submission,
)
from datamarket.ledger.money import ENTRY_KINDS, MAX_MINOR, Currency, outcome_postings
from datamarket.ledger.receipts import check_checkpoint, checkpoint_of, parse_checkpoints

__all__ = [
    "VerifyReport",
    "check_checkpoint",
    "check_records",
    "checkpoint_of",
    "export_lines",
    "parse_checkpoints",
    "verify",
    "verify_checkpoints",
    "verify_export",
]


@dataclass(frozen=True)
class VerifyReport:
    """Result of :func:`verify`: ``ok`` and every problem found (first broken link first)."""

    ok: bool
    entries: int
    rounds: int
    head_hash: str
    head_seq: int = 0
    problems: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "rounds": self.rounds,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "problems": list(self.problems),
        }


@dataclass
class RoundSummary:
    """What the entries of one round add up to (built by :func:`check_records`)."""

    round_id: int
    seqs: list[int] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    markets: set[int | None] = field(default_factory=set)
    currencies: set[str] = field(default_factory=set)
    sums: dict[str, int] = field(default_factory=dict)


def check_records(
    entries: Iterable[EntryRecord],
) -> tuple[list[str], dict[int, RoundSummary], list[EntryRecord]]:
    """Step 1 of the module docstring on entries in sequence order; no database needed.

    Returns the problems, a summary per round and the entries (as a list).
    """
    problems: list[str] = []
    rounds: dict[int, RoundSummary] = {}
    seen: list[EntryRecord] = []
    prev, expected, newest, last_round = GENESIS, 1, 0, None
    for e in entries:
        seen.append(e)
        where = f"entry {e.seq} (round {e.round_id})"
        if e.seq != expected:
            what = "entry missing" if isinstance(e.seq, int) and e.seq > expected else "out of order"
            problems.append(f"{where}: expected sequence number {expected} ({what})")
        if e.prev_hash != prev:
            problems.append(f"{where}: prev_hash does not match the previous entry's hash")
        amount = e.amount_minor
        if isinstance(amount, bool) or not isinstance(amount, int):
            problems.append(f"{where}: amount_minor {amount!r} is not an integer number of minor units")
            amount = 0
        elif abs(amount) > MAX_MINOR:
            problems.append(f"{where}: amount_minor {amount} overflows 64 bits")
        problems += [f"{where}: {p}" for p in _format_problems(e, newest)]
        if isinstance(e.version, int):
            newest = max(newest, e.version)
        summary = rounds.get(e.round_id)
        if summary is None:
            summary = rounds[e.round_id] = RoundSummary(e.round_id)
        elif last_round != e.round_id:
            problems.append(f"{where}: round {e.round_id}'s entries are not contiguous")
        summary.seqs.append(e.seq)
        summary.hashes.append(e.hash)
        summary.markets.add(e.market_id)
        summary.currencies.add(e.currency)
        summary.sums[e.currency] = summary.sums.get(e.currency, 0) + amount
        prev, last_round = e.hash, e.round_id
        expected = (e.seq if isinstance(e.seq, int) else expected) + 1
    for rid, s in sorted(rounds.items()):
        if len(s.currencies) > 1:
            problems.append(f"round {rid}: entries in several currencies {sorted(s.currencies)}")
        if len(s.markets) > 1:
            problems.append(f"round {rid}: entries of several markets {sorted(map(str, s.markets))}")
        for cur, total in sorted(s.sums.items()):
            if total != 0:
                problems.append(f"round {rid}: {cur} entries sum to {total} minor units, not 0")
    return problems, rounds, seen


def _format_problems(e: EntryRecord, newest: int) -> list[str]:
    """An entry of an older format than one before it, a salt where its format has none, a kind that
    format 1 does not hash and does not follow from the memo, a hash that does not recompute, an
    unknown currency."""
    problems = []
    if isinstance(e.version, int) and e.version < newest:
        problems.append(f"format-{e.version} entry after a format-{newest} entry (downgraded)")
    if e.version in (1, 2) and e.salt is not None:
        problems.append(f"format-{e.version} entry with a salt (only format 3 hashes one)")
    if e.version == 1 and e.kind != ENTRY_KINDS.get(e.memo, "other"):  # not hashed in format 1
        problems.append(f"kind {e.kind!r} does not follow from its memo {e.memo!r}")
    if e.version == 3 and not is_salt(e.salt):
        problems.append(f"salt {e.salt!r} is not 32 bytes of hex")
    else:
        try:
            if e.computed_hash() != e.hash:
                problems.append("hash mismatch (entry was modified)")
        except (ValueError, TypeError) as exc:
            problems.append(f"cannot hash ({exc})")
    try:
        Currency.parse(e.currency)
    except DatamarketError:
        problems.append(f"unknown currency {e.currency!r}")
    return problems


def _check_head(
    head: Mapping[str, Any] | None, seen: Sequence[EntryRecord], n_rounds: int | None
) -> list[str]:
    last = (seen[-1].seq, seen[-1].hash) if seen else (0, GENESIS)
    if head is None:
        return ["ledger_head row is missing"]
    out = []
    if (head["seq"], head["hash"]) != last:
        out.append(
            f"ledger head (seq {head['seq']}, hash {str(head['hash'])[:12]}) does not match the last entry "
            f"(seq {last[0]}, hash {last[1][:12]}): entries were truncated, added or the head rewritten"
        )
    if n_rounds is not None and head.get("rounds") != n_rounds:
        out.append(f"ledger head counts {head.get('rounds')} booked rounds, the round records {n_rounds}")
    return out


def _check_round_records(
    recs: Mapping[int, Mapping[str, Any]], summaries: Mapping[int, RoundSummary], hash_at: Mapping[int, str]
) -> list[str]:
    """Step 3: each round record against its entries; entries without a record."""
    problems = []
    for rid in sorted(set(recs) | set(summaries)):
        rec, s = recs.get(rid), summaries.get(rid)
        if rec is None:
            problems.append(f"round {rid}: has ledger entries but no round record")
            continue
        seqs, hashes = (s.seqs, s.hashes) if s is not None else ([], [])
        want = {
            "entry_count": len(seqs),
            "first_seq": seqs[0] if seqs else None,
            "last_seq": seqs[-1] if seqs else None,
            "merkle_root": merkle_root(hashes),
        }
        for key, value in want.items():
            if rec[key] != value:
                problems.append(f"round {rid}: record says {key} {rec[key]!r}, its entries give {value!r}")
        if s is not None and s.currencies - {rec["currency"]}:
            problems.append(
                f"round {rid}: entries in {sorted(s.currencies)}, the record in {rec['currency']}"
            )
        if s is not None and s.markets - {rec["market_id"]}:
            problems.append(
                f"round {rid}: entries of market(s) {sorted(map(str, s.markets))}, record {rec['market_id']}"
            )
        head_seq, head_hash = rec["head_seq"], rec["head_hash"]
        if seqs and (head_seq, head_hash) != (seqs[-1], hashes[-1]):
            problems.append(f"round {rid}: record's head after the round is not its last entry")
        elif not seqs and hash_at.get(head_seq, GENESIS if head_seq == 0 else None) != head_hash:
            problems.append(f"round {rid}: record's head (seq {head_seq}) is not an entry of the chain")
    return problems


def verify(session: Session, checkpoints: Sequence[Mapping[str, Any]] = ()) -> VerifyReport:
    """Every check of the module docstring on the database of ``session``, and ``checkpoints``."""
    head_row = session.execute(select(LedgerHead).where(LedgerHead.id == 1)).scalar_one_or_none()
    head = (
        None if head_row is None else {"seq": head_row.seq, "hash": head_row.hash, "rounds": head_row.rounds}
    )
    recs = {r.round_id: _record_dict(r) for r in session.execute(select(LedgerRound)).scalars()}
    return _verify(records(session), head, recs, checkpoints, session)


def _verify(
    entries: Iterable[EntryRecord],
    head: Mapping[str, Any] | None,
    recs: Mapping[int, Mapping[str, Any]],
    checkpoints: Sequence[Mapping[str, Any]],
    session: Session | None = None,
    problems: Sequence[str] = (),
) -> VerifyReport:
    """Steps 1-3 (step 4 too with a ``session``) and the checkpoints; ``problems`` found before."""
    chain_problems, summaries, seen = check_records(entries)
    found = [*problems, *chain_problems]
    found += _check_head(head, seen, len(recs))
    found += _check_round_records(recs, summaries, {e.seq: e.hash for e in seen})
    if session is not None:
        found += _check_database(session, seen, summaries, recs)
    for cp in checkpoints:
        found += check_checkpoint(cp, seen)
    last = seen[-1] if seen else None
    return VerifyReport(
        not found,
        len(seen),
        len(recs),
        last.hash if last else GENESIS,
        last.seq if last else 0,
        tuple(found),
    )


_RECORD_KEYS = (
    "round_id",
    "market_id",
    "currency",
    "entry_count",
    "first_seq",
    "last_seq",
    "merkle_root",
    "head_seq",
    "head_hash",
)


def _record_dict(r: LedgerRound) -> dict[str, Any]:
    return {k: getattr(r, k) for k in _RECORD_KEYS}


def _check_database(
    session: Session,
    seen: Sequence[EntryRecord],
    summaries: Mapping[int, RoundSummary],
    recs: Mapping[int, Mapping[str, Any]],
) -> list[str]:
    """Step 4 of the module docstring."""
    rounds = {r.id: r for r in session.execute(select(Round)).scalars()}
    markets = {m.id: m for m in session.execute(select(Market)).scalars()}
    names = dict(session.execute(select(Participant.id, Participant.name)).all())
    ids = {n: i for i, n in names.items()}
    problems = _market_problems(markets)
    cleared = {rid for rid, r in rounds.items() if r.status == "cleared"}
    for rid in sorted(cleared - set(recs)):
        problems.append(f"round {rid}: cleared but the ledger has no record of it (entries deleted?)")
    for rid in sorted((set(recs) | set(summaries)) - cleared):
        state = rounds[rid].status if rid in rounds else "missing"
        problems.append(f"round {rid}: has ledger entries or a record but is {state}, not cleared")
    for e in seen:
        problems += _entry_problems(e, rounds, markets, names, ids)
    problems += _outcome_problems(seen, rounds, markets, sorted(cleared & set(summaries)))
    for sid, crid in session.execute(select(Submission.id, Submission.consumed_round_id)):
        if crid is not None and crid not in cleared:
            problems.append(f"submission {sid}: consumed by round {crid}, which is not cleared")
    for did, drid in session.execute(select(Deliverable.id, Deliverable.round_id)):
        if drid not in cleared:
            problems.append(f"deliverable {did}: of round {drid}, which is not cleared")
    return problems


def _market_problems(markets: Mapping[int, Market]) -> list[str]:
    """Markets whose scale is not their currency's, or whose currency is unknown."""
    problems = []
    for mk in markets.values():
        try:
            if Currency.parse(mk.currency).scale != mk.scale:
                problems.append(f"market {mk.id}: scale {mk.scale} does not match its currency {mk.currency}")
        except DatamarketError:
            problems.append(f"market {mk.id}: unknown currency {mk.currency!r}")
    return problems


def _entry_problems(
    e: EntryRecord,
    rounds: Mapping[int, Round],
    markets: Mapping[int, Market],
    names: Mapping[int, str],
    ids: Mapping[str, int],
) -> list[str]:
    """An entry whose market or currency is not its round's, or whose account and participant disagree."""
    problems = []
    where = f"entry {e.seq} (round {e.round_id})"
    rnd = rounds.get(e.round_id)
    if rnd is not None and e.market_id != rnd.market_id:
        problems.append(f"{where}: market {e.market_id}, but round {e.round_id} is of market {rnd.market_id}")
    em = markets.get(rnd.market_id) if rnd is not None else None
    if em is not None and e.currency != em.currency:
        problems.append(f"{where}: currency {e.currency}, but market {em.id} is in {em.currency}")
    if e.participant_id is not None and names.get(e.participant_id) != e.account:
        problems.append(
            f"{where}: account {e.account!r} but participant {e.participant_id} is "
            f"{names.get(e.participant_id)!r} (entry re-pointed)"
        )
    if e.participant_id is None and e.account in ids:
        problems.append(f"{where}: account {e.account!r} is participant {ids[e.account]} but has none")
    return problems


def _outcome_problems(
    seen: Sequence[EntryRecord],
    rounds: Mapping[int, Round],
    markets: Mapping[int, Market],
    booked: Sequence[int],
) -> list[str]:
    """Cleared, booked rounds whose entries are not the postings of their stored outcome."""
    problems = []
    by_round: dict[int, list[EntryRecord]] = {}
    for e in seen:
        by_round.setdefault(e.round_id, []).append(e)
    for rid in booked:
        r, m = rounds[rid], markets.get(rounds[rid].market_id)
        if r.outcome is None or m is None:
            continue
        try:
            want = [
                (p.account, p.amount_minor, p.memo)
                for p in outcome_postings(Outcome.from_dict(r.outcome), m.scale)
            ]
        except DatamarketError as exc:
            problems.append(f"round {rid}: its stored outcome cannot be booked ({exc})")
            continue
        got = [(e.account, e.amount_minor, e.memo) for e in by_round[rid]]
        if got != want:
            problems.append(
                f"round {rid}: ledger entries differ from the postings of the round's stored outcome"
            )
    return problems


# -- checkpoints ------------------------------------------------------------------------------------
def verify_checkpoints(session: Session, checkpoints: Sequence[Mapping[str, Any]]) -> VerifyReport:
    """:func:`verify` plus :func:`check_checkpoint` for each of ``checkpoints``."""
    return verify(session, checkpoints)


# -- export ----------------------------------------------------------------------------------------
def export_lines(session: Session) -> Iterator[str]:
    """The ledger as JSON Lines: one ``{"record": "entry", ...every column, "hash"}`` line per entry in
    sequence order, one ``{"record": "round", ...}`` line per round record, then the head."""
    for e in records(session):
        yield json.dumps({"record": "entry", **e.to_dict()}, sort_keys=True)
    for r in session.execute(select(LedgerRound).order_by(LedgerRound.round_id)).scalars():
        yield json.dumps({"record": "round", **_record_dict(r)}, sort_keys=True)
    head = session.execute(select(LedgerHead).where(LedgerHead.id == 1)).scalar_one_or_none()
    if head is not None:
        yield json.dumps(
            {"record": "head", "seq": head.seq, "hash": head.hash, "rounds": head.rounds}, sort_keys=True
        )


def verify_export(lines: Iterable[str], checkpoints: Sequence[Mapping[str, Any]] = ()) -> VerifyReport:
    """Steps 1-3 of the module docstring (and ``checkpoints``) on an export, without the database.

    A line that is not a JSON object of a known record kind is a problem (named by line number).
    """
    entries: list[EntryRecord] = []
    recs: dict[int, dict[str, Any]] = {}
    head: dict[str, Any] | None = None
    problems: list[str] = []
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            kind = d.pop("record")
            if kind == "entry":
                entries.append(EntryRecord.from_dict(d))
            elif kind == "round":
                recs[int(d["round_id"])] = {k: d[k] for k in _RECORD_KEYS}
            elif kind == "head":
                head = {k: d[k] for k in ("seq", "hash", "rounds")}
            else:
                raise ValueError(f"unknown record kind {kind!r}")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            problems.append(f"line {no}: not a ledger export line ({exc.__class__.__name__}: {exc})")
    return _verify(entries, head, recs, checkpoints, problems=problems)
