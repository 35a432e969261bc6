"""Paging of the routes that list rows: ``?limit=`` and ``?after=`` (keyset, by id or ledger ``seq``).

A list answers at most ``limit`` rows (default and largest :data:`MAX_PAGE`) whose key is greater
than ``after`` (default 0: from the first), in key order. When more rows may follow, the answer has
a ``Link: <...>; rel="next"`` header (RFC 8288) whose relative URL asks for the next page; the last
page has none. Keys only grow, so paging while others write never repeats a row nor skips one that
was committed when paging began (a row committed meanwhile may appear or not: PostgreSQL allocates
ids before commit, so a later page can miss a row whose smaller id committed late).
:class:`datamarket.client.Client` follows the links and returns the whole list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request, Response

T = TypeVar("T")
MAX_PAGE = 1000
"""Rows per page at most (and by default)."""
MAX_KEY = 2**31 - 1
"""The largest id or seq (32-bit columns, as the path ids): a larger ``after`` is a 422, not an
overflow in the database."""


@dataclass(frozen=True)
class PageParams:
    """``after`` (the last key of the previous page) and ``limit`` (rows on this page)."""

    after: int
    limit: int


def _page(
    after: Annotated[
        int, Query(ge=0, le=MAX_KEY, description="the last id (ledger: seq) of the previous page")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="rows on this page")] = MAX_PAGE,
) -> PageParams:
    return PageParams(after, limit)


Page = Annotated[PageParams, Depends(_page)]


def paged(
    rows: Sequence[T],
    page: PageParams,
    request: Request,
    response: Response,
    key: Callable[[T], Any] = lambda row: row["id"],  # type: ignore[index]
) -> list[T]:
    """The page's rows out of ``rows`` (the store's answer: at most ``limit + 1`` rows after
    ``after``), with the ``Link`` header set when more follow."""
    out = list(rows[: page.limit])
    if len(rows) > page.limit:
        url = request.url.include_query_params(after=int(key(out[-1])), limit=page.limit)
        response.headers["Link"] = f'<{url.path}?{url.query}>; rel="next"'
    return out
