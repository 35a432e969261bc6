"""The operator's participants page: every participant with its balances, and registration (the new
key shown once)."""

from __future__ import annotations

from fastapi import Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from datamarket.service.api import schemas as S
from datamarket.service.portal.session import Visitor
from datamarket.service.portal.views.common import (
    Operator,
    as_json,
    page,
    portal_router,
    posted,
    problem_of,
    state,
)
from datamarket.service.store import participants as store

router = portal_router()


@router.get("/participants")
def participants(request: Request, v: Visitor = Operator) -> HTMLResponse:
    """Every participant (operator)."""
    rows = as_json(S.ParticipantOut, store.list_participants(state(request).db))
    return page(request, v, "participants.html", rows=rows, errors={}, values={})


@router.post("/participants")
async def register(request: Request, v: Visitor = Operator) -> Response:
    """Register a participant and show its key once, or the list again with the problem."""
    form = await posted(request, v)
    db = state(request).db
    try:
        body = S.ParticipantIn(name=str(form.get("name") or ""))
        made = await run_in_threadpool(store.register, db, body.name)
    except Exception as exc:
        p = problem_of(exc)
        rows = as_json(S.ParticipantOut, await run_in_threadpool(store.list_participants, db))
        return page(
            request,
            v,
            "participants.html",
            status=p.status,
            rows=rows,
            errors={"name": p.message},
            values=form,
        )
    made = as_json(S.ParticipantCreated, made)
    return page(request, v, "participant_created.html", status=201, made=made)
