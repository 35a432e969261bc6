"""Round and receipt pages: clearing a round (operator), a round's live status and figure, receipts
and their "verify" action."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from datamarket.core.errors import DatamarketError
from datamarket.service.adapters.charges import rules_of
from datamarket.service.api import schemas as S
from datamarket.service.api.deps import Id
from datamarket.service.auth import Principal
from datamarket.service.clearing.runner import fail_round, open_round, release_round
from datamarket.service.portal import figures
from datamarket.service.portal.session import Visitor
from datamarket.service.portal.views.common import (
    Anyone,
    Operator,
    Participant,
    Problem,
    as_json,
    page,
    portal_router,
    posted,
    problem_of,
    state,
)
from datamarket.service.portal.views.markets import market_page
from datamarket.service.store import ledger, markets, receipts, rounds
from datamarket.service.store.errors import StoreError

router = portal_router()
MAX_ID = 2**31 - 1  # as the API's path ids (datamarket.service.api.deps.Id)


@router.post("/markets/{mid}/rounds")
async def clear(request: Request, mid: Id, v: Visitor = Operator) -> Response:
    """Open a round (with the operator's seed, if given) and go to its page."""
    form = await posted(request, v)
    raw = str(form.get("seed") or "").strip()
    try:
        body = S.RoundIn(seed=int(raw)) if raw else None
    except ValueError:  # not an integer, or out of range (pydantic's ValidationError is a ValueError)
        return await run_in_threadpool(
            lambda: market_page(
                request, v, mid, values=form, errors={"seed": "must be an integer"}, status=422
            )
        )
    st = state(request)
    try:
        out, _ = await run_in_threadpool(
            open_round, st.runner, st.adapters, v.who, mid, None if body is None else body.seed
        )
    except (StoreError, DatamarketError) as exc:
        p = problem_of(exc)
        return await run_in_threadpool(
            lambda: market_page(request, v, mid, values=form, message=p.message, status=p.status)
        )
    return RedirectResponse(f"/portal/rounds/{out['id']}", status_code=303)


def _round(request: Request, v: Visitor, rid: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Round ``rid`` and its market, as ``v`` may see them."""
    db = state(request).db
    rnd = as_json(S.RoundOut, rounds.get_round(db, v.who, rid))
    return rnd, as_json(S.MarketOut, markets.get_market(db, rnd["market_id"]))


@router.get("/rounds/{rid}")
def round_page(request: Request, rid: Id, v: Visitor = Anyone) -> HTMLResponse:
    """A round: progress, failure reason; for the operator every receipt once cleared."""
    rnd, m = _round(request, v, rid)
    cleared = v.who.is_admin and rnd["status"] == "cleared"
    rows = as_json(S.ReceiptOut, receipts.receipts(state(request).db, rid)) if cleared else []
    mine = receipts.participated(state(request).db, v.who, rid)
    return page(request, v, "round.html", rnd=rnd, m=m, receipts=rows, took_part=mine)


def _attempt(form: Any) -> int | None:
    """The attempt the operator saw on the page (compare-and-set), or None when the form has none."""
    raw = str(form.get("attempt") or "").strip()
    return int(raw) if raw.isdigit() and len(raw) <= 9 else None


@router.post("/rounds/{rid}/release")
async def release(request: Request, rid: Id, v: Visitor = Operator) -> Response:
    """End the lease of a stuck running round now: any process claims it again (nothing booked twice)."""
    form = await posted(request, v)
    return await _operator_action(request, v, rid, release_round, _attempt(form))


@router.post("/rounds/{rid}/fail")
async def fail(request: Request, rid: Id, v: Visitor = Operator) -> Response:
    """Fail a pending or running round: nothing booked, its inputs stay unconsumed."""
    form = await posted(request, v)
    reason = str(form.get("reason") or "").strip()[:500] or None

    def act(runner: Any, who: Any, rid: int, attempt: int | None) -> Any:
        return fail_round(runner, who, rid, attempt, reason)

    return await _operator_action(request, v, rid, act, _attempt(form))


async def _operator_action(
    request: Request, v: Visitor, rid: int, action: Any, attempt: int | None
) -> Response:
    try:
        await run_in_threadpool(action, state(request).runner, v.who, rid, attempt)
    except (StoreError, DatamarketError) as exc:
        p = problem_of(exc)
        rnd, m = await run_in_threadpool(_round, request, v, rid)
        return page(request, v, "round.html", status=p.status, rnd=rnd, m=m, receipts=[], message=p.message)
    return RedirectResponse(f"/portal/rounds/{rid}", status_code=303)


@router.get("/rounds/{rid}/status")
def round_status(request: Request, rid: Id, v: Visitor = Anyone) -> HTMLResponse:
    """The live part of a round's page (polled while it clears)."""
    rnd = as_json(S.RoundOut, rounds.get_round(state(request).db, v.who, rid))
    return page(request, v, "round_status.html", rnd=rnd)


@router.get("/rounds/{rid}/figure.svg")
def round_figure(request: Request, rid: Id, v: Visitor = Anyone) -> Response:
    """A cleared round's figure (SVG, drawn on the server): for the operator every participant's
    allocation and amounts with the certificate and the audits; for a participant of the round its
    own allocation and net amount against the means of its role (a participant of another round:
    404, as for a round that does not exist)."""
    st = state(request)
    if v.who.is_admin:
        rnd, m = _round(request, v, rid)
        rows = as_json(S.ReceiptOut, receipts.receipts(st.db, rid))
        svg = figures.draw(m, rnd, rows, st.display)
    else:
        svg = _participant_figure(request, v, rid)
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})


SERVER = Principal(is_admin=True, name="portal figure")
"""Whom the participant's figure reads the round's outcome as: the outcome and every receipt are
reduced on the server to the participant's :class:`~datamarket.service.portal.figures.Standing`
(its own values and the means of its role), and only that is drawn."""


def _participant_figure(request: Request, v: Visitor, rid: int) -> str:
    st = state(request)
    me = as_json(S.ReceiptOut, receipts.get_receipt(st.db, v.who, rid, v.who.participant_id or 0))
    m = as_json(S.MarketOut, markets.get_market(st.db, me["market_id"]))
    outcome = rounds.get_round(st.db, SERVER, rid)["outcome"]
    everyone = as_json(S.ReceiptOut, receipts.receipts(st.db, rid))
    return figures.draw_participant(m, rid, figures.standing(outcome, everyone, me), st.display)


def receipt_page(request: Request, v: Visitor, rid: int, pid: int, check: Any = None) -> HTMLResponse:
    """Participant ``pid``'s receipt of round ``rid`` (with a verification's result, ``check``)."""
    db = state(request).db
    rec = as_json(S.ReceiptOut, receipts.get_receipt(db, v.who, rid, pid))
    m = as_json(S.MarketOut, markets.get_market(db, rec["market_id"]))
    rules = rules_of(state(request).adapters.get(m["kind"]))
    return page(request, v, "receipt.html", rec=rec, m=m, check=check, rules=rules)


@router.get("/rounds/{rid}/receipt")
def my_receipt(request: Request, rid: Id, v: Visitor = Participant) -> HTMLResponse:
    """The signed-in participant's receipt."""
    return receipt_page(request, v, rid, v.who.participant_id or 0)


@router.get("/rounds/{rid}/receipts/{pid}")
def a_receipt(request: Request, rid: Id, pid: Id, v: Visitor = Operator) -> HTMLResponse:
    """Any participant's receipt (operator)."""
    return receipt_page(request, v, rid, pid)


def form_id(form: dict[str, Any], name: str) -> int:
    """Form field ``name`` as a row id (the API's path ids: 1 to 2^31 - 1, decimal digits only), else
    a 422 :class:`Problem` naming it (``abc``, ``1e3``, ``-1``, ``0x10``, 400 digits...)."""
    raw = str(form.get(name) or "").strip()
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10 and 1 <= int(raw) <= MAX_ID):
        raise Problem(422, f"{name}: must be a row id (an integer from 1 to {MAX_ID})", name)
    return int(raw)


@router.post("/rounds/{rid}/receipt/verify")
async def verify_receipt(request: Request, rid: Id, v: Visitor = Anyone) -> Response:
    """Check the receipt's checkpoint against the ledger and show the receipt with the result. A
    participant's ``pid`` field is ignored (its own receipt); the operator's must be a row id."""
    form = await posted(request, v)
    pid = form_id(form, "pid") if v.who.is_admin else v.who.participant_id or 0
    db = state(request).db

    def work() -> HTMLResponse:
        rec = as_json(S.ReceiptOut, receipts.get_receipt(db, v.who, rid, pid))
        if rec["checkpoint"] is None:
            check: Any = {"ok": False, "problems": ["this receipt carries no checkpoint"]}
        else:
            cp = S.CheckpointOut(**rec["checkpoint"]).model_dump()
            check = as_json(S.VerifyOut, ledger.verify_checkpoint(db, v.who, cp))
        return receipt_page(request, v, rid, pid, check)

    return await run_in_threadpool(work)
