"""AF* and RF* (Agarwal, Dahleh, Sarkar, Sec. 4.1, eq. 3, Thm 5.1): the gain curve, the charge, truthfulness.

Tolerances: a charge or utility is a sum of at most ``K + 2`` products of magnitude at most ``max_bid``;
its rounding is below ``4 (K + 2) eps max(1, max_bid)`` (``utility_tol``). The brute-force integral is a
midpoint sum over ``n`` cells of a step function with at most ``K + 1`` jumps of height at most 1: each
jump misplaces at most one cell, so its error is at most ``(K + 1) b / n``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad

from datamarket.mechanisms.realtime_market import (
    Allocation,
    ClosedFormCurve,
    Degrader,
    GainCurve,
    Learner,
    Scorer,
    Streams,
    Task,
    measure_curve,
    truthfulness_check,
)
from tests.mechanisms.realtime_market.strategies import CurveCase, data_markets, gain_curves, seeds

EPS = np.finfo(float).eps


def utility_tol(levels: int, max_bid: float) -> float:
    return 4 * (levels + 2) * EPS * max(1.0, max_bid)


@given(st.floats(0.05, 1.0), st.floats(0.0, 1.0))
def test_closed_form_charge_is_the_myerson_integral(p: float, b: float) -> None:
    """h_p(b) = min(b/p, 1): RF* = b^2/(2p) below the price, p/2 above, = b h(b) - int_0^b h by QUADPACK
    (integrated on [0, min(b, p)] and [p, b] separately, so quad never straddles the kink)."""
    curve = ClosedFormCurve()
    h = lambda z: min(z / p, 1.0)  # noqa: E731
    integral = quad(h, 0, min(b, p), epsabs=1e-14)[0] + (max(b - p, 0.0))
    expected = b * b / (2 * p) if b < p else p / 2
    assert curve.payment([p], b)[0] == pytest.approx(expected, abs=1e-15)
    assert curve.payment([p], b)[0] == pytest.approx(b * h(b) - integral, abs=1e-13)


@given(gain_curves(), st.floats(0.0, 1.0))
@settings(max_examples=20)
def test_step_charge_is_the_integral_of_the_gain_curve(case: CurveCase, frac: float) -> None:
    """RF* summed jump by jump equals b h(b) - int_0^b h by a brute-force midpoint sum (bound above)."""
    curve, bid = case.curve, frac * case.max_bid
    assert isinstance(curve, GainCurve)
    n = 20_000
    z = (np.arange(n) + 0.5) * bid / n
    h = np.array([curve.gain([case.price], float(zi))[0] for zi in z[:: n // 200]])  # coarse pass for speed
    tau, delta = curve.steps([case.price])
    fine = (tau[0][None, :] <= z[:, None]).astype(float) @ delta
    brute = bid * curve.gain([case.price], bid)[0] - fine.sum() * bid / n
    assert h.size and np.all(np.diff(h) >= -utility_tol(curve.grid.size, case.max_bid))
    bound = curve.grid.size * bid / n + utility_tol(curve.grid.size, case.max_bid)
    assert abs(curve.payment([case.price], bid)[0] - brute) <= bound


@given(gain_curves())
@settings(max_examples=30)
def test_rf_star_is_truthful_on_random_markets(case: CurveCase) -> None:
    """Thm 5.1: with the monotone curve, U(mu) >= U(b) for every bid of a grid, every threshold of h
    (the certificate's truthfulness check, which must pass)."""
    probe = [("buyer", case.curve, case.price, case.value)]
    check = truthfulness_check(probe, case.max_bid, case.curve.grid.size)  # type: ignore[attr-defined]
    assert check.passed, check.detail
    u = case.curve.utility(case.price, case.value, [case.value])[0]  # type: ignore[attr-defined]
    assert u >= -utility_tol(50, case.max_bid)  # individually rational
    assert case.curve.payment([case.price], 0.0)[0] == 0.0  # type: ignore[attr-defined]  # a zero bid pays 0


@given(gain_curves(), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
@settings(max_examples=20)
def test_gain_curve_is_monotone_and_the_charge_capped(case: CurveCase, f1: float, f2: float) -> None:
    """Assumption 1: h non-decreasing in the bid; bids at or above the price all pay the same capped
    charge p h(p) - int_0^p h (the steps lie in [0, p])."""
    curve = case.curve
    assert isinstance(curve, GainCurve)
    lo, hi = sorted((f1 * case.max_bid, f2 * case.max_bid))
    assert curve.gain([case.price], lo)[0] <= curve.gain([case.price], hi)[0]
    at_p = curve.payment([case.price], case.price)[0]
    assert curve.payment([case.price], case.price + hi)[0] == at_p
    assert 0.0 <= at_p <= case.price * curve.gain([case.price], case.price)[0] + utility_tol(50, case.max_bid)


def test_a_non_monotone_curve_breaks_truthfulness() -> None:
    """Without the running maximum (the paper's rule with a random h) a buyer can gain by misreporting:
    the gain falls from 0.5 to 0.2 at the bid 0.6, where the Myerson charge refunds 0.3 x 0.6, so a buyer
    of value 0.55 gains 0.3 x 0.05 by bidding 0.6."""
    grid = Allocation(form="mask", levels=3).grid(1.0)  # kept fractions 0, 1/3, 2/3, 1
    gains = np.array([0.0, 0.5, 0.2, 0.6])
    raw = GainCurve(Allocation(form="mask", levels=3, monotone=False), grid, gains)
    fixed = GainCurve(Allocation(form="mask", levels=3, monotone=True), grid, gains)
    probes = [("buyer", raw, 0.9, 0.55)]  # thresholds 0, 0.3, 0.6, 0.9
    assert not truthfulness_check(probes, 1.0, 3).passed
    assert truthfulness_check([("buyer", fixed, 0.9, 0.55)], 1.0, 3).passed
    gain = raw.utility(0.9, 0.55, [0.6])[0] - raw.utility(0.9, 0.55, [0.55])[0]
    assert gain == pytest.approx(0.3 * 0.05, abs=utility_tol(3, 1.0))


@given(data_markets(), seeds, st.sampled_from(["noise", "mask"]))
@settings(max_examples=15)
def test_common_random_numbers_keep_copies_identical(
    market: tuple[Streams, Task], seed: int, form: str
) -> None:
    """One draw per content: a copy degrades exactly like its original at every level, and the clean
    level (noise multiplier 0, or every bit kept) is the data untouched."""
    streams, _ = market
    copied = streams.with_copies(streams.names[0], 2)
    alloc = Allocation(form=form)  # type: ignore[arg-type]
    degrader = Degrader(copied, alloc, seed)
    for level in alloc.grid(1.5):
        x = degrader.apply(float(level))
        assert np.array_equal(x[:, 0], x[:, -1]) and np.array_equal(x[:, 0], x[:, -2])
    assert np.array_equal(degrader.apply(0.0 if form == "noise" else 1.0), copied.values)


def test_delivered_level_at_or_above_the_price() -> None:
    """b >= p affords every level: the paper's rule delivers the clean data; the monotone rule the best
    scoring level (the clean one unless noise happened to help on the test rows)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((80, 3))
    task = Task.split(x @ [1.0, -1.0, 0.5] + 0.2 * rng.standard_normal(80), 0.3, rng)
    streams = Streams(x, ("a", "b", "c"))
    scorer = Scorer.of(task, False)
    raw, _ = measure_curve(streams, task, Learner(), scorer, Allocation(monotone=False), 1.0, 7)
    best, _ = measure_curve(streams, task, Learner(), scorer, Allocation(), 1.0, 7)
    assert raw.level(0.5, 0.7) == raw.grid.size - 1
    assert best.gains[best.level(0.5, 0.7)] == best.gains.max()
    assert raw.gains[-1] == best.gains[-1] > raw.gains[0]
