"""Monte Carlo Shapley: Hoeffding-bounded accuracy, stopping rules, determinism, truncation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from datamarket.core.errors import ConfigurationError
from datamarket.valuation import (
    AirportGame,
    FunctionGame,
    MaxPermutations,
    MaxTime,
    RankStability,
    StderrTarget,
    TableGame,
    VotingGame,
    exact_shapley,
    monte_carlo_shapley,
)

DELTA = 1e-3


def _hoeffding(r: float, n_blocks: int, m: int) -> float:
    """Half-width eps with P(max_i |phi_hat_i - phi_i| >= eps) <= DELTA.

    With ``distinct=False`` and whole cyclic blocks, phi_hat_i is the mean of ``n_blocks`` i.i.d.
    block averages of marginal contributions, each in an interval of length ``r``; Hoeffding (1963)
    plus a union bound over the ``m`` players gives eps = r sqrt(log(2 m / DELTA) / (2 n_blocks)).
    """
    return r * math.sqrt(math.log(2 * m / DELTA) / (2 * n_blocks))


@pytest.mark.parametrize("distinct", [False, True])
def test_monte_carlo_within_hoeffding_bound(distinct: bool) -> None:
    rng = np.random.default_rng(3)
    costs = rng.uniform(0, 1, 16)
    game = AirportGame(costs)  # marginal contributions lie in [0, max cost]
    n_blocks = 60
    res = monte_carlo_shapley(game, seed=11, stopping=MaxPermutations(2 * 16 * n_blocks), distinct=distinct)
    assert res.extra["stratified"] and res.counts.min() == 2 * 16 * n_blocks
    eps = _hoeffding(costs.max(), n_blocks, 16)
    err = np.abs(res.values - game.shapley())
    assert err.max() <= eps, (err.max(), eps)
    # the reported standard errors are of the right order (within a factor 10 of the actual error)
    assert err.max() <= 10 * res.stderr.max() + 1e-12


def test_random_sampler_within_hoeffding_bound() -> None:
    game = VotingGame(12, 7)  # marginals in {0, 1}
    res = monte_carlo_shapley(
        game, seed=5, stopping=MaxPermutations(400), sampler="random", antithetic=False, distinct=False
    )
    # collapsed strata are biased at most by the unsampled positions; with 400 permutations all
    # positions of all players are sampled, so the stratified estimator is unbiased
    assert res.extra["stratified"]
    # 400 i.i.d. permutations; each player's stratified mean is a weighted mean of per-stratum means,
    # bounded by Hoeffding per stratum (>= 10 samples each w.h.p.) — use the conservative form
    d = res.extra["distinct_counts"]
    eps = np.mean(np.sqrt(np.log(2 * 12 * 12 / DELTA) / (2 * d)), axis=1)
    assert np.all(np.abs(res.values - 1 / 12) <= eps)


def test_same_seed_same_values_and_budget_respected() -> None:
    table = np.random.default_rng(0).normal(size=1 << 11)
    table[0] = 0
    a = monte_carlo_shapley(TableGame(table), seed=4, max_evaluations=300)
    b = monte_carlo_shapley(TableGame(table), seed=4, max_evaluations=300)
    c = monte_carlo_shapley(TableGame(table), seed=5, max_evaluations=300)
    # exact: same seed, same deterministic code path
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.array_equal(a.values, c.values)
    assert a.evaluations <= 300 and a.stop_reason == "max_evaluations" and not a.converged


def test_small_game_is_exhausted_exactly() -> None:
    g = AirportGame([1.0, 2.0, 4.0, 8.0])
    res = monte_carlo_shapley(g, seed=0, max_evaluations=10_000)
    assert res.stop_reason == "exhausted" and res.evaluations == 16
    np.testing.assert_allclose(res.values, g.shapley(), atol=1e-12)


def test_stderr_and_rank_rules_report_convergence() -> None:
    g = AirportGame(np.linspace(0.1, 2.0, 14))
    res = monte_carlo_shapley(g, seed=0, stopping=StderrTarget(0.02) | MaxTime(30.0))
    assert res.converged and "stderr_target" in res.stop_reason
    assert res.stderr.max() <= 0.02
    res = monte_carlo_shapley(g, seed=0, stopping=RankStability(3), max_evaluations=50_000)
    assert res.converged and "rank_stability" in res.stop_reason


def test_truncation_skips_evaluations() -> None:
    # v(S) saturates once 3 members are present: TMC stops each permutation there
    g = FunctionGame(lambda s: float(min(len(s), 3)), 12)
    full = monte_carlo_shapley(g, seed=0, stopping=MaxPermutations(240))
    tmc = monte_carlo_shapley(g, seed=0, stopping=MaxPermutations(240), truncation_tol=0.0)
    assert tmc.method == "tmc_shapley" and tmc.evaluations < full.evaluations
    np.testing.assert_allclose(tmc.values, 0.25, atol=1e-12)  # truncation is exact for this game
    np.testing.assert_allclose(full.values, 0.25, atol=1e-12)


def test_progress_callback() -> None:
    seen = []
    monte_carlo_shapley(AirportGame(np.arange(1.0, 11.0)), seed=0, max_evaluations=200, progress=seen.append)
    assert seen and seen[-1].evaluations <= 200 and 0 < seen[-1].fraction <= 1


def test_mc_bad_input() -> None:
    g = VotingGame(3, 2)
    with pytest.raises(ConfigurationError, match="stopping: give max_evaluations or a stopping rule"):
        monte_carlo_shapley(g, seed=0)
    with pytest.raises(ConfigurationError, match="seed"):
        monte_carlo_shapley(g, seed=-1, max_evaluations=10)
    with pytest.raises(ConfigurationError, match="max_evaluations: must be a positive integer"):
        monte_carlo_shapley(g, seed=0, max_evaluations=0)
    with pytest.raises(ConfigurationError, match="truncation_tol"):
        monte_carlo_shapley(g, seed=0, max_evaluations=5, truncation_tol=float("nan"))
    with pytest.raises(ConfigurationError, match="stderr_target"):
        StderrTarget(float("nan"))


def test_exact_and_mc_agree_on_table_game() -> None:
    rng = np.random.default_rng(1)
    table = np.cumsum(rng.uniform(0, 1, 1 << 10))  # arbitrary increasing table
    exact = exact_shapley(TableGame(table)).values
    mc = monte_carlo_shapley(TableGame(table), seed=0, max_evaluations=800)
    assert np.abs(mc.values - exact).max() <= 5 * mc.stderr.max() + 1e-9
