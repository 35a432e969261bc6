"""The FastAPI application: participants, markets, submissions, rounds, receipts and the ledger.

Every route is a thin adapter (STYLE practice 12): authenticate, validate, call the ledger or an
adapter, respond. Errors are JSON ``{"detail": ...}``: 401 (missing or wrong API key), 403 (reading
what belongs to someone else, or a participant calling an operator route), 404, 409 (a round that is
already cleared or in progress, an idempotency key reused with a different body), 413 (upload over
the size limit), 422 (invalid input; nothing is stored).

Idempotency: ``POST`` of submissions and rounds accept an ``Idempotency-Key`` header; repeating a
request with the same key returns the first response (status 200) instead of creating a second row,
also when the repeats race (a unique constraint decides).
"""

import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from datamarket import __version__
from datamarket.core.errors import DatamarketError, InvalidMarketError
from datamarket.ledger.db import make_engine, make_sessionmaker
from datamarket.ledger.migrations import upgrade
from datamarket.service.adapters import builtin_adapters, load_adapter
from datamarket.service.auth import hash_key
from datamarket.service.deps import ServiceState
from datamarket.service.rounds import Database, RoundRunner, fail_interrupted
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
    """
    key = admin_key or os.environ.get(ADMIN_ENV)
    if not key:
        raise InvalidMarketError("admin_key", f"pass admin_key or set ${ADMIN_ENV}")
    engine = make_engine(database_url)
    upgrade(engine)
    db = Database(make_sessionmaker(engine), serialise_writes=engine.dialect.name == "sqlite")
    refs = dict(builtin_adapters() if adapters is None else adapters)
    lim = limits or UploadLimits()
    pool = WorkerPool(executor, max_workers=max_workers, dask_address=dask_address)
    runner = RoundRunner(db, pool, refs, lim)
    state = ServiceState(db, {k: load_adapter(r) for k, r in refs.items()}, refs, hash_key(key), lim, runner)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        n = fail_interrupted(db)
        if n:
            log.warning("marked %d interrupted round(s) failed", n)
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
    return app


# -- errors and limits ----------------------------------------------------------------------------
def _install_errors(app: FastAPI, max_bytes: int) -> None:
    @app.exception_handler(DatamarketError)
    async def _invalid(_: Request, exc: DatamarketError) -> JSONResponse:
        field_ = getattr(exc, "field", None)
        return JSONResponse({"detail": str(exc), "field": field_}, status_code=422)

    @app.middleware("http")
    async def _limit_body(request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return JSONResponse({"detail": "invalid Content-Length"}, status_code=400)
            if int(length) > max_bytes:
                return JSONResponse(
                    {"detail": f"request body of {length} bytes exceeds the limit of {max_bytes}"},
                    status_code=413,
                )
        return await call_next(request)


# -- routes ---------------------------------------------------------------------------------------
def _routes(app: FastAPI, st: ServiceState) -> None:
    from datamarket.service import routes_accounts, routes_rounds, routes_submissions

    for module in (routes_accounts, routes_submissions, routes_rounds):
        module.install(app, st)
