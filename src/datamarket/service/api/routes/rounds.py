"""Routes of rounds: opening one over a market's inputs (idempotent with an ``Idempotency-Key``),
status and progress, retry of a failed round, and the operator's release or failure of a stuck one."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from datamarket.service.api import schemas as S
from datamarket.service.api.deps import Admin, Id, IdemKey, State, Who
from datamarket.service.api.paging import Page, paged
from datamarket.service.clearing.runner import fail_round, open_round, release_round, retry_round
from datamarket.service.store import rounds as store

router = APIRouter(tags=["rounds"])


@router.post(
    "/markets/{mid}/rounds",
    status_code=202,
    response_model=S.RoundOut,
    responses={200: {"model": S.RoundOut, "description": "idempotent replay"}},
)
def clear(
    mid: Id, who: Admin, st: State, body: S.RoundIn | None = None, idempotency_key: IdemKey = None
) -> Response:
    """Clear a round over the market's unconsumed inputs, in the background (operator only).

    The round starts ``pending``; poll ``GET /rounds/{id}`` for status and progress. 409 while
    another round of the market is in progress (enforced by the database), when the market's
    inputs cannot be cleared yet (e.g. no bids), or when the same ``Idempotency-Key`` was used
    with another body.
    """
    seed = body.seed if body is not None else None
    view, created = open_round(st.runner, st.adapters, who, mid, seed, idempotency_key)
    return JSONResponse(S.RoundOut(**view).model_dump(mode="json"), status_code=202 if created else 200)


@router.get("/markets/{mid}/rounds", response_model=list[S.RoundOut])
def list_rounds(
    mid: Id, who: Who, st: State, page: Page, request: Request, response: Response
) -> list[S.RoundOut]:
    """The rounds of a market (status and progress; outcomes for the operator), a page at a time
    (``after``, ``limit``; ``Link: rel="next"`` while more follow)."""
    rows = store.list_rounds(st.db, who, mid, page.after, page.limit)
    return [S.RoundOut(**r) for r in paged(rows, page, request, response)]


@router.get("/rounds/{rid}", response_model=S.RoundOut)
def get_round(rid: Id, who: Who, st: State) -> S.RoundOut:
    """Status (pending/running/cleared/failed/unverified), progress in [0, 1], error; outcome and
    certificate for the operator."""
    return S.RoundOut(**store.get_round(st.db, who, rid))


@router.post("/rounds/{rid}/retry", status_code=202, response_model=S.RoundOut)
def retry(rid: Id, who: Admin, st: State) -> S.RoundOut:
    """Run a failed round again on the same inputs (409 unless it failed, its inputs are all still
    unconsumed and no other round of the market is in progress)."""
    return S.RoundOut(**retry_round(st.runner, who, rid))


@router.post("/rounds/{rid}/release", response_model=S.RoundOut)
def release(rid: Id, who: Admin, st: State, body: S.ReleaseIn | None = None) -> S.RoundOut:
    """End the lease of a stuck running round now (operator only): it goes back to ``pending`` and
    any service process claims it again; the process that held it books nothing even if it wakes up
    (compare-and-set on the lease). Idempotent: a pending round is returned as it is. 409 for a round
    no longer in progress, or not in ``attempt`` when given."""
    attempt = body.attempt if body is not None else None
    return S.RoundOut(**release_round(st.runner, who, rid, attempt))


@router.post("/rounds/{rid}/fail", response_model=S.RoundOut)
def fail(rid: Id, who: Admin, st: State, body: S.FailIn | None = None) -> S.RoundOut:
    """Fail a pending or running round now (operator only): nothing is booked, its inputs stay
    unconsumed, and it can be retried; the process that held it books nothing even if it wakes up.
    Idempotent: a failed round is returned as it is. 409 for a cleared or unverified round, or one
    not in ``attempt`` when given."""
    attempt, reason = (body.attempt, body.reason) if body is not None else (None, None)
    return S.RoundOut(**fail_round(st.runner, who, rid, attempt, reason))
