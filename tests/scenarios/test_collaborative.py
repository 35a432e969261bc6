"""Scenario kind ``collaborative`` and its figures (``datamarket reproduce collaborative --quick``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datamarket.experiments import reproduce
from datamarket.experiments.collaborative import FIGURES
from datamarket.scenarios import ScenarioError, default_config, parse_scenario, run_scenario

PARTY_FIELDS = {"name", "fee", "gain", "payout", "net", "share"}
TWO = '[[parties]]\nname = "A"\ndigits = [0]\n[[parties]]\nname = "B"\ndigits = [1]\n'


def test_default_scenario_fields_are_the_public_interface() -> None:
    result = run_scenario(default_config("collaborative", seed=0))
    assert set(result.fields) == {"parties", "characteristic", "balance_residual", "replication", "selected"}
    assert all(set(p) == PARTY_FIELDS for p in result.fields["parties"])
    assert set(result.fields["replication"]) == {"replicas", "combined_net", "condition_1", "per_replicas"}
    assert result.fields["balance_residual"] < 1e-9
    assert all(set(s) == {"task", "parties"} for s in result.fields["selected"])
    data = json.loads(json.dumps(result.to_json()))
    assert data["kind"] == "collaborative" and data["outcome"]["mechanism"] == "collaborative-v"
    assert all(a["holds"] for a in data["audits"].values())
    fees = {p["name"]: p["fee"] for p in data["parties"]}
    assert {p["name"]: p["prices"] for p in data["outcome"]["participants"]} == fees


def test_scenario_without_replication_omits_the_field() -> None:
    text = """
kind = "collaborative"
characteristic = "w"
train_count = 10
[[parties]]
name = "A"
digits = [0, 1]
task = [0, 1]
[[parties]]
name = "B"
digits = [1, 2]
task = [1, 2]
"""
    result = run_scenario(parse_scenario(text))
    assert set(result.fields) == {"parties", "characteristic", "balance_residual", "selected"}
    assert [s["task"] for s in result.fields["selected"]] == ["A", "B"]


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (
            'characteristic = "w"\n' + TWO,
            "multi-task market",
        ),
        (
            'task = [0]\n[[parties]]\nname = "A"\ndigits = [0]\n[[parties]]\nname = "A"\ndigits = [1]\n',
            "names must be unique",
        ),
        (
            'task = [0]\n[replication]\nparty = "Z"\n' + TWO,
            "replication.party",
        ),
        (
            "task = [0]\nfee = nan\n" + TWO,
            "fee",
        ),
        (
            "task = [0]\nhalve = [11]\n" + TWO,
            "halve",
        ),
    ],
)
def test_bad_scenarios_name_the_field(text: str, field: str) -> None:
    with pytest.raises(ScenarioError, match=field):
        parse_scenario('kind = "collaborative"\n' + text)


def test_quick_reproduce_writes_every_figure(tmp_path: Path) -> None:
    paths = reproduce("collaborative", tmp_path, quick=True, seed=0)
    for spec in FIGURES:
        for suffix in (".png", ".csv", ".json"):
            path = tmp_path / "collaborative" / f"{spec.name}{suffix}"
            assert path in paths and path.stat().st_size > 0
    assert sum(spec.in_demo for spec in FIGURES) == 1


def test_party_fields_match_a_brute_force_v_market() -> None:
    """Regression (review): JSON ``payout`` is the paper's payout b_i = a * share (Ohrimenko et al., Sec. 4.1
    table), not the amount returned t_i; every party field is recomputed here by brute force: sklearn LR
    per coalition (concatenated data), v(S) = (|S|+1) G(S) - sum_j g_j, Shapley over all permutations."""
    from itertools import permutations

    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from datamarket.mechanisms.collaborative import build_market
    from datamarket.scenarios.collaborative import load_digits_arrays

    text = """
kind = "collaborative"
seed = 3
task = [0, 1, 2, 3]
fee = 2.5
guard = false
train_count = 6
model = {max_iter = 100}
[[parties]]
name = "A"
digits = [0, 1, 2]
[[parties]]
name = "B"
digits = [2, 3]
[[parties]]
name = "C"
digits = [3, 7]
"""
    rows = run_scenario(parse_scenario(text)).fields["parties"]
    x, y = load_digits_arrays()
    market = build_market(x, y, [(0, 1, 2), (2, 3), (3, 7)], (0, 1, 2, 3), seed=3, train_count=6)
    task = market.parties[0].task

    def gain(coalition: tuple[int, ...]) -> float:
        if not coalition:
            return 0.0
        xs = np.vstack([market.parties[j].train.features for j in sorted(coalition)])
        ys = np.concatenate([market.parties[j].train.labels for j in sorted(coalition)])
        model = LogisticRegression(C=1.0, max_iter=100, tol=1e-4).fit(xs, ys)
        return float(np.mean(model.predict(task.features) == task.labels))

    g = np.array([gain((j,)) for j in range(3)])

    def v(s: frozenset[int]) -> float:
        return (len(s) + 1) * gain(tuple(s)) - sum(g[j] for j in s) if s else 0.0

    psi = np.zeros(3)
    orders = list(permutations(range(3)))
    for order in orders:
        for k, j in enumerate(order):
            psi[j] += (v(frozenset(order[: k + 1])) - v(frozenset(order[:k]))) / len(orders)
    share = psi / psi.sum()
    fee = 2.5 * (1 - g)
    a = 2.5 * (gain((0, 1, 2)) - g)
    b = a.sum() * share
    np.testing.assert_allclose([r["fee"] for r in rows], fee, atol=1e-12)
    np.testing.assert_allclose([r["gain"] for r in rows], a, atol=1e-12)
    np.testing.assert_allclose([r["share"] for r in rows], share, atol=1e-12)
    np.testing.assert_allclose([r["payout"] for r in rows], b, atol=1e-12)
    np.testing.assert_allclose([r["net"] for r in rows], b - a, atol=1e-12)
