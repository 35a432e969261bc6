"""Reading the ledger: verification (whole chain, or a checkpoint), the chain head, export, entries
and balances.

A participant checks only checkpoints of rounds it took part in, booked with salted entries
(:mod:`datamarket.ledger.receipts`), and only against what its receipt holds: the chain head after
that round, the round's root and size, its own entries' proofs. So the check cannot serve as an
oracle for guesses of other entries (a guessed hash at another sequence number, a proof of another
participant's entry), and its answer carries no global count: the round's entry count and the
checkpoint's own head, with the number of problems found elsewhere.

Every verification is counted by scope (``ledger``: the whole chain; ``checkpoint``) and result
(``datamarket_ledger_verifications_total``: :mod:`datamarket.service.observability.metrics`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from datamarket.ledger import audit, chain
from datamarket.ledger.chain import GENESIS
from datamarket.ledger.models import LedgerEntry, LedgerHead, LedgerRound
from datamarket.ledger.receipts import check_checkpoint, salted
from datamarket.service.auth import Principal
from datamarket.service.observability import metrics
from datamarket.service.store.db import Database
from datamarket.service.store.errors import Conflict, Forbidden, NotFound
from datamarket.service.store.receipts import round_for

MAX_ID = 2**31 - 1  # row ids are 32-bit (the API's path ids have the same bound)


def verify(db: Database) -> dict[str, Any]:
    """The hash chain recomputed and checked against rounds, submissions and deliverables."""
    with db.read() as s:
        report = audit.verify(s).to_dict()
    metrics.ledger_verified("ledger", bool(report["ok"]))
    return report


def head(db: Database) -> dict[str, Any]:
    """The chain head now as a checkpoint (operator: it tells the ledger's length), to publish or
    to check later that the ledger still extends it."""
    with db.read() as s:
        h = s.execute(select(LedgerHead).where(LedgerHead.id == 1)).scalar_one_or_none()
    seq, hash_ = (0, GENESIS) if h is None else (h.seq, h.hash)
    return {"round_id": None, "seq": seq, "hash": hash_, "merkle_root": None, "size": None, "proofs": []}


def verify_checkpoint(db: Database, who: Principal, checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """Whether the ledger still extends ``checkpoint`` (kept from a receipt): the operator's full
    report; a participant's scoped one (module docstring)."""
    cp = dict(checkpoint)
    with db.read() as s:
        if who.is_admin:
            report = audit.verify_checkpoints(s, [cp]).to_dict()
            metrics.ledger_verified("checkpoint", bool(report["ok"]))
            return report
        own, size = _participant_check(s, who, cp)
        rep = audit.verify(s)
    hidden = len(rep.problems)
    metrics.ledger_verified("checkpoint", rep.ok and not own)
    return {
        "ok": rep.ok and not own,
        "entries": size,
        "rounds": 1,
        "head_seq": cp["seq"],
        "head_hash": cp["hash"],
        "problems": own + ([f"{hidden} other problem(s) found; ask the operator"] if hidden else []),
    }


def _participant_check(s: Session, who: Principal, cp: dict[str, Any]) -> tuple[list[str], int]:
    """The problems of participant ``who``'s checkpoint ``cp`` and the number of entries of its round
    now; refuses (403, 404, 409) what the participant may not check."""
    rid = cp.get("round_id")
    if rid is None:
        raise Forbidden(
            "a participant checks checkpoints of its rounds (round_id); the chain head is the operator's"
        )
    if not isinstance(rid, int) or not 1 <= rid <= MAX_ID:
        raise NotFound(f"round {rid} not found")
    round_for(s, who, rid)  # 404 unless it took part
    if not salted(s, rid):
        raise Conflict(
            f"round {rid} was booked before receipts were salted (revision 0007): "
            "ask the operator or an auditor to check this checkpoint against the ledger's export"
        )
    rec = s.get(LedgerRound, rid)
    tag = f"checkpoint (seq {cp['seq']}, round {rid})"
    problems = []
    if rec is None:
        problems.append(f"{tag}: round {rid} is not booked in the ledger any more")
    elif cp["seq"] != rec.head_seq:
        problems.append(f"{tag}: seq {cp['seq']} is not the chain head after round {rid} ({rec.head_seq})")
    head_ok = not problems  # only the head after its round is compared: never a guess at another seq
    mine = s.execute(
        select(LedgerEntry.seq).where(
            LedgerEntry.round_id == rid, LedgerEntry.participant_id == who.participant_id
        )
    ).scalars()
    own = set(mine)
    proofs = [p for p in cp.get("proofs") or [] if isinstance(p, Mapping) and p.get("seq") in own]
    for p in cp.get("proofs") or []:
        if p not in proofs:
            seq = p.get("seq") if isinstance(p, Mapping) else None
            problems.append(f"{tag}: entry {seq} is not one of your entries in round {rid}")
    seen = chain.records(s)
    scoped = {**cp, "proofs": proofs, "entry_hashes": None}
    problems += check_checkpoint(scoped, seen, head=head_ok)
    return problems, sum(1 for e in seen if e.round_id == rid)


def export(db: Database) -> str:
    """The ledger as JSON Lines (``datamarket ledger verify --file`` checks it offline)."""
    with db.read() as s:
        return "".join(line + "\n" for line in audit.export_lines(s))


def entries(db: Database, after: int = 0, limit: int | None = None) -> dict[str, Any]:
    """The ledger entries by ``seq`` after ``after`` (``limit + 1`` at most when given) and the chain
    head."""
    with db.read() as s:
        return chain.dump(s, after, None if limit is None else limit + 1)


def market_totals(db: Database, participant_id: int, market_id: int) -> list[dict[str, Any]]:
    """A participant's money in one market so far, per currency: what it received (payments), what it
    paid (prices), the net and the number of rounds that booked it, exact minor units (the running
    revenue a seller of the real-time market sees grow buyer by buyer)."""
    out: dict[str, dict[str, Any]] = {}
    with db.read() as s:
        q = select(LedgerEntry.currency, LedgerEntry.amount_minor, LedgerEntry.round_id).where(
            LedgerEntry.participant_id == participant_id, LedgerEntry.market_id == market_id
        )
        for currency, amount, rid in s.execute(q):
            t = out.setdefault(currency, {"currency": currency, "received": 0, "paid": 0, "rounds": set()})
            t["received" if amount > 0 else "paid"] += abs(int(amount))
            t["rounds"].add(rid)
    return [
        {**t, "net": t["received"] - t["paid"], "rounds": len(t["rounds"])} for _, t in sorted(out.items())
    ]


def balances(db: Database) -> dict[str, dict[str, int]]:
    """Net minor units per account and currency, the platform included."""
    with db.read() as s:
        return chain.balances(s)
