"""The home page: the operator's markets (and the form to create one), or a participant's markets,
balance and receipts."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from datamarket.service.api import schemas as S
from datamarket.service.portal.session import Visitor
from datamarket.service.portal.views.common import Anyone, as_json, page, portal_router, state
from datamarket.service.store import markets, participants, submissions

router = portal_router()


@router.get("/")
def home(request: Request, v: Visitor = Anyone) -> HTMLResponse:
    """The visitor's home page."""
    st = state(request)
    ms = as_json(S.MarketOut, markets.list_markets(st.db))
    descr = {k: a.description for k, a in st.adapters.items()}
    if v.who.is_admin:
        return page(request, v, "operator_home.html", markets=ms, kinds=sorted(descr.items()))
    me = as_json(S.ParticipantOut, participants.me(st.db, v.who))
    subs = {
        m["id"]: as_json(S.SubmissionOut, submissions.list_submissions(st.db, v.who, m["id"])) for m in ms
    }
    mine = {mid: len(xs) for mid, xs in subs.items()}
    names = {m["id"]: m["name"] or f"market {m['id']}" for m in ms}
    receipts = sorted(
        {
            (x["consumed_round_id"], names[mid])
            for mid, xs in subs.items()
            for x in xs
            if x["consumed_round_id"]
        }
    )
    return page(
        request, v, "participant_home.html", markets=ms, mine=mine, me=me, kinds=descr, receipts=receipts
    )
