"""The collaborative market's receipts explain each party's fee A_i and the amount t_i returned to it
(Ohrimenko et al., Sec. 3 steps 3 and 5, Sec. 4.1-4.2), for every payment variant of the adapter."""

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

MODEL = {"kind": "logreg", "max_iter": 50}
# (market parameters, each party's fee scale, whether every party gives its own task)
VARIANTS = {
    # single task, exact Shapley, zero-element guard; a party with fee scale 0 pays no fee at all
    "v-exact-guard": ({"characteristic": "v", "c": 2.0, "model": MODEL}, (1.0, 0.5, 0.0), False),
    # plain accuracy, Monte Carlo Shapley, the paper's raw rule (no guard)
    "u-montecarlo-raw": (
        {"characteristic": "u", "c": 1.5, "shapley": "monte_carlo", "n_permutations": 10, "guard": False}
        | {"model": MODEL},
        (1.0, 1.0, 2.0),
        False,
    ),
    # many tasks, data selection (tau) and customised delivered models (Sec. 5)
    "w-selection-customised": (
        {"characteristic": "w", "tau": 0.3, "customise": "paper", "lam": 0.1, "model": MODEL},
        (1.0, 1.0, 1.0),
        True,
    ),
}


def _noisy(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Two overlapping Gaussian classes: no model is perfect, so fees and improvements are not zero."""
    y = np.arange(n) % 2
    return rng.normal(0.0, 1.0, (n, 2)) + y[:, None] * 1.2, y


def _market(
    srv: LiveServer, admin: httpx.Client, params: dict[str, Any], scales: tuple[float, ...], own_tasks: bool
) -> tuple[int, dict[str, int], dict[str, httpx.Client]]:
    """Three parties uploading training data (and a task: the first only, or each its own), with
    their fee scales."""
    r = admin.post("/markets", json={"kind": "collaborative", "params": params})
    assert r.status_code == 201, r.text
    mid, rng = r.json()["id"], np.random.default_rng(5)
    ids, clients = {}, {}
    for k, scale in enumerate(scales):
        name = f"party{k}_{mid}"
        ids[name], key = register(admin, name)
        c = clients[name] = srv.client(key)
        uploads = [("dataset", _noisy(rng, 8 + 6 * k))]
        uploads += [("task", _noisy(rng, 40))] if own_tasks or k == 0 else []
        for kind, (x, y) in uploads:
            r = c.post(
                f"/markets/{mid}/datasets", params={"format": "csv", "kind": kind}, content=csv_bytes(x, y)
            )
            assert r.status_code == 201, r.text
        if scale != 1.0:
            sub = {"kind": "fee_scale", "data": {"fee_scale": scale}}
            assert c.post(f"/markets/{mid}/submissions", json=sub).status_code == 201
    return mid, ids, clients


def _check_fee(fee: dict[str, Any], c: float, scale: float) -> None:
    """A_i = c_i - c_i g_i with c_i = c s_i and g_i the party's own accuracy."""
    inputs, terms = fee["inputs"], [t["value"] for t in fee["terms"]]
    c_i, g_i = inputs["c_i = c s_i"], inputs["g_i (accuracy of a model on your data alone)"]
    assert inputs["c (fee constant)"] == c and inputs["s_i (your fee scale)"] == scale
    assert math.isclose(c_i, c * scale) and 0.0 <= g_i <= 1.0
    assert terms == pytest.approx([c_i, -c_i * g_i], rel=1e-12)
    assert math.isclose(fee["amount"], c_i * (1 - g_i), rel_tol=1e-9)


def _check_payment(pay: dict[str, Any], params: dict[str, Any], model: dict[str, Any]) -> tuple[float, float]:
    """t_i = A_i - a_i + b_i with a_i = c_i (G_i - g_i) and b_i = a psi_i; returns (a_i, b_i)."""
    inputs = pay["inputs"]
    fee, minus_gain, reward = (t["value"] for t in pay["terms"])
    c_i, g_i = inputs["c_i = c s_i"], inputs["g_i (accuracy of a model on your data alone)"]
    big_g = inputs["G_i (accuracy of your delivered model)"]
    assert fee == inputs["A_i (your fee)"] == pytest.approx(c_i * (1 - g_i), rel=1e-12, abs=1e-12)
    assert -minus_gain == inputs["a_i = c_i (G_i - g_i) (your improvement)"]
    assert -minus_gain == pytest.approx(c_i * (big_g - g_i), rel=1e-9, abs=1e-12)
    pot, share = inputs["a (pot: the improvements of all parties)"], inputs["ψ̂_i (your share of the pot)"]
    assert reward == pytest.approx(pot * share, rel=1e-9, abs=1e-12)
    assert inputs["characteristic function f"] == params["characteristic"]
    assert inputs["zero-element guard"] is params.get("guard", True)
    assert inputs["Shapley values"] == ("monte_carlo" if params.get("shapley") == "monte_carlo" else "exact")
    if params.get("guard", True):  # the guard: a delivered model never worse than one's own, b_i >= 0
        assert big_g >= g_i and reward >= 0.0
    # the deliverable states the same numbers as the receipt
    assert (model["fee"], model["payout"], model["returned"]) == (fee, reward, pay["amount"])
    assert model["trained_on_parties"] == inputs["parties whose data trained your model"]
    return -minus_gain, reward


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_collaborative_receipts_explain_fee_and_payment(live, db_url, variant) -> None:  # type: ignore[no-untyped-def]
    params, scales, own_tasks = VARIANTS[variant]
    with live.client() as admin:
        mid, ids, cl = _market(live, admin, params, scales, own_tasks)
        done = wait_round(admin, admin.post(f"/markets/{mid}/rounds", json={"seed": 2}).json()["id"])
        assert done["status"] == "cleared", done["error"]
        rid, gains, rewards, pots, trained_on = done["id"], [], [], set(), []
        for (name, client), scale in zip(cl.items(), scales, strict=True):
            charges = check_receipt_charges(client, rid, ids[name], set(ids) - {name}, {"fee", "payment"})
            rec = client.get(f"/rounds/{rid}/receipts/{ids[name]}").json()
            # exactly one charge per line booked, and none for a line not booked (a zero fee)
            assert sorted(c["memo"] for c in charges) == sorted(e["memo"] for e in rec["entries"])
            by = {c["memo"]: c for c in charges}
            # a fee line whenever the fee A_i = c s_i (1 - g_i) is not zero; never with fee scale 0
            assert ("price" in by) == (rec["deliverable"]["fee"] != 0.0)
            assert scale > 0 or "price" not in by
            if "price" in by:
                assert by["price"]["rule"] == "fee"
                _check_fee(by["price"], params["c"] if "c" in params else 1.0, scale)
            if "payment" in by:
                a_i, b_i = _check_payment(by["payment"], params, rec["deliverable"])
                gains.append(a_i)
                trained_on.append(by["payment"]["inputs"]["parties whose data trained your model"])
                rewards.append(b_i)
                pots.add(by["payment"]["inputs"]["a (pot: the improvements of all parties)"])
        first, second = list(ids)[:2]  # a receipt and its explanation are its party's only
        assert cl[first].get(f"/rounds/{rid}/receipts/{ids[second]}").status_code == 404
        assert any(a > 0 for a in gains)  # some party's model improved: the terms are not all zero
        # data selection (tau) trains some party's model on fewer than all parties' data
        assert (min(trained_on) < len(scales)) == ("tau" in params)
        # the pot is the sum of the parties' improvements, and the payouts divide it (balance)
        (pot,) = pots
        assert math.fsum(gains) == pytest.approx(pot, rel=1e-9, abs=1e-12)
        assert math.fsum(rewards) == pytest.approx(pot, rel=1e-9, abs=1e-12)
