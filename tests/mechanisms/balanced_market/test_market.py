"""Mechanics, empirical rounds and the ``balanced_market`` scenario (Chaintreau et al.)."""

import numpy as np
import pytest

from datamarket.core.audits import audit_budget_balance
from datamarket.core.errors import ConfigurationError, InvalidMarketError
from datamarket.learning.curves import LearningCurve
from datamarket.learning.empirical_gain import BuyerTask, empirical_gain
from datamarket.mechanisms.balanced_market import (
    BalancedMarket,
    digits_market,
    payment_division,
    reserve_prices,
    round_outcome,
    run_empirical_round,
    solve_baseline,
    solve_intervention,
)
from datamarket.scenarios import ScenarioError, parse_scenario, run_scenario
from datamarket.scenarios.balanced_market import default_config

FIELDS = {"reserve_prices", "rho", "thresholds", "baseline", "intervention", "utility_ratios", "backfire"}
# added in result schema version 2 (the version-1 fields stay, never renamed)
ADDED = {
    "price_of_fairness",
    "kappa_gamma",
    "tau_H_max",
    "equilibria",
    "payments",
    "best_response_regrets",
    "summary",
    "growth",
}
BLOCK = {"forms", "production", "total", "active_groups", "utilities"}


def test_engine_payments_equal_valuation_engine_and_budget_balance() -> None:
    m = BalancedMarket(
        values=np.array([[2.0, 1.0], [1.5, 1.2]]),
        costs=np.array([[0.08, 0.12], [0.15, 0.1]]),
        Z=np.array([[1.0, 0.9], [0.95, 1.0]]),
        alpha=np.array([[1.0, 2.0], [0.8, 1.0]]),
        beta=np.array([[1.0, 0.5], [1.5, 1.0]]),
        gamma=np.array([0.6, 0.4]),
    )
    for sol in (solve_baseline(m, "shapley_nash"), solve_intervention(m, "shapley_nash")):
        np.testing.assert_allclose(payment_division(m, sol.prices, sol.production), sol.payments, atol=1e-12)
        out = round_outcome(m, sol)
        assert audit_budget_balance(out, strong=True, tol=1e-12).holds
        assert sol.utilities.marketplace == pytest.approx(sol.payments.sum(), abs=1e-12)
        # buyers' utility (10) with the brackets missing in the paper restored
        np.testing.assert_allclose(out.utilities[2:], sol.utilities.buyers, atol=1e-12)


def test_empirical_gain_learns_and_round_balances_exactly() -> None:
    sellers, buyers, groups = digits_market([[30, 10], [20, 25], [0, 15]], 2, test_per_group=40, seed=3)
    assert sellers[0] is not None
    acc_small = empirical_gain(sellers[0].subset(np.arange(5)), buyers[0].tests["A"])
    rnd = run_empirical_round(
        sellers, buyers, [[1.0, 0.8], [0.7, 0.9]], np.full((3, 2), 0.01), groups, seed=3
    )
    assert rnd.fits <= 2 * 2**3  # one fit per (group, coalition), shared by the buyers
    assert rnd.accuracy.min() > 0.5 and rnd.accuracy.max() <= 1.0
    assert 0.0 <= acc_small <= 1.0
    # budget balance: Shapley payments add up to the revenue (efficiency of the Shapley value)
    assert rnd.payments.sum() == pytest.approx(rnd.revenue.sum(), abs=1e-12)
    assert audit_budget_balance(rnd.outcome, strong=True, tol=1e-12).holds
    # seller 2 has no group-A data: its A-contribution is zero, so it earns less than seller 1
    assert rnd.payments[2] < rnd.payments[1]


def test_buyer_without_test_data_is_an_error() -> None:
    with pytest.raises(InvalidMarketError, match=r"buyers\[0\]\.test: buyer has no test data for group 'B'"):
        digits_market([[5, 5]], 1, test_per_group=[[10, 0]])
    sellers, buyers, groups = digits_market([[10, 10], [0, 0]], 1, test_per_group=10)
    assert sellers[1] is None
    bad = BuyerTask("x", {"A": buyers[0].tests["A"]})
    with pytest.raises(InvalidMarketError, match=r"buyers\[x\]\.test"):
        run_empirical_round(sellers, [bad], [[1.0, 1.0]], [[0.1, 0.1], [0.1, 0.1]], groups)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"gamma": [0.7, 0.7]}, "gamma"),
        ({"gamma": [-0.5, 1.5]}, "gamma"),
        ({"costs": [[0.0, 0.1]]}, "costs"),
        ({"costs": [[-1.0, 0.1]]}, "costs"),
        ({"alpha": np.array(0.0)}, "curves.alpha"),
        ({"Z": np.array(-1.0)}, "curves.Z"),
        ({"beta": np.array(float("nan"))}, "curves.beta"),
        ({"values": [[float("nan"), 1.0]]}, "values"),
    ],
)
def test_bad_markets_name_the_field(kwargs, field) -> None:
    base = {
        "values": [[1.0, 1.0]],
        "costs": [[0.1, 0.1]],
        "Z": np.array(1.0),
        "alpha": np.array(1.0),
        "beta": np.array(1.0),
        "gamma": [0.5, 0.5],
    }
    base.update(kwargs)
    with pytest.raises(InvalidMarketError) as err:
        BalancedMarket(**base)
    assert err.value.field == field
    with pytest.raises(InvalidMarketError, match=r"curve\.beta"):
        LearningCurve(1.0, 1.0, 0.0)


def test_scenario_fields_and_demo_config() -> None:
    res = run_scenario(default_config())
    assert set(res.fields) == FIELDS | ADDED
    for key in ("baseline", "intervention"):
        assert set(res.fields[key]) == BLOCK
        assert set(res.fields[key]["utilities"]) == {"marketplace", "sellers", "buyers"}
        assert np.array(res.fields[key]["production"]).shape == (2, 2)
    assert set(res.fields["utility_ratios"]) == {"marketplace", "sellers", "buyers"}
    assert all(a.holds for a in res.audits.values())
    data = res.to_json()
    assert data["intervention"]["active_groups"] == ["A"]  # group B stays below its learning ante


def test_scenario_bad_inputs() -> None:
    text = """kind = "balanced_market"
groups = ["A"]
gamma = [1.0]
sellers = [{ name = "s", costs = [0.1] }]
buyers = [{ name = "b", values = [1.0] }]
"""
    parse_scenario(text)
    with pytest.raises(ScenarioError, match="gamma"):
        parse_scenario(text.replace("gamma = [1.0]", "gamma = [0.5]"))
    with pytest.raises(ScenarioError, match=r"sellers\[1\]\.costs\[1\]"):
        parse_scenario(text.replace("costs = [0.1]", "costs = [0.0]"))
    with pytest.raises(ScenarioError, match=r"curve\.beta"):
        parse_scenario(text + "curve = { beta = -1.0 }\n")


def test_payment_division_methods_agree() -> None:
    """exact (2^M table) == structured (grouped quantity game); Monte Carlo within 5 standard errors."""
    from datamarket.mechanisms.balanced_market import revenue_game
    from datamarket.valuation.montecarlo import monte_carlo_shapley

    m = BalancedMarket.quasi_symmetric(
        [[1.0, 0.5], [0.7, 0.9]], [0.05, 0.04], (1, 1, 1), n_sellers=6, gamma=[0.5, 0.5]
    )
    rng = np.random.default_rng(0)
    prod = rng.uniform(0.0, 3.0, (6, 2))
    prod[3:] = prod[0]  # repeated sellers: the structured enumeration groups them
    p = np.array([0.7, 0.5])
    exact = payment_division(m, p, prod)
    np.testing.assert_allclose(payment_division(m, p, prod, method="structured"), exact, atol=1e-12)
    mc = payment_division(m, p, prod, method="monte_carlo", max_evaluations=40, seed=2)
    part = monte_carlo_shapley(revenue_game(m, p, prod), seed=2, max_evaluations=40)
    # |error| <= 5 standard errors (Chebyshev: probability of a miss < 4% per player at worst)
    assert np.all(np.abs(part.values - exact) <= 5 * part.stderr + 1e-12)
    # exact: same seed, same game, same estimator code: the mechanism only forwards the seed
    np.testing.assert_array_equal(mc, part.values)  # the mechanism passes the seed through
    with pytest.raises(ConfigurationError, match="method"):
        payment_division(m, p, prod, method="nope")  # type: ignore[arg-type]


def test_general_thresholds_and_marketplace_best_response() -> None:
    """sup_X F(X)/X equals rho c_G for identical curves; with different curves the marketplace weighs
    buyers by accuracy (Section 4's general setting) and candidates are the distinct bids."""
    from datamarket.mechanisms.balanced_market import group_terms, marketplace_best_response, thresholds

    m = BalancedMarket.quasi_symmetric([[3.0], [2.0], [1.0]], [0.1], (0.9, 2.0, 0.5), n_sellers=1)
    p, rho = reserve_prices(m.values)
    assert group_terms(m, p, 0).sup_ratio() == pytest.approx(thresholds(m)[0], rel=1e-9)
    assert thresholds(m)[0] == pytest.approx(rho[0] * 0.027, rel=1e-9)
    het = BalancedMarket(
        values=np.array([[3.0], [2.0]]),
        costs=np.array([[0.1]]),
        Z=np.array([[1.0], [0.2]]),  # the low-value buyer barely learns: selling to it is not worth it
        alpha=np.array(1.0),
        beta=np.array(1.0),
    )
    # exact: reserve prices and best responses pick one of the given bids, no arithmetic on it
    assert reserve_prices(het.values)[0][0] == 2.0  # count-based: rho(2) = 4 > rho(3) = 3
    assert marketplace_best_response(het, np.array([50.0]))[0] == 3.0
    sol = solve_baseline(het, "shapley_nash")
    assert sol.prices[0] == 3.0 and sol.forms


def test_reported_reserve_prices_are_the_posted_baseline_prices_with_heterogeneous_curves() -> None:
    """With heterogeneous curves the marketplace posts the price/production fixed point (Section 4's
    general setting), here p = 0.96 where the quasi-symmetric rule alone gives 2.02; the public
    ``reserve_prices``/``rho``/``thresholds`` must describe the prices the baseline actually used."""
    from datamarket.mechanisms.balanced_market import analyse, marketplace_best_response

    m = BalancedMarket(
        values=np.array([[2.02], [0.96]]),
        costs=np.array([[0.237], [0.028], [0.218]]),
        Z=np.array([[1.0], [1.45]]),
        alpha=np.array([[0.45], [0.65]]),
        beta=np.array([[1.0], [1.0]]),
        gamma=np.array([1.0]),
    )
    # exact: posted prices are chosen among the given bids (2.02, 0.96), never computed
    assert reserve_prices(m.values)[0].tolist() == [2.02]
    a = analyse(m, "shapley_nash")
    np.testing.assert_array_equal(a.reserve_prices, a.baseline.prices)
    np.testing.assert_array_equal(a.reserve_prices, [0.96])
    np.testing.assert_array_equal(marketplace_best_response(m, a.baseline.production.sum(axis=0)), [0.96])
    np.testing.assert_allclose(a.rho, [0.96 * 2])
    # tau at the posted price: a lone seller's sup_X revenue(X)/X, the zero-profit cost (Claim 4.1)
    x = np.linspace(0.01, 50.0, 200_001)
    rev = 0.96 * sum(np.maximum(z - al / x, 0.0) for z, al in ((1.0, 0.45), (1.45, 0.65)))
    np.testing.assert_allclose(a.thresholds, [np.max(rev / x)], rtol=1e-6)
