"""The marketplace's web portal: server-rendered pages under ``/portal`` on the same service.

Participants and the operator sign in with their API key (exchanged for a server-side session bound to
that key; :mod:`.session`), then use pages (:mod:`.views`, one router per area) that call the same
store functions as the JSON API (:mod:`datamarket.service.store`): forms generated per market kind
(:mod:`.forms`), dataset upload with progress, round status live while it clears, receipts with a
"verify" action, and the operator's markets, participants, rounds (with a figure drawn on the
server, :mod:`.figures`) and ledger. Templates and the CSS and JavaScript they use ship inside the
package (``templates/``, ``static/``); nothing is fetched from elsewhere. Every answer under
``/portal`` carries the security headers (:mod:`.headers`); every state-changing request must come
from the portal's own pages (:func:`.session.same_origin`) and carry the CSRF token. The portal's
routes are not part of the OpenAPI schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

if TYPE_CHECKING:
    from datamarket.service.config import ServiceSettings

HERE = Path(__file__).resolve().parent


def install(app: FastAPI, settings: ServiceSettings) -> None:
    """Mount the portal (its routes and ``/portal/static``) on the service ``app``, with its session
    rules (``settings.sessions``) and the security headers on every answer under ``/portal``."""
    from datamarket.service.portal.headers import PortalHeaders
    from datamarket.service.portal.views import ROUTERS

    app.state.portal_sessions = settings.sessions
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/portal/static", StaticFiles(directory=str(HERE / "static")), name="portal-static")
    app.add_middleware(PortalHeaders)
