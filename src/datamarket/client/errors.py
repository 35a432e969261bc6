"""What the client raises: every error body of the service as an exception carrying its problem details.

The service answers every error with ``{"detail": ..., "field": ...}``
(:class:`~datamarket.service.api.schemas.ErrorOut`): ``detail`` a message, or pydantic's list of
problems for a request that does not validate; ``field`` the offending field or ``None``.
:func:`api_error` turns such an answer into the :class:`ApiError` subclass of its status::

    ClientError
    ├── ApiError                 status, detail, field, method, path, retry_after
    │   ├── Unauthorized         401  missing or unknown API key
    │   ├── Forbidden            403  an operator route called by a participant, or the reverse
    │   ├── NotFound             404  no such row, or one of another participant (the same answer)
    │   ├── Conflict             409  state refuses it: round in progress, inputs used, key reused...
    │   ├── PayloadTooLarge      413  body over the size limit
    │   ├── ValidationFailed     422  invalid input; nothing stored
    │   ├── RateLimited          429  too many unknown keys from this address (Retry-After)
    │   ├── ServiceUnavailable   503  uploads parsing at capacity; nothing stored (Retry-After)
    │   └── ServerError          other 5xx
    ├── ConnectionFailed         the request did not get an answer (after the retries)
    ├── RoundFailed              :meth:`~datamarket.client.Client.wait` saw the round fail
    ├── WaitTimeout              ... or not finish in time (also a :class:`TimeoutError`)
    └── ReceiptInvalid           a receipt that does not verify offline (also a :class:`ValueError`)
"""

from __future__ import annotations

import email.utils
import time
from datetime import UTC
from typing import Any

import httpx


class ClientError(Exception):
    """Base of everything :mod:`datamarket.client` raises."""


class ApiError(ClientError):
    """The service answered ``status`` with a problem: ``detail`` (a message, or the list of problems
    of a request that does not validate), ``field`` (the offending field, or ``None``), the request's
    ``method`` and ``path``, and ``retry_after`` (seconds, when the answer says when to retry)."""

    status: int = 0

    def __init__(
        self,
        status: int,
        detail: Any,
        field: str | None = None,
        *,
        method: str = "",
        path: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.detail = detail
        self.field = field
        self.method = method
        self.path = path
        self.retry_after = retry_after
        where = f" ({field})" if field else ""
        super().__init__(f"{method} {path}: {status} {message_of(detail)}{where}".strip())


class Unauthorized(ApiError):
    """401: missing or unknown API key."""


class Forbidden(ApiError):
    """403: an operator route called with a participant's key, or a participant route by the operator."""


class NotFound(ApiError):
    """404: no such row, or one that belongs to another participant (the service gives one answer)."""


class Conflict(ApiError):
    """409: the request is fine but the state refuses it (a round in progress or cleared, inputs not
    ready, an idempotency key reused with another request...)."""


class PayloadTooLarge(ApiError):
    """413: the body is over the service's size limit."""


class ValidationFailed(ApiError):
    """422: invalid input; nothing was stored."""


class RateLimited(ApiError):
    """429: too many unknown API keys from this address; ``retry_after`` says when to try again."""


class ServiceUnavailable(ApiError):
    """503: the service parses as many uploads as its memory admits; nothing stored; ``retry_after``."""


class ServerError(ApiError):
    """Another 5xx answer (a bug, or a proxy in front of the service)."""


class ConnectionFailed(ClientError):
    """No answer: the connection failed, was dropped or timed out (after the retries the request's
    kind allows; see :class:`~datamarket.client.RetryPolicy`). The httpx error is the ``__cause__``."""


class RoundFailed(ClientError):
    """The round ended ``failed`` or ``unverified``; ``round`` is its last state (``error`` says why)."""

    def __init__(self, state: Any) -> None:
        self.round = state
        super().__init__(f"round {state.id} ended {state.status}: {state.error}")


class WaitTimeout(ClientError, TimeoutError):
    """The round did not finish in time; ``round`` is its last state seen."""

    def __init__(self, state: Any, timeout: float) -> None:
        self.round = state
        super().__init__(f"round {state.id} still {state.status} after {timeout:g} s")


class ReceiptInvalid(ClientError, ValueError):
    """A receipt that does not verify on its own; ``problems`` lists what is wrong."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("receipt does not verify: " + "; ".join(problems))


BY_STATUS: dict[int, type[ApiError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationFailed,
    429: RateLimited,
    503: ServiceUnavailable,
}


def message_of(detail: Any) -> str:
    """A one-line message from ``detail``: itself, or the messages of pydantic's problems.

    >>> message_of([{"loc": ["body", "name"], "msg": "too long"}])
    'body.name: too long'
    """
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(x) for x in p.get('loc', []))}: {p.get('msg')}" if isinstance(p, dict) else str(p)
            for p in detail
        )
    return str(detail)


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP date (RFC 9110,
    section 10.2.3); ``None`` when absent or unreadable.

    >>> retry_after("3"), retry_after(None), retry_after("soon")
    (3.0, None, None)
    >>> retry_after("Thu, 01 Jan 1970 00:00:10 GMT", now=4.0)
    6.0
    """
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def api_error(response: httpx.Response) -> ApiError:
    """The exception for an error ``response`` (status >= 400) of the service."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "detail" in body:
        detail, field = body["detail"], body.get("field")
    else:  # not the service's body (a proxy's page, say)
        detail, field = response.text[:500] or response.reason_phrase, None
    status = response.status_code
    cls = BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    return cls(
        status,
        detail,
        field if isinstance(field, str) else None,
        method=response.request.method,
        path=response.request.url.path,
        retry_after=retry_after(response.headers.get("retry-after")),
    )
