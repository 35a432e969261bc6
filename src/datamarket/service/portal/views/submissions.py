"""Submission pages: a participant's JSON inputs (a form per kind) and dataset uploads, a submission's
page, withdrawal by its owner and exclusion by the operator."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from datamarket.service.api import schemas as S
from datamarket.service.api.deps import Id
from datamarket.service.clearing.runner import after_submission
from datamarket.service.portal import forms
from datamarket.service.portal.session import Visitor, check_csrf
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
from datamarket.service.store import markets, submissions
from datamarket.service.store.errors import Busy

router = portal_router()


@router.post("/markets/{mid}/submit/{kind}")
async def submit(request: Request, mid: Id, kind: str, v: Visitor = Participant) -> Response:
    """Store a JSON input from its generated form, or show the market again with the problems."""
    form = await posted(request, v)
    st = state(request)
    m = await run_in_threadpool(markets.get_market, st.db, mid)
    model = forms.submission_model(m["kind"], kind)
    data, errors = forms.parse(model, form)

    def again(errs: dict[str, str], message: str | None, status: int) -> HTMLResponse:
        return market_page(
            request, v, mid, values=form, errors=errs, form_kind=kind, message=message, status=status
        )

    if errors:
        return await run_in_threadpool(again, errors, "some fields could not be read", 422)
    try:
        body = S.SubmissionIn(kind=kind, data=data)
        view, created = await run_in_threadpool(
            submissions.submit_json, st.db, st.adapters, st.limits, v.who, mid, body.kind, body.data
        )
        await run_in_threadpool(after_submission, st.runner, st.adapters, view, created)
    except Exception as exc:
        p = problem_of(exc)
        f = forms.field_of(p.field, model, p.message)
        return await run_in_threadpool(again, {f: p.message} if f else {}, None if f else p.message, p.status)
    return RedirectResponse(f"/portal/markets/{mid}?done=submitted", status_code=303)


async def _upload(request: Request, mid: int, v: Visitor, form: Any) -> None:
    """Store the form's file as a dataset upload (the same rules as ``POST /markets/{id}/datasets``,
    the multipart file name included: too long or with a control character, a 422): parsed and
    stored in a worker thread, so that the event loop keeps answering."""
    st = state(request)
    file = form.get("file")
    content = await file.read() if file is not None and not isinstance(file, str) else b""
    if not content:
        raise Problem(422, "choose a file to upload", "file")
    up = submissions.Upload(
        content,
        kind=str(form.get("kind") or "dataset"),
        format=str(form.get("format") or "") or None,
        content_type=getattr(file, "content_type", None) or None,
        filename=getattr(file, "filename", None) or None,
        label_column=str(form.get("label_column") or "label"),
        group_column=str(form.get("group_column") or "group"),
    )
    await run_in_threadpool(submissions.upload_dataset, st.db, st.adapters, st.limits, v.who, mid, up)


@router.post("/markets/{mid}/datasets")
async def upload(request: Request, mid: Id, v: Visitor = Participant) -> Response:
    """Upload a dataset from the form (JSON answers for the page's script, which shows progress)."""
    form = await request.form(max_files=1)
    check_csrf(v, form.get("csrf"))
    wants_json = "application/json" in request.headers.get("accept", "")
    try:
        await _upload(request, mid, v, form)
    except Exception as exc:
        p = problem_of(exc)
        field = "file"  # the upload form shows every problem (kind, format, names, content) by its file
        retry = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Busy) else {}
        if wants_json:
            body = json.dumps({"errors": {field: p.message}, "status": p.status})
            return Response(body, status_code=p.status, media_type="application/json", headers=retry)
        values = {k: form.get(k) for k in form if k != "file"}
        page = await run_in_threadpool(
            lambda: market_page(
                request, v, mid, values=values, errors={field: p.message}, form_kind="upload", status=p.status
            )
        )
        page.headers.update(retry)
        return page
    target = f"/portal/markets/{mid}?done=uploaded"
    if wants_json:
        return Response(json.dumps({"redirect": target}), media_type="application/json")
    return RedirectResponse(target, status_code=303)


@router.get("/submissions/{sid}")
def submission(request: Request, sid: Id, v: Visitor = Anyone) -> HTMLResponse:
    """A submission's page (its owner or the operator)."""
    x = as_json(S.SubmissionOut, submissions.get_submission(state(request).db, v.who, sid))
    return page(request, v, "submission.html", x=x)


@router.post("/submissions/{sid}/withdraw")
async def withdraw(request: Request, sid: Id, v: Visitor = Participant) -> Response:
    """Withdraw one of the participant's unconsumed submissions."""
    await posted(request, v)
    x = await run_in_threadpool(submissions.withdraw, state(request).db, v.who, sid)
    return RedirectResponse(f"/portal/markets/{x['market_id']}?done=withdrawn", status_code=303)


@router.post("/submissions/{sid}/exclude")
async def exclude(request: Request, sid: Id, v: Visitor = Operator) -> Response:
    """The operator's exclusion of a submission, with the reason."""
    form = await posted(request, v)
    db = state(request).db
    x = await run_in_threadpool(submissions.get_submission, db, v.who, sid)
    try:
        body = S.ExcludeIn(reason=str(form.get("reason") or "").strip())
        await run_in_threadpool(submissions.exclude_by_operator, db, v.who, sid, body.reason)
    except Exception as exc:
        p = problem_of(exc)
        errors = {f"reason-{sid}": p.message}
        return await run_in_threadpool(
            lambda: market_page(request, v, x["market_id"], values=form, errors=errors, status=p.status)
        )
    return RedirectResponse(f"/portal/markets/{x['market_id']}?done=excluded", status_code=303)
