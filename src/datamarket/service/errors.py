"""Errors as the HTTP API answers them: every error body is JSON ``{"detail": ..., "field": ...}``
(:class:`~datamarket.service.api.schemas.ErrorOut`, declared on every route in the OpenAPI schema).

* 401 missing or wrong API key (before any validation error: an anonymous client learns nothing
  from a route's validation errors), 403 a participant calling an operator route or the reverse,
  429 after too many unknown keys from one address;
* the store's refusals (:mod:`datamarket.service.store.errors`): :class:`NotFound` 404 (also for what
  belongs to another participant: the same answer as for an id that does not exist),
  :class:`Forbidden` 403, :class:`Conflict` 409 (a round already cleared or in progress, an
  idempotency key reused with a different body; :class:`NotReady` names the field),
  :class:`TooLarge` 413, :class:`Busy` 503 with ``Retry-After`` (as many uploads parsing as the
  process's budget admits; nothing stored);
* 413 a body over the size limit, counted while it streams in
  (:class:`~datamarket.service.api.body_limit.BodyLimit`);
* 422 invalid input: a :class:`~datamarket.core.errors.DatamarketError` or a request that does not
  parse (nothing is stored).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from datamarket.core.errors import DatamarketError
from datamarket.service.api.deps import needs_auth, principal
from datamarket.service.store.errors import (
    Busy,
    Conflict,
    Forbidden,
    NotFound,
    NotReady,
    StoreError,
    TooLarge,
)

STATUS: dict[type[StoreError], int] = {
    NotFound: 404,
    Forbidden: 403,
    Conflict: 409,
    TooLarge: 413,
    Busy: 503,
}

ERROR_TEXT = {
    401: "missing or unknown API key",
    403: "an operator route called by a participant, or a participant route by the operator",
    404: "no such row, or one that belongs to another participant (the same answer)",
    409: "conflict: round in progress or already cleared, inputs already used, idempotency key reused "
    "with another request",
    413: "request body over the size limit",
    503: "as many uploads parsing as the server's memory budget admits: nothing stored, retry after "
    "the Retry-After seconds",
    422: "invalid input (nothing is stored)",
    429: "too many unknown API keys from this client address: retry after the Retry-After seconds",
}


def status_of(exc: StoreError) -> int:
    """The HTTP status of a store refusal."""
    return next(code for cls, code in STATUS.items() if isinstance(exc, cls))


def store_error_body(exc: StoreError) -> dict[str, Any]:
    """The JSON body of a store refusal (``field`` only where the refusal names one)."""
    if isinstance(exc, NotReady):
        return {"detail": exc.message, "field": exc.field}
    return {"detail": exc.message}


async def unauthenticated(request: Request) -> Any:
    """The 401 of a route that needs a key, when the caller has none (or a wrong one): FastAPI
    parses the body before the dependencies run, and an anonymous client must not learn more
    about a route from its validation errors than from its 401."""
    dependant = getattr(request.scope.get("route"), "dependant", None)
    if dependant is None or not needs_auth(dependant):
        return None
    headers = request.headers
    try:
        await run_in_threadpool(principal, request, headers.get("x-api-key"), headers.get("authorization"))
    except HTTPException as exc:
        return await http_exception_handler(request, exc)
    return None


async def on_invalid(_: Request, exc: Exception) -> JSONResponse:
    """422 for bad input: the message and the field it names."""
    return JSONResponse({"detail": str(exc), "field": getattr(exc, "field", None)}, status_code=422)


async def on_store_error(_: Request, exc: Exception) -> JSONResponse:
    """404, 403, 409, 413 or 503 (with ``Retry-After``) for what the store refused."""
    assert isinstance(exc, StoreError)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Busy) else None
    return JSONResponse(store_error_body(exc), status_code=status_of(exc), headers=headers)


async def on_request_invalid(request: Request, exc: Exception) -> Any:
    """422 for a request that does not validate (after the 401 check); the input is not echoed: it
    may not be representable in JSON (1e400, NaN)."""
    denied = await unauthenticated(request)
    if denied is not None:
        return denied
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"type": str(e.get("type")), "loc": [str(x) for x in e.get("loc", ())], "msg": str(e.get("msg"))}
        for e in exc.errors()
    ]
    where = ".".join(problems[0]["loc"][1:]) if problems else None
    return JSONResponse({"detail": problems, "field": where or None}, status_code=422)


async def on_http(request: Request, exc: Exception) -> Any:
    """FastAPI's 400 "error parsing the body" is invalid input like any other (422, after the 401
    check); every other HTTP error as FastAPI answers it."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        denied = await unauthenticated(request)
        if denied is not None:
            return denied
        return JSONResponse({"detail": str(exc.detail), "field": "body"}, status_code=422)
    if exc.status_code == 405:  # Allow: every method of the path, not only the first route's
        headers = {**(exc.headers or {}), "Allow": ", ".join(allowed_methods(request))}
        exc = StarletteHTTPException(405, exc.detail, headers=headers)
    return await http_exception_handler(request, exc)


def allowed_methods(request: Request) -> list[str]:
    """The methods of every route whose path matches the request's (RFC 9110: a 405, OPTIONS
    included, lists them all in ``Allow``; Starlette lists those of the first such route only)."""
    from starlette.routing import Match

    def served(method: str) -> bool:
        scope = {**request.scope, "method": method}
        return any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes)

    return [m for m in ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT") if served(m)]


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` as the module docstring says."""
    app.add_exception_handler(DatamarketError, on_invalid)
    app.add_exception_handler(StoreError, on_store_error)
    app.add_exception_handler(RequestValidationError, on_request_invalid)
    app.add_exception_handler(StarletteHTTPException, on_http)


def _route_codes(route: Any) -> set[int]:
    """The error statuses one route can answer (:func:`declare_errors`)."""
    c: set[int] = set()
    if needs_auth(route.dependant):
        c |= {401, 403, 422, 429}
    if route.dependant.path_params:
        c |= {404, 422}
    methods = route.methods or set()
    if "POST" in methods or route.path.startswith("/rounds"):
        c.add(409)
    if "POST" in methods:
        c |= {413, 422}
    if route.dependant.query_params or route.dependant.body_params:
        c.add(422)
    return c


def declare_errors(app: FastAPI, routers: Iterable[APIRouter]) -> None:
    """Declare, for the routes of ``routers`` and with the
    :class:`~datamarket.service.api.schemas.ErrorOut` body, every error a route can answer: 401/403
    where a key is needed (and 429 after too many unknown keys), 404 with a path id, 409 on writes and
    rounds, 413 where a body is read, 422 where there is anything to validate (replacing FastAPI's
    default 422 body, which is not what the domain errors return)."""
    from fastapi.openapi.utils import get_openapi
    from fastapi.routing import APIRoute

    from datamarket.service.api.schemas import ErrorOut

    codes = {
        (route.path_format, method.lower()): _route_codes(route)
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods or set()
    }

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        comps = schema.setdefault("components", {}).setdefault("schemas", {})
        comps["ErrorOut"] = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
        ref = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
        for path, ops in schema["paths"].items():
            for method, op in ops.items():
                responses = op.setdefault("responses", {})
                responses.pop("422", None)
                for code in sorted(codes.get((path, method), set())):
                    responses[str(code)] = {"description": ERROR_TEXT[code], "content": ref}
        for unused in ("HTTPValidationError", "ValidationError"):
            comps.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
