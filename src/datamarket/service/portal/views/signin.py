"""Sign-in and sign-out: an API key exchanged for a session (:mod:`datamarket.service.portal.session`)."""

from __future__ import annotations

import secrets

from fastapi import HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from datamarket.service.api.deps import principal
from datamarket.service.auth import hash_key
from datamarket.service.portal.session import (
    LOGIN_COOKIE,
    Visitor,
    clear_session_cookie,
    close_session,
    open_session,
    same_token,
    secure_cookie,
    set_session_cookie,
)
from datamarket.service.portal.views.common import (
    Anyone,
    page,
    portal_router,
    posted,
    session_rules,
    state,
)

router = portal_router()


@router.get("/login")
def login_page(request: Request) -> HTMLResponse:
    """The sign-in form, with its double-submit CSRF token."""
    token = secrets.token_urlsafe(32)
    resp = page(request, None, "login.html", login_csrf=token)
    resp.set_cookie(
        LOGIN_COOKIE,
        token,
        path="/portal",
        httponly=True,
        samesite="strict",
        secure=secure_cookie(request, session_rules(request)),
    )
    return resp


def _refused(request: Request, exc: HTTPException) -> HTMLResponse:
    """The sign-in form again: 401 for an unknown key, 429 (with ``Retry-After``) while throttled."""
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


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the key exactly as the JSON API does and open a session bound to it."""
    form = await request.form()
    if not same_token(str(form.get("csrf") or ""), request.cookies.get(LOGIN_COOKIE)):
        raise HTTPException(403, "missing or wrong CSRF token: reload the sign-in page")
    key = str(form.get("api_key") or "").strip()
    try:
        who = await run_in_threadpool(principal, request, key or None, None)
    except HTTPException as exc:
        return _refused(request, exc)
    rules = session_rules(request)
    token, _ = await run_in_threadpool(open_session, state(request).db, who, hash_key(key), rules)
    resp = RedirectResponse("/portal/", status_code=303)
    set_session_cookie(resp, request, token, rules)
    resp.delete_cookie(LOGIN_COOKIE, path="/portal")
    return resp


@router.post("/logout")
async def logout(request: Request, v: Visitor = Anyone) -> Response:
    """Forget the session (in every process sharing the database)."""
    await posted(request, v)
    await run_in_threadpool(close_session, state(request).db, v.token_hash)
    resp = RedirectResponse("/portal/login?done=signed-out", status_code=303)
    clear_session_cookie(resp, request, session_rules(request))
    return resp
