"""Exact Shapley-Nash model of Chaintreau et al. (seller payoff (49)/(53), exact symmetric and asymmetric
equilibria, Example A.1): reference numbers,
global best response vs dense grids, symmetric closed form vs equilibrium search."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

from datamarket.learning.curves import LearningCurve
from datamarket.mechanisms.balanced_market import (
    BalancedMarket,
    Terms,
    best_response,
    coalitions_of,
    find_equilibria,
    payoff,
    regrets,
    shapley_payment,
    solve_baseline,
    symmetric_shapley_quantity,
)
from datamarket.valuation import FunctionGame, exact_shapley
from tests.strategies import heterogeneous_balanced_markets, learning_curves


def quasi(rho: float, curve=(1.0, 1.0, 1.0)) -> Terms:
    return Terms(np.array([rho]), np.array(1.0), *map(np.array, curve))


QUINTIC = Terms(
    np.array([1.0, 1.0]), np.array(1.0), np.array([5.0, 5.0]), np.array([1 / 3, 1 / 4]), np.array([3.0, 4.0])
)


def test_quintic_example_a1_root_to_1e9() -> None:
    """Example A.1: x* solves x^5 - x - 1 = 0 (van der Waerden's quintic), via (42)."""
    br = best_response(coalitions_of([]), 1.0, QUINTIC)
    roots = np.roots([1, 0, 0, 0, -1, -1])
    real = float(roots[np.abs(roots.imag) < 1e-12].real.max())
    assert abs(br.quantity - real) < 1e-9
    assert abs(br.quantity - 1.1673039782614) < 1e-9
    assert br.payoff == pytest.approx(8.4884778004, abs=1e-9)
    assert QUINTIC.value(br.quantity) == pytest.approx(9.6557817787, abs=1e-9)


def test_reference_equilibria_of_the_sellers_game() -> None:
    eq = find_equilibria([1.0, 2.0], quasi(10.0))
    assert len(eq.profiles) == 1  # the full-support FOC point (2.6147, 1.6994) is not an NE
    np.testing.assert_allclose(eq.selected, [np.sqrt(10.0), 0.0], atol=1e-8)
    assert regrets(np.array([2.6147, 1.6994]), np.array([1.0, 2.0]), quasi(10.0)).max() > 0.5
    eq = find_equilibria([0.8, 1.0, 1.5], quasi(10.0))
    np.testing.assert_allclose(eq.selected, [2.83504844, 2.46619210, 0.0], atol=1e-8)
    pays = [
        shapley_payment(eq.selected[j], coalitions_of(np.delete(eq.selected, j)), quasi(10.0))
        for j in range(3)
    ]
    np.testing.assert_allclose(pays, [4.32060333, 3.79304575, 0.0], atol=1e-8)


def test_reference_heterogeneous_buyers() -> None:
    eq = find_equilibria([1.0, 1.0, 1.0], QUINTIC)
    np.testing.assert_allclose(eq.selected, [0.9248016776] * 3, atol=1e-9)
    x = eq.selected
    pay = shapley_payment(x[0], coalitions_of(x[1:]), QUINTIC)
    assert pay == pytest.approx(3.3267239057, abs=1e-9)
    np.testing.assert_allclose(
        find_equilibria([1.0, 2.0], QUINTIC).selected, [1.0142355196, 0.8637389701], atol=1e-9
    )
    eq2 = find_equilibria([1.0, 1.0], QUINTIC)
    np.testing.assert_allclose(eq2.selected, [1.0102518951] * 2, atol=1e-9)
    assert eq2.payoffs[0][0] == pytest.approx(3.9620424245, abs=1e-9)


def test_paper_lemma_4_1_is_not_a_nash_equilibrium_for_m_ge_2() -> None:
    """Lemma 4.1 is not a Nash equilibrium for M >= 2: best response to the paper's quantity
    (Z=a=b=rho=1, kappa=0.075)."""
    for m, x_paper, br_ref in ((2, 1.825742, 3.045028), (3, 1.217161, 2.807510)):
        market = BalancedMarket.quasi_symmetric([[1.0]], [0.075], (1, 1, 1), n_sellers=m)
        x = solve_baseline(market, "paper").production[:, 0]
        assert x[0] == pytest.approx(x_paper, abs=1e-6)
        br = best_response(coalitions_of(x[1:]), 0.075, quasi(1.0))
        assert br.quantity == pytest.approx(br_ref, abs=1e-6)
    for m, y in ((2, 2.88675135), (3, 2.45954929), (5, 1.97559180)):
        eq = find_equilibria([0.075] * m, quasi(1.0))
        np.testing.assert_allclose(eq.selected, y, atol=1e-8)


def test_monopoly_band_of_asymmetric_equilibria() -> None:
    """(X_paper, 0) is an NE iff 0.173081441 <= kappa <= 0.25 (Z=a=b=rho=1), independent of M."""

    def is_ne(kappa: float, m: int) -> bool:
        x = np.zeros(m)
        x[0] = np.sqrt(1.0 / kappa)
        return regrets(x, np.full(m, kappa), quasi(1.0)).max() <= 1e-10

    for m in (2, 3):
        assert not is_ne(0.1730, m) and is_ne(0.1732, m) and is_ne(0.2499, m)
    assert not is_ne(0.2501, 2)


@settings(max_examples=25)
@given(
    curves=st.lists(learning_curves(), min_size=1, max_size=3),
    others=st.lists(st.floats(0.0, 4.0), min_size=0, max_size=3),
    cost=st.floats(0.01, 1.0),
)
def test_global_best_response_beats_dense_grid(curves, others, cost) -> None:
    """Breakpoint enumeration vs a dense grid (differential test): the breakpoints are never beaten."""
    arr = np.array(curves)
    terms = Terms(np.ones(len(curves)), np.array(1.0), arr[:, 0], arr[:, 1], arr[:, 2])
    coal = coalitions_of(others)
    br = best_response(coal, cost, terms)
    hi = max(4.0 * br.quantity, 10.0 * terms.knots.max(), 1.0)
    grid = np.linspace(0.0, hi, 4001)
    gains = terms.value(coal.sums[:, None] + grid[None, :]) - terms.value(coal.sums)[:, None]
    best_grid = float(np.max(coal.weights @ gains - cost * grid))
    assert payoff(grid[7], coal, cost, terms) == pytest.approx(float((coal.weights @ gains - cost * grid)[7]))
    assert br.payoff >= best_grid - 1e-10
    assert br.payoff >= 0.0  # producing nothing is always available


@settings(max_examples=10)
@given(curve=learning_curves(), m=st.integers(2, 4), rho=st.floats(0.5, 5.0), frac=st.floats(0.05, 0.95))
def test_symmetric_shapley_closed_form_matches_equilibrium_search(curve, m, rho, frac) -> None:
    """Exact symmetric equilibrium: y_S = [rho a b H_M/(M kappa)]^(1/(b+1)) exists iff kappa <= rho c(K)."""
    c = LearningCurve(*curve)
    h = np.sum(np.arange(1, m + 1, dtype=float) ** (-(c.beta + 1)))
    kappa = frac * rho * c.c_k(m**c.beta * h)
    y = symmetric_shapley_quantity(rho, kappa, c, m)
    assert y > c.ante / m  # M y_S > n0 (the per-seller profit is >= 0 at the threshold)
    x = np.full(m, y)
    scale = max(1.0, rho * c.Z)
    assert regrets(x, np.full(m, kappa), quasi(rho, curve)).max() <= 1e-9 * scale
    eq = find_equilibria(np.full(m, kappa), quasi(rho, curve))
    np.testing.assert_allclose(eq.selected, y, rtol=1e-8)


def test_symmetric_threshold_c_k_by_bisection() -> None:
    """c(K) (exact symmetric equilibrium) is where the symmetric profile's per-seller profit crosses zero."""
    for curve, m, ref in (
        ((1, 1, 1), 2, 0.204081633),
        ((1, 1, 1), 3, 0.158022037),
        ((0.9, 2, 0.5), 2, 0.023269356),
    ):
        c = LearningCurve(*curve)
        h = np.sum(np.arange(1, m + 1, dtype=float) ** (-(c.beta + 1)))

        def profit(k, c=c, h=h, m=m):
            y = (c.alpha * c.beta * h / (m * k)) ** (1 / (c.beta + 1))
            return (c(m * y) - k * m * y) / m

        assert brentq(profit, 1e-4, 1.0, xtol=1e-14) == pytest.approx(ref, abs=1e-9)
        assert c.c_k(m**c.beta * h) == pytest.approx(ref, abs=1e-9)


@settings(max_examples=20)
@given(
    x=st.lists(st.floats(0.0, 5.0), min_size=1, max_size=5),
    curves=st.lists(learning_curves(), min_size=1, max_size=3),
)
def test_structured_shapley_matches_valuation_engine(x, curves) -> None:
    """Grouped-coalition Shapley payments equal exact_shapley of the revenue game, and are efficient."""
    arr = np.array(curves)
    terms = Terms(np.full(len(curves), 1.3), np.array(1.0), arr[:, 0], arr[:, 1], arr[:, 2])
    x = np.array(x)
    x[len(x) // 2 :] = x[0]  # repeated quantities exercise the grouping
    pays = np.array([shapley_payment(x[j], coalitions_of(np.delete(x, j)), terms) for j in range(x.size)])
    game = FunctionGame(lambda s: float(terms.value(x[list(s)].sum())) if s else 0.0, x.size)
    np.testing.assert_allclose(pays, exact_shapley(game).values, atol=1e-12)
    assert pays.sum() == pytest.approx(float(terms.value(x.sum())), abs=1e-12)


@settings(max_examples=12)
@given(d=heterogeneous_balanced_markets())
def test_selected_equilibria_are_nash_and_ir_in_general_markets(d) -> None:
    """Equilibrium search: every returned profile passes the global best-response check; sellers are IR; the
    Shapley division is efficient (revenue == payments)."""
    from datamarket.mechanisms.balanced_market import group_terms, intervention_terms, solve_intervention

    m = BalancedMarket(**d)
    tol = 1e-9
    for sol in (solve_baseline(m, "shapley_nash"), solve_intervention(m, "shapley_nash")):
        assert sol.payments.sum() == pytest.approx(sol.revenue.sum(), rel=1e-10, abs=1e-12)
        assert np.all(sol.utilities.sellers >= -1e-9)
        if sol.scenario == "baseline":
            for g in range(m.shape[2]):
                terms = group_terms(m, sol.prices, g)
                reg = regrets(sol.production[:, g], m.costs[:, g], terms).max()
                assert reg <= tol * max(1.0, sol.revenue.sum())
        else:
            n = sol.production.sum(axis=1)
            terms = intervention_terms(m, sol.prices, m.gamma)
            assert regrets(n, m.costs @ m.gamma, terms).max() <= tol * max(1.0, sol.revenue.sum())
