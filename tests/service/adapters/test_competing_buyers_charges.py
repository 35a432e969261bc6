"""Competing-buyers receipts explain each source's payment and each buyer's price as the expected
payments of the equilibrium's contracts (Westenbroek et al., (8), the text before (9), (17), Lemma 1),
and give away no other participant's name or amount beyond the participant's own contracts
(tests/service/adapters/leak_support.py states what is checked)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from datamarket.core.errors import InvalidMarketError
from datamarket.core.types import Outcome
from datamarket.ledger.money import outcome_postings
from datamarket.service.adapters import Input
from datamarket.service.clearing.worker import clear_with
from tests import service_support
from tests.service.adapters.charges_support import check_receipt_charges
from tests.service.adapters.leak_support import leaked_amounts, subtotals
from tests.service_support import register, wait_round

db_url, live = service_support.db_url, service_support.live  # the shared fixtures

REF = "datamarket.service.adapters.competing_buyers:ADAPTER"
E_STAR = "e_i* = ln(2 alpha_i D_i)/(2 alpha_i) (your effort at the equilibrium, (17))"
D_SRC = "d_i^k (penalty weight of each buyer's contract)"
# Section IV (sources at 0 and 1, two OLS buyers on U[-1, 1], no competition), and four sources with
# a degree-0 and a degree-1 buyer competing at delta = 0.25 (the matrix form of the parameter)
SECTION_IV = (
    0.0,
    {"cb_src_a": {"location": 0.0, "effort_alpha": 1.0}, "cb_src_b": {"location": 1.0}},
    {"cb_buyer_a": {"degree": 1}, "cb_buyer_b": {"degree": 1, "low": -1.0, "high": 1.0, "eta": 1.0}},
)
FOUR_SOURCES = (
    [[0.0, 0.25], [0.25, 0.0]],
    {
        f"cb_src_{n}": {"location": x, "effort_alpha": a}
        for n, x, a in zip("abcd", [-1.0, -0.4, 0.3, 1.0], [1, 1.5, 2, 2.5], strict=True)
    },
    {
        "cb_buyer_a": {"degree": 1, "low": -1.0, "high": 1.0, "eta": 0.1},
        "cb_buyer_b": {"degree": 0, "low": -0.5, "high": 1.0, "eta": 0.1},
    },
)


def _cleared(
    live: Any, admin: Any, market: tuple[Any, dict[str, Any], dict[str, Any]]
) -> tuple[int, dict[str, int], dict[str, Any]]:
    competition, sources, buyers = market
    mid = admin.post(
        "/markets", json={"kind": "competing_buyers", "params": {"competition": competition}}
    ).json()["id"]
    ids, clients = {}, {}
    for kind, group in (("source", sources), ("estimator", buyers)):
        for name, data in group.items():
            ids[name], key = register(admin, name)
            clients[name] = live.client(key)
            r = clients[name].post(f"/markets/{mid}/submissions", json={"kind": kind, "data": data})
            assert r.status_code == 201, r.text
    done = wait_round(admin, admin.post(f"/markets/{mid}/rounds", json={"seed": 1}).json()["id"])
    assert done["status"] == "cleared", done["error"]
    return done["id"], ids, clients


@pytest.mark.parametrize("market", [SECTION_IV, FOUR_SOURCES], ids=["section_iv", "four_sources"])
def test_receipts_explain_expected_contract_payments(live, db_url, market) -> None:  # type: ignore[no-untyped-def]
    _, sources, buyers = market
    with live.client() as admin:
        rid, ids, clients = _cleared(live, admin, market)
        rows = admin.get(f"/rounds/{rid}").json()["outcome"]["participants"]
        pairs: dict[tuple[str, str], list[float]] = {}  # (source, buyer) -> [c_i^k, -d_i^k S_i^k]
        for name, client in clients.items():
            charges = check_receipt_charges(client, rid, ids[name], set(ids) - {name}, {"payment", "price"})
            (c,) = charges
            deliverable = client.get(f"/rounds/{rid}/receipts/{ids[name]}").json()["deliverable"]
            _check_private(name, set(ids) - {name}, charges, deliverable, rows)
            values = [t["value"] for t in c["terms"]]
            if name in sources:
                assert c["memo"] == "payment" and len(values) == 2 * len(buyers)
                _check_source(c, sources[name])
                for k, b in enumerate(buyers):
                    pairs[name, b] = values[2 * k : 2 * k + 2]
            else:
                assert c["memo"] == "price" and len(values) == 2 * len(sources)
                assert c["inputs"]["your estimator"]["degree"] == buyers[name]["degree"]
                for i, s in enumerate(sources):
                    # a contract seen from both sides: the source's receipt states the same terms
                    assert pairs[s, name] == values[2 * i : 2 * i + 2]
        if market is SECTION_IV:  # d_1 = (g1 + xi21 g2)/(1 - xi12 xi21) = 20/9 (Section IV)
            me = clients["cb_src_a"].get(f"/rounds/{rid}/receipts/{ids['cb_src_a']}").json()["charges"][0]
            assert all(math.isclose(d, 20 / 9, rel_tol=1e-12) for d in me["inputs"][D_SRC])


def _check_private(
    me: str,
    others: set[str],
    charges: list[dict[str, Any]],
    deliverable: dict[str, Any],
    rows: list[Any],
    combined: bool = True,
) -> None:
    """No other participant's name in ``me``'s charges or deliverable (counterparts are "buyer k of
    m", "source i of n") and no other participant's amount in its charges (:func:`leaked_amounts`),
    its own contracts' expected payments counted as its own. For a buyer, so is each source's payment
    e_i*: the canonical equal split (theta_i^k = 1/|B|, Theorem 1) makes its own contract with the
    source pay e_i*/|B|, whatever the receipt shows (checked here); the split itself stays off the
    buyer's receipt."""
    mine = json.dumps([charges, deliverable])
    assert not [o for o in others if o in mine], (me, mine)
    (c,) = charges
    own = subtotals(c["terms"])  # one subtotal per contract: c - d S
    if c["memo"] == "price":
        assert not any("theta" in k for k in c["inputs"]), c["inputs"]
        n_buyers = sum(r["role"] == "buyer" for r in rows)
        efforts = [r["payments"] for r in rows if r["role"] != "buyer"]  # sources in the round's order
        contracts = [
            deliverable["expected_payments"][f"source {i} of {len(efforts)}"]
            for i in range(1, len(efforts) + 1)
        ]
        assert all(
            math.isclose(n_buyers * x, e, rel_tol=1e-9) for x, e in zip(contracts, efforts, strict=True)
        )
        own += [n_buyers * x for x in contracts]
    assert leaked_amounts(charges, me, rows, own, combined) == [], (me, charges)


def _check_source(charge: dict[str, Any], submitted: dict[str, Any]) -> None:
    """Lemma 1: the expected payments reimburse exactly the effort (17) that is the source's best
    response, ln(2 alpha_i D_i)/(2 alpha_i), computed here from the receipt's own inputs."""
    used = charge["inputs"]
    alpha = used["your effort sensitivity alpha_i"]
    assert used["your location x_i"] == submitted["location"]
    assert alpha == submitted.get("effort_alpha", 1.0)
    effort = math.log(2 * alpha * used["D_i = sum_k d_i^k"]) / (2 * alpha)
    assert math.isclose(charge["amount"], effort, rel_tol=1e-12) and charge["amount"] == used[E_STAR]
    assert math.isclose(sum(used[D_SRC]), used["D_i = sum_k d_i^k"], rel_tol=1e-12)


@st.composite
def _markets(draw: st.DrawFn) -> tuple[float, list[Input]]:
    """2-4 sources at distinct grid locations in [-1, 1], 1-3 buyers of degree 0 or 1 valuing accuracy
    (eta in [0.02, 0.5]) and a common competition level in [0, 0.3]."""
    n = draw(st.integers(2, 4))
    xs = draw(st.lists(st.integers(-5, 5), min_size=n, max_size=n, unique=True))
    out = [
        Input(f"source{i}", "source", {"location": x / 5, "effort_alpha": draw(st.floats(0.5, 5.0))})
        for i, x in enumerate(sorted(xs))
    ]
    for k in range(draw(st.integers(1, 3))):
        low = draw(st.floats(-1.0, 0.5))
        est = {
            "degree": draw(st.integers(0, min(1, n - 1))),
            "low": low,
            "high": low + draw(st.floats(0.2, 1.5)),
        }
        out.append(Input(f"buyer{k}", "estimator", {**est, "eta": draw(st.floats(0.02, 0.5))}))
    return draw(st.floats(0.0, 0.3)), out


@settings(max_examples=40, deadline=None)
@given(market=_markets())
def test_every_booked_line_has_one_reconciled_charge(market: tuple[float, list[Input]]) -> None:
    """Through the worker's clearing, in every market with an equilibrium: each booked line has
    exactly one charge, whose amount is the outcome's and whose terms add up to it."""
    competition, inputs = market
    try:
        result = clear_with(REF, {"competition": competition}, inputs, seed=0)
    except InvalidMarketError:  # no GNE: the round fails and books nothing
        assume(False)
        raise
    outcome = Outcome.from_dict(result["outcome"])
    lines = sorted((p.account, p.memo) for p in outcome_postings(outcome) if p.memo != "platform take")
    explained = sorted((name, c["memo"]) for name, cs in result["charges"].items() for c in cs)
    assert set(lines) <= set(explained) and len(explained) == len(set(explained))
    rows = result["outcome"]["participants"]
    for name, charges in result["charges"].items():
        assert all(c["reconciled"] for c in charges), charges
        others = {r["name"] for r in rows} - {name}
        _check_private(name, others, charges, result["deliverables"][name], rows, combined=False)


# (sources, buyers) with generic locations, effort sensitivities and estimators, each with an
# equilibrium (more buyers on these sources: the spectral radius of Theorem 1 passes 1, no GNE)
SHAPES = [(2, 1), (3, 1), (2, 2), (4, 2)]
ESTIMATORS = [
    {"degree": 1, "low": -1.0, "high": 1.0, "eta": 0.1},
    {"degree": 0, "low": -0.5, "high": 1.0, "eta": 0.12},
]


@pytest.mark.parametrize(("n_sources", "n_buyers"), SHAPES)
def test_no_explanation_gives_another_participants_amount(n_sources: int, n_buyers: int) -> None:
    """With one or two buyers: no other participant's name in a charge or a deliverable (contracts
    keyed "buyer k of m", expected payments "source i of n"), and no other participant's amount in a
    charge, its values, per-contract subtotals, their products and quotients (:func:`_check_private`:
    own contracts, and a buyer's sources' payments |B| E[p_i^k], count as the participant's own)."""
    locations = [-0.9, 0.35, -0.2, 0.8][:n_sources]
    inputs = [
        Input(f"source{i}", "source", {"location": x, "effort_alpha": 1.0 + 0.6 * i + 0.13 * i * i})
        for i, x in enumerate(locations)
    ]
    inputs += [Input(f"buyer{k}", "estimator", ESTIMATORS[k]) for k in range(n_buyers)]
    result = clear_with(REF, {"competition": 0.1}, inputs, seed=0)
    rows = result["outcome"]["participants"]
    names = {r["name"] for r in rows}
    assert set(result["charges"]) == names
    for name, charges in result["charges"].items():
        deliverable = result["deliverables"][name]
        _check_private(name, names - {name}, charges, deliverable, rows)
        if name.startswith("source"):
            assert list(deliverable["contracts"]) == [
                f"buyer {k} of {n_buyers}" for k in range(1, n_buyers + 1)
            ]
        else:
            keys = [f"source {i} of {n_sources}" for i in range(1, n_sources + 1)]
            assert list(deliverable["expected_payments"]) == keys
