"""What every route depends on: the service state and who is calling.

``State`` is the app's :class:`~datamarket.service.state.ServiceState` (``request.app.state.service``);
``Who`` is any authenticated caller, ``Admin`` the operator, ``ParticipantOnly`` a participant (the
operator holds no account to submit from). ``Id`` and ``IdemKey`` are the path id and the
``Idempotency-Key`` header.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Path, Request
from starlette.concurrency import run_in_threadpool

from datamarket.service.auth import Principal, hash_key, same_hash
from datamarket.service.state import ServiceState
from datamarket.service.store.participants import principal_of_key

Id = Annotated[int, Path(ge=1, le=2**31 - 1, description="row id")]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


def service_state(request: Request) -> ServiceState:
    """The app's shared state."""
    return request.app.state.service  # type: ignore[no-any-return]


async def _state(request: Request) -> ServiceState:
    """:func:`service_state` as a dependency, on the event loop (a plain function would cost every
    request a trip through the thread pool)."""
    return service_state(request)


State = Annotated[ServiceState, Depends(_state)]


def principal(
    request: Request,
    x_api_key: Annotated[str | None, Header(description="API key")] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    """The caller, from ``X-API-Key`` (or ``Authorization: Bearer``); 401 when missing or unknown.

    429 (with ``Retry-After``) while the client address has presented too many unknown keys
    (:class:`~datamarket.service.throttle.AuthThrottle`); the key is not looked at then. The
    address is the TCP peer's, or the client a trusted proxy names (``forwarded_allow_ips``).
    """
    st = service_state(request)
    key = x_api_key
    if key is None and authorization and authorization.lower().startswith("bearer "):
        key = authorization[7:].strip()
    if not key:
        raise HTTPException(401, "missing API key (header X-API-Key)")
    client = request.client.host if request.client else "unknown"  # the TCP peer (or a trusted proxy's)
    _throttled(st.throttle.retry_after(client))
    h = hash_key(key)
    if same_hash(h, st.admin_hash):
        return Principal(True)
    # a participant's key names it for good: the process remembers it (store.db.Memo), so that a
    # request opens no transaction just to authenticate; an unknown key is looked up every time
    who = st.db.memo.get(("key", h), lambda: principal_of_key(st.db, h))
    if who is None:
        _throttled(st.throttle.failure(client))  # checked and counted at once: the limit is exact
        raise HTTPException(401, "invalid API key")
    return who


def _throttled(wait: int | None) -> None:
    """429 with ``Retry-After`` when the throttle says wait."""
    if wait is not None:
        raise HTTPException(
            429,
            f"too many unknown API keys from this address: retry in {wait} s",
            headers={"Retry-After": str(wait)},
        )


async def caller(
    request: Request,
    x_api_key: Annotated[str | None, Header(description="API key")] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    """:func:`principal` as the routes' dependency: on the event loop when it needs no database (the
    operator's key, a participant's key the process remembers), else in a worker thread."""
    st = service_state(request)
    key = x_api_key
    if key is None and authorization and authorization.lower().startswith("bearer "):
        key = authorization[7:].strip()
    h = hash_key(key) if key else ""
    if h and (same_hash(h, st.admin_hash) or st.db.memo.known(("key", h))):
        return principal(request, x_api_key, authorization)
    return await run_in_threadpool(principal, request, x_api_key, authorization)


Who = Annotated[Principal, Depends(caller)]


async def admin(who: Who) -> Principal:
    """403 unless the caller is the operator."""
    if not who.is_admin:
        raise HTTPException(403, "operator (admin key) only")
    return who


async def participant_only(who: Who) -> Principal:
    """403 for the operator on routes that act for a participant."""
    if who.is_admin:
        raise HTTPException(403, "the operator cannot submit inputs; use a participant's key")
    return who


Admin = Annotated[Principal, Depends(admin)]
ParticipantOnly = Annotated[Principal, Depends(participant_only)]


def needs_auth(dependant: Any) -> bool:
    """Whether a route (its FastAPI dependant) authenticates the caller."""
    return any(d.call in (principal, caller) or needs_auth(d) for d in dependant.dependencies)
