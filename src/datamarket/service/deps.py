"""What every route shares: the service state, authentication dependencies, small helpers.

Authentication reads the app's :class:`ServiceState` from ``request.app.state.service``; ``Who`` is any
authenticated caller, ``Admin`` the operator, ``ParticipantOnly`` a participant (the operator holds no
account to submit from).
"""

import hashlib
import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Path, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from datamarket.ledger.models import Participant
from datamarket.service.adapters import Adapter
from datamarket.service.auth import Principal, hash_key, same_hash
from datamarket.service.rounds import Database, RoundRunner
from datamarket.service.throttle import AuthThrottle
from datamarket.service.uploads import UploadLimits

Id = Annotated[int, Path(ge=1, le=2**31 - 1, description="row id")]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


@dataclass
class ServiceState:
    """Everything the routes share (one instance per app)."""

    db: Database
    adapters: dict[str, Adapter]
    refs: dict[str, str]
    admin_hash: str
    limits: UploadLimits
    runner: RoundRunner
    throttle: AuthThrottle


def idem_hash(*parts: Any) -> str:
    """SHA-256 of a request's canonical JSON (to tell a replay from a different request)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def principal(
    request: Request,
    x_api_key: Annotated[str | None, Header(description="API key")] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    """The caller, from ``X-API-Key`` (or ``Authorization: Bearer``); 401 when missing or unknown.

    429 (with ``Retry-After``) while the client address has presented too many unknown keys
    (:class:`~datamarket.service.throttle.AuthThrottle`); the key is not looked at then.
    """
    st: ServiceState = request.app.state.service
    key = x_api_key
    if key is None and authorization and authorization.lower().startswith("bearer "):
        key = authorization[7:].strip()
    if not key:
        raise HTTPException(401, "missing API key (header X-API-Key)")
    client = request.client.host if request.client else "unknown"
    wait = st.throttle.retry_after(client)
    if wait is not None:
        raise HTTPException(
            429,
            f"too many unknown API keys from this address: retry in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    h = hash_key(key)
    if same_hash(h, st.admin_hash):
        return Principal(True)
    with st.db.read() as s:
        p = s.execute(select(Participant).where(Participant.api_key_hash == h)).scalar_one_or_none()
    if p is None:
        st.throttle.failure(client)
        raise HTTPException(401, "invalid API key")
    return Principal.of(p)


Who = Annotated[Principal, Depends(principal)]


def admin(who: Who) -> Principal:
    """403 unless the caller is the operator."""
    if not who.is_admin:
        raise HTTPException(403, "operator (admin key) only")
    return who


def participant_only(who: Who) -> Principal:
    """403 for the operator on routes that act for a participant."""
    if who.is_admin:
        raise HTTPException(403, "the operator cannot submit inputs; use a participant's key")
    return who


Admin = Annotated[Principal, Depends(admin)]
ParticipantOnly = Annotated[Principal, Depends(participant_only)]


def get_or_404(s: Session, model: Any, ident: int, what: str) -> Any:
    """The row ``ident`` of ``model``; 404 naming ``what`` when absent."""
    row = s.get(model, ident)
    if row is None:
        raise HTTPException(404, f"{what} {ident} not found")
    return row


def check_owner(who: Principal, owner: int | None, what: str, ident: int) -> None:
    """404 unless ``who`` is the operator or owns the resource: exactly the answer of
    :func:`get_or_404` for an id that does not exist, so that nobody learns which ids exist."""
    if not who.may_read(owner):
        raise HTTPException(404, f"{what} {ident} not found")


ERROR_TEXT = {
    401: "missing or unknown API key",
    403: "an operator route called by a participant, or a participant route by the operator",
    404: "no such row, or one that belongs to another participant (the same answer)",
    409: "conflict: round in progress or already cleared, inputs already used, idempotency key reused "
    "with another request",
    413: "request body over the size limit",
    422: "invalid input (nothing is stored)",
    429: "too many unknown API keys from this client address: retry after the Retry-After seconds",
}


def needs_auth(dependant: Any) -> bool:
    """Whether a route (its FastAPI dependant) authenticates the caller."""
    return any(d.call is principal or needs_auth(d) for d in dependant.dependencies)


def declare_errors(app: Any) -> None:
    """Declare, with the :class:`~datamarket.service.schemas.ErrorOut` body, every error a route can
    answer: 401/403 where a key is needed (and 429 after too many unknown keys), 404 with a path id,
    409 on writes and rounds, 413 where a body is read, 422 where there is anything to validate
    (replacing FastAPI's default 422 body, which is not what the domain errors return)."""
    from fastapi.openapi.utils import get_openapi
    from fastapi.routing import APIRoute

    from datamarket.service.schemas import ErrorOut

    codes: dict[tuple[str, str], set[int]] = {}
    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        c = set()
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
        for method in methods:
            codes[(route.path_format, method.lower())] = c

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema  # type: ignore[no-any-return]
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

    app.openapi = openapi
