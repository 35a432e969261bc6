"""Route of the operator's metrics: ``GET /metrics`` in the Prometheus text format (OpenMetrics when
the ``Accept`` header asks for it), admin key only (:mod:`datamarket.service.observability.metrics`;
``--metrics-port`` serves the same without a key on a separate bind)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from datamarket.service.api.deps import Admin
from datamarket.service.observability import metrics

router = APIRouter(tags=["operations"])
TEXT = {"schema": {"type": "string"}}


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "this process's metrics (Prometheus text format, or OpenMetrics on request)",
            "content": {"text/plain": TEXT, "application/openmetrics-text": TEXT},
        }
    },
)
def get_metrics(request: Request, _: Admin) -> Response:
    """This process's metrics for Prometheus (operator only: scrape with ``Authorization: Bearer``
    and the admin key). Counts are per process: scrape every process, not the load balancer."""
    body, content_type = metrics.exposition(request.headers.get("accept"))
    return Response(body, media_type=content_type)
