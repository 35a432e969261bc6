"""The ASGI middleware that observes every HTTP request: :class:`Observe`.

Per request it does only this: reads ``X-Request-ID`` (:func:`~.logs.request_id`) into a context
variable and echoes it in the answer, counts the request by route template, method and status and
times it (:func:`~.metrics.http_request`), counts dataset uploads' bytes or refusals
(:func:`~.metrics.upload_answered`), and, when asked (``--access-log``; off by default, since
formatting a line costs several times the rest), writes one access line (logger
``datamarket.access``, INFO). The access line names the method, the route template, the path
when a route matched (its parameters are ids and kinds; the query string never: it may carry what
a client should not have put there) and the status, never a header or a body. It replaces
uvicorn's access log, which writes the query string.

The route template comes from the route the application matched (``scope["route"]``); a static
mount is ``<mount>/{path}``, a request no route serves ``unmatched`` (so that no client can add a
label value), and an upload refused by the body limit before routing is given its upload route.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from datamarket.service.observability import metrics
from datamarket.service.observability.logs import REQUEST_ID, request_id

access = logging.getLogger("datamarket.access")
UPLOAD_ROUTES = frozenset({"/markets/{mid}/datasets", "/portal/markets/{mid}/datasets"})
_EARLY_UPLOAD = re.compile(r"(/portal)?/markets/[^/]+/datasets")


class Observe:
    """ASGI middleware: request id, metrics, access log (module docstring). Add it last, so that it
    is the outermost and sees the answers of every other middleware (the body limit's 413)."""

    def __init__(self, app: Any, access_log: bool = False):
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(_header(scope, b"x-request-id"))
        token = REQUEST_ID.set(rid)
        start, root = time.perf_counter(), scope.get("root_path", "")
        answer = {"status": 500, "bytes": 0}
        echo = (b"x-request-id", rid.encode())

        async def sending(msg: Any) -> None:
            if msg["type"] == "http.response.start":
                answer["status"] = msg["status"]
                msg = {**msg, "headers": [*msg.get("headers", ()), echo]}
            await send(msg)

        upload = scope["method"] == "POST" and scope["path"].endswith("/datasets")

        async def counting(*args: Any) -> Any:
            msg = await receive(*args)
            answer["bytes"] += len(msg.get("body", b""))
            return msg

        try:
            await self.app(scope, counting if upload else receive, sending)
        finally:
            self._record(scope, root, answer, time.perf_counter() - start, upload)
            REQUEST_ID.reset(token)

    def _record(self, scope: Any, root: str, answer: dict[str, int], seconds: float, upload: bool) -> None:
        route, matched = route_of(scope, root, answer["status"])
        method, status = scope["method"], answer["status"]
        metrics.http_request(route, method, status, seconds)
        if upload and route in UPLOAD_ROUTES:
            metrics.upload_answered(status, answer["bytes"])
        if self.access_log and access.isEnabledFor(logging.INFO):
            path = scope["path"] if matched else route
            client = scope.get("client")
            access.info(
                "%s %s %d %.1f ms",
                method,
                path,
                status,
                seconds * 1000,
                extra={
                    "method": method,
                    "route": route,
                    "path": path,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                    "client": client[0] if client else None,
                },
            )


def route_of(scope: Any, root: str, status: int) -> tuple[str, bool]:
    """The route template of a request handled with ``scope`` (whose root path was ``root`` before
    routing) and whether a route matched it."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if template:
        return template, True
    mount = scope.get("root_path", "")
    if mount != root and mount.startswith(root):
        return f"{mount[len(root) :]}/{{path}}", True
    if status == 413 and scope["method"] == "POST":
        m = _EARLY_UPLOAD.fullmatch(scope["path"])
        if m:
            return f"{m.group(1) or ''}/markets/{{mid}}/datasets", False
    return "unmatched", False


def _header(scope: Any, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            try:
                return value.decode("ascii")  # type: ignore[no-any-return]
            except UnicodeDecodeError:
                return None
    return None
