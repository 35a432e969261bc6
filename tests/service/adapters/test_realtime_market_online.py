"""The real-time market online, through real HTTP on SQLite and PostgreSQL: a buyer's bid is answered
in the response (price, level, gain, charge, predictions), one buyer at a time; rounds open by
themselves and book every answered charge exactly once, divided among the sellers; what the clearing
needs later is never shown; a bid cannot be withdrawn once answered; bad orders are clear errors.

Amounts are compared in minor units: the ledger books the outcome rounded by the largest-remainder
rule, so a booked amount is within one minor unit of the exact one."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from sqlalchemy import create_engine, select

from datamarket.client import Client, Conflict, ValidationFailed
from datamarket.ledger.models import Submission
from datamarket.scenarios.inputs import realtime_market as rt
from tests import service_support
from tests.client.drive import booked_rounds, join
from tests.service.adapters.leak_support import leaked_amounts
from tests.service_support import ADMIN, LiveServer

db_url, live = service_support.db_url, service_support.live  # the shared fixtures

T = 60
TEST_ROWS = list(range(0, T, 3))


def streams_and_labels(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, (T, 3))
    y = x @ np.array([1.0, 0.5, 0.0]) + rng.normal(0.0, 0.3, T)
    return x, y


def market_with_sellers(op: Client, **params: object) -> tuple[object, dict[str, Client]]:
    p = rt.Params(horizon="doubling", levels=5, rule="pd_a", max_bid=1.0, **params)  # type: ignore[arg-type]
    market = op.create_market("realtime_market", p)
    x, _ = streams_and_labels()
    sellers = join(op, market, ["s0", "s1", "s2"])
    for k, client in enumerate(sellers.values()):
        client.upload(market, x[:, k], kind="stream")
    return market, sellers


def order(value: float, y: np.ndarray, bid: float | None = None) -> rt.Order:
    return rt.Order(value=value, bid=bid, labels=y.tolist(), test_rows=TEST_ROWS)


def private_parts(url: str, market_id: int) -> list[dict]:
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            q = select(Submission.payload).where(Submission.market_id == market_id, Submission.kind == "bid")
            return [p["_answer"] for p in c.execute(q.order_by(Submission.id)).scalars()]
    finally:
        engine.dispose()


def test_a_bid_is_answered_at_once_and_booked_once(live: LiveServer, db_url: str) -> None:
    _, y = streams_and_labels()
    with Client(live.url, ADMIN) as op:
        market, sellers = market_with_sellers(op)
        buyers = join(op, market, ["b0", "b1", "b2"])
        answers = {}
        for k, (name, client) in enumerate(buyers.items()):
            sub = client.submit(market, order(0.4 + 0.3 * k, y))
            a = sub.payload["answer"]
            answers[name] = a
            assert set(a) == {"price", "bid", "level", "gain", "charge", "test_rows", "predictions"}
            assert "_answer" not in sub.payload and "_answer" not in json.dumps(
                client.get_submission(sub).model_dump(mode="json")
            )
            assert len(a["predictions"]) == len(TEST_ROWS) and a["test_rows"] == TEST_ROWS
            assert 0.0 < a["price"] <= 1.0 and a["bid"] == pytest.approx(0.4 + 0.3 * k)
            assert 0.0 <= a["charge"] <= a["bid"] * a["gain"] + 1e-12  # RF* <= b h(b) (individually rational)
            with pytest.raises(Conflict, match="answered at once"):
                client.withdraw_submission(sub)
        rounds = booked_rounds(op, market)
        assert all(r.status == "cleared" for r in rounds) and op.verify_ledger().ok
        entries = op.ledger_entries()["entries"]
        ids = {p.name: p.id for p in op.list_participants()}
        for name, a in answers.items():
            booked = sum(
                e["amount_minor"] for e in entries if e["participant_id"] == ids[f"{name}_{market.id}"]
            )
            assert abs(booked + round(a["charge"] * 100)) <= 1, (name, booked, a["charge"])  # charged once
        total = sum(round(a["charge"] * 100) for a in answers.values())
        paid = sum(
            e["amount_minor"]
            for e in entries
            if e["round_id"] in {r.id for r in rounds} and e["amount_minor"] > 0
        )
        assert abs(paid - total) <= len(rounds) * 4  # every charge paid out (PD*_A: balanced), to rounding
        for r in rounds:
            assert sum(e["amount_minor"] for e in entries if e["round_id"] == r.id) == 0
        states = private_parts(db_url, market.id)
        assert [s["pricer"]["n"] for s in states] == [1, 2, 3]  # one buyer at a time, in order
        for name, client in sellers.items():  # a seller's explanation gives no buyer's amount away
            for r in rounds:
                receipt = client.get_receipt(r)
                charges = [c.model_dump(mode="json") for c in receipt.charges]
                rows = r.outcome["participants"]
                assert leaked_amounts(charges, f"{name}_{market.id}", rows) == [], (name, charges)
                assert not any(b in json.dumps(charges) for b in ("b0", "b1", "b2"))


def test_a_replayed_bid_gets_the_same_answer_and_no_second_charge(live: LiveServer) -> None:
    _, y = streams_and_labels()
    with Client(live.url, ADMIN) as op:
        market, _ = market_with_sellers(op)
        (buyer,) = join(op, market, ["b"]).values()
        body = {"kind": "bid", "data": order(0.9, y).model_dump()}
        headers = {"Idempotency-Key": "order-1"}
        first = buyer._http.post(f"/markets/{market.id}/submissions", json=body, headers=headers)
        again = buyer._http.post(f"/markets/{market.id}/submissions", json=body, headers=headers)
        assert (first.status_code, again.status_code) == (201, 200)
        assert first.json()["payload"]["answer"] == again.json()["payload"]["answer"]
        booked_rounds(op, market)
        bids = [x for x in op.list_submissions(market) if x.kind == "bid"]
        assert len(bids) == 1 and bids[0].consumed_round_id is not None


def test_concurrent_bids_are_answered_one_at_a_time(live: LiveServer, db_url: str) -> None:
    _, y = streams_and_labels()
    with Client(live.url, ADMIN) as op:
        market, _ = market_with_sellers(op)
        buyers = list(join(op, market, [f"b{k}" for k in range(6)]).values())
        errors: list[BaseException] = []

        def bid(client: Client, value: float) -> None:
            try:
                client.submit(market, order(value, y))
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=bid, args=(c, 0.2 + 0.1 * k)) for k, c in enumerate(buyers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        states = private_parts(db_url, market.id)
        assert sorted(s["pricer"]["n"] for s in states) == [1, 2, 3, 4, 5, 6]  # no two saw the same state
        rounds = booked_rounds(op, market)
        assert sum(r.outcome["extra"]["buyers_served"] for r in rounds) == 6 and op.verify_ledger().ok


def test_orders_the_market_cannot_take_are_clear_errors(live: LiveServer) -> None:
    _, y = streams_and_labels()
    with Client(live.url, ADMIN) as op:
        with pytest.raises(ValidationFailed, match="doubling"):
            op.create_market("realtime_market", rt.Params(horizon="known"))
        empty = op.create_market("realtime_market", rt.Params(horizon="doubling"))
        (early,) = join(op, empty, ["early"]).values()
        with pytest.raises(Conflict, match="no seller has uploaded a stream"):
            early.submit(empty, order(0.5, y))
        market, sellers = market_with_sellers(op)
        (buyer,) = join(op, market, ["b"]).values()
        with pytest.raises(Conflict, match=f"one label per row of the sellers' streams \\({T}\\)"):
            buyer.submit(market, rt.Order(value=0.5, labels=[1.0] * (T - 1), test_rows=[0]))
        with pytest.raises((ValidationFailed, Conflict), match="test_rows"):
            buyer.submit(market, rt.Order(value=0.5, labels=y.tolist(), test_rows=[T + 5]))
        with pytest.raises((ValidationFailed, Conflict), match="max_bid"):
            buyer.submit(market, order(0.5, y, bid=3.0))
        with pytest.raises(Conflict, match="already sell a stream"):
            sellers["s0"].upload(market, np.ones(T), kind="stream")
        assert [x for x in op.list_submissions(market) if x.kind == "bid"] == []  # nothing was stored


def test_a_withdrawn_stream_is_not_paid_for_later_buyers(live: LiveServer) -> None:
    """A seller withdraws its stream (standing, never consumed) after a booked buyer: the next buyer is
    answered on the streams left, and the seller takes no part in that buyer's round."""
    _, y = streams_and_labels()
    with Client(live.url, ADMIN) as op:
        market, sellers = market_with_sellers(op)
        streams = {x.participant_id: x for x in op.list_submissions(market) if x.kind == "stream"}
        s0 = sellers["s0"]
        (buyer,) = join(op, market, ["b"]).values()
        buyer.submit(market, order(0.9, y))
        rounds = booked_rounds(op, market)  # the bid was booked with s0's stream
        s0.withdraw_submission(streams[s0.participant_id])
        buyer.submit(market, order(0.9, y))  # answered on the two streams left
        later = [r for r in booked_rounds(op, market) if r.id not in {x.id for x in rounds}]
        assert later and all(r.status == "cleared" for r in later)
        assert s0.participant_id not in {p.participant_id for r in later for p in op.list_receipts(r)}


def test_a_seller_sees_its_running_revenue_in_the_portal(live: LiveServer) -> None:
    """The seller's market page totals what the ledger booked for it in the market, every round
    together, and the total grows with each buyer (exact minor units, as ``data-amount-minor``)."""
    import re

    import httpx

    from tests.service.portal.test_views import csrf_of

    _, y = streams_and_labels()
    with Client(live.url, ADMIN) as op, httpx.Client(base_url=live.url) as browser:
        market, sellers = market_with_sellers(op)
        key = sellers["s0"]._api_key
        login = browser.get("/portal/login")
        assert browser.post(
            "/portal/login", data={"api_key": key, "csrf": csrf_of(login.text)}
        ).status_code in (
            200,
            303,
        )
        page = browser.get(f"/portal/markets/{market.id}", follow_redirects=True)
        assert 'id="my-totals-none"' in page.text
        (buyer,) = join(op, market, ["b"]).values()
        received, net = [], 0
        for value in (1.0, 1.0):  # bids at max_bid: never outbid by the price, a charge of cents
            buyer.submit(market, order(value, y))
            booked_rounds(op, market)
            page = browser.get(f"/portal/markets/{market.id}").text
            cells = dict(
                re.findall(
                    r'class="num (received|net)"><span class="money" data-amount-minor="(-?\d+)"', page
                )
            )
            assert set(cells) == {"received", "net"}, page
            received.append(int(cells["received"]))
            net = int(cells["net"])
        ledger = op.ledger_entries()["entries"]
        mine = sum(e["amount_minor"] for e in ledger if e["participant_id"] == sellers["s0"].participant_id)
        assert net == mine and received[0] <= received[-1]  # received adds the positive entries only


def test_a_bid_from_the_portal_form_is_answered_and_booked(live: LiveServer) -> None:
    """The portal's generated form takes the order (lists as comma-separated numbers); the bid is
    answered, shown on its submission page, and booked by a round that opens by itself."""
    import httpx

    from tests.service.portal.test_views import csrf_of

    _, y = streams_and_labels()
    with Client(live.url, ADMIN) as op, httpx.Client(base_url=live.url) as browser:
        market, _ = market_with_sellers(op)
        (buyer,) = join(op, market, ["b"]).values()
        login = browser.get("/portal/login")
        browser.post("/portal/login", data={"api_key": buyer._api_key, "csrf": csrf_of(login.text)})
        page = browser.get(f"/portal/markets/{market.id}", follow_redirects=True)
        form = {
            "csrf": csrf_of(page.text),
            "value": "0.9",
            "labels": ", ".join(repr(float(v)) for v in y),
            "test_rows": ", ".join(map(str, TEST_ROWS)),
        }
        sent = browser.post(f"/portal/markets/{market.id}/submit/bid", data=form)
        assert sent.status_code == 303, sent.text
        (bid,) = [x for x in op.list_submissions(market) if x.kind == "bid"]
        assert len(bid.payload["answer"]["predictions"]) == len(TEST_ROWS)
        shown = browser.get(f"/portal/submissions/{bid.id}").text
        assert "predictions" in shown and "_answer" not in shown and "noise_seed" not in shown
        booked_rounds(op, market)
        assert [x.consumed_round_id is not None for x in op.list_submissions(market) if x.kind == "bid"] == [
            True
        ]
