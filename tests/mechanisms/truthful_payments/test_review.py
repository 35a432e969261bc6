"""Conventions of the truthful-payments implementation (Fan et al.) that the paper leaves open.

Each test pins one convention an independent reference computation also assumes.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from datamarket.core.errors import DatamarketError
from datamarket.mechanisms.truthful_payments import (
    RULES,
    DataMixtureMarket,
    MeanEstimationMarket,
    compute_payments,
    misreport_sweep,
    myerson_payments,
    price_of_anarchy,
)
from datamarket.scenarios import parse_scenario, run_scenario

ME = MeanEstimationMarket.from_variances(
    [[1.0, 0.5], [0.2, -0.4]], [[0.9, 0.6], [1.2, 0.1], [0.3, -0.9]], [0.4, 0.6, 1.0]
)


def test_sweep_grid_is_plain_grid_when_truth_is_off_grid() -> None:
    """The grid is 0, h, 2h, ... <= max_report; the true cost is not inserted."""
    costs = np.array([1.3, 0.7, 2.45])
    sw = misreport_sweep(ME, costs, 2, max_report=4.0, step=0.3)
    assert np.allclose(sw.reported_costs, np.arange(14) * 0.3, atol=1e-12)
    assert 2.45 not in sw.reported_costs.tolist()
    for rule in ("myerson", "vcg"):  # truthful rules: Brent recovers the off-grid truth
        assert sw.best_report[rule] == pytest.approx(2.45, abs=1e-6)
        assert sw.price_of_anarchy[rule] == pytest.approx(1.0, abs=1e-12)
        assert sw.gain(rule) <= 1e-12


def test_sweep_best_report_stays_in_the_grid_range() -> None:
    """A true cost above max_report: the best report is searched in [0, max_report] only."""
    costs = np.array([1.3, 0.7, 5.5])
    sw = misreport_sweep(ME, costs, 2, max_report=3.0, step=0.5)
    # exact: grid points are k * 0.5, exact in binary
    assert sw.reported_costs[-1] == 3.0 and sw.reported_costs.size == 7
    assert all(0.0 <= sw.best_report[r] <= 3.0 for r in RULES)
    assert sw.best_report["myerson"] == pytest.approx(3.0, abs=1e-6)
    assert sw.price_of_anarchy["myerson"] > 1.0


def test_flat_utility_picks_the_smallest_report() -> None:
    """(ties -> smallest maximiser): a seller that never trades has a flat utility."""
    market = DataMixtureMarket(0.3, 1.5, [-3.0, -0.1, 1.0])
    sw = misreport_sweep(market, [0.05, 0.05, 0.05], 2, max_report=1.0, step=0.1, rules=["shapley", "loo"])
    assert np.ptp(sw.utility["shapley"]) < 1e-12
    # exact: best reports are grid points (here the first, 0.0)
    assert sw.best_report["shapley"] == 0.0 and sw.best_report["loo"] == 0.0


def test_price_of_anarchy_is_the_literal_ratio() -> None:
    """SC(report)/SC(truth), not clipped when SC < 0 (mixture with b < 0)."""
    assert price_of_anarchy(-0.9, -1.0) == pytest.approx(0.9)
    market = DataMixtureMarket(-0.885, 1.302, [-2.57029, -2.34473, 0.48483])
    costs = np.array([0.83618, 2.68739, 0.95295])
    sw = misreport_sweep(market, costs, 1, max_report=3.0, step=0.5, rules=["loo"])
    assert sw.truthful_social_cost < 0
    worse = float(sw.social_cost[-1])
    # exact: best reports are grid points (k * 0.5, exact in binary)
    assert sw.best_report["loo"] == 3.0
    assert sw.price_of_anarchy["loo"] == pytest.approx(worse / sw.truthful_social_cost, rel=1e-12)
    assert sw.price_of_anarchy["loo"] < 1.0


def test_single_seller_simplex_myerson_is_infinite() -> None:
    """With one seller on the simplex w = 1 for every report: the integral in (9) diverges."""
    market = DataMixtureMarket(0.3, 1.5, [-1.0])
    # exact: the divergent integral is reported as the literal inf
    assert myerson_payments(market, [0.5])[0] == np.inf
    text = 'kind = "truthful_payments"\ncosts = [0.5]\n[data_mixture]\nt = [-1.0]\n'
    data = json.loads(json.dumps(run_scenario(parse_scenario(text)).to_json()))
    assert data["payments"]["myerson"] == [None] and data["outcome"] is None
    assert data["payments"]["vcg"][0] == pytest.approx(1 - np.exp(-1.0), rel=1e-12)


def test_several_mixture_buyers_decouple_by_rows() -> None:
    """f_j = ||W_:,j||^2 separates by rows: every rule is the sum of the single-buyer markets."""
    b, k = [0.5, 0.2, -0.1], [2.0, 1.0, 3.0]
    t = [[-1.0, -0.5, -2.0, -0.1], [0.3, -1.5, -0.2, 0.0], [-0.7, -0.7, 0.5, -2.2]]
    costs = np.array([0.5, 1.0, 2.0, 0.3])
    multi = compute_payments(DataMixtureMarket(b, k, t), costs)
    singles = [compute_payments(DataMixtureMarket(b[i], k[i], t[i]), costs) for i in range(3)]
    assert np.allclose(multi.allocation, np.vstack([s.allocation for s in singles]), atol=1e-14)
    assert multi.social_cost == pytest.approx(sum(s.social_cost for s in singles), rel=1e-12)
    for rule in RULES:
        total = sum(s.payments[rule] for s in singles)
        assert np.allclose(multi.payments[rule], total, rtol=1e-9, atol=1e-10), rule
    assert np.allclose(multi.payments["myerson"], multi.payments["vcg"], atol=1e-8)  # Thm 4.2


def test_several_mixture_buyers_scenario_and_bad_shapes() -> None:
    base = 'kind = "truthful_payments"\ncosts = [0.4, 0.8, 1.5]\n[data_mixture]\n'
    res = run_scenario(
        parse_scenario(base + "b = 0.5\nk = 2.0\nt = [[-1.0, -0.5, -2.0], [-2.0, 0.1, -0.3]]\n")
    )
    w = np.array(res.fields["allocation"])
    assert w.shape == (2, 3) and np.allclose(w.sum(axis=1), 1.0, atol=1e-12)
    with pytest.raises(DatamarketError, match=r"data_mixture\.b: need one number or one per buyer"):
        run_scenario(
            parse_scenario(base + "b = [1.0, 2.0, 3.0]\nt = [[-1.0, -0.5, -2.0], [-2.0, 0.1, 0.0]]\n")
        )
    with pytest.raises(DatamarketError, match=r"data_mixture\.t"):
        run_scenario(parse_scenario(base + "t = [[-1.0, -0.5, -2.0], [-2.0, 0.1]]\n"))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "costs = [1.0, 1.0]\n[mean_estimation]\nbuyer_means = [[1.0, 0.0]]\n"
            "seller_means = [[1.0, 0.0], [0.0, 1.0]]\nvariances = [1.0]\n",
            "mean_estimation.variances: need one variance per seller (2), got 1",
        ),
        (
            "costs = [1.0]\n[mean_estimation]\nbuyer_means = [[1e200]]\nseller_means = [[1e200]]\n"
            "variances = [1.0]\n",
            "mean_estimation.seller_means: inner products of the means overflow",
        ),
        (
            "costs = [1.0, 1.0]\n[data_mixture]\nt = [-800.0, 800.0]\n",
            "data_mixture.t: k exp(max t) overflows",
        ),
    ],
)
def test_extreme_inputs_give_a_clear_error(body: str, message: str) -> None:
    with pytest.raises(DatamarketError) as exc:
        run_scenario(parse_scenario('kind = "truthful_payments"\n' + body))
    assert message in str(exc.value)


def test_batched_coalition_table_equals_per_coalition_solves() -> None:
    """Exact Shapley (8) on the mean-estimation market: batched table = one solve per coalition."""
    from datamarket.mechanisms.truthful_payments import coalition_value, fast, random_mean_market
    from datamarket.valuation import FunctionGame, exact_shapley

    for seed in range(3):
        market, costs = random_mean_market(seed, n_buyers=3, n_sellers=6, dim=3)
        costs[seed] = 0.0  # a zero-cost seller too
        table = fast.coalition_table(market, costs)
        direct = [coalition_value(market, costs, [j for j in range(6) if m >> j & 1]) for m in range(64)]
        assert np.allclose(table, direct, rtol=1e-11, atol=1e-12)
        game = FunctionGame(lambda s, c=costs, mk=market: coalition_value(mk, c, s), 6)
        est = compute_payments(market, costs, rules=["shapley"]).payments["shapley"]
        assert np.allclose(est, exact_shapley(game).values, rtol=1e-10, atol=1e-12)
        assert est.sum() == pytest.approx(table[-1], rel=1e-10)  # efficiency: sum = V(S)


def test_exact_shapley_default_reaches_twenty_mean_estimation_sellers() -> None:
    """Exact up to |S| ~ 20; the default no longer switches to Monte Carlo at 16."""
    from datamarket.mechanisms.truthful_payments import random_mean_market, shapley_payments

    market, costs = random_mean_market(0, n_buyers=2, n_sellers=16, dim=4)
    est = shapley_payments(market, costs)
    # exact: the exact method sets stderr to the literal 0
    assert est.method == "exact" and np.all(est.stderr == 0)
    table_total = float(np.sum(compute_payments(market, costs, rules=["loo"]).values))
    assert est.values.sum() == pytest.approx(table_total, rel=1e-10)  # efficiency: sum = V(S)
