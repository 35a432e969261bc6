"""Scenario kind ``truthful_payments`` and its experiments (Fan et al.)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from datamarket.core.errors import DatamarketError
from datamarket.experiments import reproduce
from datamarket.mechanisms import registered_mechanisms
from datamarket.scenarios import ScenarioError, default_config, parse_scenario, run_scenario

ROOT = Path(__file__).resolve().parents[2]

# fields added in result schema version 2 (the version-1 fields above stay, never renamed)
ADDED = {"shares", "buyer_values", "buyer_prices"}
SWEEP_ADDED = {"seller", "true_cost", "best_grid_report", "gain"}


def test_default_config_fields_and_speed() -> None:
    t0 = time.perf_counter()
    result = run_scenario(default_config("truthful_payments"))
    assert time.perf_counter() - t0 < 15
    assert set(result.fields) == {"allocation", "payments", "social_cost", "sweep"} | ADDED
    assert set(result.fields["payments"]) == {"loo", "shapley", "myerson", "vcg"}
    assert all(len(v) == 3 for v in result.fields["payments"].values())
    sweep = result.fields["sweep"]
    assert set(sweep) == {"reported_costs", "utility", "best_report", "price_of_anarchy"} | SWEEP_ADDED
    # exact: best reports are points of the report grid, not computed
    assert sweep["best_report"]["myerson"] == sweep["best_report"]["vcg"] == 5.0
    assert sweep["best_report"]["loo"] > 5.0 > sweep["best_report"]["shapley"]
    assert all(p >= 1.0 for p in sweep["price_of_anarchy"].values())
    data = json.loads(json.dumps(result.to_json()))
    assert data["outcome"]["mechanism"] == "truthful_payments.myerson"
    assert (
        data["audits"]["myerson.ir_seller"]["holds"] and data["audits"]["vcg.incentive_compatible"]["holds"]
    )
    assert not data["audits"]["loo.incentive_compatible"]["holds"]
    assert data["audits"]["myerson.budget_balance_strong"]["holds"]


def test_mixture_example_and_myerson_equals_vcg() -> None:
    text = (ROOT / "examples" / "truthful_payments-mixture.toml").read_text()
    res = run_scenario(parse_scenario(text.replace("step = 0.25", "step = 1.0")))
    pays = res.fields["payments"]
    assert np.allclose(pays["myerson"], pays["vcg"], atol=1e-8)
    w = np.array(res.fields["allocation"])
    assert w.shape == (1, 4) and abs(w.sum() - 1) < 1e-12


def test_without_sweep_has_no_sweep_field() -> None:
    text = (ROOT / "examples" / "truthful_payments-two-buyers.toml").read_text()
    res = run_scenario(parse_scenario(text))
    assert set(res.fields) == {"allocation", "payments", "social_cost"} | ADDED


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ("costs = [1.0, -2.0]", "costs[2]"),
        ("costs = [1.0, nan]", "costs[2]"),
        ("variances = [0.5, 0.0]", "mean_estimation.variances[2]"),
        ("covariance = [[1.0, 1.0], [1.0, 1.0]]", "mean_estimation.covariance: must be positive definite"),
        ("covariance = [[1.0, 2.0], [2.0, 1.0]]", "mean_estimation.covariance: must be positive definite"),
        ("buyer_means = [[1.0, nan]]", "mean_estimation.buyer_means[1][2]"),
        ("costs = [1.0]", "costs: need one cost per seller"),
    ],
)
def test_bad_inputs_name_the_field(patch: str, message: str) -> None:
    lines = {
        "costs": "costs = [1.0, 2.0]",
        "buyer_means": "buyer_means = [[1.0, 0.0]]",
        "variances": "variances = [0.5, 0.5]",
    }
    key = patch.split(" =")[0]
    if key == "covariance":
        lines.pop("variances")
        lines["covariance"] = patch
    else:
        lines[key] = patch
    text = (
        'kind = "truthful_payments"\n'
        + lines["costs"]
        + "\n[mean_estimation]\n"
        + lines["buyer_means"]
        + "\nseller_means = [[1.0, 0.0], [0.0, 1.0]]\n"
        + "\n".join(v for k, v in lines.items() if k in ("variances", "covariance"))
        + "\n"
    )
    with pytest.raises(DatamarketError) as exc:
        run_scenario(parse_scenario(text))
    assert message in str(exc.value)


def test_exactly_one_market() -> None:
    with pytest.raises(ScenarioError, match="exactly one"):
        parse_scenario('kind = "truthful_payments"\ncosts = [1.0]\n')


def test_sweep_seller_out_of_range() -> None:
    text = (ROOT / "examples" / "truthful_payments.toml").read_text().replace("seller = 0", "seller = 7")
    with pytest.raises(DatamarketError, match=r"sweep\.seller"):
        run_scenario(parse_scenario(text))


def test_mechanism_declarations() -> None:
    infos = {m.name: m for m in registered_mechanisms() if m.name.startswith("truthful_payments.")}
    assert set(infos) == {f"truthful_payments.{r}" for r in ("loo", "shapley", "myerson", "vcg")}
    for rule in ("myerson", "vcg"):
        assert {"incentive_compatible", "ir_seller"} <= {
            p.value for p in infos[f"truthful_payments.{rule}"].guarantees
        }
    for rule in ("loo", "shapley"):
        assert "incentive_compatible" not in {p.value for p in infos[f"truthful_payments.{rule}"].guarantees}


def test_reproduce_quick_writes_every_file(tmp_path: Path) -> None:
    paths = reproduce("truthful_payments", tmp_path, quick=True, seed=0)
    names = {p.name for p in paths}
    for stem in ("fig1_loo_shapley_misreport", "fig2_cost_shapes", "fig3_myerson_vcg", "fig4_loo_vs_shapley"):
        for ext in ("png", "csv", "json"):
            assert f"{stem}.{ext}" in names
    for p in paths:
        assert p.stat().st_size > 0
    fig3 = json.loads((tmp_path / "truthful_payments" / "fig3_myerson_vcg.json").read_text())
    my = [r["y"] for r in fig3 if r["series"] == "Myerson (quadrature)"]
    vcg = [r["y"] for r in fig3 if r["series"] == "VCG"]
    assert np.allclose(my, vcg, atol=1e-8)
