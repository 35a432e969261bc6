"""One module-level ``router`` per resource: :mod:`.public` (health, kinds), :mod:`.participants`,
:mod:`.markets` (with the plan), :mod:`.ledger`, :mod:`.submissions` (with dataset uploads),
:mod:`.rounds`, :mod:`.receipts` (with deliverables), :mod:`.metrics` (the operator's Prometheus
metrics); :data:`ROUTERS` in the order they are included."""

from __future__ import annotations

from fastapi import APIRouter

from datamarket.service.api.routes import (
    ledger,
    markets,
    metrics,
    participants,
    public,
    receipts,
    rounds,
    submissions,
)

ROUTERS: tuple[APIRouter, ...] = (
    public.router,
    participants.router,
    markets.router,
    ledger.router,
    submissions.router,
    rounds.router,
    receipts.router,
    metrics.router,
)
