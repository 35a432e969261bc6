"""The FastAPI application: :func:`create_app` builds the service from its
:class:`~datamarket.service.config.ServiceSettings`.

It migrates the database to the newest schema, builds the shared state
(:class:`~datamarket.service.state.ServiceState`), installs the error handlers
(:mod:`datamarket.service.errors`) and the body limit, includes one router per resource
(:mod:`datamarket.service.api.routes`) and mounts the portal under ``/portal``. The round runner
starts with the app and stops gracefully with it. Every request goes through
:class:`~datamarket.service.observability.http.Observe` (request id, metrics, access log);
``/ready`` answers 503 from the start of the shutdown, and the separate metrics bind
(``settings.metrics_port``) lives as long as the app (:mod:`datamarket.service.observability`).

Idempotency: ``POST`` of submissions and rounds accept an ``Idempotency-Key`` header, bound to a
SHA-256 of the request: repeating a request with the same key and body returns the first response
(status 200) instead of creating a second row, also when the repeats race (a unique constraint
decides); the same key with another body is a 409 (:mod:`datamarket.service.store.idempotency`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from datamarket import __version__
from datamarket.ledger.db import make_engine
from datamarket.ledger.migrations import upgrade
from datamarket.service.api.body_limit import MAX_JSON_BYTES, BodyLimit
from datamarket.service.api.openapi import document_kinds
from datamarket.service.api.routes import ROUTERS
from datamarket.service.config import ServiceSettings
from datamarket.service.errors import declare_errors, install_error_handlers
from datamarket.service.observability import metrics
from datamarket.service.observability.http import Observe
from datamarket.service.portal import install as install_portal
from datamarket.service.state import ServiceState


def create_app(settings: ServiceSettings) -> FastAPI:
    """The service configured by ``settings`` (its database migrated to the newest schema); a
    :class:`~datamarket.core.errors.ConfigurationError` without an admin key.

    The proxies of ``settings.forwarded_allow_ips`` are trusted here (uvicorn's
    ``ProxyHeadersMiddleware``); serve the app with uvicorn's own ``proxy_headers=False``, as
    ``datamarket serve`` does, or uvicorn trusts ``X-Forwarded-For`` from loopback peers itself."""
    settings.operator_key()
    engine = make_engine(settings.database_url)
    upgrade(engine)
    state = ServiceState.build(settings, engine)
    metrics.declare(state.adapters, state.runner.instance)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        port = settings.metrics_port
        stop_metrics = metrics.serve(settings.metrics_host, port) if port is not None else None
        state.runner.start()  # claims pending rounds and rounds whose lease expired (no start-up sweep)
        yield
        state.readiness.stop()
        state.runner.shutdown()
        if stop_metrics is not None:
            stop_metrics()
        engine.dispose()

    app = FastAPI(
        title="datamarket",
        version=__version__,
        description="Data marketplace: participants, markets, rounds and an exact, hash-chained ledger.",
        lifespan=lifespan,
    )
    app.state.service = state
    install_error_handlers(app)
    max_bytes = settings.limits.max_bytes
    app.add_middleware(BodyLimit, max_bytes=max_bytes, max_json_bytes=min(max_bytes, MAX_JSON_BYTES))
    if settings.forwarded_allow_ips:  # the client and scheme a trusted proxy names (throttle, cookies)
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.forwarded_allow_ips)
    for router in ROUTERS:
        app.include_router(router)
    declare_errors(app, ROUTERS)
    document_kinds(app, state.adapters)  # MarketIn and SubmissionIn per market kind
    install_portal(app, settings)  # the web pages, under /portal (not in the OpenAPI schema)
    app.add_api_route("/", _to_portal, methods=["GET"], include_in_schema=False)
    app.add_middleware(Observe, access_log=settings.access_log)  # the outermost: sees every answer
    return app


def _to_portal() -> RedirectResponse:
    """``GET /``: a person opening the service's address is sent to the portal (303)."""
    return RedirectResponse("/portal/", status_code=303)
