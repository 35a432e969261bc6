"""Routes without a key: liveness (``/health``) and the market kinds this service clears (``/kinds``)."""

from __future__ import annotations

from fastapi import APIRouter

from datamarket import __version__
from datamarket.service.api import schemas as S
from datamarket.service.api.deps import State

router = APIRouter(tags=["public"])


@router.get("/health")
def health(st: State) -> dict[str, str]:
    """Liveness probe; ``instance`` is this process's id in rounds' ``claimed_by``."""
    return {"status": "ok", "version": __version__, "instance": st.runner.instance}


@router.get("/kinds", response_model=list[S.KindOut])
def kinds(st: State) -> list[S.KindOut]:
    """Market kinds this service can clear and the submissions each accepts."""
    return [
        S.KindOut(kind=k, description=a.description, submission_kinds=dict(a.submission_kinds))
        for k, a in sorted(st.adapters.items())
    ]
