"""PD* (Agarwal, Dahleh, Sarkar: eq. 2, Algorithms 2 and 3, Thm 5.3, Def. 4.1): Shapley shares, the
sample count, the similarity and the unassigned revenue."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datamarket.core.random import make_rng
from datamarket.mechanisms.realtime_market import (
    CoalitionGame,
    DivisionSpec,
    Learner,
    Scorer,
    Streams,
    Task,
    algorithm2,
    divide,
    replication_sweep,
    similarity_matrix,
    theorem_5_3_samples,
    theorem_5_4_samples,
)
from datamarket.valuation import FunctionGame, exact_shapley, subset_shapley
from tests.mechanisms.realtime_market.strategies import data_markets

EPS = np.finfo(float).eps


@given(st.integers(1, 50), st.floats(0.01, 1.0), st.floats(0.001, 0.99))
def test_sample_counts_follow_theorems_5_3_and_5_4(m: int, eps: float, delta: float) -> None:
    """Thm 5.3: the least K > M log(2/delta) / (2 eps^2); Thm 5.4: the least K >= M log(2/delta) /
    (2 (eps/3)^2); both at least the union-bound count log(2M/delta) / (2 eps^2)."""
    x = m * math.log(2 / delta) / (2 * eps * eps)
    k = theorem_5_3_samples(m, eps, delta)
    assert k - 1 <= x < k
    k4 = theorem_5_4_samples(m, eps, delta)
    assert k4 - 1 < 9 * x <= k4 * (1 + 1e-12)
    assert k >= math.log(2 * m / delta) / (2 * eps * eps)


def test_algorithm_2_meets_theorem_5_3_accuracy() -> None:
    """Algorithm 2 with Thm 5.3's K on a game with marginals in [0, 1] (v(S) = (|S|/3)^2 + 0.2 [0 in S]
    scaled to [0, 1]): over 60 independent runs, ||psi_hat - psi||_inf >= eps at most delta of the time.
    The count of failures is binomial(60, p <= delta); the test allows delta * 60 plus three of its
    standard deviations (Hoeffding is loose: the failure rate is far below delta in practice)."""
    v = lambda s: ((len(s) / 3) ** 2 + 0.2 * (0 in s)) / 1.2  # noqa: E731
    game = FunctionGame(v, 3)
    exact = exact_shapley(game).values
    eps, delta, runs = 0.2, 0.2, 60
    k = theorem_5_3_samples(3, eps, delta)
    fails = sum(np.max(np.abs(algorithm2(game, k, seed)[0] - exact)) >= eps for seed in range(runs))
    assert fails <= delta * runs + 3 * math.sqrt(delta * (1 - delta) * runs)
    est, se = algorithm2(game, 4000, 7)  # and the estimate is unbiased: within 5 standard errors
    assert np.all(np.abs(est - exact) <= 5 * se)


@given(data_markets(max_sellers=5))
@settings(max_examples=15)
def test_exact_shares_are_the_engines_shapley_values_and_sum_to_one(market: tuple[Streams, Task]) -> None:
    """PD*_A's exact shares are the Shapley values of the gain game (valuation engine, and the subset
    formula by math.fsum) divided by v([M]) - v(empty), so they sum to 1 (Property 3.3)."""
    streams, task = market
    game = CoalitionGame(streams.values, streams.ids, streams.names, task, Learner(), Scorer.of(task, False))
    d = divide(game, streams.values, DivisionSpec(rule="pd_a"), 0)
    m = streams.n_sellers
    tol = 8 * m * 2**m * EPS
    assert np.max(np.abs(d.shapley - exact_shapley(game).values)) <= tol
    assert np.max(np.abs(d.shapley - subset_shapley(d.table))) <= tol  # type: ignore[arg-type]
    if d.grand > 0:
        assert math.fsum(d.shares.tolist()) == pytest.approx(1.0, abs=tol / d.grand)
        assert d.unassigned == pytest.approx(0.0, abs=tol / d.grand)


def test_sampled_pd_a_counts_2mk_calls_and_fits_each_coalition_once() -> None:
    rng = make_rng(0)
    x = rng.standard_normal((50, 4))
    task = Task.split(x.sum(axis=1) + rng.standard_normal(50), 0.3, rng)
    streams = Streams(x, ("a", "b", "c", "d"))
    game = CoalitionGame(x, streams.ids, streams.names, task, Learner(), Scorer.of(task, False))
    d = divide(game, x, DivisionSpec(rule="pd_a", shapley="sampled", eps=0.5, delta=0.5), 3)
    k = theorem_5_3_samples(4, 0.5, 0.5)
    assert d.method == "sampled" and d.samples == k
    assert d.calls == 2 * 4 * k + 2  # plus v([M]) and v(empty) for the scale
    assert d.fits <= 2**4 - 1


def test_pd_b_reports_unassigned_revenue_and_never_renormalises() -> None:
    """Algorithm 3: paid = shares x exp(-lambda sum_{j != m} SM); the rest of the charge is unassigned."""
    rng = make_rng(2)
    f = rng.standard_normal(80)
    x = np.column_stack(
        [f + 0.3 * rng.standard_normal(80), f + 0.3 * rng.standard_normal(80), rng.standard_normal(80)]
    )
    task = Task.split(x.sum(axis=1) + rng.standard_normal(80), 0.3, rng)
    streams = Streams(x, ("a", "b", "c"))
    game = CoalitionGame(x, streams.ids, streams.names, task, Learner(), Scorer.of(task, False))
    d = divide(game, x, DivisionSpec(rule="pd_b"), 0)
    sm = similarity_matrix(x, streams.ids, "cosine")
    penalty = np.exp(-math.log(2) * (sm.sum(axis=1) - 1))
    assert np.allclose(d.paid, d.shares * penalty, rtol=0, atol=8 * EPS)
    assert math.fsum(d.paid.tolist()) < 1 - 0.1
    assert d.unassigned == pytest.approx(1 - math.fsum(d.paid.tolist()), abs=4 * EPS)
    assert d.payments(2.0).sum() + 2.0 * d.unassigned == pytest.approx(2.0, abs=16 * EPS)


def test_cosine_and_pearson_break_the_triangle_inequality_of_definition_4_1() -> None:
    """The paper's weakness: 1 - SM is not a metric for |cos| (Ex. 4.3): streams at 0, 45 and 90 degrees
    give 1 - SM(0, 90) = 1 > (1 - SM(0, 45)) + (1 - SM(45, 90)) = 0.586; centred, |Pearson| likewise. Both
    score a scaled copy 1 (Def. 4.1 asks for 1 iff equal)."""
    u = np.array([1.0, -1.0, 0.0, 0.0])  # centred vectors, orthonormal up to scale
    w = np.array([0.0, 0.0, 1.0, -1.0])
    x = np.column_stack([u, (u + w) / math.sqrt(2), w, 3 * u])
    ids = ("0", "45", "90", "scaled")
    for kind in ("cosine", "pearson"):
        sm = similarity_matrix(x, ids, kind)  # type: ignore[arg-type]
        assert (1 - sm[0, 1]) + (1 - sm[1, 2]) == pytest.approx(2 - math.sqrt(2), abs=1e-12)
        assert 1 - sm[0, 2] == pytest.approx(1.0, abs=1e-12)
        assert sm[0, 3] == pytest.approx(1.0, abs=1e-12)


def test_cosine_penalises_independent_positive_streams() -> None:
    """The paper's weakness: independent streams uniform on [0, 1] have |cos| -> E[xy] / E[x^2] = 3/4,
    so honest sellers of positive series are penalised; their centred |Pearson| -> 0. With T = 20,000 the
    standard deviation of either statistic is below 0.01 (delta method), so 0.05 is five of them."""
    x = make_rng(4).random((20_000, 2))
    cos = similarity_matrix(x, ("a", "b"), "cosine")[0, 1]
    pearson = similarity_matrix(x, ("a", "b"), "pearson")[0, 1]
    assert cos == pytest.approx(0.75, abs=0.05)
    assert pearson == pytest.approx(0.0, abs=0.05)


def test_an_offset_copy_evades_the_cosine_penalty_but_not_pearson() -> None:
    """The paper's weakness: a copier adding 10 to a centred stream (sd 1) drops |cos| to about
    1/sqrt(101) = 0.0995, while a linear model with an intercept predicts exactly as with the original;
    under |cos| the copier then keeps most of its PD*_B share, under |Pearson| (= 1) it does not."""
    rng = make_rng(5)
    f = rng.standard_normal(400)
    f = (f - f.mean()) / f.std()
    y = f + 0.5 * rng.standard_normal(400)
    task = Task.split(y, 0.3, rng)
    streams = Streams(np.column_stack([f, rng.standard_normal(400)]), ("A", "B")).with_stream(
        "A_offset", f + 10
    )
    assert similarity_matrix(streams.values, streams.ids, "cosine")[0, 2] == pytest.approx(
        1 / math.sqrt(101), abs=1e-9
    )
    assert similarity_matrix(streams.values, streams.ids, "pearson")[0, 2] == pytest.approx(1.0, abs=1e-12)
    lr = Learner()
    x_tr, x_te = streams.values[~task.test], streams.values[task.test]
    same = lr.fit_predict(x_tr[:, [0]], y[~task.test], x_te[:, [0]])
    shifted = lr.fit_predict(x_tr[:, [2]], y[~task.test], x_te[:, [2]])
    assert np.allclose(same, shifted, rtol=0, atol=1e-9)
    base = Streams(streams.values[:, :2], ("A", "B"))
    totals = {}
    for kind in ("cosine", "pearson"):
        spec = DivisionSpec(similarity=kind)  # type: ignore[arg-type]
        exact_copy = replication_sweep(base, task, "A", 1, rules=("pd_b",), division=spec).point("pd_b", 1)
        game = CoalitionGame(streams.values, streams.ids, streams.names, task, lr, Scorer.of(task, False))
        offset = divide(game, streams.values, spec, 0).paid
        totals[kind] = (exact_copy.total("A"), offset[0] + offset[2])
    # |cos|: the offset copy keeps nearly all of the pair's pay (penalty 2^-0.0995), an exact copy half
    assert totals["cosine"][1] > 1.7 * totals["cosine"][0]
    # |Pearson|: the offset copy is penalised as an exact copy (the collinear fit predicts the same)
    assert totals["pearson"][1] == pytest.approx(totals["pearson"][0], abs=1e-6)
