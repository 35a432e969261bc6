"""The portal's pages, one router per area, each calling :mod:`datamarket.service.store` (the rules
of the JSON API live there, once): :mod:`.signin`, :mod:`.home`, :mod:`.markets`, :mod:`.participants`,
:mod:`.ledger`, :mod:`.submissions`, :mod:`.rounds` (with receipts), :mod:`.guide` (the rules
receipts link to); :mod:`.common` holds rendering,
errors as pages and the visitor's role.

Participants: home (my markets, balance), a market (its plan, a form per submission kind, the upload,
my submissions with withdraw, its rounds), a round (live status), my receipt with "verify".
Operator: home (markets, create one of any kind), participants (register one), a market (plan, every
submission with exclude, clear a round), a round (progress, failure reason, every receipt, the
round's figure), the ledger (paged, with the verification result).

A page for the wrong role answers 403; a row that belongs to another participant answers exactly
the 404 of a row that does not exist (as the JSON API does), so ids cannot be enumerated. Every
POST checks the session's CSRF token first.
"""

from __future__ import annotations

from fastapi import APIRouter

from datamarket.service.portal.views import (
    guide,
    home,
    ledger,
    markets,
    participants,
    rounds,
    signin,
    submissions,
)

# ``/portal/markets/new`` comes before ``/portal/markets/{mid}`` (both in :mod:`.markets`)
ROUTERS: tuple[APIRouter, ...] = (
    signin.router,
    home.router,
    markets.router,
    participants.router,
    ledger.router,
    submissions.router,
    rounds.router,
    guide.router,
)
