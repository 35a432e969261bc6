"""The portal's pages: thin views over the JSON API's handlers (:mod:`.calls`), rendered by Jinja2.

Participants: home (my markets, balance), a market (its plan, a form per submission kind, the upload,
my submissions with withdraw, its rounds), a round (live status), my receipt with "verify".
Operator: home (markets, create one of any kind), participants (register one), a market (plan, every
submission with exclude, clear a round), a round (progress, failure reason, every receipt, the
round's figure), the ledger (paged, with the verification result).

A page for the wrong role answers 403; a row that belongs to another participant answers exactly
the 404 of a row that does not exist (as the JSON API does), so ids cannot be enumerated. Every
POST checks the session's CSRF token first.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from datamarket.service import schemas as S
from datamarket.service.deps import Id, ServiceState, principal
from datamarket.service.portal import forms
from datamarket.service.portal.calls import Calls, Problem, problem_of
from datamarket.service.portal.session import (
    COOKIE,
    LOGIN_COOKIE,
    Visitor,
    check_csrf,
    clear_session_cookie,
    close_session,
    find_session,
    open_session,
    same_token,
    secure_cookie,
    set_session_cookie,
)

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
LEDGER_PAGE = 50
DONE = {
    "submitted": "Submission stored.",
    "uploaded": "Dataset uploaded and stored.",
    "withdrawn": "Submission withdrawn.",
    "excluded": "Submission excluded.",
    "created": "Market created.",
    "signed-out": "You are signed out.",
}


# Pages hold private amounts (never cached), use only the app's own CSS and script (no inline code),
# and are never framed by another site.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class SignInRequired(Exception):
    """No live session: the visitor is sent to the sign-in page."""


class PortalRoute(APIRoute):
    """A portal route: errors become HTML pages (the JSON API's handlers keep their JSON errors)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await inner(request)
            except SignInRequired:
                return RedirectResponse("/portal/login", status_code=303)
            except (HTTPException, Problem) as exc:
                p = problem_of(exc)
                return page(request, None, "error.html", status=p.status, problem=p)
            except RequestValidationError as exc:
                # a path value that cannot be an id (``/portal/rounds/abc``) names no page: 404, as an
                # id that does not exist; a bad query value is a 422. Both as HTML, like every portal error
                err = exc.errors()[0] if exc.errors() else {}
                loc = [str(x) for x in err.get("loc", ())]
                if loc[:1] == ["path"]:
                    p = Problem(404, f"no such page ({'/'.join(loc[1:])} is not a valid id)")
                else:
                    p = Problem(422, str(err.get("msg", "invalid request")), ".".join(loc[1:]) or None)
                return page(request, None, "error.html", status=p.status, problem=p)

        return handler


def page(request: Request, visitor: Visitor | None, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    """Render ``name`` for ``visitor`` with :data:`SECURITY_HEADERS`."""
    ctx.update(
        visitor=visitor,
        who=None if visitor is None else visitor.who,
        csrf="" if visitor is None else visitor.csrf,
        done=DONE.get(request.query_params.get("done", "")),
    )
    resp = templates.TemplateResponse(request, name, ctx, status_code=status)
    resp.headers.update(SECURITY_HEADERS)
    return resp


def _state(request: Request) -> ServiceState:
    return request.app.state.service  # type: ignore[no-any-return]


def visitor(request: Request) -> Visitor:
    v = find_session(_state(request).db, request.cookies.get(COOKIE))
    if v is None:
        raise SignInRequired
    return v


def operator(v: Visitor = Depends(visitor)) -> Visitor:
    if not v.who.is_admin:
        raise HTTPException(403, "operator only: sign in with the operator's key")
    return v


def participant(v: Visitor = Depends(visitor)) -> Visitor:
    if v.who.is_admin:
        raise HTTPException(403, "the operator cannot submit inputs; sign in with a participant's key")
    return v


async def posted(request: Request, v: Visitor) -> dict[str, Any]:
    """The submitted form, after the CSRF check (403 without the session's token)."""
    form = await request.form()
    check_csrf(v, form.get("csrf"))
    return {k: form.get(k) for k in form}


def build_router(calls: Calls) -> APIRouter:
    """Every portal route; ``calls`` runs the JSON API's handlers."""
    r = APIRouter(prefix="/portal", include_in_schema=False, route_class=PortalRoute)
    Op = Depends(operator)
    Part = Depends(participant)
    Any_ = Depends(visitor)

    # -- sign-in ---------------------------------------------------------------------------------
    @r.get("/login")
    def login_page(request: Request) -> HTMLResponse:
        token = secrets.token_urlsafe(32)
        resp = page(request, None, "login.html", login_csrf=token)
        resp.set_cookie(
            LOGIN_COOKIE,
            token,
            path="/portal",
            httponly=True,
            samesite="strict",
            secure=secure_cookie(request),
        )
        return resp

    @r.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        if not same_token(str(form.get("csrf") or ""), request.cookies.get(LOGIN_COOKIE)):
            raise HTTPException(403, "missing or wrong CSRF token: reload the sign-in page")
        key = str(form.get("api_key") or "").strip()
        try:
            who = await run_in_threadpool(principal, request, key or None, None)
        except HTTPException as exc:
            throttled = exc.status_code == 429
            refused = page(
                request,
                None,
                "login.html",
                status=exc.status_code if throttled else 401,
                login_csrf=request.cookies.get(LOGIN_COOKIE),
                error=str(exc.detail) if throttled else "unknown key: check it and sign in again",
            )
            if throttled and exc.headers:
                refused.headers.update(exc.headers)
            return refused
        token, _ = await run_in_threadpool(open_session, _state(request).db, who)
        resp = RedirectResponse("/portal/", status_code=303)
        set_session_cookie(resp, request, token)
        resp.delete_cookie(LOGIN_COOKIE, path="/portal")
        return resp

    @r.post("/logout")
    async def logout(request: Request, v: Visitor = Any_) -> Response:
        await posted(request, v)
        await run_in_threadpool(close_session, _state(request).db, v.token_hash)
        resp = RedirectResponse("/portal/login?done=signed-out", status_code=303)
        clear_session_cookie(resp, request)
        return resp

    # -- home ------------------------------------------------------------------------------------
    @r.get("/")
    def home(request: Request, v: Visitor = Any_) -> HTMLResponse:
        st = _state(request)
        markets = calls("list_markets", v.who)
        descr = {k: a.description for k, a in st.adapters.items()}
        if v.who.is_admin:
            return page(request, v, "operator_home.html", markets=markets, kinds=sorted(descr.items()))
        me = calls("me", v.who)
        subs = {m["id"]: calls("list_submissions", v.who, mid=m["id"]) for m in markets}
        mine = {mid: len(xs) for mid, xs in subs.items()}
        names = {m["id"]: m["name"] or f"market {m['id']}" for m in markets}
        receipts = sorted(
            {
                (x["consumed_round_id"], names[mid])
                for mid, xs in subs.items()
                for x in xs
                if x["consumed_round_id"]
            }
        )
        return page(
            request,
            v,
            "participant_home.html",
            markets=markets,
            mine=mine,
            me=me,
            kinds=descr,
            receipts=receipts,
        )

    # -- operator: markets, participants, ledger ------------------------------------------------------
    def new_market_page(
        request: Request,
        v: Visitor,
        kind: str,
        values: dict[str, Any],
        errors: dict[str, str],
        message: str | None = None,
        status: int = 200,
    ) -> HTMLResponse:
        st = _state(request)
        model = forms.params_model(kind) if kind in st.adapters else None
        return page(
            request,
            v,
            "market_new.html",
            status=status,
            kind=kind,
            kinds=sorted(st.adapters),
            fields=forms.fields(model) if model else [],
            values=values,
            errors=errors,
            message=message,
            description=st.adapters[kind].description if kind in st.adapters else "",
        )

    @r.get("/markets/new")
    def market_new(request: Request, kind: str = "", v: Visitor = Op) -> HTMLResponse:
        return new_market_page(request, v, kind, {}, {})

    @r.post("/markets/new")
    async def market_create(request: Request, v: Visitor = Op) -> Response:
        form = await posted(request, v)
        st = _state(request)
        kind = str(form.get("kind") or "")
        if kind not in st.adapters:
            return new_market_page(request, v, kind, form, {}, f"unknown market kind {kind!r}", 422)
        model = forms.params_model(kind)
        params, errors = forms.parse(model, form)
        if errors:
            return new_market_page(request, v, kind, form, errors, "some fields could not be read", 422)
        currency = str(form.get("currency") or "").strip() or None
        try:
            body = S.MarketIn(kind=kind, name=str(form.get("name") or ""), params=params, currency=currency)
            m = await run_in_threadpool(calls, "create_market", v.who, body=body)
        except Exception as exc:
            p = problem_of(exc)
            f = forms.field_of(p.field, model, p.message)
            top = p.field if p.field in ("name", "currency") else None
            errs = {f: p.message} if f else ({top: p.message} if top else {})
            return new_market_page(request, v, kind, form, errs, None if errs else p.message, p.status)
        return RedirectResponse(f"/portal/markets/{m['id']}?done=created", status_code=303)

    @r.get("/participants")
    def participants(request: Request, v: Visitor = Op) -> HTMLResponse:
        return page(
            request, v, "participants.html", rows=calls("list_participants", v.who), errors={}, values={}
        )

    @r.post("/participants")
    async def register(request: Request, v: Visitor = Op) -> Response:
        form = await posted(request, v)
        try:
            body = S.ParticipantIn(name=str(form.get("name") or ""))
            made = await run_in_threadpool(calls, "register", v.who, body=body)
        except Exception as exc:
            p = problem_of(exc)
            rows = await run_in_threadpool(calls, "list_participants", v.who)
            return page(
                request,
                v,
                "participants.html",
                status=p.status,
                rows=rows,
                errors={"name": p.message},
                values=form,
            )
        return page(request, v, "participant_created.html", status=201, made=made)

    @r.get("/ledger")
    def ledger(request: Request, page_no: int = 1, v: Visitor = Op) -> HTMLResponse:
        dump = calls("entries", v.who)
        rep = calls("verify", v.who)
        entries = dump["entries"]
        pages = max(1, -(-len(entries) // LEDGER_PAGE))
        page_no = min(max(1, page_no), pages)
        rows = entries[(page_no - 1) * LEDGER_PAGE : page_no * LEDGER_PAGE]
        return page(
            request,
            v,
            "ledger.html",
            rows=rows,
            head=dump["head"],
            report=rep,
            page_no=page_no,
            pages=pages,
        )

    # -- a market -------------------------------------------------------------------------------------
    def market_page(
        request: Request,
        v: Visitor,
        mid: int,
        *,
        values: dict[str, Any] | None = None,
        errors: dict[str, str] | None = None,
        form_kind: str | None = None,
        message: str | None = None,
        status: int = 200,
    ) -> HTMLResponse:
        st = _state(request)
        m = calls("get_market", v.who, mid=mid)
        try:
            plan: Any = calls("plan", v.who, mid=mid)
            plan_problem = None
        except Problem as p:
            plan, plan_problem = None, p.message
        subs = calls("list_submissions", v.who, mid=mid)
        rounds = calls("list_rounds", v.who, mid=mid)
        adapter = st.adapters.get(m["kind"])
        ctx: dict[str, Any] = dict(
            m=m,
            plan=plan,
            plan_problem=plan_problem,
            subs=subs,
            rounds=rounds,
            values=values or {},
            errors=errors or {},
            form_kind=form_kind,
            message=message,
            description=adapter.description if adapter else m["kind"],
        )
        if v.who.is_admin:
            names = {p["id"]: p["name"] for p in calls("list_participants", v.who)}
            return page(request, v, "market_operator.html", status=status, names=names, **ctx)
        json_kinds, upload_kinds = [], []
        if adapter is not None:
            for k, text in adapter.submission_kinds.items():
                if k in adapter.dataset_kinds:
                    upload_kinds.append((k, text))
                else:
                    model = forms.submission_model(m["kind"], k)
                    json_kinds.append((k, text, forms.fields(model, m["currency"])))
        mine = (plan or {}).get("n_star", {}).get(v.who.name) if isinstance(plan, dict) else None
        return page(
            request,
            v,
            "market_participant.html",
            status=status,
            json_kinds=json_kinds,
            upload_kinds=upload_kinds,
            max_bytes=st.limits.max_bytes,
            my_n=mine,
            **ctx,
        )

    @r.get("/markets/{mid}")
    def market(request: Request, mid: Id, v: Visitor = Any_) -> HTMLResponse:
        return market_page(request, v, mid)

    @r.post("/markets/{mid}/submit/{kind}")
    async def submit(request: Request, mid: Id, kind: str, v: Visitor = Part) -> Response:
        form = await posted(request, v)
        m = await run_in_threadpool(calls, "get_market", v.who, mid=mid)
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
            await run_in_threadpool(calls, "submit", v.who, mid=mid, body=body)
        except Exception as exc:
            p = problem_of(exc)
            f = forms.field_of(p.field, model, p.message)
            return await run_in_threadpool(
                again, {f: p.message} if f else {}, None if f else p.message, p.status
            )
        return RedirectResponse(f"/portal/markets/{mid}?done=submitted", status_code=303)

    @r.post("/markets/{mid}/datasets")
    async def upload(request: Request, mid: Id, v: Visitor = Part) -> Response:
        form = await request.form(max_files=1)
        check_csrf(v, form.get("csrf"))
        file = form.get("file")
        kind = str(form.get("kind") or "dataset")
        wants_json = "application/json" in request.headers.get("accept", "")
        content = await file.read() if file is not None and not isinstance(file, str) else b""
        filename = getattr(file, "filename", None) or None
        fmt = str(form.get("format") or "") or None
        try:
            if not content:
                raise Problem(422, "choose a file to upload", "file")
            body_request = _body_request(request, content, getattr(file, "content_type", None))
            await calls.run_async(
                "upload",
                v.who,
                mid=mid,
                request=body_request,
                kind=kind,
                format=fmt,
                filename=filename,
                label_column=str(form.get("label_column") or "label"),
                group_column=str(form.get("group_column") or "group"),
            )
        except Exception as exc:
            p = problem_of(exc)
            field = "file"  # the upload form shows every problem (kind, format, content) by its file
            if wants_json:
                return Response(
                    json.dumps({"errors": {field: p.message}, "status": p.status}),
                    status_code=p.status,
                    media_type="application/json",
                )
            values = {k: form.get(k) for k in form if k != "file"}
            return await run_in_threadpool(
                lambda: market_page(
                    request,
                    v,
                    mid,
                    values=values,
                    errors={field: p.message},
                    form_kind="upload",
                    status=p.status,
                )
            )
        target = f"/portal/markets/{mid}?done=uploaded"
        if wants_json:
            return Response(json.dumps({"redirect": target}), media_type="application/json")
        return RedirectResponse(target, status_code=303)

    @r.post("/markets/{mid}/rounds")
    async def clear(request: Request, mid: Id, v: Visitor = Op) -> Response:
        form = await posted(request, v)
        raw = str(form.get("seed") or "").strip()
        try:
            body = S.RoundIn(seed=int(raw)) if raw else None
        except ValueError:
            return await run_in_threadpool(
                lambda: market_page(
                    request, v, mid, values=form, errors={"seed": "must be an integer"}, status=422
                )
            )
        except Exception as exc:
            p = problem_of(exc)
            return await run_in_threadpool(
                lambda: market_page(request, v, mid, values=form, errors={"seed": p.message}, status=422)
            )
        try:
            out = await run_in_threadpool(calls, "clear", v.who, mid=mid, body=body)
        except Problem as failed:
            message, status = failed.message, failed.status
            return await run_in_threadpool(
                lambda: market_page(request, v, mid, values=form, message=message, status=status)
            )
        return RedirectResponse(f"/portal/rounds/{out['id']}", status_code=303)

    # -- submissions ----------------------------------------------------------------------------------
    @r.get("/submissions/{sid}")
    def submission(request: Request, sid: Id, v: Visitor = Any_) -> HTMLResponse:
        x = calls("get_submission", v.who, sid=sid)
        return page(request, v, "submission.html", x=x)

    @r.post("/submissions/{sid}/withdraw")
    async def withdraw(request: Request, sid: Id, v: Visitor = Part) -> Response:
        await posted(request, v)
        x = await run_in_threadpool(calls, "withdraw_submission", v.who, sid=sid)
        return RedirectResponse(f"/portal/markets/{x['market_id']}?done=withdrawn", status_code=303)

    @r.post("/submissions/{sid}/exclude")
    async def exclude(request: Request, sid: Id, v: Visitor = Op) -> Response:
        form = await posted(request, v)
        x = await run_in_threadpool(calls, "get_submission", v.who, sid=sid)
        try:
            body = S.ExcludeIn(reason=str(form.get("reason") or "").strip())
            await run_in_threadpool(calls, "exclude_submission", v.who, sid=sid, body=body)
        except Exception as exc:
            p = problem_of(exc)
            return await run_in_threadpool(
                lambda: market_page(
                    request,
                    v,
                    x["market_id"],
                    values=form,
                    errors={f"reason-{sid}": p.message},
                    status=p.status,
                )
            )
        return RedirectResponse(f"/portal/markets/{x['market_id']}?done=excluded", status_code=303)

    # -- rounds and receipts --------------------------------------------------------------------------
    @r.get("/rounds/{rid}")
    def round_page(request: Request, rid: Id, v: Visitor = Any_) -> HTMLResponse:
        rnd = calls("get_round", v.who, rid=rid)
        m = calls("get_market", v.who, mid=rnd["market_id"])
        receipts = calls("receipts", v.who, rid=rid) if v.who.is_admin and rnd["status"] == "cleared" else []
        return page(request, v, "round.html", rnd=rnd, m=m, receipts=receipts)

    @r.get("/rounds/{rid}/status")
    def round_status(request: Request, rid: Id, v: Visitor = Any_) -> HTMLResponse:
        return page(request, v, "round_status.html", rnd=calls("get_round", v.who, rid=rid))

    @r.get("/rounds/{rid}/figure.svg")
    def round_figure(request: Request, rid: Id, v: Visitor = Op) -> Response:
        from datamarket.service.portal.figures import round_figure as draw

        rnd = calls("get_round", v.who, rid=rid)
        m = calls("get_market", v.who, mid=rnd["market_id"])
        svg = draw(m, rnd["outcome"], calls("receipts", v.who, rid=rid))
        return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})

    def receipt_page(request: Request, v: Visitor, rid: int, pid: int, check: Any = None) -> HTMLResponse:
        rec = calls("get_receipt", v.who, rid=rid, pid=pid)
        m = calls("get_market", v.who, mid=rec["market_id"])
        return page(request, v, "receipt.html", rec=rec, m=m, check=check)

    @r.get("/rounds/{rid}/receipt")
    def my_receipt(request: Request, rid: Id, v: Visitor = Part) -> HTMLResponse:
        return receipt_page(request, v, rid, v.who.participant_id or 0)

    @r.get("/rounds/{rid}/receipts/{pid}")
    def a_receipt(request: Request, rid: Id, pid: Id, v: Visitor = Op) -> HTMLResponse:
        return receipt_page(request, v, rid, pid)

    @r.post("/rounds/{rid}/receipt/verify")
    async def verify_receipt(request: Request, rid: Id, v: Visitor = Any_) -> Response:
        form = await posted(request, v)
        pid = v.who.participant_id if not v.who.is_admin else int(str(form.get("pid") or 0))

        def work() -> HTMLResponse:
            rec = calls("get_receipt", v.who, rid=rid, pid=pid or 0)
            if rec["checkpoint"] is None:
                check = {"ok": False, "problems": ["this receipt carries no checkpoint"]}
            else:
                body = S.CheckpointOut(**rec["checkpoint"])
                check = calls("verify_checkpoint", v.who, body=body)
            return receipt_page(request, v, rid, pid or 0, check)

        return await run_in_threadpool(work)

    return r


def _body_request(request: Request, content: bytes, media_type: str | None) -> Request:
    """A request whose body is ``content`` alone (the uploaded file), for the JSON API's upload
    handler, which reads the file as the raw request body."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": content, "more_body": False}

    headers = [(k, v) for k, v in request.scope["headers"] if k not in (b"content-type", b"content-length")]
    headers += [(b"content-length", str(len(content)).encode())]
    if media_type:
        headers.append((b"content-type", media_type.encode("latin-1", "replace")))
    return Request({**request.scope, "headers": headers}, receive)
