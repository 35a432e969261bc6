"""When the client sends a request again, and why that can never pay or book twice.

A request is retried (with :mod:`tenacity`) on

* an answer that says nothing was done: **429** (too many unknown keys from this address) and **503**
  (the service parses as many uploads as its memory admits; nothing stored), after the answer's
  ``Retry-After`` seconds when it gives them (one longer than :attr:`RetryPolicy.max_retry_after` is
  not waited for: the error is raised), else after the backoff;
* a connection that failed **before the request was sent** (``ConnectError``, ``ConnectTimeout``,
  ``PoolTimeout``): the service never saw it;
* a connection dropped or timed out **after** the request may have reached the service (the answer
  was lost), only for a request whose repeat changes nothing (:attr:`Safety.REPEATABLE`): reads,
  operator actions the service makes idempotent (release and fail a round, check a checkpoint), and
  the writes that carry an ``Idempotency-Key`` (submissions, uploads, opening a round). The key is
  drawn once per logical call (:func:`datamarket.client.calls.endpoint`) and sent unchanged on
  every attempt, so the service answers a repeat with the first response (200) instead of storing a
  second submission or opening a second round. The other writes (registering a participant,
  creating a market, retrying a failed round, excluding or withdrawing a submission) carry no key in
  the API: they are :attr:`Safety.ONCE` and are not retried once sent; a lost answer raises
  :class:`~datamarket.client.errors.ConnectionFailed`, and the caller looks before trying again.

The backoff between attempts is "full jitter" (a uniform draw in ``[0, min(maximum, initial *
2^(k-1))]`` before attempt ``k + 1``), so that many clients refused at once do not come back at once;
at least ``Retry-After`` when the answer gave one. The jitter is not a computation's randomness:
it is drawn from the operating system (:class:`random.SystemRandom`).
"""

from __future__ import annotations

import enum
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import tenacity

from datamarket.client.errors import RateLimited, ServiceUnavailable

log = logging.getLogger("datamarket.client")
_JITTER = random.SystemRandom()

NOT_SENT: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Transport errors raised before a byte of the request left: retrying them cannot repeat an action."""
LOST_ANSWER: tuple[type[Exception], ...] = (
    httpx.NetworkError,
    httpx.TimeoutException,
    httpx.RemoteProtocolError,
)
"""Transport errors after which the request may have reached the service (its answer was lost)."""


class Safety(enum.Enum):
    """Whether a request may be repeated after its answer was lost."""

    REPEATABLE = "repeatable"
    """A repeat changes nothing: a read, an idempotent action, or a write with an Idempotency-Key."""
    ONCE = "once"
    """A repeat may act twice: retried only when the request surely was not sent, or refused (429, 503)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How many times and how long the client tries a request (module docstring).

    ``attempts`` tries in all (1: no retry); backoff from ``initial`` seconds doubling up to
    ``maximum``; a ``Retry-After`` longer than ``max_retry_after`` seconds is raised, not waited for;
    ``deadline`` (seconds, optional) bounds the time spent on one call's attempts and waits.

    >>> RetryPolicy(attempts=1).retryable(httpx.ConnectError("refused"), Safety.ONCE)
    True
    >>> RetryPolicy().retryable(httpx.ReadError("dropped"), Safety.ONCE)
    False
    """

    attempts: int = 5
    initial: float = 0.2
    maximum: float = 10.0
    max_retry_after: float = 60.0
    deadline: float | None = None

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.initial < 0 or self.maximum < self.initial:
            raise ValueError("need 0 <= initial <= maximum")

    def retryable(self, exc: BaseException, safety: Safety) -> bool:
        """Whether a call of ``safety`` that raised ``exc`` may be sent again (module docstring)."""
        if isinstance(exc, RateLimited | ServiceUnavailable):
            return exc.retry_after is None or exc.retry_after <= self.max_retry_after
        if isinstance(exc, NOT_SENT):
            return True
        return safety is Safety.REPEATABLE and isinstance(exc, LOST_ANSWER)

    def delay(self, attempt: int, exc: BaseException | None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1 for the first) that raised ``exc``."""
        backoff = _JITTER.uniform(0.0, min(self.maximum, self.initial * 2 ** (attempt - 1)))
        after = getattr(exc, "retry_after", None)
        return backoff if after is None else max(backoff, float(after))

    def _kwargs(self, safety: Safety, what: str) -> dict[str, Any]:
        stop: tenacity.stop.stop_base = tenacity.stop_after_attempt(self.attempts)
        if self.deadline is not None:
            stop = stop | tenacity.stop_after_delay(self.deadline)

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome is not None else None
            return self.delay(state.attempt_number, exc)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome is not None else None
            pause = state.next_action.sleep if state.next_action is not None else 0.0
            log.warning(
                "%s: attempt %d of %d failed (%s: %s); again in %.2f s",
                what,
                state.attempt_number,
                self.attempts,
                type(exc).__name__,
                exc,
                pause,
            )

        return {
            "stop": stop,
            "wait": wait,
            "retry": tenacity.retry_if_exception(lambda e: self.retryable(e, safety)),
            "reraise": True,
            "before_sleep": before_sleep,
        }

    def retrying(self, safety: Safety, what: str, sleep: Callable[[float], None]) -> tenacity.Retrying:
        """The :class:`tenacity.Retrying` of one call (``what`` names it in the log)."""
        return tenacity.Retrying(sleep=sleep, **self._kwargs(safety, what))

    def async_retrying(
        self, safety: Safety, what: str, sleep: Callable[[float], Awaitable[None]]
    ) -> tenacity.AsyncRetrying:
        """The :class:`tenacity.AsyncRetrying` of one call."""
        return tenacity.AsyncRetrying(sleep=sleep, **self._kwargs(safety, what))
