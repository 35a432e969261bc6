"""Routes without a key: liveness (``/health``), readiness (``/ready``) and the market kinds this service
clears (``/kinds``)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from datamarket import __version__
from datamarket.service.api import schemas as S
from datamarket.service.api.deps import State
from datamarket.service.observability.readiness import ready_body

router = APIRouter(tags=["public"])


@router.get("/health")
def health(st: State) -> dict[str, str]:
    """Liveness probe; ``instance`` is this process's id in rounds' ``claimed_by``."""
    return {"status": "ok", "version": __version__, "instance": st.runner.instance}


@router.get(
    "/ready",
    response_model=S.ReadyOut,
    responses={503: {"model": S.ErrorOut, "description": "not ready: why (database, schema, shutting down)"}},
)
def ready(st: State) -> JSONResponse:
    """Readiness probe for load balancers: 200 while the database answers and its schema is at this
    version's head; 503 otherwise and from the moment the process begins to stop (on SIGTERM it
    keeps serving for the drain time while this answers 503)."""
    problems = st.readiness.problems()
    return JSONResponse(ready_body(problems), status_code=503 if problems else 200)


@router.get("/kinds", response_model=list[S.KindOut])
def kinds(st: State) -> list[S.KindOut]:
    """Market kinds this service can clear and the submissions each accepts."""
    return [
        S.KindOut(kind=k, description=a.description, submission_kinds=dict(a.submission_kinds))
        for k, a in sorted(st.adapters.items())
    ]
