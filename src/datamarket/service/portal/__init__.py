"""The marketplace's web portal: server-rendered pages under ``/portal`` on the same service.

Participants and the operator sign in with their API key (exchanged for a server-side session;
:mod:`.session`), then use pages that are thin views over the JSON API's own handlers (:mod:`.calls`,
:mod:`.views`): forms generated per market kind (:mod:`.forms`), dataset upload with progress,
round status live while it clears, receipts with a "verify" action, and the operator's markets,
participants, rounds (with a figure drawn on the server, :mod:`.figures`) and ledger. Templates and
the CSS and JavaScript they use ship inside the package (``templates/``, ``static/``); nothing is
fetched from elsewhere. The portal's routes are not part of the OpenAPI schema.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

HERE = Path(__file__).resolve().parent


def install(app: FastAPI) -> None:
    """Mount the portal (its routes and ``/portal/static``) on the service ``app``."""
    from datamarket.service.portal.calls import Calls
    from datamarket.service.portal.views import build_router

    app.include_router(build_router(Calls(app)))
    app.mount("/portal/static", StaticFiles(directory=str(HERE / "static")), name="portal-static")
