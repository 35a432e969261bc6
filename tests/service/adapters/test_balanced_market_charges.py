"""The balanced market's receipts explain each buyer's price (Chaintreau et al., eq. 6: reserve price
times accuracy, per group bought) and each seller's Shapley payment (eq. 7)."""

from __future__ import annotations

import math
from typing import Any

import httpx
import numpy as np
import pytest

from tests import service_support
from tests.service.adapters.charges_support import check_receipt_charges
from tests.service_support import LiveServer, csv_bytes, register, wait_round

db_url, live = service_support.db_url, service_support.live  # the shared fixtures

PRICES, REVENUE = "p_g (reserve prices)", "w(p) (revenue of the round: all buyers' prices)"
COSTS = [[0.1, 0.2], [0.3, 0.1], [0.2, 0.2]]
# (tie-break, sellers' unit costs, buyers' bids, how many buyers pay, whether sellers see the split)
VARIANTS = {
    # group 0's reserve price is 3.0 (only buyer_a buys it), group 1's 2.0 (only buyer_b); buyer_c
    # reaches neither and books nothing; the revenue of two buyers shared by three sellers is shown
    "three-sellers-split": ("lowest", COSTS, [[3.0, 0.5], [1.0, 2.0], [0.2, 0.1]], 2, True),
    # one buyer pays: the revenue would give its price away, so one term only
    "three-sellers-one-buyer": ("lowest", COSTS, [[3.0, 2.0], [0.2, 0.1]], 1, False),
    # two sellers: the revenue would give away the other seller's payment, so one term only
    "two-sellers-one-term": ("highest", COSTS[:2], [[1.0, 0.5], [2.0, 0.5]], 2, False),
    # one seller receives the whole revenue
    "one-seller": ("lowest", COSTS[:1], [[1.0, 0.5]], 1, False),
}


def _market(
    srv: LiveServer, admin: httpx.Client, tie: str, costs: list[list[float]], bids: list[list[float]]
) -> tuple[int, dict[str, int], dict[str, httpx.Client]]:
    """Sellers upload 16 labelled rows of groups 0 and 1 and their costs; buyers a test set and bids."""
    r = admin.post("/markets", json={"kind": "balanced_market", "params": {"groups": [0, 1], "tie": tie}})
    assert r.status_code == 201, r.text
    mid, rng = r.json()["id"], np.random.default_rng(7)
    ids, clients = {}, {}
    roles = [("seller", "dataset", "cost", {"costs": c}) for c in costs]
    roles += [("buyer", "task", "bid", {"values": b}) for b in bids]
    for k, (role, upload, kind, data) in enumerate(roles):
        name = f"{role}_{'abc'[k % 3]}_{mid}"
        ids[name], key = register(admin, name)
        c = clients[name] = srv.client(key)
        y, g = np.arange(16) % 2, (np.arange(16) // 2) % 2
        body = csv_bytes(rng.normal(0, 1, (16, 2)) + y[:, None] * 1.5, y, g)
        r = c.post(f"/markets/{mid}/datasets", params={"format": "csv", "kind": upload}, content=body)
        assert r.status_code == 201, r.text
        assert c.post(f"/markets/{mid}/submissions", json={"kind": kind, "data": data}).status_code == 201
    return mid, ids, clients


def _check_price(price: dict[str, Any], bid: list[float]) -> None:
    """One term per group: p_g G_i,g for a group bought (bid >= p_g), 0 otherwise."""
    inputs, terms = price["inputs"], [t["value"] for t in price["terms"]]
    p, acc = inputs[PRICES], inputs["G_i,g (accuracy of your model per group bought)"]
    assert inputs["μ_i,g (your bid per group)"] == bid
    bought = [g for g in (0, 1) if bid[g] >= p[g] > 0]
    assert inputs["groups you bought"] == bought and bought
    assert terms == [p[g] * acc[g] if g in bought else 0.0 for g in (0, 1)]
    assert [g for g in (0, 1) if acc[g] is not None] == bought  # no accuracy of a group not bought
    assert inputs["your test rows per group"] == [8, 8]


def _check_payment(
    pay: dict[str, Any], costs: list[float], n_sellers: int, n_buyers: int, split: bool
) -> None:
    """An equal split of the revenue plus the Shapley adjustment when the revenue is an aggregate
    (``split``), else one term; the seller's own samples and production cost as inputs."""
    inputs, terms = pay["inputs"], [t["value"] for t in pay["terms"]]
    samples = inputs["x_g^(j) (your samples per group)"]
    assert samples == [8, 8] and inputs["κ_g^(j) (your unit costs)"] == costs
    assert inputs["κ^(j)·x^(j) (your production cost)"] == pytest.approx(8 * costs[0] + 8 * costs[1])
    assert (inputs["M (sellers)"], inputs["N (buyers)"]) == (n_sellers, n_buyers)
    if split:
        assert terms[0] == pytest.approx(inputs[REVENUE] / n_sellers, rel=1e-12) and len(terms) == 2
    else:
        assert terms == [pay["amount"]] and REVENUE not in inputs


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_balanced_market_receipts_explain_price_and_payment(live, db_url, variant) -> None:  # type: ignore[no-untyped-def]
    tie, costs, bids, n_paying, split = VARIANTS[variant]
    with live.client() as admin:
        mid, ids, cl = _market(live, admin, tie, costs, bids)
        done = wait_round(admin, admin.post(f"/markets/{mid}/rounds", json={"seed": 1}).json()["id"])
        assert done["status"] == "cleared", done["error"]
        rid, paid, received = done["id"], [], []
        sellers = [n for n in cl if n.startswith("seller")]
        for k, (name, client) in enumerate(cl.items()):
            charges = check_receipt_charges(client, rid, ids[name], set(ids) - {name}, {"price", "payment"})
            rec = client.get(f"/rounds/{rid}/receipts/{ids[name]}").json()
            # exactly one charge per line booked: none for a buyer that bought nothing
            assert sorted(c["memo"] for c in charges) == sorted(e["memo"] for e in rec["entries"])
            if name in sellers:
                (pay,) = charges
                assert pay["memo"] == pay["rule"] == "payment"
                _check_payment(pay, costs[k], len(costs), len(bids), split)
                received.append(pay["amount"])
            elif charges:
                (price,) = charges
                assert price["memo"] == price["rule"] == "price"
                _check_price(price, bids[k - len(costs)])
                assert price["amount"] == rec["deliverable"]["price"]
                paid.append(price["amount"])
        assert len(received) == len(costs) and len(paid) == n_paying
        # a receipt and its explanation are its participant's only
        buyer = next(n for n in cl if n not in sellers)
        assert cl[sellers[0]].get(f"/rounds/{rid}/receipts/{ids[buyer]}").status_code == 404
        # the Shapley payments divide the buyers' prices (eq. 7 is efficient)
        assert math.fsum(received) == pytest.approx(math.fsum(paid), rel=1e-9)
        if split:
            revenue = admin.get(f"/rounds/{rid}/receipts/{ids[sellers[0]]}").json()["charges"][0]
            assert revenue["inputs"][REVENUE] == pytest.approx(math.fsum(paid), rel=1e-12)
