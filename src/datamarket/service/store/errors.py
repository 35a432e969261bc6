"""What a store operation refuses, by reason: the HTTP layer maps each to its status
(:mod:`datamarket.service.errors`: 404, 403, 409, 413, 503), the portal to its error page.

Bad input is not here: it is a :class:`~datamarket.core.errors.InvalidInputError` (422) raised by the
adapters, the uploads or the store itself.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base class: a request the store refuses; ``message`` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(StoreError):
    """No such row, or one that belongs to another participant (the same answer, so that nobody
    learns which ids exist)."""


class Forbidden(StoreError):
    """The caller's role may not do this (the operator acting for a participant, or the reverse)."""


class Conflict(StoreError):
    """The row's state does not allow it (a round in progress or already cleared, a consumed input,
    an idempotency key reused with another request)."""


class NotReady(Conflict):
    """The market's inputs do not allow a round yet (the adapter's check, naming ``field``): the
    request is fine, the market's state is not."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class TooLarge(StoreError):
    """A body over the size limit."""


class Busy(StoreError):
    """The service is at capacity for this request now (as many uploads parsing as the process's
    budget admits): nothing was done; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
