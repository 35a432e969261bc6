"""Receipts of cleared rounds (a participant's ledger entries, net amount, deliverable, checkpoint and
the revealed seed) and the deliverables (models, estimates) participants received."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from datamarket.ledger.audit import checkpoint_of
from datamarket.ledger.chain import EntryRecord
from datamarket.ledger.models import Deliverable, LedgerEntry, Market, Participant, Round
from datamarket.ledger.money import Currency, format_minor
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


def _entry(e: EntryRecord, scale: int) -> dict[str, Any]:
    amount = int(e.amount_minor)
    return {**e.to_dict(), "amount_minor": amount, "amount": format_minor(amount, scale)}


def receipt_view(s: Session, r: Round, p: Participant) -> dict[str, Any]:
    """Ledger format 2: every hashed field of the participant's entries, the round's currency and the
    checkpoint (chain head after the round, entry hashes, Merkle root, inclusion proofs)."""
    m = s.get(Market, r.market_id)
    cur = Currency.parse(m.currency if m is not None else "USD")
    rows = s.execute(
        select(LedgerEntry).where(LedgerEntry.round_id == r.id).order_by(LedgerEntry.seq)
    ).scalars()
    all_rows = [EntryRecord.from_row(e) for e in rows]
    mine = [e for e in all_rows if e.participant_id == p.id]
    d = s.execute(
        select(Deliverable).where(Deliverable.round_id == r.id, Deliverable.participant_id == p.id)
    ).scalar_one_or_none()
    net = sum(int(e.amount_minor) for e in mine)
    return {
        "round_id": r.id,
        "market_id": r.market_id,
        "participant_id": p.id,
        "participant": p.name,
        "entries": [_entry(e, cur.scale) for e in mine],
        "net_minor": net,
        "net": format_minor(net, cur.scale),
        "currency": cur.code,
        "deliverable": None if d is None else d.payload,
        "round_hash": all_rows[-1].hash if all_rows else None,
        "checkpoint": checkpoint_of(s, r.id, p.id),
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
        return receipt_view(s, cleared_round(s, rid), p)


def get_model(db: Database, who: Principal, rid: int, pid: int) -> dict[str, Any]:
    """What participant ``pid`` received from round ``rid`` (model, estimate, gain)."""
    check_owner(who, pid, "participant", pid)
    with db.read() as s:
        cleared_round(s, rid)
        d = s.execute(
            select(Deliverable).where(Deliverable.round_id == rid, Deliverable.participant_id == pid)
        ).scalar_one_or_none()
        if d is None:
            raise NotFound(f"participant {pid} received nothing in round {rid}")
        return {"round_id": rid, "participant_id": pid, "deliverable": d.payload}
