"""Regression-adjusted stratified Shapley (the default estimator of ``datamarket value``)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datamarket.core.errors import ConfigurationError
from datamarket.valuation import AirportGame, FunctionGame, TableGame, exact_shapley
from datamarket.valuation.exact import value_table
from datamarket.valuation.methods import regression_adjusted_shapley

# As in test_methods.py: |error| > 5 standard errors has probability < 6e-7 per player under the
# normal approximation; the runs are seeded, so each assertion is deterministic.
Z = 5.0


def _model_class_game(m: int, k: int, seed: int) -> TableGame:
    """v(S) = c(|S|) + sum_{j in S} h_j(|S|), c arbitrary, h_j a polynomial of degree < k in |S|."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=m + 1) * 3.0
    theta = rng.normal(size=(m, k))
    masks = np.arange(1 << m)
    z = (masks[:, None] >> np.arange(m)) & 1
    s = z.sum(axis=1)
    t = (s - m / 2) / (m / 2)
    h = np.stack([t**b for b in range(k)], axis=1) @ theta.T  # h[S, j]
    return TableGame(c[s] + (z * h).sum(axis=1))


@settings(max_examples=25, deadline=None)
@given(m=st.integers(6, 11), k=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_games_of_the_model_class_are_valued_exactly(m: int, k: int, seed: int) -> None:
    """If the game is a size-varying additive game of the fitted class, the fit leaves no residual (up
    to the smallest ridge penalty, 1e-6 of the mean Gram eigenvalue) and the estimate is the Shapley
    value, checked against enumeration."""
    game = _model_class_game(m, k, seed)
    budget = min((1 << m) - 1, 2 * m + 4 + 24 * m * k)  # enough pairs to identify M K coefficients
    res = regression_adjusted_shapley(game, seed=seed, max_evaluations=budget, basis=3)
    exact = exact_shapley(game).values
    scale = float(np.abs(value_table(game)).max())
    assert not res.extra["switched_to_exact"] and res.evaluations <= budget
    np.testing.assert_allclose(res.values, exact, atol=1e-4 * scale)


@settings(max_examples=25, deadline=None)
@given(m=st.integers(5, 40), budget=st.integers(0, 400), seed=st.integers(0, 2**32 - 1))
def test_efficient_and_within_budget_on_any_game(m: int, budget: int, seed: int) -> None:
    """The values sum to v(N) - v(empty) (step 4 centres the residual strata) for every budget."""
    game = AirportGame(np.random.default_rng(seed).uniform(0.0, 10.0, size=m))
    budget += 2 * m + 4
    res = regression_adjusted_shapley(game, seed=seed, max_evaluations=budget)
    assert res.evaluations <= budget
    total = game.value((1 << m) - 1) - game.value(0)
    assert abs(res.values.sum() - total) <= 1e-9 * max(1.0, abs(total))
    if res.extra.get("pairs", 8) >= 8:  # exact, or a jackknife over 8 groups of pairs
        assert res.certificate.passed, res.certificate.failures()
    else:  # too few pairs for a standard error: reported as infinite, and the certificate says so
        assert np.all(np.isinf(res.stderr)) and res.certificate.failures() == ["stderr"]


def test_against_enumeration_within_its_standard_errors() -> None:
    """A game outside the model class (airport: v(S) = max cost in S), 14 players: within 5 jackknife
    standard errors of the exact values, and closer than permutation sampling of the same budget."""
    from datamarket.valuation import monte_carlo_shapley

    g = AirportGame(np.random.default_rng(5).uniform(0.0, 10.0, size=14))
    res = regression_adjusted_shapley(g, seed=1, max_evaluations=1500)
    assert res.evaluations <= 1500 and np.all(np.isfinite(res.stderr))
    assert np.all(np.abs(res.values - g.shapley()) <= Z * res.stderr + 1e-9)
    mc = monte_carlo_shapley(g, seed=1, max_evaluations=1500)
    assert np.abs(res.values - g.shapley()).max() < np.abs(mc.values - g.shapley()).max()


def test_seeded_backends_and_bad_input() -> None:
    g = FunctionGame(lambda s: float(len(s)) ** 0.5 + 0.1 * sum(s), 9)
    a = regression_adjusted_shapley(g, seed=3, max_evaluations=200)
    b = regression_adjusted_shapley(g, seed=3, max_evaluations=200, backend="processes")
    np.testing.assert_array_equal(a.values, b.values)  # same seed, same coalitions, same arithmetic
    assert regression_adjusted_shapley(g, seed=3, max_evaluations=512).extra["switched_to_exact"]
    with pytest.raises(ConfigurationError, match="max_evaluations"):
        regression_adjusted_shapley(g, seed=0, max_evaluations=21)  # 2M + 4 = 22
    with pytest.raises(ConfigurationError, match="basis"):
        regression_adjusted_shapley(g, seed=0, max_evaluations=100, basis=0)
    with pytest.raises(ConfigurationError, match="seed"):
        regression_adjusted_shapley(g, seed=-1, max_evaluations=100)
