"""The portal's guide: for every market kind the service clears, what participants submit and each
rule that produces a receipt line (its formula, where it comes from, what it means), at the anchor
``/portal/guide#<kind>-<rule>`` that receipts link to. It holds nothing of any market; signed-in
visitors read it."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from datamarket.service.adapters.charges import rules_of
from datamarket.service.portal.session import Visitor
from datamarket.service.portal.views.common import Anyone, page, portal_router, state

router = portal_router()


@router.get("/guide")
def guide(request: Request, v: Visitor = Anyone) -> HTMLResponse:
    """Every kind's submissions and receipt rules."""
    kinds = [
        {
            "kind": kind,
            "description": a.description,
            "submissions": dict(a.submission_kinds),
            "rules": dict(rules_of(a)),
        }
        for kind, a in sorted(state(request).adapters.items())
    ]
    return page(request, v, "guide.html", kinds=kinds)
