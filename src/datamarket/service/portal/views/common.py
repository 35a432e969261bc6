"""What every portal page shares: rendering (:func:`page`, with :data:`SECURITY_HEADERS`), errors as
HTML pages and the same-origin check of state-changing requests (:class:`PortalRoute`,
:class:`Problem`), the signed-in visitor and its role (:func:`visitor`, :func:`operator`,
:func:`participant`), CSRF-checked forms (:func:`posted`) and the store's data as the JSON API
renders it (:func:`as_json`)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ValidationError

from datamarket.core.errors import DatamarketError
from datamarket.service.api.deps import service_state
from datamarket.service.errors import status_of
from datamarket.service.portal import display
from datamarket.service.portal.headers import SECURITY_HEADERS
from datamarket.service.portal.session import (
    COOKIE,
    SessionSettings,
    Visitor,
    check_csrf,
    find_session,
    same_origin,
)
from datamarket.service.state import ServiceState
from datamarket.service.store.errors import NotReady, StoreError

HERE = Path(__file__).resolve().parent.parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
display.install(templates.env)
DONE = {
    "submitted": "Submission stored.",
    "uploaded": "Dataset uploaded and stored.",
    "withdrawn": "Submission withdrawn.",
    "excluded": "Submission excluded.",
    "created": "Market created.",
    "signed-out": "You are signed out.",
}
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
CROSS_ORIGIN = "cross-origin request refused: submit the form from the portal's own pages"


@dataclass(frozen=True)
class Problem(Exception):
    """What the JSON API would have answered instead of a success: its status, message and field."""

    status: int
    message: str
    field: str | None = None

    def __str__(self) -> str:
        return self.message


def problem_of(exc: Exception) -> Problem:
    """The :class:`Problem` an exception stands for (any other exception is raised again)."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, HTTPException):
        return Problem(exc.status_code, str(exc.detail))
    if isinstance(exc, StoreError):
        return Problem(status_of(exc), exc.message, exc.field if isinstance(exc, NotReady) else None)
    if isinstance(exc, DatamarketError):
        return Problem(422, str(getattr(exc, "message", exc)), getattr(exc, "field", None))
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        loc = [str(x) for x in err.get("loc", ())]
        msg = str(err.get("msg", "invalid"))
        return Problem(422, msg.removeprefix("Value error, "), ".".join(loc) or None)
    raise exc


class SignInRequired(Exception):
    """No live session: the visitor is sent to the sign-in page."""


def _invalid_request(exc: RequestValidationError) -> Problem:
    """A path value that cannot be an id (``/portal/rounds/abc``) names no page: 404, as an id that
    does not exist; a bad query value is a 422."""
    err = exc.errors()[0] if exc.errors() else {}
    loc = [str(x) for x in err.get("loc", ())]
    if loc[:1] == ["path"]:
        return Problem(404, f"no such page ({'/'.join(loc[1:])} is not a valid id)")
    return Problem(422, str(err.get("msg", "invalid request")), ".".join(loc[1:]) or None)


class PortalRoute(APIRoute):
    """A portal route: errors become HTML pages (the JSON API keeps its JSON errors), and a
    state-changing request from another origin is refused (403) before its body is read
    (:func:`~datamarket.service.portal.session.same_origin`)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                if request.method not in SAFE_METHODS and not same_origin(request):
                    raise Problem(403, CROSS_ORIGIN)
                return await inner(request)
            except SignInRequired:
                return RedirectResponse("/portal/login", status_code=303)
            except (HTTPException, Problem, StoreError, DatamarketError) as exc:
                p = problem_of(exc)
            except RequestValidationError as exc:
                p = _invalid_request(exc)
            return page(request, None, "error.html", status=p.status, problem=p)

        return handler


def portal_router() -> APIRouter:
    """A router for portal pages (under ``/portal``, not in the OpenAPI schema)."""
    return APIRouter(prefix="/portal", include_in_schema=False, route_class=PortalRoute)


def page(request: Request, visitor: Visitor | None, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    """Render ``name`` for ``visitor`` with :data:`SECURITY_HEADERS`."""
    ctx.update(
        visitor=visitor,
        who=None if visitor is None else visitor.who,
        csrf="" if visitor is None else visitor.csrf,
        done=DONE.get(request.query_params.get("done", "")),
        fmt=state(request).display,
    )
    resp = templates.TemplateResponse(request, name, ctx, status_code=status)
    resp.headers.update(SECURITY_HEADERS)
    return resp


def state(request: Request) -> ServiceState:
    """The app's shared state (:func:`datamarket.service.api.deps.service_state`)."""
    return service_state(request)


def as_json(model: type[BaseModel], data: Any) -> Any:
    """The store's ``data`` (one row's view or a list of them) as the JSON API renders it with ``model``."""
    if isinstance(data, list):
        return [as_json(model, d) for d in data]
    return model.model_validate(data).model_dump(mode="json")


def session_rules(request: Request) -> SessionSettings:
    """The app's portal session rules (``ServiceSettings.sessions``)."""
    rules = getattr(request.app.state, "portal_sessions", None)
    return rules if isinstance(rules, SessionSettings) else SessionSettings()


def visitor(request: Request) -> Visitor:
    """The signed-in visitor (else :class:`SignInRequired`: to the sign-in page): a live session
    opened with the key its owner still holds (:func:`~datamarket.service.portal.session.find_session`)."""
    st = state(request)
    v = find_session(st.db, request.cookies.get(COOKIE), st.admin_hash, session_rules(request))
    if v is None:
        raise SignInRequired
    return v


def operator(v: Visitor = Depends(visitor)) -> Visitor:
    """403 unless the visitor is the operator."""
    if not v.who.is_admin:
        raise HTTPException(403, "operator only: sign in with the operator's key")
    return v


def participant(v: Visitor = Depends(visitor)) -> Visitor:
    """403 for the operator on pages that act for a participant."""
    if v.who.is_admin:
        raise HTTPException(403, "the operator cannot submit inputs; sign in with a participant's key")
    return v


Anyone = Depends(visitor)
Operator = Depends(operator)
Participant = Depends(participant)


async def posted(request: Request, v: Visitor) -> dict[str, Any]:
    """The submitted form, after the CSRF check (403 without the session's token)."""
    form = await request.form()
    check_csrf(v, form.get("csrf"))
    return {k: form.get(k) for k in form}
