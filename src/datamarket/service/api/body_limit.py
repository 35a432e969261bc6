"""The request-body limit: an ASGI middleware that answers 413 as soon as a body is over it."""

from __future__ import annotations

import json
from typing import Any

MAX_JSON_BYTES = 1024 * 1024


class BodyLimit:
    """ASGI middleware: a request body over the limit is answered 413 as soon as it is seen.

    A declared ``Content-Length`` over the limit is refused before a byte is read; a chunked body is
    counted as it streams in and cut off at the limit (the application then sees a disconnect and its
    late reply is dropped), so no route, authentication included, ever holds more than the limit.
    Uploads (``.../datasets``) get ``max_bytes``, every other route ``max_json_bytes``.
    """

    def __init__(self, app: Any, max_bytes: int, max_json_bytes: int):
        self.app = app
        self.max_bytes = max_bytes
        self.max_json_bytes = max_json_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes if scope["path"].endswith("/datasets") else self.max_json_bytes
        length = dict(scope.get("headers") or []).get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            await _too_large(send, int(length), limit)
            return
        seen, state = 0, {"started": False, "rejected": False}

        async def limited_receive() -> Any:
            nonlocal seen
            if state["rejected"]:
                return {"type": "http.disconnect"}
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit and not state["started"]:
                    state["rejected"] = True
                    await _too_large(send, seen, limit)
                    return {"type": "http.disconnect"}
            return msg

        async def guarded_send(msg: Any) -> None:
            if state["rejected"]:
                return  # our 413 is out; the application's reply to the disconnect is dropped
            state["started"] = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not state["rejected"]:
                raise


async def _too_large(send: Any, size: int, limit: int) -> None:
    body = json.dumps({"detail": f"request body of {size}+ bytes exceeds the limit of {limit}"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
