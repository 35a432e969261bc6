"""The portal's only way to act: call the JSON API's own route handlers.

Every page is a view over the same handler functions the JSON routes run (found by name among the
app's routes), so each rule (validation, ownership, idempotency, the locking around rounds and
exclusions) lives in one place. The portal supplies what FastAPI's dependencies would: the caller's
:class:`~datamarket.service.auth.Principal` (for the parameter ``who`` or ``_``) and the already
parsed request bodies. The role checks that the JSON API makes in its dependencies (operator only,
participant only) the portal makes in its own (:mod:`datamarket.service.portal.views`).

A failure comes back as a :class:`Problem`: the status the JSON API would answer, its message and
the field it names.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from datamarket.core.errors import DatamarketError
from datamarket.service.auth import Principal


@dataclass(frozen=True)
class Problem(Exception):
    """What the JSON API would have answered instead of a success."""

    status: int
    message: str
    field: str | None = None

    def __str__(self) -> str:
        return self.message


def _data(value: Any) -> Any:
    if isinstance(value, Response):
        body = bytes(value.body)
        if value.status_code >= 400:
            detail = json.loads(body) if body else {}
            raise Problem(value.status_code, str(detail.get("detail", "")), detail.get("field"))
        if (value.media_type or "").endswith("json"):
            return json.loads(body) if body else None
        return body.decode()
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_data(v) for v in value]
    return value


def problem_of(exc: Exception) -> Problem:
    """The :class:`Problem` an exception of a handler stands for."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, HTTPException):
        return Problem(exc.status_code, str(exc.detail))
    if isinstance(exc, DatamarketError):
        return Problem(422, str(getattr(exc, "message", exc)), getattr(exc, "field", None))
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        loc = [str(x) for x in err.get("loc", ())]
        msg = str(err.get("msg", "invalid"))
        return Problem(422, msg.removeprefix("Value error, "), ".".join(loc) or None)
    raise exc


class Calls:
    """The JSON API's handlers of ``app``, by route name."""

    def __init__(self, app: FastAPI):
        self.app = app
        self._handlers: dict[str, Callable[..., Any]] = {}

    def handler(self, name: str) -> Callable[..., Any]:
        if not self._handlers:
            self._handlers = {
                r.name: r.endpoint
                for r in self.app.routes
                if isinstance(r, APIRoute) and not r.path.startswith("/portal")
            }
        return self._handlers[name]

    def _bind(self, name: str, who: Principal | None, kw: dict[str, Any]) -> tuple[Callable[..., Any], dict]:
        fn = self.handler(name)
        params = inspect.signature(fn).parameters
        for p in ("who", "_"):
            if p in params and p not in kw:
                kw[p] = who
        if "idempotency_key" in params:
            kw.setdefault("idempotency_key", None)
        return fn, kw

    def __call__(self, name: str, who: Principal | None = None, **kw: Any) -> Any:
        """Run the handler ``name`` as ``who``; its result as plain data, or raise :class:`Problem`."""
        fn, kw = self._bind(name, who, kw)
        try:
            return _data(fn(**kw))
        except (HTTPException, DatamarketError, ValidationError) as exc:
            raise problem_of(exc) from None

    async def run_async(self, name: str, who: Principal | None = None, **kw: Any) -> Any:
        """:meth:`__call__` for an ``async`` handler (the upload)."""
        fn, kw = self._bind(name, who, kw)
        try:
            return _data(await fn(**kw))
        except (HTTPException, DatamarketError, ValidationError) as exc:
            raise problem_of(exc) from None
