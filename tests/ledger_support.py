"""Helpers of the ledger tests (no tests here): a small booked market, as the service books one.

:func:`book_market` writes what a cleared round of the service writes, in one transaction per round:
participants, a market in a currency, consumed submissions, the round with its stored outcome, its
postings (:func:`~datamarket.ledger.money.outcome_postings`) appended to the chain, deliverables.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from datamarket.core.types import Outcome, Role
from datamarket.ledger import Currency, append_round, make_sessionmaker, outcome_postings
from datamarket.ledger.models import Deliverable, Market, Participant, Round, Submission

NAMES = ("buyer_a", "buyer_b", "seller_x", "seller_y")


def participants(s: Session, names: Sequence[str] = NAMES) -> dict[str, int]:
    """Register ``names`` (once) and return their ids."""
    have = {n: i for n, i in s.execute(select(Participant.name, Participant.id))}
    for n in names:
        if n not in have:
            p = Participant(name=n, api_key_hash=hashlib.sha256(n.encode()).hexdigest())
            s.add(p)
            s.flush()
            have[n] = p.id
    return have


def market(s: Session, currency: str = "USD", kind: str = "broker") -> Market:
    cur = Currency.parse(currency)
    m = Market(kind=kind, name=cur.code, params={}, scale=cur.scale, currency=cur.code)
    s.add(m)
    s.flush()
    return m


def clear_round(
    s: Session, m: Market, prices: Sequence[float], payments: Sequence[float], names: Sequence[str] = NAMES
) -> int:
    """Book one cleared round of ``m`` (module docstring); returns the round id."""
    ids = participants(s, names)
    subs = [
        Submission(
            market_id=m.id,
            participant_id=ids[n],
            kind="bid",
            payload={"data": {}},
            content_hash=hashlib.sha256(f"{m.id}{n}{len(prices)}".encode()).hexdigest(),
        )
        for n in names
    ]
    s.add_all(subs)
    s.flush()
    rnd = Round(market_id=m.id, seed=0, input_ids=[x.id for x in subs], status="cleared")
    s.add(rnd)
    s.flush()
    roles = tuple(Role.BUYER if n.startswith("buyer") else Role.SELLER for n in names)
    outcome = Outcome("t", tuple(names), roles, prices=list(prices), payments=list(payments))
    append_round(s, rnd.id, outcome_postings(outcome, m.scale), ids, currency=m.currency)
    rnd.outcome = outcome.to_dict()
    for x in subs:
        x.consumed_round_id = rnd.id
    for n in names:
        s.add(Deliverable(round_id=rnd.id, participant_id=ids[n], payload={"kind": "x"}))
    s.flush()
    return rnd.id


def failed_round(s: Session, m: Market) -> int:
    rnd = Round(market_id=m.id, seed=0, input_ids=[], status="failed", error="worker crashed")
    s.add(rnd)
    s.flush()
    return rnd.id


def book_market(engine: Engine) -> dict[str, Any]:
    """Two markets (USD, and the named unit TOKEN:6), three cleared rounds and a failed one."""
    with make_sessionmaker(engine)() as s, s.begin():
        usd, tok = market(s, "USD"), market(s, "TOKEN:6")
        r1 = clear_round(s, usd, [1.52, 0, 0, 0], [0, 0, 0.7, 0.71])
        r2 = clear_round(s, tok, [1.521695, 0.4, 0, 0], [0, 0, 1.0, 0.3])
        failed = failed_round(s, usd)
        r3 = clear_round(s, usd, [0, 2.0, 0, 0], [0, 0, 1.0, 0.99])
        return {
            "markets": (usd.id, tok.id),
            "rounds": (r1, r2, r3),
            "failed": failed,
            "ids": participants(s),
        }
