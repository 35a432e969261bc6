"""The estimators that need fewer fits: exact switch, closed-form and DP oracles."""

from __future__ import annotations

import numpy as np
import pytest

from datamarket.core.errors import ConfigurationError, InvalidMarketError
from datamarket.valuation import AirportGame, FunctionGame, TableGame, grouped_quantity_game_shapley
from datamarket.valuation.exact import banzhaf_from_table, shapley_from_table, value_table
from datamarket.valuation.methods import (
    beta_shapley,
    beta_size_weights,
    control_variate_shapley,
    msr_banzhaf,
    regression_adjusted_shapley,
    regression_shapley,
    semivalue_from_table,
    stratified_semivalue,
)
from datamarket.valuation.methods.semivalues import banzhaf_size_weights

# Sampled estimates are compared with exact values within Z standard errors: under the normal
# approximation of a mean of many i.i.d. terms, |error| > 5 sigma has probability < 6e-7 per player;
# the runs are seeded, so each assertion is deterministic.
Z = 5.0


def _airport(m: int, seed: int = 0) -> AirportGame:
    return AirportGame(np.random.default_rng(seed).uniform(0.0, 10.0, size=m))


def _learning_curve_game(m: int, seed: int = 0) -> tuple[FunctionGame, np.ndarray, np.ndarray]:
    """A 3-group learning-curve game (balanced-market paper) and its exact Shapley values by the DP."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 30, size=(m, 3))
    rho, b = (1.0, 0.7, 1.3), (20.0, 60.0, 150.0)
    fs = [lambda t, k=k: rho[k] * (1.0 - (1.0 + np.asarray(t) / b[k]) ** -0.7) for k in range(3)]

    def v(s: tuple[int, ...]) -> float:
        idx = list(s)
        return float(sum(fs[k](x[idx, k].sum()) for k in range(3)))

    return FunctionGame(v, m), x, grouped_quantity_game_shapley(x, fs).values


def test_semivalue_weights_reduce_to_shapley_and_banzhaf() -> None:
    table = value_table(_airport(7))
    # same sums in a different order: agreement to a few ulps of the values (magnitude <= 10)
    np.testing.assert_allclose(
        semivalue_from_table(table, beta_size_weights(7, 1.0, 1.0)), shapley_from_table(table), atol=1e-12
    )
    np.testing.assert_allclose(
        semivalue_from_table(table, banzhaf_size_weights(7)), banzhaf_from_table(table), atol=1e-12
    )
    w = beta_size_weights(30, 16.0, 1.0)
    assert abs(w.sum() - 1.0) < 1e-12 and np.all(np.diff(w) < 0)  # Beta(16,1) favours small sets


@pytest.mark.parametrize(
    "run",
    [
        lambda g, b: stratified_semivalue(g, seed=0, max_evaluations=b),
        lambda g, b: regression_shapley(g, seed=0, max_evaluations=b, sampler="kernel"),
        lambda g, b: regression_shapley(g, seed=0, max_evaluations=b),
        lambda g, b: control_variate_shapley(g, seed=0, max_evaluations=b),
        lambda g, b: regression_adjusted_shapley(g, seed=0, max_evaluations=b),
    ],
)
def test_budget_of_2_to_the_m_switches_to_exact(run) -> None:
    g = _airport(6)
    res = run(g, 64)
    assert res.extra["switched_to_exact"] and res.evaluations == 64
    np.testing.assert_allclose(res.values, g.shapley(), atol=1e-12)  # exact enumeration, same sums
    assert not run(g, 63).extra["switched_to_exact"]


def test_stratified_shapley_and_beta_against_enumeration() -> None:
    g = _airport(12, seed=1)
    table = value_table(g)
    res = stratified_semivalue(g, seed=2, max_evaluations=1500)
    assert res.evaluations <= 1500 and not res.extra["switched_to_exact"]
    assert np.all(np.abs(res.values - g.shapley()) <= Z * res.stderr + 1e-12)
    beta = beta_shapley(g, seed=3, max_evaluations=1500)
    exact = semivalue_from_table(table, beta_size_weights(12, 16.0, 1.0))
    assert np.all(np.abs(beta.values - exact) <= Z * beta.stderr + 1e-12)
    assert beta.method == "beta_shapley"


def test_msr_banzhaf_against_enumeration() -> None:
    g = _airport(12, seed=4)
    res = msr_banzhaf(g, seed=0, max_evaluations=2000)
    exact = banzhaf_from_table(value_table(g))
    assert res.evaluations <= 2000 and np.all(np.abs(res.values - exact) <= Z * res.stderr)
    assert res.counts.tolist() == [res.extra["samples"]] * 12  # every sample serves every player


@pytest.mark.parametrize("sampler", ["kernel", "leverage"])
def test_regression_against_closed_form(sampler: str) -> None:
    g = _airport(14, seed=5)
    res = regression_shapley(g, seed=1, max_evaluations=3000, sampler=sampler)
    assert res.evaluations <= 3000
    # efficiency holds by construction (the constraint), to rounding of the 14-term sum
    assert abs(res.values.sum() - (g.value((1 << 14) - 1) - g.value(0))) < 1e-9
    assert np.all(np.abs(res.values - g.shapley()) <= Z * res.stderr + 1e-9)


def test_control_variate_against_dp_and_plain_sampling() -> None:
    game, x, exact = _learning_curve_game(40)
    budget = 1200
    cv = control_variate_shapley(game, seed=0, max_evaluations=budget, quantities=x)
    assert cv.evaluations <= budget
    assert np.all(np.abs(cv.values - exact) <= Z * cv.stderr + 1e-12)
    # the surrogate family holds the game: the residual is the fit error only, so the estimate is
    # within 5% of the mean value where plain permutation sampling of the same budget is not
    assert np.max(np.abs(cv.values - exact)) < 0.05 * exact.mean()
    from datamarket.valuation import monte_carlo_shapley

    mc = monte_carlo_shapley(game, seed=0, max_evaluations=budget)
    assert np.max(np.abs(mc.values - exact)) > 2 * np.max(np.abs(cv.values - exact))
    # a surrogate of the totals only (outside the game's family) stays unbiased (cross-fitting); its
    # standard error rests on ~8 antithetic pairs per fold, so the bound is Student's t with that many
    # degrees of freedom at the same 1e-6 level, not the normal 5 sigma
    from scipy.stats import t as student_t

    tot = control_variate_shapley(game, seed=0, max_evaluations=budget, quantities=x.sum(axis=1))
    df = tot.extra["permutations"] // 4 - 1
    assert np.all(np.abs(tot.values - exact) <= student_t.ppf(1 - 1e-6, df) * tot.stderr + 1e-12)
    assert np.max(np.abs(tot.values - exact)) < np.max(np.abs(mc.values - exact))
    # exact ends (singletons and leave-one-outs) were used; without them the estimator stays unbiased
    assert cv.extra["exact_ends"] and tot.extra["exact_ends"]
    plain = control_variate_shapley(game, seed=0, max_evaluations=budget, quantities=x, exact_ends=False)
    assert not plain.extra["exact_ends"] and plain.evaluations <= budget
    df_plain = plain.extra["permutations"] // 4 - 1
    assert np.all(np.abs(plain.values - exact) <= student_t.ppf(1 - 1e-6, df_plain) * plain.stderr + 1e-12)


def test_seeded_and_bad_input() -> None:
    g = _airport(9)
    a = regression_shapley(g, seed=3, max_evaluations=200)
    b = regression_shapley(g, seed=3, max_evaluations=200)
    np.testing.assert_array_equal(a.values, b.values)  # same seed, same arithmetic: bitwise
    with pytest.raises(ConfigurationError, match="sampler"):
        regression_shapley(g, seed=0, max_evaluations=100, sampler="owen")
    with pytest.raises(ConfigurationError, match="max_evaluations"):
        stratified_semivalue(g, seed=0, max_evaluations=10)
    with pytest.raises(ConfigurationError, match="max_evaluations"):
        msr_banzhaf(g, seed=0, max_evaluations=1.5)
    with pytest.raises(ConfigurationError, match="seed"):
        msr_banzhaf(g, seed=-1, max_evaluations=100)
    with pytest.raises(ConfigurationError, match="weights"):
        stratified_semivalue(g, seed=0, max_evaluations=100, weights="owen")
    with pytest.raises(ConfigurationError, match="beta"):
        beta_shapley(g, alpha=0.0, seed=0, max_evaluations=100)
    with pytest.raises(InvalidMarketError, match="quantities"):
        control_variate_shapley(g, seed=0, max_evaluations=100, quantities=[1, 2])
    with pytest.raises(InvalidMarketError, match="quantities"):
        control_variate_shapley(g, seed=0, max_evaluations=100, quantities=[-1] * 9)
    assert TableGame(np.zeros(4)).n_players == 2
