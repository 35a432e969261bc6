"""The FastAPI application: participants, markets, submissions, rounds, receipts and the ledger.

Every route is a thin adapter (STYLE practice 12): authenticate, validate, call the ledger or an
adapter, respond. Errors are JSON ``{"detail": ..., "field": ...}`` (``schemas.ErrorOut``, declared
on every route in the OpenAPI schema): 401 (missing or wrong API key; before any validation error),
403 (a participant calling an operator route, or the operator a participant's), 404 (also for what
belongs to another participant: the same answer as for an id that does not exist), 409 (a round that is
already cleared or in progress, an idempotency key reused with a different body), 413 (a body over
the size limit, counted while it streams in, before anything else reads it), 422 (invalid input;
nothing is stored).

Idempotency: ``POST`` of submissions and rounds accept an ``Idempotency-Key`` header, bound to a
SHA-256 of the request: repeating a request with the same key and body returns the first response
(status 200) instead of creating a second row, also when the repeats race (a unique constraint
decides); the same key with another body is a 409.
"""

import json
import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from datamarket import __version__
from datamarket.core.errors import DatamarketError, InvalidMarketError
from datamarket.ledger.db import make_engine, make_sessionmaker
from datamarket.ledger.migrations import upgrade
from datamarket.service.adapters import builtin_adapters, load_adapter
from datamarket.service.auth import hash_key
from datamarket.service.deps import ServiceState, declare_errors, needs_auth, principal
from datamarket.service.rounds import Database, Leases, RoundRunner
from datamarket.service.throttle import AuthThrottle
from datamarket.service.uploads import UploadLimits
from datamarket.service.worker import WorkerPool

log = logging.getLogger(__name__)
ADMIN_ENV = "DATAMARKET_ADMIN_KEY"


def create_app(
    database_url: str,
    *,
    admin_key: str | None = None,
    executor: str = "process",
    max_workers: int = 2,
    dask_address: str | None = None,
    limits: UploadLimits | None = None,
    adapters: Mapping[str, str] | None = None,
    leases: Leases | None = None,
    throttle: AuthThrottle | None = None,
) -> FastAPI:
    """Build the service for the database at ``database_url`` (migrated to the newest schema).

    Parameters
    ----------
    database_url : ``sqlite:///FILE`` or ``postgresql://USER@HOST:PORT/DB``.
    admin_key : the operator's key; default ``$DATAMARKET_ADMIN_KEY`` (one of them is required).
    executor : ``process`` (default), ``dask`` (with ``dask_address``) or ``thread``.
    limits : upload size limits (413 beyond ``max_bytes``).
    adapters : market kind -> ``module:attribute`` of its adapter; default every built-in kind whose
        mechanism is importable.
    leases : how rounds are claimed, heartbeated and released (:class:`~datamarket.service.rounds.Leases`);
        several processes may serve the same database.
    throttle : failed-authentication limit per client address
        (:class:`~datamarket.service.throttle.AuthThrottle`; default 20 unknown keys a minute).
    """
    key = admin_key or os.environ.get(ADMIN_ENV)
    if not key:
        raise InvalidMarketError("admin_key", f"pass admin_key or set ${ADMIN_ENV}")
    engine = make_engine(database_url)
    upgrade(engine)
    sqlite = engine.dialect.name == "sqlite"
    db = Database(make_sessionmaker(engine), serialise_writes=sqlite, postgres=not sqlite)
    refs = dict(builtin_adapters() if adapters is None else adapters)
    lim = limits or UploadLimits()
    pool = WorkerPool(executor, max_workers=max_workers, dask_address=dask_address)
    runner = RoundRunner(db, pool, refs, lim, leases)
    state = ServiceState(
        db,
        {k: load_adapter(r) for k, r in refs.items()},
        refs,
        hash_key(key),
        lim,
        runner,
        throttle or AuthThrottle(),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runner.start()  # claims pending rounds and rounds whose lease expired (no start-up sweep)
        yield
        runner.shutdown()
        engine.dispose()

    app = FastAPI(
        title="datamarket",
        version=__version__,
        description="Data marketplace: participants, markets, rounds and an exact, hash-chained ledger.",
        lifespan=lifespan,
    )
    app.state.service = state
    _install_errors(app, lim.max_bytes)
    _routes(app, state)
    from datamarket.service.portal import install as install_portal

    install_portal(app)  # the web pages, under /portal (not in the OpenAPI schema)
    return app


# -- errors and limits ----------------------------------------------------------------------------
def _install_errors(app: FastAPI, max_bytes: int) -> None:
    @app.exception_handler(DatamarketError)
    async def _invalid(_: Request, exc: DatamarketError) -> JSONResponse:
        field_ = getattr(exc, "field", None)
        return JSONResponse({"detail": str(exc), "field": field_}, status_code=422)

    async def unauthenticated(request: Request) -> Any:
        """The 401 of a route that needs a key, when the caller has none (or a wrong one): FastAPI
        parses the body before the dependencies run, and an anonymous client must not learn more
        about a route from its validation errors than from its 401."""
        dependant = getattr(request.scope.get("route"), "dependant", None)
        if dependant is None or not needs_auth(dependant):
            return None
        headers = request.headers
        try:
            await run_in_threadpool(
                principal, request, headers.get("x-api-key"), headers.get("authorization")
            )
        except HTTPException as exc:
            return await http_exception_handler(request, exc)
        return None

    @app.exception_handler(RequestValidationError)
    async def _request(request: Request, exc: RequestValidationError) -> Any:
        denied = await unauthenticated(request)
        if denied is not None:
            return denied
        # the offending input is not echoed: it may not be representable in JSON (1e400, NaN)
        problems = [
            {"type": str(e.get("type")), "loc": [str(x) for x in e.get("loc", ())], "msg": str(e.get("msg"))}
            for e in exc.errors()
        ]
        where = ".".join(problems[0]["loc"][1:]) if problems else None
        return JSONResponse({"detail": problems, "field": where or None}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Any:
        if exc.status_code == 400:  # FastAPI's "error parsing the body" is invalid input like any other
            denied = await unauthenticated(request)
            if denied is not None:
                return denied
            return JSONResponse({"detail": str(exc.detail), "field": "body"}, status_code=422)
        return await http_exception_handler(request, exc)

    app.add_middleware(BodyLimit, max_bytes=max_bytes, max_json_bytes=min(max_bytes, MAX_JSON_BYTES))


MAX_JSON_BYTES = 1024 * 1024


class BodyLimit:
    """ASGI middleware: a request body over the limit is answered 413 as soon as it is seen.

    A declared ``Content-Length`` over the limit is refused before a byte is read; a chunked body is
    counted as it streams in and cut off at the limit (the application then sees a disconnect and its
    late reply is dropped), so no route, authentication included, ever holds more than the limit.
    Uploads (``.../datasets``) get ``max_bytes``, every other route ``max_json_bytes``.
    """

    def __init__(self, app: Any, max_bytes: int, max_json_bytes: int):
        self.app = app
        self.max_bytes = max_bytes
        self.max_json_bytes = max_json_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes if scope["path"].endswith("/datasets") else self.max_json_bytes
        length = dict(scope.get("headers") or []).get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            await _too_large(send, int(length), limit)
            return
        seen, state = 0, {"started": False, "rejected": False}

        async def limited_receive() -> Any:
            nonlocal seen
            if state["rejected"]:
                return {"type": "http.disconnect"}
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit and not state["started"]:
                    state["rejected"] = True
                    await _too_large(send, seen, limit)
                    return {"type": "http.disconnect"}
            return msg

        async def guarded_send(msg: Any) -> None:
            if state["rejected"]:
                return  # our 413 is out; the application's reply to the disconnect is dropped
            state["started"] = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not state["rejected"]:
                raise


async def _too_large(send: Any, size: int, limit: int) -> None:
    body = json.dumps({"detail": f"request body of {size}+ bytes exceeds the limit of {limit}"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


# -- routes ---------------------------------------------------------------------------------------
def _routes(app: FastAPI, st: ServiceState) -> None:
    from datamarket.service import routes_accounts, routes_rounds, routes_submissions

    for module in (routes_accounts, routes_submissions, routes_rounds):
        module.install(app, st)
    declare_errors(app)
