"""Fetching a row for a caller: :func:`get_or_404` and :func:`check_owner` (both raise
:class:`~datamarket.service.store.errors.NotFound`, answered 404); :func:`window`, the rows of one
page of a list (:mod:`datamarket.service.api.paging`)."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

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


def window(
    q: Select[Any], key: InstrumentedAttribute[int], after: int = 0, limit: int | None = None
) -> Select[Any]:
    """``q`` in ``key`` order from after ``after``, ``limit + 1`` rows at most (one more than a page
    holds tells the route that another page follows; ``limit`` None: every row)."""
    q = q.where(key > after).order_by(key)
    return q if limit is None else q.limit(limit + 1)
