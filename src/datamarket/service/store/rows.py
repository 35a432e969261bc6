"""Fetching a row for a caller: :func:`get_or_404` and :func:`check_owner` (both raise
:class:`~datamarket.service.store.errors.NotFound`, answered 404)."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy.orm import Session

from datamarket.service.auth import Principal
from datamarket.service.store.errors import NotFound

T = TypeVar("T")


def get_or_404(s: Session, model: type[T], ident: int, what: str) -> T:
    """The row ``ident`` of ``model``; :class:`NotFound` naming ``what`` when absent."""
    row = s.get(model, ident)
    if row is None:
        raise NotFound(f"{what} {ident} not found")
    return row


def check_owner(who: Principal, owner: int | None, what: str, ident: int) -> None:
    """:class:`NotFound` unless ``who`` is the operator or owns the resource: exactly the answer of
    :func:`get_or_404` for an id that does not exist, so that nobody learns which ids exist."""
    if not who.may_read(owner):
        raise NotFound(f"{what} {ident} not found")
