"""The portal's figures: a cleared round for the operator (allocation, amounts, certificate, audits),
for one participant (its own values against the means of its role, nothing of anyone else), and the
operator's activity over time; the pure parts on synthetic data, the routes on both databases."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from datamarket.core.display import Formatter
from datamarket.experiments import label_problems
from datamarket.service.portal import figures
from tests.service.portal.test_headers import has_security_headers
from tests.service.portal.test_views import sign_in
from tests.service_support import ADMIN, csv_bytes, db_url, make_app, wait_round  # noqa: F401  (fixture)

FMT = Formatter()
BIDS = [
    {"valuation": "gaussian", "width": 0.5},
    {"valuation": "threshold", "width": 0.4, "scale": 0.9},
    {"valuation": "exponential", "width": 0.3, "scale": 0.8},
]
COSTS = [0.05, 0.06, 0.09]


def _outcome(rows: list[tuple[str, str, float, float, float]], mechanism: str = "toy") -> dict[str, Any]:
    """An outcome (``datamarket.outcome/1``) of ``(name, role, allocated, price, payment)`` rows."""
    return {
        "schema": "datamarket.outcome/1",
        "mechanism": mechanism,
        "participants": [
            {"name": n, "role": r, "allocated": a, "prices": p, "payments": q, "values": 0.0, "costs": 0.0}
            for n, r, a, p, q in rows
        ],
        "platform_take": 0.0,
        "extra": {},
    }


def _receipt(name: str, net_minor: int) -> dict[str, Any]:
    return {"participant": name, "net_minor": net_minor, "currency": "USD", "entries": []}


def test_a_standing_holds_only_the_participants_own_values_and_the_means_of_its_role() -> None:
    buyers = [("b1", "buyer", 3.0, 1.0, 0.0), ("b2", "buyer", 6.0, 2.0, 0.0), ("b3", "buyer", 0.0, 0.0, 0.0)]
    outcome = _outcome([*buyers, ("s1", "seller", 4.0, 0.0, 2.0), ("s2", "seller", 5.0, 0.0, 1.0)])
    receipts = [_receipt("b1", -100), _receipt("b2", -200), _receipt("b3", 0)]
    receipts += [_receipt("s1", 200), _receipt("s2", 100)]
    b1 = figures.standing(outcome, receipts, receipts[0])
    assert (b1.role, b1.allocated, b1.net_minor, b1.group) == ("buyer", 3.0, -100, 3)
    assert b1.mean_allocated == 3.0 and b1.mean_net_minor == -100.0
    s1 = figures.standing(outcome, receipts, receipts[3])  # two sellers: a mean would give the other's
    assert (s1.role, s1.group, s1.mean_allocated, s1.mean_net_minor) == ("seller", 2, None, None)
    market = {"id": 1, "name": "m", "kind": "broker", "currency": "USD", "scale": 100}
    assert label_problems(figures.participant_figure(market, 7, b1, FMT)) == []
    rnd = {"id": 7, "outcome": outcome, "certificate_passed": True, "certificate": {"checks": {}}}
    assert label_problems(figures.operator_figure(market, rnd, receipts, FMT)) == []
    svg = figures.draw_participant(market, 7, s1, FMT)
    assert "fewer than 3 sellers: no mean is shown" in svg and "mean of" not in svg
    assert "2.00 USD" in svg and "1.00 USD" not in svg  # its own net; not the other seller's


def test_activity_counts_rounds_by_status_and_credits_per_currency_per_day() -> None:
    rounds = [
        {"created_at": "2026-03-02T23:59:59+00:00", "status": "cleared"},
        {"created_at": "2026-03-03T00:30:00+01:00", "status": "failed"},  # 2026-03-02 23:30 UTC
        {"created_at": "2026-03-03T08:00:00", "status": "pending"},
        {"created_at": "2026-01-01T08:00:00", "status": "cleared"},  # before the window
    ]
    entries = [
        {"created_at": "2026-03-02T10:00:00+00:00", "amount_minor": a, "currency": c}
        for a, c in ((-250, "USD"), (150, "USD"), (100, "USD"), (-7, "EUR"), (7, "EUR"))
    ] + [{"created_at": "2026-01-01T10:00:00+00:00", "amount_minor": 999, "currency": "USD"}]
    rows = figures.activity(rounds, entries, days=3, today=date(2026, 3, 3))
    assert [r["day"] for r in rows] == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert (rows[1]["cleared"], rows[1]["failed"], rows[2]["pending"]) == (1, 1, 1)
    assert rows[1]["volume"] == {"USD": 250, "EUR": 7} and rows[0]["volume"] == rows[2]["volume"] == {}
    assert [r["day"] for r in figures.busy_days(rows)] == ["2026-03-02", "2026-03-03"]
    fig = figures.activity_figure(rows, FMT)
    assert label_problems(fig) == []
    svg = figures.svg(fig)
    assert "booked in USD" in svg and "booked in EUR" in svg and "failed" in svg
    empty = figures.draw_activity(figures.activity([], [], days=3, today=date(2026, 3, 3)), FMT)
    assert "no round opened in these days" in empty and "no money booked in these days" in empty


def test_the_audit_line_judges_each_audit_against_the_declared_guarantees() -> None:
    from datamarket.core.audits import Property, Scope
    from datamarket.mechanisms import registered_mechanisms

    # buyer b pays 2 for an allocation it values at 0: individual rationality fails by 2
    bad = _outcome([("b", "buyer", 1.0, 2.0, 0.0), ("s", "seller", 1.0, 0.0, 2.0)])
    assert "ir buyer fails by 2 (no claim)" in figures.audit_line(bad, FMT)
    guaranteed = next(
        m
        for m in registered_mechanisms()
        if Property.IR_BUYER in m.guarantees and m.scopes.get(Property.IR_BUYER, Scope.EX_POST) == "ex_post"
    )
    bad["mechanism"] = guaranteed.name
    assert "ir buyer FAILS by 2 although guaranteed" in figures.audit_line(bad, FMT)
    assert figures.audit_line(None, FMT) == "audits: no outcome"
    assert figures.audit_line({"schema": "other"}, FMT) == "audits: the outcome cannot be read"
    failed = {
        "certificate_passed": False,
        "certificate": {"checks": {"x": {"passed": False}, "y": {"passed": True}}},
    }
    assert figures.certificate_line(failed) == "certificate: FAILED (x)"


# -- the routes, on both databases ----------------------------------------------------------------------


@pytest.fixture
def app(db_url: str) -> Iterator[Any]:  # noqa: F811
    app = make_app(db_url)
    with TestClient(app, base_url="http://127.0.0.1", headers={"X-API-Key": ADMIN}) as admin:
        app.state.admin = admin
        yield app


def _broker_round(admin: TestClient, tag: str, n: int) -> tuple[int, dict[str, str]]:
    """A cleared broker round with ``n`` buyers and ``n`` contributors named ``{tag}_buyer_k`` and
    ``{tag}_seller_k``; returns its id and the participants' keys."""
    mid = admin.post("/markets", json={"kind": "broker", "name": f"{tag} market", "params": {"sigma": 1.0}})
    mid = mid.json()["id"]
    inputs = {f"{tag}_buyer_{k}": ("bid", BIDS[k]) for k in range(n)}
    inputs |= {f"{tag}_seller_{k}": ("cost", {"cost": COSTS[k]}) for k in range(n)}
    keys = {}
    for name, (kind, data) in inputs.items():
        keys[name] = admin.post("/participants", json={"name": name}).json()["api_key"]
        r = admin.post(
            f"/markets/{mid}/submissions",
            json={"kind": kind, "data": data},
            headers={"X-API-Key": keys[name]},
        )
        assert r.status_code == 201, r.text
    n_star = admin.get(f"/markets/{mid}/plan").json()["n_star"]
    rng = np.random.default_rng(0)
    for name in (x for x in inputs if "seller" in x and n_star[x]):
        body = csv_bytes(rng.normal(2.0, 1.0, (n_star[name], 1)))
        r = admin.post(
            f"/markets/{mid}/datasets",
            params={"format": "csv"},
            content=body,
            headers={"X-API-Key": keys[name]},
        )
        assert r.status_code == 201, r.text
    r = admin.post(f"/markets/{mid}/rounds")
    assert r.status_code == 202, r.text
    assert wait_round(admin, r.json()["id"])["status"] == "cleared"  # type: ignore[arg-type]
    return int(r.json()["id"]), keys


def _means(receipts: dict[str, Any], outcome: dict[str, Any], me: str) -> set[str]:
    """The mean net amount of ``me``'s role, as its figure writes it."""
    role = next(p["role"] for p in outcome["participants"] if p["name"] == me)
    peers = [p["name"] for p in outcome["participants"] if p["role"] == role]
    mean = sum(receipts[n]["net_minor"] for n in peers if n in receipts) / len(peers)
    return {FMT.money(int(mean), "USD", 100) if mean.is_integer() else FMT.major(mean / 100, "USD", 100)}


def test_participant_figures_show_their_own_values_and_aggregates_only(app: Any) -> None:
    """A participant's figure names nobody else and writes no amount but its own net and the mean
    net of its role (the two amounts it shows, exactly); the figure of a round it took no part in
    is a 404, the operator's activity a 403; with two of a role, no mean is shown."""
    admin = app.state.admin
    rid, keys = _broker_round(admin, "r1", 3)
    rid2, keys2 = _broker_round(admin, "r2", 2)
    receipts = {r["participant"]: r for r in admin.get(f"/rounds/{rid}/receipts").json()}
    outcome = admin.get(f"/rounds/{rid}").json()["outcome"]
    for me in ("r1_buyer_0", "r1_seller_1"):
        c, _ = sign_in(app, keys[me])
        svg = c.get(f"/portal/rounds/{rid}/figure.svg")
        assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml"), svg.text
        assert has_security_headers(svg)
        own = FMT.money(receipts[me]["net_minor"], "USD", 100)
        assert set(re.findall(r"-?[\d,]+(?:\.\d+)? USD", svg.text)) == {own} | _means(receipts, outcome, me)
        assert f"mean of the 3 {'buyers' if 'buyer' in me else 'sellers'}" in svg.text
        assert not [n for n in keys | keys2 if n != me and n in svg.text]
        assert c.get(f"/portal/rounds/{rid2}/figure.svg").status_code == 404  # not its round
        assert 'id="round-figure"' in c.get(f"/portal/rounds/{rid}").text
    c2, _ = sign_in(app, keys2["r2_buyer_0"])
    small = c2.get(f"/portal/rounds/{rid2}/figure.svg")
    assert small.status_code == 200 and "fewer than 3 buyers: no mean is shown" in small.text
    assert "mean of" not in small.text and "r2_buyer_1" not in small.text
    assert c2.get(f"/portal/rounds/{rid}/figure.svg").status_code == 404
    assert c2.get("/portal/activity.svg").status_code == 403


def test_operator_figure_and_activity(app: Any) -> None:
    """The operator's figure names every participant with the certificate's verdict and the audits;
    its home page shows the day's rounds and money booked, in a figure and a table."""
    admin = app.state.admin
    op, _ = sign_in(app, ADMIN)
    home = op.get("/portal/")
    assert 'id="no-activity"' in home.text and 'id="activity"' not in home.text
    assert "no round opened in these days" in op.get("/portal/activity.svg").text
    rid, keys = _broker_round(admin, "r1", 3)
    svg = op.get(f"/portal/rounds/{rid}/figure.svg")
    assert svg.status_code == 200 and has_security_headers(svg)
    assert all(name in svg.text for name in keys)
    assert "certificate: every check passed" in svg.text and "audits: ir buyer " in svg.text
    assert "allocated (outcome)" in svg.text and "amount (USD)" in svg.text
    home = op.get("/portal/").text
    table = home[home.index('id="activity"') :]
    credits = sum(
        e["amount_minor"] for e in admin.get("/ledger/entries").json()["entries"] if e["amount_minor"] > 0
    )
    row = re.search(r"<tr><td>(\d{4}-\d\d-\d\d)</td><td class=\"num\">(\d+)</td>", table)
    assert row and row.group(2) == "1", table[:2000]
    assert f'data-amount-minor="{credits}">{FMT.money(credits, "USD", 100)}</span>' in table
    act = op.get("/portal/activity.svg")
    assert act.status_code == 200 and has_security_headers(act)
    assert "booked in USD" in act.text and "cleared" in act.text and row.group(1)[5:] in act.text
