"""Routes of participants: registration (operator only), the list, a participant's own record."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from datamarket.service.api import schemas as S
from datamarket.service.api.deps import Admin, Id, ParticipantOnly, State, Who
from datamarket.service.api.paging import Page, paged
from datamarket.service.store import participants as store

router = APIRouter(tags=["participants"])


@router.post("/participants", status_code=201, response_model=S.ParticipantCreated)
def register(body: S.ParticipantIn, _: Admin, st: State) -> S.ParticipantCreated:
    """Register a participant (operator only); the API key is returned once."""
    return S.ParticipantCreated(**store.register(st.db, body.name))


@router.get("/participants", response_model=list[S.ParticipantOut])
def list_participants(
    _: Admin, st: State, page: Page, request: Request, response: Response
) -> list[S.ParticipantOut]:
    """The participants with their balances (operator only), a page at a time (``after``, ``limit``;
    ``Link: rel="next"`` while more follow)."""
    rows = store.list_participants(st.db, page.after, page.limit)
    return [S.ParticipantOut(**p) for p in paged(rows, page, request, response)]


@router.get("/participants/me", response_model=S.ParticipantOut)
def me(who: ParticipantOnly, st: State) -> S.ParticipantOut:
    """The caller's record and balance (minor units)."""
    return S.ParticipantOut(**store.me(st.db, who))


@router.get("/participants/{pid}", response_model=S.ParticipantOut)
def get_participant(pid: Id, who: Who, st: State) -> S.ParticipantOut:
    """A participant's record and balance (itself or the operator)."""
    return S.ParticipantOut(**store.get_participant(st.db, who, pid))
