"""Structured exact Shapley for quantity games: DP = enumeration (M <= 12), = long Monte Carlo (large M)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

from datamarket.core.errors import InvalidMarketError
from datamarket.valuation import (
    FunctionGame,
    MaxPermutations,
    exact_shapley,
    grouped_quantity_game_shapley,
    monte_carlo_shapley,
    quantity_game_shapley,
)
from tests.strategies import quantity_games


def _enumerated(q: np.ndarray, f: np.ndarray) -> np.ndarray:
    return exact_shapley(FunctionGame(lambda s: float(f[int(q[list(s)].sum())]), q.size)).values


@given(quantity_games(max_players=8))
def test_dp_equals_enumeration(game) -> None:
    q, f = game
    res = quantity_game_shapley(q, lambda t: f[t])
    np.testing.assert_allclose(res.values, _enumerated(q, f), rtol=0, atol=1e-9)
    assert abs(res.values.sum() - (f[-1] - f[0])) < 1e-9


@pytest.mark.parametrize("m", [11, 12])
def test_dp_equals_enumeration_twelve_players(m: int) -> None:
    rng = np.random.default_rng(m)
    q = rng.integers(0, 9, m)
    f = np.sqrt(np.arange(q.sum() + 1)) * rng.uniform(1, 2)
    np.testing.assert_allclose(quantity_game_shapley(q, lambda t: f[t]).values, _enumerated(q, f), atol=1e-12)


def test_grouped_is_sum_of_groups_and_efficient() -> None:
    rng = np.random.default_rng(0)
    q = rng.integers(0, 7, (9, 3))
    fns = [lambda t, a=a: a * np.log1p(t) for a in (1.0, 2.0, 0.5)]
    res = grouped_quantity_game_shapley(q, fns)
    total = sum(quantity_game_shapley(q[:, g], fns[g]).values for g in range(3))
    np.testing.assert_allclose(res.values, total, atol=1e-12)
    gap = sum(fns[g](q[:, g].sum()) - fns[g](0) for g in range(3))
    assert abs(res.values.sum() - gap) < 1e-9 and abs(res.extra["efficiency_gap"]) < 1e-9
    # the grouped game is a game too: enumeration agrees
    game = FunctionGame(lambda s: float(sum(fns[g](q[list(s), g].sum()) for g in range(3))), 9)
    np.testing.assert_allclose(res.values, exact_shapley(game).values, atol=1e-12)


def test_large_market_matches_long_monte_carlo() -> None:
    # 40 sellers (2^40 coalitions): DP vs a long unbiased Monte Carlo run, within a Hoeffding bound.
    rng = np.random.default_rng(7)
    m = 40
    q = rng.integers(0, 51, m)
    f = 1.0 - 1.0 / np.sqrt(1.0 + np.arange(q.sum() + 1))  # concave learning curve, values in [0, 1)
    dp = quantity_game_shapley(q, lambda t: f[t])
    game = FunctionGame(lambda s: float(f[int(q[list(s)].sum())]), m)
    n_blocks = 25
    mc = monte_carlo_shapley(game, seed=0, stopping=MaxPermutations(2 * m * n_blocks), distinct=False)
    # marginals lie in [0, 1]; Hoeffding + union bound over players at delta = 1e-3
    eps = np.sqrt(np.log(2 * m / 1e-3) / (2 * n_blocks))
    assert np.abs(dp.values - mc.values).max() <= eps
    # the reported standard errors are calibrated: most players lie within 3 of them (a small-quantity
    # player's marginals are rare large jumps, so 25 blocks can understate its own spread)
    within = np.abs(dp.values - mc.values) <= 3 * mc.stderr + 1e-12
    assert within.mean() >= 0.8
    assert abs(dp.extra["efficiency_gap"]) < 1e-9


def test_stable_for_many_players() -> None:
    # 200 identical sellers: symmetry gives f(total)/200 each; binomials near 1e59 never appear
    q = np.full(200, 2)
    res = quantity_game_shapley(q, lambda t: np.sqrt(t))
    np.testing.assert_allclose(res.values, np.sqrt(400) / 200, rtol=1e-10)


@settings(max_examples=5)
@given(quantity_games(min_players=2, max_players=5))
def test_zero_quantity_is_null_player(game) -> None:
    q, f = game
    q = np.concatenate([q, [0]])
    assert abs(quantity_game_shapley(q, lambda t: f[t]).values[-1]) < 1e-12


def test_bad_quantities() -> None:
    with pytest.raises(InvalidMarketError, match="quantities: must be non-negative integers"):
        quantity_game_shapley([1, -2], np.sqrt)
    with pytest.raises(InvalidMarketError, match="quantities: must be non-negative integers"):
        quantity_game_shapley([1.5], np.sqrt)
    with pytest.raises(InvalidMarketError, match="quantities: must be a non-empty"):
        quantity_game_shapley([], np.sqrt)
    with pytest.raises(InvalidMarketError, match="value_of_total: returned a non-finite"):
        quantity_game_shapley([1, 2], lambda t: np.where(t > 0, 1.0, np.inf))
    with pytest.raises(InvalidMarketError, match="value_of_total: need one function per group"):
        grouped_quantity_game_shapley([[1, 2]], [np.sqrt])
