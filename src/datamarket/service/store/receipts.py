"""Receipts of cleared rounds (a participant's ledger entries, net amount, deliverable, checkpoint and
the revealed seed) and the deliverables (models, estimates) participants received.

A receipt reveals nothing of the other participants' entries (:mod:`datamarket.ledger.receipts`):
it carries the participant's own entries with their salts, the Merkle proofs of those entries, the
round's root and size and the chain head after the round, all hashes over salted entries. A round
booked before revision 0007 (unsalted entries) gets a receipt without any hash: the participant's
entries and amounts only. A participant reads receipts only of rounds it took part in
(:func:`took_part`); for any other round the answer is the 404 of a round that does not exist.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from datamarket.ledger.chain import EntryRecord
from datamarket.ledger.models import Deliverable, LedgerEntry, Market, Participant, Round, Submission
from datamarket.ledger.money import Currency, format_minor
from datamarket.ledger.receipts import checkpoint_of, salted
from datamarket.service.auth import Principal
from datamarket.service.store.db import Database
from datamarket.service.store.errors import Conflict, NotFound
from datamarket.service.store.rows import check_owner, get_or_404


def cleared_round(s: Session, rid: int) -> Round:
    """Round ``rid``; :class:`Conflict` unless it is cleared."""
    r = get_or_404(s, Round, rid, "round")
    if r.status != "cleared":
        raise Conflict(f"round {rid} is {r.status}, not cleared")
    return r


def took_part(s: Session, r: Round, pid: int | None) -> bool:
    """Whether participant ``pid`` took part in round ``r``: one of its submissions is an input of the
    round, or the round booked an entry or a deliverable for it."""
    if pid is None:
        return False
    ids = [int(i) for i in r.input_ids or []]
    checks = [
        select(LedgerEntry.seq).where(LedgerEntry.round_id == r.id, LedgerEntry.participant_id == pid),
        select(Deliverable.id).where(Deliverable.round_id == r.id, Deliverable.participant_id == pid),
    ]
    if ids:
        checks.append(select(Submission.id).where(Submission.id.in_(ids), Submission.participant_id == pid))
    return any(s.execute(q.limit(1)).first() is not None for q in checks)


def participated(db: Database, who: Principal, rid: int) -> bool:
    """Whether ``who`` may read round ``rid``'s receipt and figure: the operator, or a participant
    that took part in it (:func:`took_part`)."""
    if who.is_admin:
        return True
    with db.read() as s:
        r = s.get(Round, rid)
        return r is not None and took_part(s, r, who.participant_id)


def round_for(s: Session, who: Principal, rid: int) -> Round:
    """Round ``rid`` for ``who``: :class:`NotFound` (as for a round that does not exist) when a
    participant took no part in it."""
    r = get_or_404(s, Round, rid, "round")
    if not who.is_admin and not took_part(s, r, who.participant_id):
        raise NotFound(f"round {rid} not found")
    return r


def _entry(e: EntryRecord, scale: int, hashes: bool) -> dict[str, Any]:
    amount = int(e.amount_minor)
    d = {**e.to_dict(), "amount_minor": amount, "amount": format_minor(amount, scale)}
    if not hashes:
        d.update(hash=None, prev_hash=None)
    return d


def explained(charges: list[dict[str, Any]], mine: list[EntryRecord], kind: str) -> list[dict[str, Any]]:
    """The recorded explanation of each receipt line (:mod:`datamarket.service.adapters.charges`)
    with the line as booked: ``booked_minor`` (the entry's amount, negative for a price: the exact
    ``amount`` rounded to minor units by the largest-remainder rule that keeps the round balanced),
    ``sign`` (-1 for a price) and the ``guide`` anchor of its rule (``<kind>-<rule>``)."""
    booked = {e.memo: int(e.amount_minor) for e in mine}
    out = []
    for c in charges:
        sign = -1 if c.get("memo") == "price" else 1
        minor = booked.get(str(c.get("memo")), 0)
        out.append({**c, "booked_minor": minor, "guide": f"{kind}-{c.get('rule')}", "sign": sign})
    return out


def receipt_view(s: Session, r: Round, p: Participant) -> dict[str, Any]:
    """The participant's entries (every hashed field, salts included), the round's currency and the
    checkpoint (chain head after the round, Merkle root and size, the entries' inclusion proofs); no
    hash at all for a round of unsalted entries (module docstring)."""
    m = s.get(Market, r.market_id)
    cur = Currency.parse(m.currency if m is not None else "USD", stored=True)
    rows = s.execute(
        select(LedgerEntry)
        .where(LedgerEntry.round_id == r.id, LedgerEntry.participant_id == p.id)
        .order_by(LedgerEntry.seq)
    ).scalars()
    mine = [EntryRecord.from_row(e) for e in rows]
    private = salted(s, r.id)
    cp = checkpoint_of(s, r.id, p.id) if private else None
    d = s.execute(
        select(Deliverable).where(Deliverable.round_id == r.id, Deliverable.participant_id == p.id)
    ).scalar_one_or_none()
    net = sum(int(e.amount_minor) for e in mine)
    kind = m.kind if m is not None else ""
    return {
        "round_id": r.id,
        "market_id": r.market_id,
        "participant_id": p.id,
        "participant": p.name,
        "entries": [_entry(e, cur.scale, private) for e in mine],
        "net_minor": net,
        "net": format_minor(net, cur.scale),
        "currency": cur.code,
        "deliverable": None if d is None or not d.payload else d.payload,
        "charges": None if d is None or d.charges is None else explained(d.charges, mine, kind),
        "round_hash": None if cp is None or cp["size"] == 0 else cp["hash"],
        "checkpoint": cp,
        "seed": r.seed,
        "seed_salt": r.seed_salt,
        "seed_commit": r.seed_commit,
        "seed_source": r.seed_source,
    }


def receipts(db: Database, rid: int) -> list[dict[str, Any]]:
    """Every participant's receipt of a cleared round (those with entries or a deliverable)."""
    with db.read() as s:
        r = cleared_round(s, rid)
        booked = s.execute(select(LedgerEntry.participant_id).where(LedgerEntry.round_id == rid)).scalars()
        delivered = s.execute(select(Deliverable.participant_id).where(Deliverable.round_id == rid)).scalars()
        pids = {p for p in booked if p is not None} | set(delivered)
        return [receipt_view(s, r, get_or_404(s, Participant, pid, "participant")) for pid in sorted(pids)]


def get_receipt(db: Database, who: Principal, rid: int, pid: int) -> dict[str, Any]:
    """Participant ``pid``'s receipt of round ``rid`` (itself or the operator)."""
    check_owner(who, pid, "participant", pid)
    with db.read() as s:
        p = get_or_404(s, Participant, pid, "participant")
        round_for(s, who, rid)
        return receipt_view(s, cleared_round(s, rid), p)


def get_model(db: Database, who: Principal, rid: int, pid: int) -> dict[str, Any]:
    """What participant ``pid`` received from round ``rid`` (model, estimate, gain)."""
    check_owner(who, pid, "participant", pid)
    with db.read() as s:
        round_for(s, who, rid)
        cleared_round(s, rid)
        d = s.execute(
            select(Deliverable).where(Deliverable.round_id == rid, Deliverable.participant_id == pid)
        ).scalar_one_or_none()
        if d is None:
            raise NotFound(f"participant {pid} received nothing in round {rid}")
        return {"round_id": rid, "participant_id": pid, "deliverable": d.payload}
