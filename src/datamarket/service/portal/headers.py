"""The security headers of every portal answer: pages, errors, redirects, JSON 404/405, figures and
static files alike (:class:`PortalHeaders`, one ASGI middleware around the whole app, so nothing under
``/portal`` can answer without them, whichever layer produced the answer)."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PREFIX = "/portal"

# Pages hold private amounts (never cached), use only the app's own CSS and script (no inline code),
# and are never framed by another site.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def under_portal(path: str) -> bool:
    """Whether ``path`` is the portal's (``/portal`` or below it).

    >>> under_portal("/portal/x"), under_portal("/portal"), under_portal("/portals"), under_portal("/health")
    (True, True, False, False)
    """
    return path == PREFIX or path.startswith(PREFIX + "/")


class PortalHeaders:
    """Adds :data:`SECURITY_HEADERS` to every HTTP answer under ``/portal`` that does not set its own
    value of one (a route may only tighten a header it sets itself)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not under_portal(str(scope.get("path", ""))):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
