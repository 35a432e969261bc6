"""One request of the API as data: its route, what it sends, how its answer is read.

An endpoint is written once, as a function of :mod:`datamarket.client.endpoints` decorated with
:func:`endpoint` (method, path template, :class:`~datamarket.client.retry.Safety`, whether it
carries an ``Idempotency-Key``): it returns a :class:`Spec`, and the decorator makes it a
:class:`Call`. :class:`~datamarket.client.Client` runs a call synchronously and
:class:`~datamarket.client.AsyncClient` asynchronously (each module wraps every endpoint function in a
method: ``sync_method``, ``async_method``), so both clients have the same methods with the same
signatures, and :data:`ROUTES` lists every route a client method calls (the OpenAPI test checks them
against the service's schema).

A call that carries an idempotency key draws it when the call is **built**, that is once per logical
call, and every retry of that call sends the same key (:mod:`datamarket.client.retry`).

A list the service pages (:mod:`datamarket.service.api.paging`: a ``Link: rel="next"`` header while
more rows follow) is read whole: the spec says how two pages join (``join``), and the clients follow
:meth:`Call.next_page` until the last page, each page retried on its own.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, ParamSpec, Protocol, TypeVar

import httpx
from pydantic import BaseModel

from datamarket.client.retry import Safety

P = ParamSpec("P")
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
IDEMPOTENCY_KEY = "Idempotency-Key"


class Owner(Protocol):
    """What a call may read of the client that makes it: the participant it acts for, if known."""

    participant_id: int | None


class HasId(Protocol):
    @property
    def id(self) -> int: ...


Ref = int | HasId
"""A row given by its id or by a response that has one (a market, a round, a submission...)."""


def id_of(ref: Ref) -> int:
    """The id of ``ref``.

    >>> id_of(7)
    7
    """
    value = ref if isinstance(ref, int) else ref.id
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an id or a row with one, not {ref!r}")
    return value


@dataclass(frozen=True)
class Route:
    """An operation of the API: ``method``, ``path`` (a template: ``/rounds/{rid}``), whether a repeat
    is harmless (``safety``) and whether it carries an ``Idempotency-Key`` (``keyed``)."""

    name: str
    method: str
    path: str
    safety: Safety
    keyed: bool


@dataclass(frozen=True)
class Spec(Generic[T]):
    """What an endpoint function returns: how to read the answer and what to send."""

    parse: Callable[[httpx.Response], T]
    path_params: Mapping[str, int] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    content: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    join: Callable[[T, T], T] | None = None
    """How the answer of a next page joins the answer so far (None: the route does not page)."""


@dataclass(frozen=True)
class Call(Generic[T]):
    """A request ready to send (and to send again, unchanged, on a retry); ``target`` is the URL of
    a next page (path and query, as the service's ``Link`` header gives it)."""

    route: Route
    spec: Spec[T]
    headers: Mapping[str, str]
    target: str | None = None

    @property
    def url(self) -> str:
        return self.target or self.route.path.format(**self.spec.path_params)

    def next_page(self, response: httpx.Response) -> Call[T] | None:
        """The call of the page after ``response``'s, or None after the last page (or for a route
        that does not page)."""
        link = response.links.get("next")
        if self.spec.join is None or link is None:
            return None
        return Call(self.route, Spec(self.spec.parse, join=self.spec.join), self.headers, link["url"])

    def describe(self) -> str:
        return f"{self.route.method} {self.url}"

    def request_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``httpx.Client.request`` for this call."""
        out: dict[str, Any] = {"headers": dict(self.headers)}
        if self.spec.query and self.target is None:
            out["params"] = dict(self.spec.query)
        if self.spec.json is not None:
            out["json"] = self.spec.json
        if self.spec.content is not None:
            out["content"] = self.spec.content
        return out


ROUTES: dict[str, Route] = {}
"""Every endpoint function by name (the same name as the clients' methods)."""


def endpoint(
    method: str, path: str, safety: Safety = Safety.REPEATABLE, *, keyed: bool = False
) -> Callable[[Callable[P, Spec[T]]], Callable[P, Call[T]]]:
    """Register an endpoint function as the route ``method path`` (module docstring)."""

    def register(build: Callable[P, Spec[T]]) -> Callable[P, Call[T]]:
        route = Route(build.__name__, method, path, Safety.REPEATABLE if keyed else safety, keyed)
        ROUTES[route.name] = route

        @functools.wraps(build)
        def make(*args: P.args, **kwargs: P.kwargs) -> Call[T]:
            spec = build(*args, **kwargs)
            headers = dict(spec.headers)
            if keyed:  # drawn once per logical call; every retry of the call sends it again
                headers[IDEMPOTENCY_KEY] = uuid.uuid4().hex
            return Call(route, spec, headers)

        return make

    return register


# -- reading answers -------------------------------------------------------------------------------
class One(Generic[M]):
    """Read the answer as one ``model``."""

    def __init__(self, model: type[M]) -> None:
        self.model = model

    def __call__(self, response: httpx.Response) -> M:
        return self.model.model_validate(response.json())


class Many(Generic[M]):
    """Read the answer as a list of ``model``."""

    def __init__(self, model: type[M]) -> None:
        self.model = model

    def __call__(self, response: httpx.Response) -> list[M]:
        return [self.model.model_validate(x) for x in response.json()]


def concat(first: list[T], then: list[T]) -> list[T]:
    """Two pages of a list, in order."""
    return [*first, *then]


def more_entries(first: dict[str, Any], then: dict[str, Any]) -> dict[str, Any]:
    """Two pages of the ledger's entries (``then``'s head: the newest read)."""
    return {**then, "entries": [*first["entries"], *then["entries"]]}


def as_json(response: httpx.Response) -> Any:
    """The answer's JSON as plain data."""
    return response.json()


def as_text(response: httpx.Response) -> str:
    return response.text


def as_bytes(response: httpx.Response) -> bytes:
    return response.content
