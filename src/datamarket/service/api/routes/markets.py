"""Routes of markets: creation (operator only), reading, and the plan."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from datamarket.service.api import schemas as S
from datamarket.service.api.deps import Admin, Id, State, Who
from datamarket.service.api.paging import Page, paged
from datamarket.service.store import markets as store

router = APIRouter(tags=["markets"])


@router.post("/markets", status_code=201, response_model=S.MarketOut)
def create_market(body: S.MarketIn, _: Admin, st: State) -> S.MarketOut:
    """Create a market of a kind listed by ``/kinds`` (operator only)."""
    scale = body.scale if "scale" in body.model_fields_set else None
    m = store.create_market(
        st.db, st.adapters, body.kind, body.name, body.params, scale=scale, currency=body.currency
    )
    return S.MarketOut(**m)


@router.get("/markets", response_model=list[S.MarketOut])
def list_markets(_: Who, st: State, page: Page, request: Request, response: Response) -> list[S.MarketOut]:
    """The markets by id, a page at a time (``after``, ``limit``; ``Link: rel="next"`` while more
    follow)."""
    rows = store.list_markets(st.db, page.after, page.limit)
    return [S.MarketOut(**m) for m in paged(rows, page, request, response)]


@router.get("/markets/{mid}", response_model=S.MarketOut)
def get_market(mid: Id, _: Who, st: State) -> S.MarketOut:
    """One market."""
    return S.MarketOut(**store.get_market(st.db, mid))


@router.get(
    "/markets/{mid}/plan",
    responses={409: {"model": S.ErrorOut, "description": "the inputs do not determine a plan yet"}},
)
def plan(mid: Id, who: Who, st: State) -> dict[str, Any]:
    """What the market's mechanism asks of participants given the inputs so far (e.g. the broker's
    sample sizes ``N*_i`` and posted prices); 409 while the inputs do not determine it. The operator
    sees the whole plan; a participant its own row, ``aggregates`` (counts and totals of the rows)
    and ``next_steps`` (a list of sentences: what it should submit or upload next, e.g. "Upload
    exactly 7 data points", or that it waits for the round), never another participant's name or
    row."""
    return store.plan(st.db, st.adapters, st.limits, mid, who)
