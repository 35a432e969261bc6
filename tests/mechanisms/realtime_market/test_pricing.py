"""PF*, Algorithm 1 (Agarwal, Dahleh, Sarkar, Thm 5.2): the net, the tuning, the regret bound, the
closed-form market.

The regret bound checked is the multiplicative-weights inequality Thm 5.2 rests on (Arora, Hazan, Kale,
Thm 2.1): for gains in [0, 1] and delta <= 1/2, the expected regret against every net price is at most
``delta sum_n g_n(c) + ln|C| / delta``, for any sequence of bids. The closed-form market
(h_p(b) = min(b/p, 1), values uniform on [0, 1]) has expected charge R(p) = p/2 - p^2/3 at a fixed
price: p* = 3/4, R* = 3/16.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datamarket.core.random import make_rng, spawn_seeds
from datamarket.mechanisms.realtime_market import (
    ClosedFormCurve,
    Pricer,
    algorithm1_parameters,
    closed_form_best,
    closed_form_revenue,
    epsilon_net,
    regret_check,
    run_closed_form,
)

EPS = np.finfo(float).eps


@given(st.floats(0.1, 10.0), st.floats(0.01, 2.0))
def test_epsilon_net_is_a_minimal_cover(b_max: float, eps: float) -> None:
    """Every bid of [0, B_max] lies within eps of a centre, and no eps-net of an interval of length B_max
    has fewer than B_max / (2 eps) points."""
    net = epsilon_net(b_max, eps)
    grid = np.linspace(0, b_max, 2001)
    assert np.abs(grid[:, None] - net[None, :]).min(axis=1).max() <= eps * (1 + 1e-12)
    assert net.size == max(1, math.ceil(b_max / (2 * eps) - 1e-12))
    assert np.all((net > 0) & (net <= b_max))


@given(st.integers(1, 10**6), st.floats(0.5, 5.0), st.floats(0.1, 4.0))
def test_algorithm1_tuning_follows_theorem_5_2(n: int, b_max: float, lip: float) -> None:
    eps, net, delta = algorithm1_parameters(n, b_max, lip)
    assert eps == pytest.approx(1 / (lip * math.sqrt(n)))
    assert delta == pytest.approx(min(0.5, math.sqrt(math.log(net.size) / n)))


def _adversarial_bids(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "uniform":
        return rng.random(n)
    if kind == "alternating":  # switches between a low and a high bidder every few buyers
        return np.where((np.arange(n) // 7) % 2 == 0, 0.1, 1.0)
    return np.sort(rng.random(n))[::-1]  # values drifting down: the best price moves


@given(
    st.sampled_from(["uniform", "alternating", "drifting"]),
    st.integers(1, 400),
    st.booleans(),
    st.integers(0, 99),
)
@settings(max_examples=25)
def test_regret_bound_holds_whatever_the_bids(kind: str, n: int, doubling: bool, seed: int) -> None:
    """The multiplicative-weights bound holds epoch by epoch on adversarial sequences, known N or the
    doubling trick (epochs of 1, 2, 4, ... buyers with fresh weights)."""
    rng = make_rng(seed)
    bids = _adversarial_bids(kind, n, rng)
    pricer = Pricer(1.0, 0.5, None if doubling else n, rng, np.linspace(0, 1, 101)[1:])
    curve = ClosedFormCurve()
    for b in bids:
        pricer.post()
        pricer.observe(lambda prices, b=float(b): curve.payment(prices, b))  # type: ignore[misc]
    check = regret_check(pricer.trace)
    assert check.passed, check.detail
    if doubling:
        sizes = [e.stop - e.start for e in pricer.trace.epochs]
        assert sizes[:-1] == [2**j for j in range(len(sizes) - 1)] and sizes[-1] <= 2 ** (len(sizes) - 1)


def test_the_regret_check_can_fail() -> None:
    """A trace whose expected charges fall short of the bound (as a wrong update would) fails the check."""
    rng = make_rng(0)
    pricer = Pricer(1.0, 0.5, 200, rng)
    curve = ClosedFormCurve()
    for b in rng.random(200):
        pricer.post()
        pricer.observe(lambda prices, b=float(b): curve.payment(prices, b))  # type: ignore[misc]
    trace = pricer.trace
    trace.expected_charge = [0.0] * trace.n  # as if the algorithm had posted useless prices
    assert not regret_check(trace).passed


def test_log_space_weights_do_not_overflow() -> None:
    """10^4 updates of the largest gain at delta = 1/2 multiply a weight by 1.5^10000 (about 10^1761):
    the log-space weights still give a finite distribution."""
    pricer = Pricer(1.0, 1.0, 1, make_rng(0))
    pricer.post()
    pricer.observe(lambda prices: np.ones_like(prices))
    e = pricer.trace.epochs[0]
    e.delta = 0.5
    for _ in range(10_000):
        e.log_w += np.log1p(e.delta * np.linspace(0, 1, e.net.size))
    p = e.probabilities()
    assert np.all(np.isfinite(p)) and p.sum() == pytest.approx(1.0) and p.argmax() == e.net.size - 1


def test_closed_form_best_price_in_hindsight_is_exact() -> None:
    """The maximum of sum_n RF*(p, b_n) over p lies at a bid or B_max: the exact search agrees with a
    fine grid (which can only be lower) to within the grid's Lipschitz error N L step."""
    bids = make_rng(1).random(300)
    _, total = closed_form_best(bids, 1.0)
    grid = np.linspace(1e-6, 1.0, 20001)
    curve = ClosedFormCurve()
    totals = sum(curve.payment(grid, float(b)) for b in bids)
    assert totals.max() <= total + 1e-12
    assert total - totals.max() <= bids.size * 0.5 * (grid[1] - grid[0])
    assert closed_form_revenue(0.75) == pytest.approx(3 / 16)


def test_closed_form_market_learns_the_price_three_quarters() -> None:
    """Values uniform on [0, 1], h_p(b) = min(b/p, 1), N = 10^2, 10^3, 10^4, three runs each:

    * the average regret is within Thm 5.2's bound (the multiplicative-weights term plus the net's
      discretisation L eps per buyer) and falls at least twofold from N = 10^2 to 10^4 (the bound's rate
      sqrt(log N / N) falls sevenfold);
    * at N = 10^4 the mean price of the final weights is within one net spacing (0.04) of 3/4;
    * the revenue per buyer is 3/16 up to the regret bound and four standard errors of the charge at 3/4.
    """
    regret: dict[int, list[float]] = {}
    for n in (100, 1000, 10_000):
        for s in spawn_seeds(11, 3):
            run = run_closed_form(make_rng(s).random(n), lipschitz=0.5, seed=int(s.generate_state(1)[0]))
            e = run.pricing.epochs[0]
            bound = e.ahk_bound(1.0) / n + 0.5 * e.eps
            assert 0 <= run.average_regret <= bound
            regret.setdefault(n, []).append(run.average_regret)
            if n == 10_000:
                spacing = e.net[1] - e.net[0]
                assert abs(run.pricing.learned_price() - 0.75) <= spacing
                sd = float(np.std(_charges_at(run.values)))
                revenue = float(np.mean(run.pricing.expected_charge))
                assert 3 / 16 - bound - 4 * sd / math.sqrt(n) <= revenue <= 3 / 16 + 4 * sd / math.sqrt(n)
    assert np.mean(regret[10_000]) <= np.mean(regret[100]) / 2


def _charges_at(values: np.ndarray, price: float = 0.75) -> np.ndarray:
    """Each buyer's charge RF*(3/4, mu_n) (the spread behind the revenue's standard error)."""
    return np.where(values < price, values**2 / (2 * price), price / 2)
