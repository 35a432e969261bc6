"""Class engine of the balanced market: sellers in classes, analytic FOC Jacobian, pruned
best responses. Differential tests against the general engine (the reference path) and brute force."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

from datamarket.learning.curves import curve_value
from datamarket.mechanisms.balanced_market import BalancedMarket, solve_baseline, solve_intervention
from datamarket.mechanisms.balanced_market._classes import (
    Parts,
    class_equilibria,
    merge_terms,
    part_atoms,
    seller_classes,
    seller_equilibria,
)
from datamarket.mechanisms.balanced_market._foc import FocAtoms, GridFoc, foc_residual, merged_size_weights
from datamarket.mechanisms.balanced_market._shapley import (
    Coalitions,
    Terms,
    _FixedSlope,
    _slope,
    best_response,
    coalitions_of,
    find_equilibria,
    payoff,
    regrets,
    shapley_payment,
)
from datamarket.valuation import quantity_game_shapley
from tests.strategies import learning_curves


def terms_of(curves, weight=1.0) -> Terms:
    arr = np.array(curves, dtype=float)
    return Terms(np.full(len(curves), weight), np.array(1.0), arr[:, 0], arr[:, 1], arr[:, 2])


QUINTIC = Terms(
    np.array([1.0, 1.0]), np.array(1.0), np.array([5.0, 5.0]), np.array([1 / 3, 1 / 4]), np.array([3.0, 4.0])
)


def reference_best_response(coal: Coalitions, cost: float, terms: Terms) -> tuple[float, float]:
    """Breakpoint enumeration without pruning or bounds: every interval between breakpoints, every
    candidate."""
    brk = terms.knots[None, :] - coal.sums[:, None]
    edges = np.concatenate([[0.0], np.unique(brk[brk > 0])])
    cands = [0.0, *edges.tolist()]
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        for k, lo in enumerate(edges):
            mask = brk <= lo
            hi = edges[k + 1] if k + 1 < edges.size else max(2.0 * lo, 1.0)
            while k + 1 == edges.size and _slope(hi, coal, cost, terms, mask) > 0:
                hi *= 2.0
            if _slope(lo, coal, cost, terms, mask) > 0 > _slope(hi, coal, cost, terms, mask):
                cands.append(brentq(lambda s, m=mask: _slope(s, coal, cost, terms, m), lo, hi, xtol=1e-15))
    vals = [payoff(c, coal, cost, terms) for c in cands]
    i = int(np.argmax(vals))
    return cands[i], vals[i]


@settings(max_examples=40, deadline=None)
@given(
    curves=st.lists(learning_curves(), min_size=1, max_size=3),
    others=st.lists(st.floats(0.0, 4.0), min_size=0, max_size=5),
    cost=st.floats(0.01, 1.0),
    hint=st.floats(0.0, 5.0),
)
def test_pruned_best_response_never_drops_the_true_best(curves, others, cost, hint) -> None:
    """The revenue cap, slope/value bounds and the hint only skip intervals that cannot hold the maximum:
    the payoff equals brute-force enumeration's up to the tie tolerance (1e-12 relative)."""
    terms = terms_of(curves)
    coal = coalitions_of(others)
    _, ref_val = reference_best_response(coal, cost, terms)
    for h in (None, hint):
        br = best_response(coal, cost, terms, hint=h)
        assert br.payoff >= ref_val - 1e-12 * max(1.0, abs(ref_val))
        assert br.payoff == pytest.approx(payoff(br.quantity, coal, cost, terms), abs=0.0)


def test_best_response_cap_is_the_revenue_to_share() -> None:
    """A cost above the largest average revenue per unit makes producing unprofitable: s = 0."""
    coal = coalitions_of([1.0, 2.0])
    assert best_response(coal, 50.0, QUINTIC).quantity == 0.0


@settings(max_examples=25, deadline=None)
@given(
    curves=st.lists(learning_curves(), min_size=1, max_size=2),
    counts=st.lists(st.integers(0, 3), min_size=2, max_size=3),
    z=st.lists(st.floats(-1.0, 1.5), min_size=3, max_size=3),
    cost=st.floats(0.05, 1.0),
)
def test_analytic_jacobian_matches_central_differences(curves, counts, z, cost) -> None:
    """foc_residual's Jacobian vs central differences (h = 1e-6 in log quantity: truncation O(h^2) ~
    1e-12 relative, rounding ~ eps / h ~ 1e-10 of the residual scale), away from the kinks where a
    (coalition, term) pair changes between paying and not (the Jacobian is one-sided there)."""
    terms = terms_of(curves, 1.7)
    v = len(counts)
    parts = Parts(np.full(v, cost), np.array(counts, dtype=np.int64) + 1, np.exp(np.array(z[:v])))
    atoms = [part_atoms(parts, b, list(range(v)))[0] for b in range(v)]
    zz = np.array(z[:v])
    h = 1e-6
    for at, b in zip(atoms, range(v), strict=True):
        for sign in (-1, 1):
            for u in range(v):
                zs = zz.copy()
                zs[u] += sign * 2 * h
                y = np.exp(zs)
                tot = at.counts @ y + y[b]
                gap = np.min(np.abs(tot[:, None] - terms.knots[None, :]))
                assume(gap > 1e-4)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        r, jac = foc_residual(zz, atoms, parts.cost, terms)
        fd = np.empty_like(jac)
        for u in range(v):
            e = np.zeros(v)
            e[u] = h
            fd[:, u] = (
                foc_residual(zz + e, atoms, parts.cost, terms)[0]
                - foc_residual(zz - e, atoms, parts.cost, terms)[0]
            ) / (2 * h)
    scale = 1.0 + np.abs(r)[:, None] + np.abs(jac)
    np.testing.assert_array_less(np.abs(jac - fd), 1e-6 * scale)


def test_merged_size_weights_sum_out_the_idle_sellers() -> None:
    """c'_s = sum_u C(n0, u) c_{s+u}: the coalitions of 4 others of which 2 idle, by brute force."""
    got = merged_size_weights(5, 2)
    c = coalitions_of([1.0, 2.0, 0.0, 0.0])  # the two idle sellers are a class of equal quantities
    ref = np.zeros(3)
    for s, w in zip(c.sums, c.weights, strict=True):
        ref[{0.0: 0, 1.0: 1, 2.0: 1, 3.0: 2}[float(s)]] += w
    assert got[0] == pytest.approx(ref[0], rel=1e-13)
    # per coalition weight by producing size: {} -> c'_0, {1} and {2} -> c'_1 each, {1,2} -> c'_2
    np.testing.assert_allclose([got[0], 2 * got[1], got[2]], ref, rtol=1e-13)


@settings(max_examples=30, deadline=None)
@given(
    counts=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    q=st.lists(st.floats(0.0, 3.0), min_size=3, max_size=3),
    own=st.integers(0, 2),
)
def test_part_atoms_are_the_grouped_coalitions(counts, q, own) -> None:
    """Class atoms (product of binomials x merged size weights) = coalitions_of on the expanded profile:
    the same distribution of totals (weights summed per total, to 1e-13)."""
    k = len(counts)
    own = own % k
    parts = Parts(np.ones(k), np.array(counts, dtype=np.int64), np.array(q[:k]))
    producing = [b for b in range(k) if parts.quantity[b] > 0]
    _, coal = part_atoms(parts, own, producing)
    x = np.repeat(parts.quantity, parts.count)
    j = int(np.sum(parts.count[:own]))
    ref = coalitions_of(np.delete(x, j))

    def law(c: Coalitions) -> dict[float, float]:
        out: dict[float, float] = {}
        for s, w in zip(np.round(c.sums, 9), c.weights, strict=True):
            out[float(s)] = out.get(float(s), 0.0) + float(w)
        return out

    a, b = law(coal), law(ref)
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-12, abs=1e-15)


def test_class_payments_equal_the_structured_dp() -> None:
    """A producing/idle split is a quantity game with integer quantities 1/0 and f(t) = F(t y): the
    valuation engine's structured DP gives the same Shapley payments (1e-12)."""
    y = 0.8
    parts = Parts(np.array([1.0, 1.0]), np.array([5, 3]), np.array([y, 0.0]))
    q = [1] * 5 + [0] * 3
    dp = quantity_game_shapley(q, lambda t: QUINTIC.value(np.asarray(t, float) * y)).values
    for b, j in ((0, 0), (1, 5)):
        _, coal = part_atoms(parts, b, [0])
        assert shapley_payment(float(parts.quantity[b]), coal, QUINTIC) == pytest.approx(dp[j], abs=1e-12)


def test_seller_classes_exact_equality_of_rows() -> None:
    assert seller_classes([[0.1, 0.2], [0.1, 0.2], [0.1, 0.2000001], [0.3, 0.2]]).tolist() == [0, 0, 1, 2]
    assert seller_classes([1.0, -0.0, 0.0]).tolist() == [0, 1, 1]


def test_merge_terms_keeps_the_value() -> None:
    t = Terms(
        np.array([1.0, 2.0, 0.5]), np.array(1.0), np.array([1.0, 1.0, 0.9]), np.array(1.0), np.array(1.0)
    )
    m = merge_terms(t)
    assert m.weight.size == 2
    s = np.linspace(0.0, 5.0, 11)
    np.testing.assert_allclose(m.value(s), t.value(s), rtol=1e-15, atol=1e-15)


@st.composite
def class_markets(draw):
    """Small class-structured scalar games: 1-2 classes of 1-3 sellers, 1-2 buyers' curves."""
    k = draw(st.integers(1, 2))
    counts = [draw(st.integers(1, 3)) for _ in range(k)]
    costs = [draw(st.floats(0.02, 0.6)) for _ in range(k)]
    assume(sum(counts) >= 2 and sum(counts) <= 5 and len(set(costs)) == k)
    curves = draw(st.lists(learning_curves(), min_size=1, max_size=2))
    rho = draw(st.floats(0.5, 3.0))
    return np.repeat(costs, counts), terms_of(curves, rho)


@settings(max_examples=15, deadline=None)
@given(game=class_markets())
def test_class_engine_agrees_with_general_engine(game) -> None:
    """Differential test: the class engine's selection is a Nash equilibrium (global regret check
    of the general engine, tol 1e-9 of the payoff scale), and equals the general engine's selection
    whenever that one is class-structured (producing/idle splits with equal quantities within a class).
    Tolerance 1e-8 relative: both are FOC roots with residual <= 1e-10 (normalised), so the quantities
    differ by about 1e-10 / |d r / d ln y| with |d r / d ln y| >= ~1e-2 on these markets."""
    costs, terms = game
    cls = class_equilibria(costs, terms)
    gen = find_equilibria(costs, terms)
    scale = max(1.0, float(np.max(np.abs(cls.payoffs[0]))))
    if cls.selected.sum() > 0:
        assert regrets(cls.selected, costs, terms).max() <= 1e-9 * scale
    x = gen.selected
    structured = all(
        len({float(v) for v in x[costs == c] if v > 0}) <= 1
        and np.all(np.diff((x[costs == c] > 0).astype(int)) <= 0)  # producing sellers first
        for c in np.unique(costs)
    )
    if structured and gen.selected.sum() > 0:
        # a support can hold several equilibria and each engine's starts find some of them: the
        # class engine's selection may differ from a class-structured one of the general engine, but
        # then both are verified, and engine="auto" selects over both (seller_equilibria)
        gen_scale = max(1.0, float(np.max(np.abs(gen.payoffs[0]))))
        assert regrets(gen.selected, costs, terms).max() <= 1e-9 * gen_scale
        auto = seller_equilibria(costs, terms)
        auto_scale = max(1.0, float(np.max(np.abs(auto.payoffs[0]))))
        assert regrets(auto.selected, costs, terms).max() <= 1e-9 * auto_scale


def test_a_support_with_two_equilibria() -> None:
    """Found by the differential test (hypothesis): on the support of all five sellers, two classes of
    three and two, the FOC has two roots; the class engine's starts reach (0.8586, 0.9105), the
    general engine's iterated best response (0.5838, 1.6392); both are Nash equilibria, and
    engine="auto" (M <= GENERAL_FALLBACK) selects the larger total over both, as the rule says."""
    costs = np.array([0.5625] * 3 + [0.53125] * 2)
    terms = Terms(
        np.array([2.0, 2.0]), np.array([1.0, 1.0]), np.ones(2), np.array([1.5, 0.25]), np.array([1.5, 1.0])
    )
    cls, gen = class_equilibria(costs, terms), find_equilibria(costs, terms)
    for eq in (cls, gen):
        scale = max(1.0, float(np.max(np.abs(eq.payoffs[0]))))
        assert regrets(eq.selected, costs, terms).max() <= 1e-9 * scale
    auto = seller_equilibria(costs, terms)
    np.testing.assert_allclose(auto.selected, gen.selected, rtol=1e-9)
    assert auto.selected.sum() > cls.selected.sum()


def test_auto_engine_matches_general_engine_on_a_market() -> None:
    """solve_baseline / solve_intervention: engine='auto' (classes) vs 'general' to 1e-9."""
    market = BalancedMarket(
        values=np.array([[2.0, 1.0], [1.5, 1.2]]),
        costs=np.array([[0.1, 0.1]] * 3 + [[0.12, 0.08]]),
        Z=np.array([[1.0, 0.9], [0.95, 1.0]]),
        alpha=np.array([[1.0, 2.0], [0.8, 1.0]]),
        beta=np.array([[1.0, 0.5], [1.5, 1.0]]),
        gamma=np.array([0.6, 0.4]),
    )
    for solve in (solve_baseline, solve_intervention):
        a = solve(market, "shapley_nash", engine="auto")
        b = solve(market, "shapley_nash", engine="general")
        np.testing.assert_allclose(a.production, b.production, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(a.utilities.sellers, b.utilities.sellers, rtol=1e-9, atol=1e-12)


def test_symmetric_equilibrium_at_100_sellers_is_nash() -> None:
    """One class of 100 sellers (Z = a = b = rho = 1, kappa = 0.001): the class engine's symmetric
    equilibrium is the closed form y_S (exact symmetric equilibrium) and passes the exact regret check
    per part."""
    from datamarket.learning.curves import LearningCurve
    from datamarket.mechanisms.balanced_market import symmetric_shapley_quantity

    terms = terms_of([(1.0, 1.0, 1.0)])
    eq = seller_equilibria(np.full(100, 0.001), terms)
    y = symmetric_shapley_quantity(1.0, 0.001, LearningCurve(1.0, 1.0, 1.0), 100)
    np.testing.assert_allclose(eq.selected, y, rtol=1e-9)
    assert eq.diagnostics["classes"] == 1


def test_within_class_option_finds_the_monopoly_split() -> None:
    """kappa in the monopoly band (errata: asymmetric equilibria): no symmetric equilibrium produces;
    the split (X, 0, ..., 0) does, found by the class engine like the general engine's supports."""
    terms = terms_of([(1.0, 1.0, 1.0)])
    for within in (False, True):
        eq = class_equilibria(np.full(4, 0.24), terms, within_class=within)
        np.testing.assert_allclose(eq.selected, [np.sqrt(1 / 0.24), 0, 0, 0], rtol=1e-9)
    np.testing.assert_allclose(
        find_equilibria(np.full(4, 0.24), terms).selected, [np.sqrt(1 / 0.24), 0, 0, 0], rtol=1e-9
    )


def test_foc_atoms_shape() -> None:
    at = FocAtoms(np.zeros((1, 1)), np.ones(1))
    assert at.counts.shape == (1, 1)


@settings(max_examples=30, deadline=None)
@given(
    curves=st.lists(learning_curves(), min_size=1, max_size=4),
    scales=st.lists(st.floats(0.1, 1.0), min_size=4, max_size=4),
    s=st.lists(st.floats(0.0, 50.0), min_size=1, max_size=6),
)
def test_grouped_value_is_the_sum_of_curves(curves, scales, s) -> None:
    """Terms.value (exponent groups, prefix sums over sorted knots) vs the per-term sum of curve_value.
    Both round each term's Z - alpha n^-beta (at most ~4 ulp of its magnitude, Z + alpha n^-beta <= 2 Z
    where it pays), so the tolerance is 1e-13 of sum_t w_t Z_t."""
    arr = np.array(curves, dtype=float)
    k = len(curves)
    terms = Terms(np.linspace(0.5, 2.0, k), np.array(scales[:k]), arr[:, 0], arr[:, 1], arr[:, 2])
    x = np.array(s)
    ref = curve_value(x[:, None] * terms.scale, terms.Z, terms.alpha, terms.beta) @ terms.weight
    np.testing.assert_allclose(terms.value(x), ref, rtol=0, atol=1e-13 * float(terms.weight @ terms.Z))


@settings(max_examples=30, deadline=None)
@given(
    curves=st.lists(learning_curves(), min_size=1, max_size=3),
    others=st.lists(st.floats(0.0, 5.0), min_size=0, max_size=5),
    lo=st.floats(0.0, 10.0),
    ds=st.floats(0.0, 5.0),
)
def test_fixed_slope_matches_the_masked_slope(curves, others, lo, ds) -> None:
    """_FixedSlope (coefficients per exponent group built once per interval) vs _slope with the mask
    breakpoint <= lo, at s in [lo, lo + ds]: the same sum regrouped, so 1e-12 of the sum of
    |terms| (each term is rounded to a few ulp; the sums have at most 2^5 x 3 terms)."""
    terms = terms_of(curves, 1.3)
    coal = coalitions_of(others)
    mask = (terms.knots[None, :] - coal.sums[:, None]) <= lo
    s = lo + ds
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        ref = _slope(s, coal, 0.2, terms, mask)
        got = _FixedSlope(coal, terms, lo, 0.2)(s)
        arg = (coal.sums[:, None] + s) * terms.scale
        mag = terms.weight * terms.scale * terms.alpha * terms.beta * np.power(arg, -terms.beta - 1.0)
        size = float(coal.weights @ np.where(mask, mag, 0.0).sum(axis=1)) + 0.2
    assert abs(got - ref) <= 1e-12 * size


@settings(max_examples=30, deadline=None)
@given(
    curves=st.lists(learning_curves(), min_size=1, max_size=3),
    counts=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    n_zero=st.integers(0, 3),
    z=st.lists(st.floats(-1.0, 1.5), min_size=3, max_size=3),
    costs=st.lists(st.floats(0.05, 1.0), min_size=3, max_size=3),
)
def test_grid_foc_is_the_part_atoms_system(curves, counts, n_zero, z, costs) -> None:
    """GridFoc (one grid of count vectors with the seller, weights B_T T_v / m_v) vs foc_residual over
    each part's atoms (coalitions of the others): the same sums reindexed, residual and Jacobian equal
    to 1e-12 of their magnitude (sums of <= 5^3 positive terms rounded to a few ulp each)."""
    terms = terms_of(curves, 1.7)
    v = len(counts)
    cnt = np.array([*counts, n_zero], dtype=np.int64)
    q = np.array([*np.exp(z[:v]), 0.0])
    cost = np.array([*costs[:v], 0.3])
    parts = Parts(cost, cnt, q)
    var = list(range(v))
    atoms = [part_atoms(parts, b, var)[0] for b in var]
    zz = np.array(z[:v])
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        r1, j1 = foc_residual(zz, atoms, cost[:v], terms)
        r2, j2 = GridFoc(counts, n_zero, terms).residual(zz, cost[:v])
    np.testing.assert_allclose(r2, r1, rtol=0, atol=1e-12 * (1.0 + float(np.max(np.abs(r1)))))
    np.testing.assert_allclose(j2, j1, rtol=0, atol=1e-12 * (1.0 + float(np.max(np.abs(j1)))))


def test_symmetric_root_is_the_closed_form() -> None:
    """GridFoc.symmetric_root for one class of M sellers (one curve, rho = 1) is the symmetric closed
    form y_S (Chaintreau et al., the symmetric Shapley-Nash quantity) to 1e-10 (brentq to 1e-14 in log y)."""
    from datamarket.learning.curves import LearningCurve
    from datamarket.mechanisms.balanced_market import symmetric_shapley_quantity

    terms = terms_of([(1.0, 1.0, 1.0)])
    for m, kappa in ((5, 0.01), (40, 0.001), (120, 0.0005)):
        y = GridFoc([m], 0, terms).symmetric_root(kappa, 1e3)
        ref = symmetric_shapley_quantity(1.0, kappa, LearningCurve(1.0, 1.0, 1.0), m)
        assert y is not None
        assert abs(y - ref) <= 1e-10 * ref


@settings(max_examples=15, deadline=None)
@given(game=class_markets())
def test_large_market_path_finds_verified_equilibria(game) -> None:
    """The large-market path (ibr_limit = 0: symmetric start first, one verified candidate per support,
    no iterated best response) on small markets: every equilibrium it returns passes the general
    engine's exact regret check (tol 1e-9 of the payoff scale), and when it finds production it has as
    many producing sellers as the default path (the supports are searched in the same order)."""
    costs, terms = game
    big = class_equilibria(costs, terms, ibr_limit=0)
    ref = class_equilibria(costs, terms)
    for x, pay in zip(big.profiles, big.payoffs, strict=True):
        if x.sum() > 0:
            scale = max(1.0, float(np.max(np.abs(pay))))
            assert regrets(x, costs, terms).max() <= 1e-9 * scale
    if big.forms:
        assert int(np.sum(big.selected > 0)) == int(np.sum(ref.selected > 0))


def test_four_classes_of_ten_class_symmetric_equilibrium() -> None:
    """Four classes of 10 sellers (costs 0.1 x (1, 1.05, 1.1, 1.15), one curve, rho = 30): the large
    path (11^4 count vectors > ibr_limit) and the default path agree to 1e-9, quantities fall with cost,
    every seller produces, and the regret check of the general engine's best response passes per class."""
    costs = np.repeat(0.1 * np.array([1.0, 1.05, 1.1, 1.15]), 10)
    terms = terms_of([(1.0, 1.0, 1.0)], 30.0)
    big = class_equilibria(costs, terms, ibr_limit=0)
    ref = class_equilibria(costs, terms)
    np.testing.assert_allclose(big.selected, ref.selected, rtol=1e-9)
    assert np.all(big.selected > 0) and np.all(np.diff(big.selected[::10]) < 0)
