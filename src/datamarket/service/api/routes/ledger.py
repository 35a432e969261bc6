"""Routes of the ledger: verification (the operator's, and a participant's checkpoint), export,
entries and balances."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

from datamarket.service.api import schemas as S
from datamarket.service.api.deps import Admin, State, Who
from datamarket.service.api.paging import Page, paged
from datamarket.service.store import ledger as store

router = APIRouter(tags=["ledger"])


class NDJSONResponse(PlainTextResponse):
    """JSON Lines, declared as such in the OpenAPI schema."""

    media_type = "application/x-ndjson"


@router.get("/ledger/verify", response_model=S.VerifyOut)
def verify(_: Admin, st: State) -> S.VerifyOut:
    """Recompute the hash chain and check it against rounds, submissions and deliverables
    (operator only)."""
    return S.VerifyOut(**store.verify(st.db))


@router.get("/ledger/checkpoint", response_model=S.CheckpointOut)
def head(_: Admin, st: State) -> S.CheckpointOut:
    """The chain head now, as a checkpoint to publish or keep (operator only: it tells the ledger's
    length)."""
    return S.CheckpointOut(**store.head(st.db))


@router.post(
    "/ledger/checkpoint",
    response_model=S.VerifyOut,
    responses={404: {"model": S.ErrorOut, "description": "a round the participant took no part in"}},
)
def verify_checkpoint(body: S.CheckpointOut, who: Who, st: State) -> S.VerifyOut:
    """Check that the ledger still extends a checkpoint kept from a receipt (the chain head after
    a round, the round's Merkle root and size, proofs). The operator checks any checkpoint. A
    participant checks only one of a round it took part in (404 otherwise), against what its receipt
    holds, and sees the checkpoint's problems and only the number of other problems."""
    return S.VerifyOut(**store.verify_checkpoint(st.db, who, body.model_dump()))


@router.get("/ledger/export", response_class=NDJSONResponse)
def export(_: Admin, st: State) -> NDJSONResponse:
    """The ledger as JSON Lines (``datamarket ledger verify --file`` checks it offline)."""
    return NDJSONResponse(store.export(st.db))


@router.get("/ledger/entries")
def entries(_: Admin, st: State, page: Page, request: Request, response: Response) -> dict[str, Any]:
    """The ledger entries by ``seq`` and the chain head (operator only), a page at a time (``after``
    a seq, ``limit``; ``Link: rel="next"`` while more follow)."""
    out = store.entries(st.db, page.after, page.limit)
    out["entries"] = paged(out["entries"], page, request, response, key=lambda e: e["seq"])
    return out


@router.get("/ledger/balances")
def ledger_balances(_: Admin, st: State) -> dict[str, dict[str, int]]:
    """Net minor units per account and currency, the platform included (operator only)."""
    return store.balances(st.db)
