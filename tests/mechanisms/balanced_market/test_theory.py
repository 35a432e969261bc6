"""Chaintreau et al.'s theorems (as corrected on the errata page) as property tests over quasi-symmetric
markets,
and closed forms vs numerical optimisation."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq, minimize_scalar

from datamarket.core.errors import InvalidMarketError
from datamarket.learning.curves import LearningCurve, curve_derivative
from datamarket.mechanisms.balanced_market import (
    BalancedMarket,
    backfire_market,
    backfires,
    growth_sequence,
    paper,
    reserve_prices,
    solve_baseline,
    solve_intervention,
    utility_ratios,
)
from tests.strategies import learning_curves, quasi_symmetric_markets, simplex_points


def build(d, gamma=None, kappa=None, n_sellers=None) -> BalancedMarket:
    return BalancedMarket.quasi_symmetric(
        d["values"],
        d["kappa"] if kappa is None else kappa,
        d["curve"],
        n_sellers=d["n_sellers"] if n_sellers is None else n_sellers,
        gamma=d["gamma"] if gamma is None else gamma,
    )


def near_edge(kappa, tau, rel=1e-6) -> bool:
    return bool(np.any(np.abs(np.asarray(kappa) - np.asarray(tau)) <= rel * np.maximum(np.abs(tau), 1e-300)))


# -- learning curve (Def 3.3) ------------------------------------------------------------------------
@given(curve=learning_curves())
def test_c_g_printed_equals_simplified_and_is_max_ratio(curve) -> None:
    """eq. (19) as printed == simplified form == max_n G(n)/n."""
    c = LearningCurve(*curve)
    assert c.c_g_printed() == pytest.approx(c.c_g, rel=1e-12)
    res = minimize_scalar(
        lambda n: -c(n) / n, bounds=(c.ante, 50 * c.ante + 50), method="bounded", options={"xatol": 1e-12}
    )
    assert -res.fun == pytest.approx(c.c_g, rel=1e-7)
    # derivative vs central difference above the ante
    n = 2.0 * c.ante + 0.3
    fd = (c(n + 1e-6) - c(n - 1e-6)) / 2e-6
    assert float(curve_derivative(n, *curve)) == pytest.approx(fd, rel=1e-5)
    # exact: below the learning ante the curve is clipped to 0 by (x)_+
    assert c(c.ante) == pytest.approx(0.0, abs=1e-12) and c(0.0) == 0.0 and c(0.5 * c.ante) == 0.0


def test_c_g_reference_values() -> None:
    for curve, ref in (((1, 1, 1), 0.25), ((0.9, 2, 0.5), 0.027), ((5, 1 / 3, 3), 5.82606)):
        assert LearningCurve(*curve).c_g == pytest.approx(ref, rel=1e-5)


# -- reserve prices (Fact 4.2) ------------------------------------------------------------------------
@given(values=st.lists(st.floats(0.0, 10.0), min_size=1, max_size=8))
def test_reserve_price_maximises_rho_over_a_grid(values) -> None:
    mu = np.array(values)[:, None]
    p, rho = reserve_prices(mu)
    grid = np.linspace(1e-6, 10.0, 2001)
    best = max(q * np.sum(mu[:, 0] >= q) for q in grid)
    assert rho[0] >= best - 1e-9
    if rho[0] > 0:
        assert rho[0] == pytest.approx(p[0] * np.sum(mu[:, 0] >= p[0]))


# -- Section 4.1: baseline ----------------------------------------------------------------------------
@given(d=quasi_symmetric_markets())
def test_theorem_4_1_and_claim_4_1(d) -> None:
    """X_g maximises the joint profit rho G(X) - kappa X; forms iff kappa_g <= tau_g = rho_g c_G."""
    m = build(d)
    c = m.curve
    _, rho = reserve_prices(m.values)
    tau = rho * c.c_g
    assume(not near_edge(d["kappa"], tau))
    sol = solve_baseline(m, "paper")
    for g in range(rho.size):
        res = minimize_scalar(
            lambda x, g=g: -(rho[g] * c(x) - d["kappa"][g] * x),
            bounds=(c.ante, 1e4 * (1 + c.ante)),
            method="bounded",
            options={"xatol": 1e-10},
        )
        joint_max = max(-res.fun, 0.0)
        forms = d["kappa"][g] <= tau[g]
        assert (sol.total[g] > 0) == forms
        if forms:
            assert rho[g] * c(sol.total[g]) - d["kappa"][g] * sol.total[g] >= joint_max - 1e-7 * (
                1 + joint_max
            )
            assert sol.total[g] > c.ante  # Fact A.2
    np.testing.assert_allclose(sol.production, np.tile(sol.total / m.shape[0], (m.shape[0], 1)))


@given(d=quasi_symmetric_markets())
def test_corollary_4_1_demographics_and_closed_form_utilities(d) -> None:
    m = build(d)
    _, rho = reserve_prices(m.values)
    sol = solve_baseline(m, "paper")
    assume(sol.forms)
    dem = paper.baseline_demographics(rho, d["kappa"], m.curve)
    np.testing.assert_allclose(sol.total / sol.total.sum(), dem, rtol=1e-9, atol=1e-12)
    w, v = paper.baseline_utilities_closed_form(rho, d["kappa"], m.curve, m.shape[0])
    assert sol.utilities.marketplace == pytest.approx(w, rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(sol.utilities.sellers, v, rtol=1e-8, atol=1e-10)
    # Shapley division efficiency: payments add up to the revenue (strong budget balance)
    assert sol.payments.sum() == pytest.approx(sol.revenue.sum(), rel=1e-12, abs=1e-12)


@settings(max_examples=15)
@given(d=quasi_symmetric_markets(max_groups=2, max_buyers=3))
def test_paper_and_shapley_nash_agree_at_m_1(d) -> None:
    """Lemma 4.1 is exact for M = 1, in both scenarios."""
    m = build(d, n_sellers=1)
    _, rho = reserve_prices(m.values)
    assume(not near_edge(d["kappa"], rho * m.curve.c_g, 1e-5))
    assume(not near_edge(d["kappa"] @ d["gamma"], paper.max_tau(rho, d["gamma"], m.curve), 1e-5))
    b_p, b_s = solve_baseline(m, "paper"), solve_baseline(m, "shapley_nash")
    np.testing.assert_allclose(b_s.production, b_p.production, rtol=1e-8, atol=1e-10)
    i_p, i_s = solve_intervention(m, "paper"), solve_intervention(m, "shapley_nash")
    np.testing.assert_allclose(i_s.production, i_p.production, rtol=1e-7, atol=1e-9)
    assert i_s.utilities.marketplace == pytest.approx(i_p.utilities.marketplace, rel=1e-7, abs=1e-9)


# -- Section 4.2: intervention ------------------------------------------------------------------------
def profit_grid_max(rho, gamma, kappa, c) -> float:
    grid = np.geomspace(1e-3, 1e5, 20001)
    vals = np.array([paper.intervention_profit(n, rho, gamma, kappa, c) for n in grid[::10]])
    i = int(np.argmax(vals))
    lo, hi = grid[::10][max(i - 1, 0)], grid[::10][min(i + 1, vals.size - 1)]
    res = minimize_scalar(
        lambda n: -paper.intervention_profit(n, rho, gamma, kappa, c),
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": 1e-12},
    )
    return max(-res.fun, float(vals.max()))


@settings(max_examples=25)
@given(d=quasi_symmetric_markets())
def test_lemma_4_2_solver_matches_numerical_maximisation(d) -> None:
    """The intervention solver picks the global maximiser of Pi_gamma(N); forms iff
    kappa'gamma <= max_H tau_H."""
    m = build(d)
    c = m.curve
    _, rho = reserve_prices(m.values)
    gamma, kappa = d["gamma"], d["kappa"]
    top = paper.max_tau(rho, gamma, c)
    assume(not near_edge(kappa @ gamma, top, 1e-5))
    sol = paper.solve_intervention(rho, gamma, kappa, c)
    best = profit_grid_max(rho, gamma, kappa, c)
    assert sol.forms == (kappa @ gamma <= top) == (best > 0)
    if sol.forms:
        assert sol.profit >= best - 1e-7 * (1 + abs(best))
        # Claim 4.2: kappa'gamma <= tau_H for the active set H, which is an upper set of gamma
        assert kappa @ gamma <= paper.tau_h(rho, gamma, c, sol.active) * (1 + 1e-9)
        assert gamma[sol.active].min() >= gamma[~sol.active & (gamma > 0)].max(initial=0.0)
        w, v = paper.intervention_utilities_closed_form(rho, gamma, kappa, c, sol.active, m.shape[0])
        full = solve_intervention(m, "paper")
        assert full.utilities.marketplace == pytest.approx(w, rel=1e-9, abs=1e-12)
        np.testing.assert_allclose(full.utilities.sellers, v, rtol=1e-8, atol=1e-10)


def test_intervention_reference_markets() -> None:
    """A market with two consistent local optima (errata: which active set H); intervention utilities."""
    c = LearningCurve(1, 1, 1)
    sol = paper.solve_intervention(np.array([4.0, 1.2]), np.array([0.6, 0.4]), np.array([0.05, 0.01]), c)
    assert sol.total == pytest.approx(16.861605069, abs=1e-8)
    g, t = paper.optimal_gamma(np.array([4.0, 1.2]), c)
    np.testing.assert_allclose(g, [0.646110632, 0.353889368], atol=1e-9)
    assert t == pytest.approx(0.705505624, abs=1e-9)


# -- Section 5: backfire --------------------------------------------------------------------------
@given(curve=learning_curves(), gamma=st.integers(2, 4).flatmap(simplex_points))
def test_theorem_5_1_every_gamma_backfires_somewhere(curve, gamma) -> None:
    c = LearningCurve(*curve)
    rho, kappa = backfire_market(gamma, c)
    m = BalancedMarket.quasi_symmetric(np.atleast_2d(rho), kappa, c, n_sellers=1, gamma=gamma)
    assert backfires(solve_baseline(m), solve_intervention(m))


@given(d=quasi_symmetric_markets(min_groups=2), frac=st.floats(0.01, 1.0))
def test_theorem_5_2_uniform_never_backfires_in_fully_forming_markets(d, frac) -> None:
    c = LearningCurve(*d["curve"])
    _, rho = reserve_prices(d["values"])
    kappa = frac * rho * c.c_g  # every kappa_g <= tau_g: fully forming (Def 5.3)
    g = rho.size
    m = build(d, gamma=np.full(g, 1.0 / g), kappa=kappa)
    base, interv = solve_baseline(m), solve_intervention(m)
    assert np.all(base.total > 0) and interv.forms and not backfires(base, interv)
    # Theorem 5.2 (|G| where the proof writes M): each group gets at least
    # (alpha(1+beta)/Z)^(1/beta) > n0 samples
    assert interv.total.min() >= (c.alpha * (1 + c.beta) / c.Z) ** (1 / c.beta) * (1 - 1e-9)


@given(
    curve=learning_curves(), gamma=st.integers(2, 4).flatmap(lambda n: simplex_points(n, full_support=True))
)
def test_theorem_5_3_corrected_full_support_non_uniform_backfires(curve, gamma) -> None:
    assume(not np.allclose(gamma, 1.0 / gamma.size, atol=1e-3))
    c = LearningCurve(*curve)
    rho, kappa = backfire_market(gamma, c, corrected_5_3=True)
    m = BalancedMarket.quasi_symmetric(np.atleast_2d(rho), kappa, c, n_sellers=1, gamma=gamma)
    base = solve_baseline(m)
    assert np.all(base.total > 0)  # fully forming (at the knife edge kappa = tau, counted as forming)
    assert backfires(base, solve_intervention(m))


@given(d=quasi_symmetric_markets(min_groups=2), frac=st.floats(0.01, 1.0), k=st.integers(1, 3))
def test_theorem_5_3_printed_statement_fails_for_uniform_on_support(d, frac, k) -> None:
    """Theorem 5.3 as printed fails: gamma uniform on its support (with zeros) never backfires in
    fully-forming markets."""
    g = len(d["kappa"])
    k = min(k, g - 1)
    gamma = np.zeros(g)
    gamma[:k] = 1.0 / k
    _, rho = reserve_prices(d["values"])
    m = build(d, gamma=gamma, kappa=frac * rho * LearningCurve(*d["curve"]).c_g)
    assert solve_intervention(m).forms
    with pytest.raises(InvalidMarketError, match="gamma"):
        backfire_market(gamma, m.curve, corrected_5_3=True)


def test_theorem_5_3_construction_example() -> None:
    c = LearningCurve(1, 1, 1)
    for gamma, forms in (([1.0, 0.0], True), ([0.6, 0.4], False), ([0.9, 0.1], False)):
        m = BalancedMarket.quasi_symmetric([[1.0, 1.0]], [0.25, 0.25], c, n_sellers=1, gamma=gamma)
        assert solve_intervention(m).forms is forms
    assert paper.max_tau(np.ones(2), np.array([0.6, 0.4]), c) == pytest.approx(0.24)
    assert paper.max_tau(np.ones(2), np.array([0.9, 0.1]), c) == pytest.approx(0.225)


@given(
    d=quasi_symmetric_markets(min_groups=2),
    gamma_seed=st.integers(2, 3).flatmap(lambda n: simplex_points(n, full_support=True)),
)
def test_theorem_5_4_sufficient_condition(d, gamma_seed) -> None:
    g = len(d["kappa"])
    gamma = gamma_seed if gamma_seed.size == g else np.full(g, 1.0 / g)
    c = LearningCurve(*d["curve"])
    _, rho = reserve_prices(d["values"])
    eta, bound = paper.thm54_bound(rho, d["kappa"], gamma, c)
    kappa = d["kappa"] if eta < bound else d["kappa"] * 0.999 * bound / eta
    eta, bound = paper.thm54_bound(rho, kappa, gamma, c)
    assert eta < bound
    assert solve_intervention(build(d, gamma=gamma, kappa=kappa)).forms


@given(
    curve=learning_curves(),
    rho=st.lists(st.floats(0.1, 10.0), min_size=2, max_size=4),
    gamma=st.integers(2, 4).flatmap(lambda n: simplex_points(n, full_support=True)),
)
def test_a11_optimal_gamma_maximises_tau(curve, rho, gamma) -> None:
    rho = np.array(rho[: gamma.size] + [1.0] * max(0, gamma.size - len(rho)))
    c = LearningCurve(*curve)
    g_star, t_star = paper.optimal_gamma(rho, c)
    allg = np.ones(rho.size, dtype=bool)
    assert paper.tau_h(rho, g_star, c, allg) == pytest.approx(t_star, rel=1e-10)
    assert paper.tau_h(rho, gamma, c, allg) <= t_star * (1 + 1e-10)


# -- Section 6: growth ---------------------------------------------------------------------------------
def test_theorem_6_1_utility_ratios_converge() -> None:
    """UR_Mkt, UR_S -> 1 as rho_A grows; a buyer's ratio ends above 1 (positive externality)."""
    n = 400
    values = np.column_stack([np.where(np.arange(n) % 2 == 0, 2.0, 1.5), np.zeros(n)])
    values[:2, 1] = [0.5, 0.3]  # rho_B = 0.6 stays fixed; buyer 0 keeps a surplus on B
    m = BalancedMarket.quasi_symmetric(values, [0.1, 0.1], (1, 1, 1), n_sellers=2, gamma=[0.5, 0.5])
    rows = growth_sequence(m, [2, 20, 400])
    assert all(r["baseline_forms"] and r["intervention_forms"] for r in rows)  # Claim 6.1
    urs = [r["ur_marketplace"] for r in rows]
    assert abs(urs[-1] - 1) < abs(urs[0] - 1) and abs(urs[-1] - 1) < 0.05
    assert abs(np.mean(rows[-1]["ur_sellers"]) - 1) < 0.1
    assert max(x for x in rows[-1]["ur_buyers"] if np.isfinite(x)) > 1.0


def test_fix_0_9_zero_gamma_on_growing_group_never_forms() -> None:
    n = 50
    values = np.column_stack([np.full(n, 1.0), np.full(n, 0.01)])
    m = BalancedMarket.quasi_symmetric(values, [0.1, 5.0], (1, 1, 1), n_sellers=1, gamma=[0.0, 1.0])
    for r in growth_sequence(m, [1, 10, 50]):
        # exact: the intervention market does not form, so w^f is the literal 0 and w^f / w = 0
        assert r["baseline_forms"] and not r["intervention_forms"] and r["ur_marketplace"] == 0.0


def test_utility_ratio_nan_when_baseline_is_zero() -> None:
    m = BalancedMarket.quasi_symmetric([[1.0]], [5.0], (1, 1, 1), n_sellers=1, gamma=[1.0])
    ur = utility_ratios(solve_baseline(m), solve_intervention(m))
    assert np.isnan(ur["marketplace"])


def test_threshold_bisection_matches_tau() -> None:
    """Claim 4.1 for M = 1: bisection on max_X rho G(X) - kappa X = 0 gives rho c_G."""
    c = LearningCurve(5, 1 / 3, 3)

    def best(k):
        x = (c.alpha * c.beta / k) ** (1 / (c.beta + 1))
        return c(x) - k * x

    assert brentq(best, 1e-3, 50.0, xtol=1e-14) == pytest.approx(c.c_g, rel=1e-9)


def test_thresholds_do_not_overflow_for_small_beta() -> None:
    """c_G (19) and tau_H (29) raised OverflowError for beta = 1e-3 (intermediate powers
    R^((beta+1)/beta), Z^((beta+1)/beta)); the stable forms give the same values."""
    import math

    from datamarket.learning.curves import LearningCurve, c_k
    from datamarket.mechanisms.balanced_market import tau_h

    b = 1e-3
    # closed form for Z = alpha = 1: c_G = beta / (1+beta)^((beta+1)/beta)
    assert math.isclose(c_k(1.0, 1.0, 1.0, b), b / (1 + b) ** ((b + 1) / b), rel_tol=1e-12)
    assert math.isclose(c_k(2.5, 1.0, 1.0, 1.0), 10 / 49, rel_tol=1e-12)
    rho, gam = np.array([1.0, 1.5]), np.array([0.8, 0.2])
    curve = LearningCurve(1.0, 1.0, b)
    r, s = rho.sum(), float(np.sum(rho * gam**-b))
    expected = math.exp((b + 1) / b * math.log(r) - math.log(s) / b) * curve.c_g
    assert math.isclose(tau_h(rho, gam, curve, np.array([True, True])), expected, rel_tol=1e-9)
