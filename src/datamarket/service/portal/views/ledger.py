"""The operator's ledger page: the entries, paged, with the verification result."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from datamarket.service.api import schemas as S
from datamarket.service.portal.session import Visitor
from datamarket.service.portal.views.common import Operator, as_json, page, portal_router, state
from datamarket.service.store import ledger

router = portal_router()
LEDGER_PAGE = 50


@router.get("/ledger")
def ledger_page(request: Request, page_no: int = 1, v: Visitor = Operator) -> HTMLResponse:
    """Page ``page_no`` of the ledger (:data:`LEDGER_PAGE` entries a page) and the verification."""
    db = state(request).db
    dump = ledger.entries(db)
    rep = as_json(S.VerifyOut, ledger.verify(db))
    entries = dump["entries"]
    pages = max(1, -(-len(entries) // LEDGER_PAGE))
    page_no = min(max(1, page_no), pages)
    rows = entries[(page_no - 1) * LEDGER_PAGE : page_no * LEDGER_PAGE]
    return page(
        request, v, "ledger.html", rows=rows, head=dump["head"], report=rep, page_no=page_no, pages=pages
    )
