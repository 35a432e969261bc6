"""The home page: the operator's markets (and the form to create one) and its activity over time (a
figure, ``/portal/activity.svg``, and a table of the same numbers), or a participant's markets,
balance and receipts."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from fastapi.responses import HTMLResponse

from datamarket.service.api import schemas as S
from datamarket.service.portal import figures
from datamarket.service.portal.session import Visitor
from datamarket.service.portal.views.common import Anyone, Operator, as_json, page, portal_router, state
from datamarket.service.store import ledger, markets, participants, rounds, submissions

router = portal_router()


def _activity(request: Request, v: Visitor) -> list[dict[str, Any]]:
    """Rounds and money booked per day (:func:`~datamarket.service.portal.figures.activity`)."""
    db = state(request).db
    opened = [r for m in markets.list_markets(db) for r in rounds.list_rounds(db, v.who, m["id"])]
    return figures.activity(opened, ledger.entries(db)["entries"])


@router.get("/activity.svg")
def activity_figure(request: Request, v: Visitor = Operator) -> Response:
    """The operator's activity over time (SVG, drawn on the server)."""
    svg = figures.draw_activity(_activity(request, v), state(request).display)
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})


@router.get("/")
def home(request: Request, v: Visitor = Anyone) -> HTMLResponse:
    """The visitor's home page."""
    st = state(request)
    ms = as_json(S.MarketOut, markets.list_markets(st.db))
    descr = {k: a.description for k, a in st.adapters.items()}
    if v.who.is_admin:
        busy = figures.busy_days(_activity(request, v))
        return page(
            request,
            v,
            "operator_home.html",
            markets=ms,
            kinds=sorted(descr.items()),
            activity=busy,
            statuses=figures.STATUSES,
        )
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
