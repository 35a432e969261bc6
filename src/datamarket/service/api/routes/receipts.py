"""Routes of receipts: every receipt of a cleared round (operator), a participant's receipt, and what
a participant received (its deliverable)."""

from __future__ import annotations

from fastapi import APIRouter

from datamarket.service.api import schemas as S
from datamarket.service.api.deps import Admin, Id, State, Who
from datamarket.service.store import receipts as store

router = APIRouter(tags=["receipts"])


@router.get("/rounds/{rid}/receipts", response_model=list[S.ReceiptOut])
def receipts(rid: Id, _: Admin, st: State) -> list[S.ReceiptOut]:
    """Every participant's receipt of a cleared round (operator only)."""
    return [S.ReceiptOut(**r) for r in store.receipts(st.db, rid)]


@router.get("/rounds/{rid}/receipts/{pid}", response_model=S.ReceiptOut)
def get_receipt(rid: Id, pid: Id, who: Who, st: State) -> S.ReceiptOut:
    """A participant's receipt: its ledger entries of the round, net amount, deliverable."""
    return S.ReceiptOut(**store.get_receipt(st.db, who, rid, pid))


@router.get("/rounds/{rid}/models/{pid}", response_model=S.ModelOut)
def get_model(rid: Id, pid: Id, who: Who, st: State) -> S.ModelOut:
    """What a participant received from the round (model, estimate, gain)."""
    return S.ModelOut(**store.get_model(st.db, who, rid, pid))
