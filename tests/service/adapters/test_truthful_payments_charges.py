"""Truthful-payments receipts explain each seller's payment by the market's rule (Fan et al., (1), (8),
(9), (10)) and each buyer's price by the split (17), for every payment rule the family supports, and
give away no other participant's name or amount (tests/service/adapters/leak_support.py states what
is checked)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datamarket.core.types import Dataset, Outcome
from datamarket.ledger.money import outcome_postings
from datamarket.mechanisms.truthful_payments import myerson_integral
from datamarket.service.adapters import Input
from datamarket.service.adapters.truthful_payments import ADAPTER
from datamarket.service.clearing.worker import clear_with
from tests import service_support
from tests.service.adapters.charges_support import check_receipt_charges
from tests.service.adapters.leak_support import leaked_amounts
from tests.service_support import csv_bytes, register, wait_round

db_url, live = service_support.db_url, service_support.live  # the shared fixtures

REF = "datamarket.service.adapters.truthful_payments:ADAPTER"
TARGETS = {"tp_buyer_a": [1.0, 0.5], "tp_buyer_b": [0.2, 1.0]}
COSTS = {"tp_seller_a": 1.0, "tp_seller_b": 2.0, "tp_seller_c": 0.5}  # name order = position in the round
PAYMENT_TERMS = {"myerson": 2, "vcg": 2, "loo": 2, "shapley": len(COSTS)}
SPLIT_TERM = "your share of the sellers' payments, sum_j eta_ij P_j"
TOTAL = "total paid to the sellers, sum_j P_j"
SOCIAL_COSTS = {"SC* (social cost with you)", "SC*_-j (without you)"}


def _rows(k: int) -> np.ndarray:
    return np.random.default_rng(3 + k).normal([1.0, 0.5], 1.0 + k, (10 + 5 * k, 2))


def _open_round(live: Any, admin: Any, params: dict[str, Any]) -> tuple[int, dict[str, int], dict[str, Any]]:
    """A market of two buyers and three sellers through the API, and its cleared round."""
    mid = admin.post("/markets", json={"kind": "truthful_payments", "params": params}).json()["id"]
    ids, clients = {}, {}
    for name, target in TARGETS.items():
        ids[name], key = register(admin, name)
        clients[name] = live.client(key)
        r = clients[name].post(
            f"/markets/{mid}/submissions", json={"kind": "task", "data": {"target": target}}
        )
        assert r.status_code == 201, r.text
    for k, (name, cost) in enumerate(COSTS.items()):
        ids[name], key = register(admin, name)
        clients[name] = live.client(key)
        up = clients[name].post(
            f"/markets/{mid}/datasets", content=csv_bytes(_rows(k)), params={"format": "csv"}
        )
        assert up.status_code == 201, up.text
        r = clients[name].post(f"/markets/{mid}/submissions", json={"kind": "cost", "data": {"cost": cost}})
        assert r.status_code == 201, r.text
    done = wait_round(admin, admin.post(f"/markets/{mid}/rounds", json={"seed": 5}).json()["id"])
    assert done["status"] == "cleared", done["error"]
    return done["id"], ids, clients


@pytest.mark.parametrize(
    ("rule", "method"),
    [("myerson", "auto"), ("myerson", "quad"), ("vcg", "auto"), ("loo", "auto"), ("shapley", "auto")],
)
def test_receipts_explain_payments_and_split_prices(live, db_url, rule, method) -> None:  # type: ignore[no-untyped-def]
    with live.client() as admin:
        rid, ids, clients = _open_round(live, admin, {"rule": rule, "myerson_method": method})
        rows = admin.get(f"/rounds/{rid}").json()["outcome"]["participants"]
        paid: dict[str, float] = {}
        for name, client in clients.items():
            charges = check_receipt_charges(client, rid, ids[name], set(ids) - {name}, {rule, "split"})
            (c,) = charges
            assert not any(other in json.dumps(c) for other in set(ids) - {name}), c  # labels too
            assert leaked_amounts(charges, name, rows) == [], name
            deliverable = client.get(f"/rounds/{rid}/receipts/{ids[name]}").json()["deliverable"]
            assert not any(other in json.dumps(deliverable) for other in set(ids) - {name}), deliverable
            if name in COSTS:
                assert c["memo"] == "payment" and c["rule"] == rule and len(c["terms"]) == PAYMENT_TERMS[rule]
                cost, share = c["inputs"]["your reported cost c_j"], deliverable["share"]
                assert cost == COSTS[name] and c["inputs"]["f_j(W) (your share, sum_i w_ij^2)"] == share
                assert math.isclose(c["amount"], deliverable["payment"], rel_tol=1e-12)
                _check_payment_terms(rule, c, cost * share)
                paid[name] = c["amount"]
            else:
                # one term, the price; with two buyers the total paid to the sellers less my price
                # would be the other buyer's, so it is not given
                assert c["memo"] == "price" and c["rule"] == "split" and c["terms"][0]["label"] == SPLIT_TERM
                assert len(c["terms"]) == 1 and TOTAL not in c["inputs"]
                assert (c["inputs"]["|B| (buyers)"], c["inputs"]["|S| (sellers)"]) == (
                    len(TARGETS),
                    len(COSTS),
                )
                assert c["inputs"]["your target mu_i"] == TARGETS[name]
                weights = [deliverable["weights"][f"seller {j} of {len(COSTS)}"] for j in (1, 2, 3)]
                assert weights == c["inputs"]["W_i (your weights, seller 1 to |S| in the round's order)"]
                paid[name] = -c["amount"]
        # the split (17) passes the sellers' payments on whole: the buyers pay exactly what they receive
        assert math.isclose(sum(paid.values()), 0.0, abs_tol=1e-9 * max(map(abs, paid.values())))


def _check_payment_terms(rule: str, charge: dict[str, Any], cost_share: float) -> None:
    values = [t["value"] for t in charge["terms"]]
    if rule in ("myerson", "vcg"):
        # c_j f_j first, then the integral (9) / the externality (10): both >= 0, so the seller is IR
        assert math.isclose(values[0], cost_share, rel_tol=1e-12) and values[1] > 0
    elif rule == "loo":
        assert values[0] > 0 and values[1] < 0  # V(S), then minus V(S without j)
    else:
        assert charge["inputs"]["Shapley computed"] == "exact"


def _inputs(costs: list[float], rows: list[np.ndarray], targets: list[list[float]]) -> list[Input]:
    out = [Input(f"buyer{i}", "task", {"target": t}) for i, t in enumerate(targets)]
    for j, (c, x) in enumerate(zip(costs, rows, strict=True)):
        out += [Input(f"seller{j}", "dataset", {}, Dataset(x)), Input(f"seller{j}", "cost", {"cost": c})]
    return out


@st.composite
def _markets(draw: st.DrawFn) -> list[Input]:
    d = draw(st.integers(1, 3))
    ns, nb = draw(st.integers(1, 4)), draw(st.integers(1, 2))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    rows = [
        rng.normal(rng.normal(0, 1, d), rng.uniform(0.3, 3.0), (int(rng.integers(2, 12)), d))
        for _ in range(ns)
    ]
    costs = draw(st.lists(st.floats(0.0, 10.0), min_size=ns, max_size=ns))
    targets = rng.normal(0, 2, (nb, d)).tolist()
    return _inputs(costs, rows, targets)


RULES = st.sampled_from(["vcg", "loo", "shapley"]).map(lambda r: (r, "auto")) | st.tuples(
    st.just("myerson"), st.sampled_from(["auto", "closed_form", "envelope"])
)


@settings(max_examples=40, deadline=None)
@given(inputs=_markets(), rule_method=RULES)
def test_every_booked_line_has_one_reconciled_charge(
    inputs: list[Input], rule_method: tuple[str, str]
) -> None:
    """Through the worker's clearing: each line the round books (price or payment) has exactly one
    charge, whose amount is the outcome's and whose terms add up to it."""
    rule, method = rule_method
    result = clear_with(REF, {"rule": rule, "myerson_method": method}, inputs, seed=0)
    outcome = Outcome.from_dict(result["outcome"])
    lines = sorted((p.account, p.memo) for p in outcome_postings(outcome) if p.memo != "platform take")
    explained = sorted((name, c["memo"]) for name, cs in result["charges"].items() for c in cs)
    assert set(lines) <= set(explained) and len(explained) == len(set(explained))
    rows = result["outcome"]["participants"]
    for name, charges in result["charges"].items():
        assert all(c["reconciled"] for c in charges), charges
        assert leaked_amounts(charges, name, rows, combined=False) == [], (name, charges)


def test_a_seller_reporting_anothers_cost_amount_does_not_leak_it() -> None:
    """A seller whose reported cost equals another seller's cost amount c_j f_j sees its own report in
    its explanation: that is its own submission, not the other's amount given away (hypothesis found
    it with two sellers reporting the smallest subnormal, where c_j f_j rounds back to the report).
    The report is found as the fixed point of c_1 = c_0 f_0(c_0, c_1), a contraction here."""
    rng = np.random.default_rng(0)
    rows = [rng.normal(0.0, 1.0, (6, 2)), rng.normal(0.5, 1.0, (8, 2))]
    c1, previous = 0.5, math.inf
    for _ in range(50):
        result = clear_with(
            REF, {"rule": "vcg", "myerson_method": "auto"}, _inputs([1.0, c1], rows, [[3, -2]]), seed=0
        )
        outcome = result["outcome"]["participants"]
        previous, c1 = c1, next(float(r["costs"]) for r in outcome if r["name"] == "seller0")
        if abs(c1 - previous) <= 1e-13 * c1:
            break
    assert abs(c1 - previous) <= 1e-9 * c1  # within the leak check's tolerance of the other's amount
    assert leaked_amounts(result["charges"]["seller1"], "seller1", outcome, combined=False) == []


def test_myerson_terms_agree_with_quadrature_and_vcg() -> None:
    """The closed-form integral term of (9) equals QUADPACK's integral of the share curve (1e-8, the
    tolerance the quadrature tests use) and the VCG externality term (Theorem 4.2, 1e-9 relative)."""
    inputs = _inputs(list(COSTS.values()), [_rows(k) for k in range(len(COSTS))], list(TARGETS.values()))
    ms = ADAPTER.clear({"rule": "myerson", "myerson_method": "auto"}, inputs, 0)
    vcg = ADAPTER.clear({"rule": "vcg", "myerson_method": "auto"}, inputs, 0)
    market, _, _, costs = ADAPTER._market(inputs)
    for j in range(len(COSTS)):
        name = f"seller{j}"
        (m,), (v,) = ms.charges[name], vcg.charges[name]
        integral = m.terms[1][1]
        assert abs(integral - myerson_integral(market, costs, j, method="quad")) < 1e-8
        assert math.isclose(integral, v.terms[1][1], rel_tol=1e-9)
        assert m.terms[0] == v.terms[0]  # c_j f_j(W), the same in both rules


SHAPES = [(1, 1), (1, 3), (2, 1), (2, 3), (3, 1), (3, 2)]  # (buyers, sellers)


@pytest.mark.parametrize(("n_buyers", "n_sellers"), SHAPES)
@pytest.mark.parametrize("rule", ["myerson", "vcg", "loo", "shapley"])
def test_no_explanation_gives_another_participants_amount(rule: str, n_buyers: int, n_sellers: int) -> None:
    """With one or more buyers and sellers, under every rule: no name of another participant in a
    charge or a deliverable (sellers are "seller j of n"), and no amount of one other participant in
    a charge (:func:`leaked_amounts`: values, per-counterpart subtotals, their products and quotients).
    The aggregates that would give one away are left out: a buyer's price is one term, with the total
    paid to the sellers only when it is its own price (one buyer) or adds up two or more other buyers'
    prices; VCG's social costs only when they include two or more other participants; leave-one-out's
    V(S) and V(S \\ {j}) only with two or more buyers (with one, V(S) is its value)."""
    rng = np.random.default_rng(7 * n_buyers + n_sellers)
    rows = [rng.normal(rng.normal(0, 1, 2), 1.0 + k, (6 + 3 * k, 2)) for k in range(n_sellers)]
    costs = rng.uniform(0.5, 3.0, n_sellers).tolist()
    inputs = _inputs(costs, rows, rng.normal(0, 2, (n_buyers, 2)).tolist())
    result = clear_with(REF, {"rule": rule}, inputs, seed=0)
    outcome = result["outcome"]["participants"]
    names = {r["name"] for r in outcome}
    assert set(result["charges"]) == names  # every line booked here is non-zero
    for name, charges in result["charges"].items():
        others = names - {name}
        mine = json.dumps([charges, result["deliverables"][name]])
        assert not [o for o in others if o in mine], (name, mine)
        assert leaked_amounts(charges, name, outcome) == [], (name, charges)
        (c,) = charges
        if name.startswith("buyer"):
            assert [t["label"] for t in c["terms"]] == [SPLIT_TERM]
            assert (c["inputs"]["|B| (buyers)"], c["inputs"]["|S| (sellers)"]) == (n_buyers, n_sellers)
            assert (TOTAL in c["inputs"]) == (n_buyers == 1 or (n_buyers >= 3 and n_sellers >= 2))
            weights = result["deliverables"][name]["weights"]
            assert list(weights) == [f"seller {j} of {n_sellers}" for j in range(1, n_sellers + 1)]
        elif rule == "vcg":
            assert (SOCIAL_COSTS <= set(c["inputs"])) == (n_buyers + n_sellers - 1 >= 2)
        elif rule == "loo":
            assert len(c["terms"]) == (2 if n_buyers >= 2 else 1)
