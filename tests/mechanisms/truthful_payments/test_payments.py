"""Fan et al. (Fan, Rotello, Karimireddy): payment rules, markets and theorems as tests.

Corrections to the printed paper are listed on the documentation's errata page.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from datamarket.core.errors import ConfigurationError, InvalidMarketError
from datamarket.mechanisms.truthful_payments import (
    RULES,
    CallableMarket,
    DataMixtureMarket,
    MeanEstimationMarket,
    buyer_split,
    buyer_values,
    coalition_value,
    compute_payments,
    evaluate_report,
    fast,
    myerson_integral,
    random_mean_market,
    seller_share_curve,
    shapley_payments,
    social_cost,
    vcg_payments,
)
from tests.strategies import data_mixture_markets, mean_estimation_markets


def callable_twin(m: MeanEstimationMarket) -> CallableMarket:
    """The same market given as callables with gradients (the generic optimiser path)."""
    gn, cross, base = m.gram_plus_noise, m.cross, m.base_losses()
    return CallableMarket(
        [lambda r, i=i: float(base[i] - 2 * r @ cross[i] + r @ gn @ r) for i in range(m.n_buyers)],
        [lambda col: float(col @ col)] * m.n_sellers,
        loss_grads=[lambda r, i=i: -2 * cross[i] + 2 * gn @ r for i in range(m.n_buyers)],
        shape_grads=[lambda col: 2 * col] * m.n_sellers,
    )


def mixture_twin(m: DataMixtureMarket) -> CallableMarket:
    t = m.t
    return CallableMarket(
        [lambda r: float(m.b + m.k * np.exp(r @ t))],
        [lambda col: float(col[0] ** 2)] * m.n_sellers,
        domain="simplex",
        loss_grads=[lambda r: m.k * np.exp(r @ t) * t],
        shape_grads=[lambda col: 2 * col] * m.n_sellers,
    )


# ---------------------------------------------------------------------------------------------- allocation
@settings(max_examples=15)
@given(mean_estimation_markets(max_sellers=3, max_dim=3))
def test_closed_form_allocation_matches_generic_optimiser(mc) -> None:
    """Eq. (22) as corrected (see the errata) equals the numerical argmin of (21) within a derived bound."""
    market, costs = mc
    w = market.allocate(costs)
    w_num = callable_twin(market).allocate(costs)
    # The objective is strongly convex with Hessian 2M per buyer row, M = G + N + diag(c), so the
    # optimiser's error is at most |grad f(w_num)|_2 / (2 lambda_min(M)) (an a-posteriori bound, however
    # the optimiser stopped); the Cholesky solve adds cond(M) * n * eps * |w| and evaluating the gradient
    # n * eps * (|B| + |M| |w_num|).
    m = market.gram_plus_noise + np.diag(costs)
    lam = np.linalg.eigvalsh(m)
    eps, n = np.finfo(float).eps, m.shape[0]
    grad = 2 * w_num @ m - 2 * market.cross
    grad_err = 4 * n * eps * (np.abs(market.cross) + np.abs(w_num) @ np.abs(m))
    bound = (np.linalg.norm(grad) + np.linalg.norm(grad_err)) / (2 * lam[0])
    bound += 4 * n * eps * lam[-1] / lam[0] * np.linalg.norm(w)
    assert bound < 1e-6 * max(1.0, float(np.linalg.norm(w)))  # the optimiser did converge
    assert np.linalg.norm(w - w_num) <= bound


def test_closed_form_is_stationary_point_of_social_cost() -> None:
    market, costs = random_mean_market(4, n_buyers=2, n_sellers=4, dim=3)
    w = market.allocate(costs)
    m = market.gram_plus_noise + np.diag(costs)
    grad = 2 * w @ m - 2 * market.cross
    # Zero in exact arithmetic; in floating point the residual of a backward-stable solve is a few
    # n * eps times the magnitudes that cancel, |B| + |w| |M|.
    scale = np.abs(market.cross) + np.abs(w) @ np.abs(m)
    assert np.all(np.abs(grad) <= 8 * m.shape[0] * np.finfo(float).eps * scale)


@settings(max_examples=15)
@given(data_mixture_markets(max_sellers=4))
def test_mixture_kkt_solver_matches_slsqp_and_kkt(mc) -> None:
    """Exact KKT + root search equals SLSQP on the simplex; KKT equalities hold."""
    market, costs = mc
    w = market.allocate(costs)[0]
    assert abs(w.sum() - 1) < 1e-12 and np.all(w >= 0)
    grad = market.k * np.exp(market.t @ w) * market.t + 2 * costs * w
    active = w > 1e-9
    assert np.ptp(grad[active]) < 1e-9
    assert np.all(grad[~active] >= grad[active].min() - 1e-9)
    w_num = mixture_twin(market).allocate(costs)[0]
    assert np.max(np.abs(w - w_num)) < 1e-6
    obj = market.losses(w[None])[0] + costs @ w**2
    obj_num = market.losses(w_num[None])[0] + costs @ w_num**2
    assert obj <= obj_num + 1e-12


def test_degenerate_mixture_allocates_inverse_cost() -> None:
    """Equal t makes L constant on the simplex, so w ∝ 1/ĉ (the notebook instance)."""
    market = DataMixtureMarket(0.0, 2.0, [3.0, 3.0, 3.0])
    w = market.allocate(np.array([1.0, 3.0, 5.0]))[0]
    expected = (1 / np.array([1.0, 3.0, 5.0])) / np.sum(1 / np.array([1.0, 3.0, 5.0]))
    assert np.allclose(w, expected, atol=1e-12)


def test_mixture_zero_cost_seller_absorbs_mass() -> None:
    market = DataMixtureMarket(0.0, 1.0, [-1.0, -0.5])
    w = market.allocate(np.array([0.0, 1.0]))[0]
    # exact: the QP clips seller 1 at the literal 0 (max(0, .))
    assert w[0] == pytest.approx(1.0) and w[1] == 0.0


def test_removed_seller_is_a_reduced_problem() -> None:
    """W(∞, ĉ_{-j}) is the limit ĉ_j → ∞ of the allocation."""
    market, costs = random_mean_market(5, n_sellers=3)
    mask = np.array([True, False, True])
    w_removed = market.allocate(costs, mask)
    big = costs.copy()
    big[1] = 1e12
    # exact: a removed seller's column is never written
    assert w_removed[:, 1].tolist() == [0.0]
    assert np.allclose(w_removed, market.allocate(big), atol=1e-9)


# --------------------------------------------------------------------------------------- Claim 1
@settings(max_examples=15)
@given(mean_estimation_markets(max_sellers=3), st.integers(0, 2))
def test_claim1_share_non_increasing_in_report(mc, j) -> None:
    market, costs = mc
    j = j % market.n_sellers
    f = [seller_share_curve(market, costs, j, u) for u in np.linspace(0, 20, 41)]
    assert np.all(np.diff(f) <= 1e-12)


def test_sherman_morrison_share_curve() -> None:
    """F_j(W(u)) = |g|^2 / (1 + u m)^2 against fresh solves."""
    market, costs = random_mean_market(6, n_buyers=2, n_sellers=4)
    g2, m = fast.myerson_allocation_curve(market, costs, 2)
    for u in (0.0, 0.3, 4.0, 100.0):
        assert seller_share_curve(market, costs, 2, u) == pytest.approx(g2 / (1 + u * m) ** 2, rel=1e-12)


# --------------------------------------------------------------------------- rules: fast = generic
@settings(max_examples=20)
@given(mean_estimation_markets(max_sellers=4))
def test_rank_one_payments_match_generic_resolves(mc) -> None:
    market, costs = mc
    quick = compute_payments(market, costs)
    slow = compute_payments(market, costs, fast_path=False, myerson_method="envelope")
    for rule in RULES:
        scale = max(1.0, float(np.max(np.abs(slow.payments[rule]))))
        assert np.max(np.abs(quick.payments[rule] - slow.payments[rule])) < 1e-9 * scale, rule


# ------------------------------------------------------------------------------- Theorem 4.2 / 4.1
@settings(max_examples=12)
@given(mean_estimation_markets(max_sellers=3, max_dim=3), st.floats(0.0, 10.0))
def test_theorem_4_2_myerson_equals_vcg_unconstrained(mc, report) -> None:
    """Myerson by half-line quadrature of freshly solved allocations = VCG to 1e-8, at any report."""
    market, costs = mc
    c = costs.copy()
    c[0] = report
    myerson = compute_payments(market, c, rules=["myerson"], myerson_method="quad").payments["myerson"]
    vcg = vcg_payments(market, c)
    assert np.max(np.abs(myerson - vcg)) < 1e-8


def test_theorem_4_2_on_simplex_and_gauss_rule() -> None:
    """The envelope argument gives Myerson = VCG on the simplex too."""
    market = DataMixtureMarket(0.5, 2.0, [-1.0, -0.5, -2.0, -0.1])
    costs = np.array([0.5, 1.0, 2.0, 0.3])
    vcg = vcg_payments(market, costs)
    quad = compute_payments(market, costs, rules=["myerson"], myerson_method="quad").payments["myerson"]
    assert np.max(np.abs(quad - vcg)) < 1e-8
    for j in range(4):  # transformed Gauss-Legendre agrees away from the kinks of dropping-out sellers
        assert myerson_integral(market, costs, j, method="gauss", nodes=400) == pytest.approx(
            myerson_integral(market, costs, j, method="quad"), abs=1e-5
        )


def test_theorem_4_1_myerson_is_minimal_ic_ir_payment() -> None:
    """VCG - Myerson is a non-negative constant C; any C < 0 breaks IR for large costs."""
    market, costs = random_mean_market(8, n_sellers=3)
    diffs = []
    for u in (0.0, 1.0, 5.0, 30.0):
        c = costs.copy()
        c[1] = u
        r = compute_payments(market, c, rules=["myerson", "vcg"], myerson_method="quad", fast_path=False)
        diffs.append(r.payments["vcg"][1] - r.payments["myerson"][1])
    assert min(diffs) >= -1e-8 and np.ptp(diffs) < 1e-8
    # the truthful Myerson utility I_j(c_j) tends to 0 as c_j grows, so Myerson - eps is not IR
    utils = [
        evaluate_report(market, np.r_[costs[0], u, costs[2]], 1, u, ["myerson"]).utility["myerson"]
        for u in (1e2, 1e4, 1e6)
    ]
    assert utils[0] > utils[1] > utils[2] > 0 and utils[2] < 1e-5


# ------------------------------------------------------------------------------ truthfulness (IC)
@settings(max_examples=10)
@given(mean_estimation_markets(max_sellers=3))
def test_myerson_and_vcg_truthful_on_report_grid(mc) -> None:
    market, costs = mc
    j = 0
    truth = {
        r: evaluate_report(market, costs, j, costs[j], ["myerson", "vcg"]).utility[r]
        for r in ("myerson", "vcg")
    }
    for rep in np.linspace(0, 2 * costs[j] + 5, 25):
        ev = evaluate_report(market, costs, j, rep, ["myerson", "vcg"])
        for r in ("myerson", "vcg"):
            assert ev.utility[r] <= truth[r] + 1e-10


def test_truthful_on_mixture_report_grid() -> None:
    market = DataMixtureMarket(0.5, 2.0, [-1.0, -0.5, -2.0])
    costs = np.array([1.0, 0.5, 2.0])
    truth = evaluate_report(market, costs, 2, 2.0, ["vcg"]).utility["vcg"]
    for rep in np.linspace(0, 6, 13):
        assert evaluate_report(market, costs, 2, rep, ["vcg"]).utility["vcg"] <= truth + 1e-10


# Documented instance (docs/truthful_payments.md, examples/truthful_payments.toml): 1 buyer, 3 sellers,
# true costs (5, 8, 1); seller 0 gains by over-reporting under LOO (best 6.17) and under-reporting under
# Shapley (best 4.10).
DOC_MARKET = MeanEstimationMarket.from_variances(
    [[1.0, 0.5, -0.3]], [[0.9, 0.6, -0.2], [1.2, 0.1, 0.4], [0.3, 0.8, -0.9]], [0.4, 0.6, 1.0]
)
DOC_COSTS = np.array([5.0, 8.0, 1.0])


def test_loo_and_shapley_not_truthful_on_documented_instance() -> None:
    from datamarket.mechanisms.truthful_payments import misreport_sweep

    sw = misreport_sweep(DOC_MARKET, DOC_COSTS, 0, max_report=10.0, step=0.1)
    assert sw.best_report["loo"] == pytest.approx(6.1748, abs=1e-3)
    assert sw.best_report["shapley"] == pytest.approx(4.0997, abs=1e-3)
    assert sw.gain("loo") > 1e-3 and sw.gain("shapley") > 1e-3
    # exact: best reports are points of the report grid (multiples of the step), not computed
    assert sw.best_report["myerson"] == sw.best_report["vcg"] == 5.0
    assert sw.gain("myerson") == 0.0 and sw.gain("vcg") == 0.0
    assert sw.price_of_anarchy["loo"] > 1 and sw.price_of_anarchy["shapley"] > 1
    assert sw.price_of_anarchy["vcg"] == 1.0
    assert np.all(sw.social_cost >= sw.truthful_social_cost - 1e-12)  # SC minimised at the truth


def test_claim2_loo_utility_derivative() -> None:
    """Du/dĉ_j = (ĉ_j - c_j) f_j' + Σ_{k≠j} ĉ_k f_k', non-zero at the truth."""
    h = 1e-5
    j = 0

    def at(rep: float):
        return evaluate_report(DOC_MARKET, DOC_COSTS, j, rep, ["loo"])

    du = (at(5 + h).utility["loo"] - at(5 - h).utility["loo"]) / (2 * h)
    shapes = [compute_payments(DOC_MARKET, np.r_[r, DOC_COSTS[1:]], rules=[]).shares for r in (5 - h, 5 + h)]
    df = (shapes[1] - shapes[0]) / (2 * h)
    predicted = float(DOC_COSTS[1:] @ df[1:])
    assert du == pytest.approx(predicted, rel=1e-5) and abs(predicted) > 1e-4


# ------------------------------------------------------------------------------------------ IR
@settings(max_examples=20)
@given(mean_estimation_markets())
def test_seller_ir_myerson_vcg(mc) -> None:
    market, costs = mc
    r = compute_payments(market, costs, rules=["myerson", "vcg"])
    for rule in ("myerson", "vcg"):
        assert np.all(r.payments[rule] - costs * r.shares >= -1e-10)


def marginals(market, w) -> np.ndarray:
    """v_i(W) - v_i(W^{-j}) with column j zeroed, not re-optimised (buyers x sellers)."""
    v = buyer_values(market, w)
    out = np.empty(w.shape)
    for j in range(w.shape[1]):
        z = w.copy()
        z[:, j] = 0.0
        out[:, j] = v - buyer_values(market, z)
    return out


@st.composite
def orthogonal_seller_markets(draw):
    """Mean-estimation markets whose sellers' means are orthogonal: G diagonal, v_i modular."""
    ns = draw(st.integers(2, 4))
    nb = draw(st.integers(1, 2))
    q, _ = np.linalg.qr(draw(hnp.arrays(np.float64, (ns, ns), elements=st.floats(-2, 2))) + 3 * np.eye(ns))
    scale = draw(hnp.arrays(np.float64, ns, elements=st.floats(0.2, 3.0)))
    buyers = draw(hnp.arrays(np.float64, (nb, ns), elements=st.floats(-3, 3)))
    var = draw(hnp.arrays(np.float64, ns, elements=st.floats(0.1, 2.0)))
    costs = draw(hnp.arrays(np.float64, ns, elements=st.floats(0.0, 5.0)))
    return MeanEstimationMarket.from_variances(buyers, q.T * scale[:, None], var), costs


@settings(max_examples=15)
@given(orthogonal_seller_markets())
def test_buyer_ir_under_eta_when_submodular(mc) -> None:
    """Thm 4.3 with condition (20) (submodularity, not the printed subadditivity): Σ_j marg_ij <= v_i(W)
    and Claim 5
    (P_j <= Σ_i marg_ij) give buyer IR of the eta split (17) for Myerson and VCG; eta sums to 1."""
    market, costs = mc
    r = compute_payments(market, costs, rules=["myerson", "vcg"])
    marg = marginals(market, r.allocation)
    assert np.all(marg.sum(axis=1) <= r.values + 1e-9)  # (20) holds (with equality: modular)
    for rule in ("myerson", "vcg"):
        assert np.all(r.payments[rule] <= marg.sum(axis=0) + 1e-9)  # Claim 5
        assert np.all(r.values - r.buyer_prices[rule] >= -1e-9)
    assert np.allclose(r.eta.sum(axis=0), 1.0)


@settings(max_examples=20)
@given(mean_estimation_markets(max_buyers=3))
def test_claim5_and_buyer_ir_implication(mc) -> None:
    """On any unconstrained market Claim 5 holds; buyer i is IR whenever (20) holds for buyer i
    and the marginals are non-negative (then P_{i->j} = eta_ij P_j <= marg_ij)."""
    market, costs = mc
    r = compute_payments(market, costs, rules=["vcg"])
    marg = marginals(market, r.allocation)
    assert np.all(marg >= -1e-12)  # : w_ij^2 (G_jj + sigma_j^2 + 2 c_j) >= 0
    assert np.all(r.payments["vcg"] <= marg.sum(axis=0) + 1e-9)
    ok = marg.sum(axis=1) <= r.values + 1e-12
    assert np.all((r.values - r.buyer_prices["vcg"])[ok] >= -1e-9)


def test_claim5_needs_a_domain_closed_under_zeroing() -> None:
    """On the simplex W^{-j} is infeasible, so Claim 5 can fail (documented in docs)."""
    market = DataMixtureMarket(0.5, 2.0, [-1.0, -0.5, -2.0])
    r = compute_payments(market, [1.0, 0.5, 2.0], rules=["vcg"])
    marg = marginals(market, r.allocation)[0]
    assert r.payments["vcg"][1] > marg[1] + 0.1  # 0.2208 > 0.1193


def test_buyer_ir_counterexample_complementary_sellers() -> None:
    """In mean estimation v_i - Σ_j marg_ij = Σ_{j≠k} w_ij w_ik G_jk can be < 0.

    Buyer mean (1, 0); seller 0 at (1, 1), seller 1 at (0, 1) cancels seller 0's bias (w_1 < 0,
    G_01 = 1). The buyer values the estimate at 0.822 but pays 1.0996 under Myerson = VCG.
    """
    market = MeanEstimationMarket.from_variances([[1.0, 0.0]], [[1.0, 1.0], [0.0, 1.0]], [0.1, 0.1])
    r = compute_payments(market, [0.1, 0.1])
    assert r.values[0] == pytest.approx(0.82243, abs=1e-5)
    assert r.buyer_prices["myerson"][0] == pytest.approx(1.09959, abs=1e-5)
    assert r.values[0] - r.buyer_prices["vcg"][0] < -0.27


def test_eta_split_degenerate_column_is_uniform() -> None:
    market = MeanEstimationMarket.from_variances(
        [[1.0, 0.0], [0.5, 0.0]], [[1.0, 0.0], [0.0, 1.0]], [0.5, 0.5]
    )
    r = compute_payments(market, [1.0, 1.0])
    assert np.allclose(r.allocation[:, 1], 0.0)
    eta = buyer_split(market, r.allocation)
    assert np.allclose(eta[:, 1], 0.5) and np.allclose(eta.sum(axis=0), 1.0)


# ---------------------------------------------------------------------------------------- Shapley
def test_shapley_efficiency_and_empty_coalition() -> None:
    """Eq. (8) includes π = ∅: Σ_j P^SP_j = V(S) (efficiency), V(∅) = 0."""
    market, costs = random_mean_market(9, n_buyers=2, n_sellers=5)
    est = shapley_payments(market, costs)
    assert est.method == "exact"
    assert est.values.sum() == pytest.approx(coalition_value(market, costs, range(5)), rel=1e-12)
    # exact: the empty coalition's value is the literal 0
    assert coalition_value(market, costs, []) == 0.0


def test_mixture_shapley_adds_base_loss_share() -> None:
    """With V(∅) = 0 and v = L0 - L, singletons have value L0 - L(e_j)."""
    market = DataMixtureMarket(0.5, 2.0, [-1.0, -0.5])
    costs = np.array([1.0, 1.0])
    single = coalition_value(market, costs, [0])
    assert single == pytest.approx(2.0 * (1 - np.exp(-1.0)), rel=1e-12)


def test_permutation_shapley_rank_one_equals_fresh_solves_and_converges() -> None:
    market, costs = random_mean_market(10, n_buyers=2, n_sellers=6)
    mean, se = fast.permutation_shapley(market, costs, 400, seed=3)
    # same permutations with a fresh solve per prefix
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(3)))
    naive = np.zeros(6)
    for _ in range(400):
        perm = rng.permutation(6)
        prev = 0.0
        for k in range(6):
            val = coalition_value(market, costs, perm[: k + 1].tolist())
            naive[perm[k]] += val - prev
            prev = val
    assert np.allclose(mean, naive / 400, atol=1e-10)
    exact = shapley_payments(market, costs).values
    assert np.all(np.abs(mean - exact) <= 4 * se + 1e-12)  # : 4 standard errors


def test_monte_carlo_beyond_max_exact() -> None:
    market, costs = random_mean_market(11, n_sellers=5)
    est = shapley_payments(market, costs, max_exact=3, seed=1, max_evaluations=5000)
    exact = shapley_payments(market, costs).values
    assert est.method == "permutation_rank_one"
    assert np.all(np.abs(est.values - exact) <= 4 * est.stderr + 1e-12)


def test_generic_market_monte_carlo_uses_valuation_engine() -> None:
    market = DataMixtureMarket(0.5, 2.0, [-1.0, -0.5, -2.0, -0.1])
    costs = np.array([0.5, 1.0, 2.0, 0.3])
    est = shapley_payments(market, costs, max_exact=2, seed=0, max_evaluations=4000)
    exact = shapley_payments(market, costs).values
    assert np.all(np.abs(est.values - exact) <= 4 * np.maximum(est.stderr, 1e-12) + 1e-9)


# ------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"noise": [[1.0, 1.0], [1.0, 1.0]]}, "noise"),  # singular
        ({"noise": [[1.0, 2.0], [2.0, 1.0]]}, "noise"),  # indefinite
        ({"noise": [[1.0, 0.5], [0.0, 1.0]]}, "noise"),  # not symmetric
        ({"buyer_means": [[np.nan, 0.0]]}, "buyer_means"),
        ({"seller_means": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]}, "seller_means"),
    ],
)
def test_bad_mean_market(kwargs, field) -> None:
    base = {"buyer_means": [[1.0, 0.0]], "seller_means": [[1.0, 0.0], [0.0, 1.0]], "noise": np.eye(2)}
    base.update(kwargs)
    with pytest.raises(InvalidMarketError) as exc:
        MeanEstimationMarket(**base)
    assert exc.value.field == field


def test_bad_costs_and_variances() -> None:
    market, _ = random_mean_market(0, n_sellers=2)
    with pytest.raises(InvalidMarketError, match="costs: must be non-negative"):
        compute_payments(market, [1.0, -1.0])
    with pytest.raises(InvalidMarketError, match="costs: must be finite"):
        compute_payments(market, [1.0, np.nan])
    with pytest.raises(InvalidMarketError, match="need one cost per seller"):
        compute_payments(market, [1.0])
    with pytest.raises(InvalidMarketError, match="variances: must be positive"):
        MeanEstimationMarket.from_variances([[1.0]], [[1.0], [2.0]], [1.0, 0.0])
    with pytest.raises(InvalidMarketError, match="k: must be positive"):
        DataMixtureMarket(0.0, -1.0, [1.0])
    with pytest.raises(ConfigurationError, match="rules"):
        compute_payments(market, [1.0, 1.0], rules=["nope"])


def test_social_cost_identity() -> None:
    """Def. 1 (index sets corrected): SC = Σ_i l_i(0) - SW."""
    market, costs = random_mean_market(12, n_buyers=2, n_sellers=3)
    w = market.allocate(costs)
    sw = buyer_values(market, w).sum() - costs @ market.cost_shapes(w)
    assert social_cost(market, w, costs) == pytest.approx(market.base_losses().sum() - sw, rel=1e-12)
