"""Fast PD* and the fast online answer (Agarwal, Dahleh, Sarkar, Algorithm 2, Thm 5.3; Sec. 4.1).

The engine path (``shapley = "engine"``) targets Thm 5.3's ``||psi_hat - psi||_inf < eps`` with a
Student-t half-width at level ``delta / M`` per seller; the game here (diabetes, 10 features, the
family's least-squares learner) has exact values from all 2^10 coalitions to compare with.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datamarket.core.errors import InvalidMarketError
from datamarket.core.random import make_rng
from datamarket.mechanisms.realtime_market import (
    Allocation,
    CoalitionGame,
    DivisionSpec,
    HalfWidth,
    Learner,
    MarketConfig,
    Pricer,
    Scorer,
    Streams,
    Task,
    TaskBuyer,
    answer_buyer,
    divide,
    engine_shapley,
    measure_curve,
    run_market,
)
from datamarket.valuation import FunctionGame, RunState
from tests.mechanisms.realtime_market.strategies import data_markets, seeds


def diabetes_game() -> tuple[CoalitionGame, np.ndarray]:
    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    streams = Streams(data.data, tuple(data.feature_names))
    task = Task.split(data.target, 0.3, make_rng(1))
    learner = Learner()
    game = CoalitionGame(streams.values, streams.ids, streams.names, task, learner, Scorer.of(task, False))
    return game, streams.values


@pytest.fixture(scope="module")
def exact_division():  # type: ignore[no-untyped-def]
    game, clean = diabetes_game()
    return divide(game, clean, DivisionSpec(rule="pd_a", shapley="exact"), 0)


def test_engine_meets_its_accuracy_target_on_a_learned_game(exact_division) -> None:  # type: ignore[no-untyped-def]
    """The half-width rule fired (not the cap, not exhaustion of the 2^10 coalitions), and the values are
    within the target eps of the exact ones; each within five of its own standard errors (the
    estimator is unbiased, Maleki et al. 2013)."""
    game, clean = diabetes_game()
    spec = DivisionSpec(rule="pd_a", shapley="engine", eps=0.02, delta=0.1)
    d = divide(game, clean, spec, 5)
    exact = exact_division.shapley
    assert d.method == "engine" and d.fits < 2**10 - 1
    assert np.max(np.abs(d.shapley - exact)) < spec.eps
    assert np.all(np.abs(d.shapley - exact) <= 5 * d.stderr)
    r = engine_shapley(diabetes_game()[0], spec.eps, spec.delta, 10**6, 5)
    assert r.stop_reason == "half_width" and r.converged
    q = HalfWidth(spec.eps, spec.delta, 10, 20).quantile(int(r.counts.min()) // 20)
    assert np.all(q * r.stderr <= spec.eps)


def test_engine_fits_fewer_coalitions_than_algorithm_2() -> None:
    """Same game, same (eps, delta): the engine fits fewer models than Algorithm 2 with Thm 5.3's K."""
    spec = dict(rule="pd_a", eps=0.1, delta=0.1)
    g1, clean = diabetes_game()
    engine = divide(g1, clean, DivisionSpec(shapley="engine", **spec), 0)  # type: ignore[arg-type]
    g2, _ = diabetes_game()
    alg2 = divide(g2, clean, DivisionSpec(shapley="sampled", **spec), 0)  # type: ignore[arg-type]
    assert alg2.samples == 1498 and alg2.calls >= 2 * 10 * 1498
    assert engine.fits < alg2.fits / 2


def test_engine_is_deterministic_under_a_seed() -> None:
    spec = DivisionSpec(rule="pd_b", shapley="engine", eps=0.3)
    a = divide(diabetes_game()[0], diabetes_game()[1], spec, 11)
    b = divide(diabetes_game()[0], diabetes_game()[1], spec, 11)
    c = divide(diabetes_game()[0], diabetes_game()[1], spec, 12)
    assert np.array_equal(a.shapley, b.shapley) and a.fits == b.fits and a.samples == b.samples
    assert not np.array_equal(a.shapley, c.shapley)


def test_half_width_rule_needs_two_blocks_and_the_student_quantile() -> None:
    """One block gives no standard error (never stops); with b blocks the rule compares
    t_{b-1}(1 - delta / (2M)) s with eps, so a standard error just above eps / t does not stop."""
    from scipy.stats import norm

    rule = HalfWidth(eps=0.1, delta=0.2, n_players=4, block=8)
    q5 = rule.quantile(5)
    assert rule.quantile(1) == np.inf and q5 > rule.quantile(50) > norm.ppf(1 - 0.2 / 8)  # t_49 > z

    def state(blocks: int, se: float) -> RunState:
        return RunState(0, 0.0, np.full(4, se), np.full(4, 8 * blocks))

    assert not rule.check(state(1, 0.0))
    assert rule.check(state(5, 0.1 / q5 * (1 - 1e-9)))
    assert not rule.check(state(5, 0.1 / q5 * (1 + 1e-9)))
    with pytest.raises(InvalidMarketError):
        HalfWidth(eps=0.0, delta=0.1, n_players=2, block=4)


def test_engine_stops_at_two_blocks_on_an_additive_game() -> None:
    """Every marginal of an additive game is the player's weight: zero spread, the rule stops as soon as
    it can (two blocks of 2M permutations), with the exact values."""
    w = np.arange(1.0, 15.0) / 100
    r = engine_shapley(FunctionGame(lambda s: float(w[list(s)].sum()), 14), 0.01, 0.1, 10**6, 0)
    assert r.stop_reason == "half_width" and int(r.counts.min()) == 2 * 2 * 14
    assert np.allclose(r.values, w, rtol=0, atol=1e-12)


def test_auto_uses_the_engine_above_exact_up_to() -> None:
    spec = DivisionSpec(exact_up_to=4)
    assert spec.method(4) == "exact" and spec.method(5) == "engine"
    assert DivisionSpec(shapley="sampled").method(30) == "sampled"
    assert DivisionSpec(rule="pd_b", eps=0.3).target() == pytest.approx(0.1)
    with pytest.raises(InvalidMarketError):
        DivisionSpec(shapley="fast")  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None)
@given(data_markets(), seeds, st.floats(0.1, 3.0), st.sampled_from([None, 0.5]), st.booleans())
def test_least_squares_curve_equals_one_fit_per_level(market, seed, sigma, alpha, copy) -> None:  # type: ignore[no-untyped-def]
    """The curve from shared Gram matrices equals the coalition game refitted at each level. Both are
    least-squares solutions of the same system; they differ by rounding amplified by the Gram matrix's
    condition number (below 1e4 on these markets: gains agree to 1e-9)."""
    from sklearn.linear_model import LinearRegression, Ridge

    streams, task = market
    if copy:
        streams = streams.with_copies(streams.names[0], 1)
    learner = Learner(LinearRegression() if alpha is None else Ridge(alpha=alpha))
    scorer = Scorer.of(task, False)
    alloc = Allocation(form="noise", sigma=sigma, levels=6)
    curve, degrader = measure_curve(streams, task, learner, scorer, alloc, 1.5, seed)
    full = (1 << streams.n_sellers) - 1
    slow = [
        CoalitionGame(degrader.apply(float(s)), streams.ids, streams.names, task, learner, scorer).value(full)
        for s in curve.grid
    ]
    np.testing.assert_allclose(curve.gains, slow, rtol=0, atol=1e-9)


def test_answer_buyer_is_the_round_of_run_market() -> None:
    """The online answer (steps 1-5) gives the price, level, gain and charge the market's round reports."""
    rng = make_rng(3)
    x = rng.normal(size=(60, 3))
    streams = Streams(x, ("a", "b", "c"))
    buyers = [
        TaskBuyer(f"b{n}", Task.split(x.sum(axis=1) + rng.normal(size=60), 0.3, rng), 0.7) for n in range(3)
    ]
    cfg = MarketConfig()
    run = run_market(streams, buyers, config=cfg, seed=4)
    seq = np.random.SeedSequence(4).spawn(len(buyers) + 1)
    pricer = Pricer(cfg.max_bid, cfg.lipschitz, len(buyers), make_rng(seq[0]), cfg.reference())
    for buyer, s, r in zip(buyers, seq[1:], run.rounds, strict=True):
        noise = int(s.spawn(2)[0].generate_state(1)[0])
        a = answer_buyer(streams, buyer, Learner(), cfg, pricer, noise)
        assert (a.price, a.level, a.gain, a.charge) == (r.price, r.level, r.gain, r.charge)
