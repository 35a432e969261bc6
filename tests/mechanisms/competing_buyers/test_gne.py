"""Westenbroek et al. (competing buyers): weights, Theorem 1 (GNE), Theorem 2 (social optimum, PoA).

Oracles: the corrected Section IV closed forms, the Leontief system itself, Jacobi iteration, a
numerical best response per buyer, and
Theorems 1-2 as hypothesis properties over generated markets (``tests/strategies.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from datamarket.core.errors import InvalidMarketError
from datamarket.equilibrium import jacobi_solve, spectral_radius
from datamarket.mechanisms.competing_buyers import (
    CompetingMarket,
    DiscretePoints,
    FeatureOLS,
    LinearSmoother,
    PolynomialRegression,
    UniformInterval,
    analyse_market,
    best_response,
    buyer_cost,
    leontief_matrix,
    loo_weights,
    section_iv_market,
    social_loss,
    solve_gne,
    variance_weights,
)
from tests.strategies import competing_markets

# ----------------------------------------------------------------------------------------------
# Section IV closed forms (corrected)
# ----------------------------------------------------------------------------------------------
X1_GRID = np.concatenate([np.linspace(-1, 0.99, 400), 1 - np.logspace(-2, -6, 41)])


def _closed_forms(x1: float, x2: float = 1.0) -> dict[str, float]:
    return {
        "g1": (1 / 3 + x2**2)
        / (x1 - x2) ** 2,  # the printed formula uses the OTHER source's weight; this is the source's location
        "g2": (1 / 3 + x1**2) / (x1 - x2) ** 2,
        "xi12": (x1 * x2 + 1) ** 2 / (x2**2 + 1) ** 2,
        "xi21": (x1 * x2 + 1) ** 2 / (x1**2 + 1) ** 2,
        "rho": (1 + x1) ** 2 / (2 * (1 + x1**2)) if x2 == 1.0 else np.nan,
    }


@pytest.mark.parametrize("x1", [-1.0, -0.6, -0.1, 0.0, 0.3, 0.7, 0.95])
def test_section_iv_weights_match_corrected_closed_forms(x1: float) -> None:
    an = analyse_market(section_iv_market(x1))
    cf = _closed_forms(x1)
    for k in range(2):
        np.testing.assert_allclose(an.gamma[:, k], [cf["g1"], cf["g2"]], rtol=1e-10)
        np.testing.assert_allclose([an.xi[0, 1, k], an.xi[1, 0, k]], [cf["xi12"], cf["xi21"]], atol=1e-12)
    np.testing.assert_allclose(an.gne.spectral_radius, cf["rho"], atol=1e-12)
    # 2x2 block solution of the corrected matrix B
    det = 1 - cf["xi12"] * cf["xi21"]
    d1 = (cf["g1"] + cf["xi21"] * cf["g2"]) / det
    d2 = (cf["g2"] + cf["xi12"] * cf["g1"]) / det
    assert an.gne.d is not None
    np.testing.assert_allclose(an.gne.d, [[d1, d1], [d2, d2]], rtol=1e-9)


def test_printed_gamma_is_the_wrong_source() -> None:
    """The printed Section IV gamma swaps the sources: at x1 = 0, sigma = (0.7, 0.4) the integrated
    MSE is 0.7067 (not the print's 0.3767)."""
    an = analyse_market(section_iv_market(0.0))
    sigma2 = np.array([0.7, 0.4]) ** 2
    assert an.beta[:, 0] @ sigma2 == pytest.approx(0.706667, abs=1e-6)
    x1, x2 = 0.0, 1.0
    printed = [((x1 - x2) ** 2 / 3 + (xi**2 - x1 * x2) ** 2) / (x1 - x2) ** 4 for xi in (x1, x2)]
    assert np.dot(printed, sigma2) == pytest.approx(0.376667, abs=1e-6)


def test_printed_matrix_b_breaks_symmetry_and_corrected_one_is_i_minus_a() -> None:
    an = analyse_market(section_iv_market(0.0))
    xi12, xi21 = an.xi[0, 1, 0], an.xi[1, 0, 0]
    corrected = np.array(
        [[1, 0, 0, -xi21], [0, 1, -xi21, 0], [0, -xi12, 1, 0], [-xi12, 0, 0, 1]], dtype=float
    )
    np.testing.assert_allclose(np.eye(4) - an.gne.leontief, corrected, atol=1e-14)
    printed = corrected.copy()
    printed[1, 2] = -xi12  # the print's row 2
    d_printed = np.linalg.solve(printed, an.gamma.reshape(-1))
    np.testing.assert_allclose(d_printed, [2.2222, 1.5111, 0.7111, 0.8889], atol=1e-4)


def test_price_of_anarchy_on_section_iv_grid() -> None:
    """PoA(-1) = 1, increasing on [-1, 1), below 2 (the caption's divergence is wrong); reference values."""
    poa = np.array(
        [analyse_market(section_iv_market(x), cross_check=False).gne.price_of_anarchy for x in X1_GRID]
    )
    assert poa[0] == pytest.approx(1.0, abs=1e-12)
    order = np.argsort(X1_GRID)
    assert np.all(np.diff(poa[order]) >= -1e-12)
    assert np.all(poa < 2.0)
    for x1, want in [(0.99, 1.807), (0.999, 1.861), (0.9999, 1.8916), (0.999999, 1.9245)]:
        got = analyse_market(section_iv_market(x1), cross_check=False).gne.price_of_anarchy
        assert got == pytest.approx(want, abs=6e-4)


def test_xi_zero_at_x1_minus_one_gives_efficient_market() -> None:
    g = analyse_market(section_iv_market(-1.0)).gne
    assert np.allclose(np.delete(g.xi.reshape(4, 2), [0, 3], axis=0), 0.0)
    assert g.effort_equilibrium is not None
    np.testing.assert_allclose(g.effort_equilibrium, g.effort_social, atol=1e-12)
    assert g.price_of_anarchy == pytest.approx(1.0, abs=1e-14)


# ----------------------------------------------------------------------------------------------
# Leontief system, Jacobi, spectral radius (Theorem 1)
# ----------------------------------------------------------------------------------------------
def test_leontief_matrix_matches_equation_25_loop() -> None:
    rng = np.random.default_rng(3)
    n, m = 3, 3
    xi = rng.uniform(0, 1, (n, n, m))
    xi[np.arange(n), np.arange(n)] = 1.0
    a = leontief_matrix(xi)
    ref = np.zeros((n * m, n * m))
    for q in range(n):
        for k in range(m):
            for l in range(n):
                for j in range(m):
                    if j != k and l != q:
                        ref[q * m + k, l * m + j] = xi[l, q, j]
    # exact: both copy entries of xi into place, no arithmetic
    np.testing.assert_array_equal(a, ref)


@settings(max_examples=30)
@given(competing_markets())
def test_d_solves_the_linear_system_and_matches_jacobi(market: CompetingMarket) -> None:
    g = analyse_market(market).gne
    if g.d is None:
        assert g.spectral_radius >= 1 - 1e-14 or not g.gne_exists
        return
    flat = g.d.reshape(-1)
    resid = flat - (g.leontief @ flat + g.gamma.reshape(-1))
    assert np.max(np.abs(resid)) <= 1e-9 * max(1.0, np.max(np.abs(flat)))
    if g.spectral_radius < 0.99:
        jac, _, conv = jacobi_solve(g.leontief, g.gamma.reshape(-1))
        assert conv
        np.testing.assert_allclose(jac, flat, rtol=1e-9, atol=1e-10)


def test_no_gne_when_spectral_radius_reaches_one() -> None:
    # three mean-estimating buyers over three sources: every row of A sums to 1, rho(A) = 1 exactly
    m = CompetingMarket(
        np.array([-0.5, 0.0, 0.5]),
        np.ones(3),
        tuple(PolynomialRegression(0) for _ in range(3)),
        tuple(UniformInterval() for _ in range(3)),
    )
    g = analyse_market(m).gne
    assert spectral_radius(g.leontief) == pytest.approx(1.0, abs=1e-12)
    assert not g.gne_exists and g.d is None and g.c is None and g.price_of_anarchy is None
    assert "no GNE" in g.status
    # three sources, two lines: the leave-one-out lines extrapolate, rho(A) = 2
    m3 = CompetingMarket(
        np.array([-0.8, 0.1, 0.9]), np.ones(3), (PolynomialRegression(1),) * 2, (UniformInterval(),) * 2
    )
    assert analyse_market(m3).gne.spectral_radius > 1 and not analyse_market(m3).gne.gne_exists


def test_missing_feasibility_condition_is_flagged() -> None:
    """The condition the paper omits: 2 alpha_i D_i < 1 empties the polytope of c's: no GNE, the
    source is named."""
    xi = np.ones((2, 2, 1))
    xi[0, 1] = xi[1, 0] = 0.0
    g = solve_gne(np.array([[1.0], [0.2]]), xi, np.array([1.0, 1.0]))
    assert g.d is not None and g.nonnegative
    assert g.feasible_sources == (True, False) and not g.feasible and not g.gne_exists
    assert "2 alpha_i D_i < 1" in g.status and "[1]" in g.status
    assert g.c is None and g.price_of_anarchy is None


def test_price_of_anarchy_guard_for_non_positive_social_loss() -> None:
    """L(e_social) <= 0 makes the ratio meaningless; it is reported as undefined."""
    xi = np.ones((2, 2, 1))
    xi[0, 1] = xi[1, 0] = 0.0
    g = solve_gne(np.array([[0.5], [0.5]]), xi, np.array([1.0, 1.0]))
    # no coupling: D = Gamma = 0.5, 2 alpha D = 1 (feasible), L(e*) = L(e_social) = 1 > 0
    assert g.gne_exists and g.price_of_anarchy == pytest.approx(1.0)
    # two buyers, xi_12 = xi_21 = 0.9, gamma = 0.05: rho = 0.9, d = 10 gamma, D = 1, 2 alpha D = 2
    # (feasible) but 2 alpha Gamma = 0.2 < 1/e, so L(e_social) = 1 + ln(0.2) < 0
    xi2 = np.full((2, 2, 2), 0.9)
    xi2[0, 0] = xi2[1, 1] = 1.0
    g2 = solve_gne(np.full((2, 2), 0.05), xi2, np.ones(2))
    assert g2.spectral_radius == pytest.approx(0.9)
    assert g2.d is not None
    np.testing.assert_allclose(g2.d, 0.5)
    assert g2.gne_exists and g2.loss_social == pytest.approx(1 + np.log(0.2))
    assert g2.loss_equilibrium is not None and g2.price_of_anarchy is None
    assert "undefined" in g2.status


def test_small_positive_d_is_kept_when_d_spans_many_orders_of_magnitude() -> None:
    """Regression (review): d = gamma for one buyer (A = 0) must be returned exactly.

    Sources at -1, 0, 1 and one linear buyer evaluating at x* = 1e5: the centre source's weight is
    H = 1/3 at every x*, so gamma = (~2.5e9, 1/9, ~2.5e9). The GNE is d = gamma (25) and, with
    alpha = 20 at the centre, 2 alpha D = 4.4 >= 1. Zeroing entries below tol * max(d)
    used to set d_centre = 0 and report no GNE.
    """
    m = CompetingMarket(
        np.array([-1.0, 0.0, 1.0]),
        np.array([1.0, 20.0, 1.0]),
        (PolynomialRegression(1),),
        (DiscretePoints(np.array([1e5])),),
    )
    an = analyse_market(m)
    g = an.gne
    assert g.d is not None
    np.testing.assert_allclose(g.d, an.gamma, rtol=1e-12)
    assert g.d[1, 0] == pytest.approx(1 / 9, rel=1e-9)
    assert g.gne_exists and g.price_of_anarchy == pytest.approx(1.0)


# ----------------------------------------------------------------------------------------------
# Theorems as properties over generated markets
# ----------------------------------------------------------------------------------------------
# about a third of the generated two-plus-buyer markets have a GNE (rho(A) < 1 and 2 alpha D >= 1)
FILTERED = [HealthCheck.filter_too_much, HealthCheck.too_slow]


@settings(max_examples=30, suppress_health_check=FILTERED)
@given(competing_markets(min_buyers=2))
def test_theorem2_equilibrium_effort_dominates_social_optimum(market: CompetingMarket) -> None:
    g = analyse_market(market).gne
    assume(g.gne_exists)
    assert g.d is not None and g.effort_equilibrium is not None
    # d - gamma = A d >= 0 (A, d >= 0), hence D >= Gamma and e* >= e_social (17), (28)
    assert np.all(g.d - g.gamma >= -1e-9 * max(1.0, float(np.max(g.d))))
    big_gamma = g.total_gamma
    if np.all(big_gamma > 0):
        assert np.all(g.effort_equilibrium >= g.effort_social - 1e-9)
        # e_social minimises L (27): L(e*) >= L(e_social), PoA >= 1 when defined
        assert g.loss_equilibrium is not None and g.loss_social is not None
        assert g.loss_equilibrium >= g.loss_social - 1e-9 * max(1.0, abs(g.loss_social))
        assert social_loss(g.effort_equilibrium, big_gamma, g.alpha) == pytest.approx(g.loss_equilibrium)
        if g.price_of_anarchy is not None:
            assert g.price_of_anarchy >= 1 - 1e-12
        # strict for some source when buyers are coupled
        if np.any(g.leontief > 1e-9) and np.all(g.gamma > 1e-9):
            assert np.any(g.effort_equilibrium > g.effort_social + 1e-12)


@settings(max_examples=12, suppress_health_check=FILTERED)
@given(competing_markets(max_sources=3, max_buyers=3, min_buyers=2), st.integers(0, 2**16))
def test_no_buyer_improves_by_a_numerical_best_response(market: CompetingMarket, seed: int) -> None:
    g = analyse_market(market).gne
    assume(g.gne_exists)
    assert g.d is not None and g.c is not None
    rng = np.random.default_rng(seed)
    for k in range(market.n_buyers):
        starts = g.d[:, k][None, :] * rng.uniform(0.2, 3.0, (2, market.n_sources))
        br = best_response(k, g, starts=starts)
        scale = max(1.0, abs(br.equilibrium_cost))
        assert br.improvement <= 1e-8 * scale, (k, br)
        # the equilibrium d^k is a stationary point: small moves never lower the cost
        for _ in range(5):
            step = g.d[:, k] * (1 + rng.uniform(-0.05, 0.05, market.n_sources))
            assert (
                buyer_cost(k, step, g.d, g.c, g.gamma, g.xi, g.alpha) >= br.equilibrium_cost - 1e-10 * scale
            )


def test_best_response_from_far_starts_converges_to_equilibrium() -> None:
    g = analyse_market(section_iv_market(0.3)).gne
    assert g.d is not None
    for k in range(2):
        br = best_response(k, g, starts=np.array([[0.1, 0.1], [50.0, 50.0]]))
        assert br.improvement <= 1e-9
        for start in ([1.0, 1.0], [30.0, 3.0]):
            from scipy import optimize

            res = optimize.minimize(
                lambda v, k=k: buyer_cost(k, v, g.d, g.c, g.gamma, g.xi, g.alpha),
                np.array(start),
                method="L-BFGS-B",
                bounds=[(0, None)] * 2,
            )
            np.testing.assert_allclose(res.x, g.d[:, k], rtol=2e-3)


@settings(max_examples=25, suppress_health_check=FILTERED)
@given(competing_markets(identical_buyers=True, min_buyers=2))
def test_identical_buyers_get_identical_contracts(market: CompetingMarket) -> None:
    g = analyse_market(market).gne
    assume(g.d is not None)
    assert g.d is not None
    np.testing.assert_allclose(g.d, np.repeat(g.d[:, :1], market.n_buyers, axis=1), rtol=1e-9, atol=1e-12)
    if g.c is not None:
        np.testing.assert_allclose(g.c, np.repeat(g.c[:, :1], market.n_buyers, axis=1), rtol=1e-9, atol=1e-12)


def test_contracts_lie_in_theorem1_polytope_and_lemma1_is_tight() -> None:
    an = analyse_market(section_iv_market(0.4), theta=np.array([0.8, 0.2]))
    g = an.gne
    assert g.c is not None and g.d is not None and g.effort_equilibrium is not None
    var = 1 / (2 * g.alpha * g.d.sum(axis=1))
    s = np.einsum("ilk,l->ik", g.xi, var)
    # (21): c >= d S, (20) tight: sum_j (c - d S) = e*
    assert np.all(g.c - g.d * s >= -1e-12)
    np.testing.assert_allclose((g.c - g.d * s).sum(axis=1), g.effort_equilibrium, rtol=1e-12)
    np.testing.assert_allclose(g.expected_payments, np.outer(g.effort_equilibrium, [0.8, 0.2]))


# ----------------------------------------------------------------------------------------------
# weights from the estimator
# ----------------------------------------------------------------------------------------------
def test_weights_interface_equals_ols_and_feature_maps() -> None:
    x = np.array([-0.7, 0.1, 0.6, 0.9])
    line = FeatureOLS(lambda v: np.column_stack([v, np.ones_like(v)]), "line")
    smoother = LinearSmoother(lambda xt, xe: line.weights(xt, xe), "line-as-smoother")
    markets = [
        CompetingMarket(x, np.ones(4), (est,), (UniformInterval(),))
        for est in (PolynomialRegression(1), line, smoother)
    ]
    betas = [variance_weights(m) for m in markets]
    xis = [loo_weights(m) for m in markets]
    for b, xi in zip(betas[1:], xis[1:], strict=True):
        np.testing.assert_allclose(b, betas[0], rtol=1e-10)
        np.testing.assert_allclose(xi, xis[0], rtol=1e-10, atol=1e-14)


def test_beta_matches_monte_carlo_integrated_mse() -> None:
    """beta_i^j sigma_i^2 summed is the integrated MSE of the fitted estimator (Assumption 3)."""
    x = np.array([-0.9, -0.3, 0.2, 0.8])
    dist = DiscretePoints(np.array([-0.5, 0.0, 0.4, 1.0]), np.array([1.0, 2.0, 1.0, 1.0]))
    est = PolynomialRegression(2)
    m = CompetingMarket(x, np.ones(4), (est,), (dist,))
    beta = variance_weights(m)[:, 0]
    sigma = np.array([0.5, 0.2, 0.4, 0.3])
    rng = np.random.default_rng(11)
    truth = lambda v: 1.0 - v + 0.5 * v**2  # noqa: E731  (in the model class: unbiased)
    reps = 40_000
    y = truth(x)[None] + rng.standard_normal((reps, 4)) * sigma
    nodes, w = dist.quadrature()
    coef = np.linalg.lstsq(est.design(x), y.T, rcond=None)[0]  # (3, reps)
    err2 = (est.design(nodes) @ coef - truth(nodes)[:, None]) ** 2  # (Q, reps)
    per_rep = w @ err2
    # CLT bound with z = 5 on the sample standard deviation of the per-replication MSE
    bound = 5 * per_rep.std(ddof=1) / np.sqrt(reps)
    assert abs(per_rep.mean() - beta @ sigma**2) <= bound


# ----------------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------------
def test_bad_markets_raise_named_errors() -> None:
    lin = (PolynomialRegression(1),)
    uni = (UniformInterval(),)
    with pytest.raises(InvalidMarketError, match="locations: singular design"):
        CompetingMarket(np.array([0.3, 0.3]), np.ones(2), lin, uni)
    with pytest.raises(InvalidMarketError, match="locations: singular design"):
        CompetingMarket(np.array([0.3, 0.3, 0.3]), np.ones(3), (PolynomialRegression(2),), uni)
    with pytest.raises(InvalidMarketError, match="effort_alpha"):
        CompetingMarket(np.array([0.0, 1.0]), np.array([1.0, 0.0]), lin, uni)
    with pytest.raises(InvalidMarketError, match="effort_alpha"):
        CompetingMarket(np.array([0.0, 1.0]), np.array([-1.0, 1.0]), lin, uni)
    with pytest.raises(InvalidMarketError, match="competition"):
        CompetingMarket(np.array([0.0, 1.0]), np.ones(2), lin * 2, uni * 2, competition=1.5)
    with pytest.raises(InvalidMarketError, match="competition"):
        CompetingMarket(np.array([0.0, 1.0]), np.ones(2), lin * 2, uni * 2, competition=-0.1)
    with pytest.raises(InvalidMarketError, match="competition"):
        CompetingMarket(
            np.array([0.0, 1.0]), np.ones(2), lin * 2, uni * 2, competition=np.array([[0, 0.2], [0.3, 0]])
        )
    with pytest.raises(InvalidMarketError, match="competition"):  # the diagonal is a level too
        CompetingMarket(
            np.array([0.0, 1.0]), np.ones(2), lin * 2, uni * 2, competition=np.array([[5.0, 0.2], [0.2, 0]])
        )
    with pytest.raises(InvalidMarketError, match="locations"):
        CompetingMarket(np.array([0.0, np.nan]), np.ones(2), lin, uni)
    with pytest.raises(InvalidMarketError, match="eta"):
        CompetingMarket(np.array([0.0, 1.0]), np.ones(2), lin, uni, eta=np.array([0.0]))
    with pytest.raises(InvalidMarketError, match="effort_alpha"):
        solve_gne(np.ones((2, 1)), np.ones((2, 2, 1)), np.array([1.0, 0.0]))
    with pytest.raises(InvalidMarketError, match="theta"):
        solve_gne(np.ones((2, 2)), np.ones((2, 2, 2)), np.ones(2), theta=np.array([0.5, 0.6]))
