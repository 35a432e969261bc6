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


def idem_hash(*parts: Any) -> str:
    """SHA-256 of a request's canonical JSON (to tell a replay from a different request)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def principal(
    request: Request,
    x_api_key: Annotated[str | None, Header(description="API key")] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    """The caller, from ``X-API-Key`` (or ``Authorization: Bearer``); 401 when missing or unknown."""
    st: ServiceState = request.app.state.service
    key = x_api_key
    if key is None and authorization and authorization.lower().startswith("bearer "):
        key = authorization[7:].strip()
    if not key:
        raise HTTPException(401, "missing API key (header X-API-Key)")
    h = hash_key(key)
    if same_hash(h, st.admin_hash):
        return Principal(True)
    with st.db.read() as s:
        p = s.execute(select(Participant).where(Participant.api_key_hash == h)).scalar_one_or_none()
    if p is None:
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


def check_owner(who: Principal, owner: int | None, what: str) -> None:
    """403 unless ``who`` is the operator or owns the resource."""
    if not who.may_read(owner):
        raise HTTPException(403, f"{what} belongs to another participant")
