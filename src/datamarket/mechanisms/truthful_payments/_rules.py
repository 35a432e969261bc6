r"""Payment rules of Fan et al. on any :class:`~._truthful_markets.TruthfulMarket`.

Notation: :math:`V(\pi) = \sum_i v_i(W'_\pi)` with :math:`V(\emptyset) = 0`, :math:`v_i = l_i(0) - l_i`,
:math:`SC^*(\hat c) = \min_W \sum_i l_i(W) + \sum_j \hat c_j f_j(W)` (Def. 1 with the index sets of
, index sets as corrected) and :math:`SC^*_{-j}` the optimum without seller j (a reduced problem).

1. LOO, eq. (1): :math:`P_j = V(S) - V(S\setminus j)`.
2. Data Shapley, eq. (8), exact over all :math:`2^{|S|}` coalitions **including** :math:`\pi=\emptyset`
   through :func:`datamarket.valuation.exact_shapley` (on the mean-estimation market from a batched
   coalition table, :func:`._truthful_fast.coalition_table`); Monte Carlo beyond ``max_exact`` sellers
   (default 20 on the mean-estimation market, 15 elsewhere: exact is practical to ~20).
3. Myerson, eq. (9): :math:`P_j = \hat c_j f_j(\hat c) + \int_{\hat c_j}^\infty f_j(W(u,\hat c_{-j}))du`,
   the integral on the half-line by QUADPACK ``qagi`` (``epsabs=1e-12, epsrel=1e-10,
   limit=400``) or a Gauss-Legendre rule after :math:`u = \hat c_j + a s/(1-s)`; never a hard cut-off.
4. VCG, eq. (10): :math:`P_j = \hat c_j f_j(\hat c) + SC^*_{-j} - SC^*(\hat c)`.
5. Buyer split, eq. (17) (Theorem 4.3): :math:`\eta_{ij} \propto v_i(W) - v_i(W^{-j})` with
   :math:`W^{-j}` the allocation with column j zeroed and **not** re-optimised; :math:`1/|B|` when the
   denominator vanishes. Buyer i pays :math:`\sum_j \eta_{ij} P_j`, so the budget is
   strongly balanced by construction.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import integrate

from datamarket.core.errors import ConfigurationError, InvalidMarketError
from datamarket.core.types import BoolArray, FloatArray
from datamarket.mechanisms.truthful_payments import _fast as fast
from datamarket.mechanisms.truthful_payments._markets import (
    MeanEstimationMarket,
    TruthfulMarket,
    check_costs,
)

RULES: tuple[str, ...] = ("loo", "shapley", "myerson", "vcg")
EXACT_SHAPLEY_MEAN = 20  # default exact-Shapley limit on the mean-estimation market (batched table)
EXACT_SHAPLEY_GENERIC = 15  # default limit elsewhere (one allocation solve per coalition)
MYERSON_METHODS = ("auto", "closed_form", "quad", "gauss", "envelope")


def buyer_values(market: TruthfulMarket, allocation: FloatArray) -> FloatArray:
    """:math:`v_i(W) = l_i(0) - l_i(W)`."""
    out: FloatArray = market.base_losses() - market.losses(allocation)
    return out


def social_cost(market: TruthfulMarket, allocation: FloatArray, costs: FloatArray) -> float:
    """Def. 1 (index sets corrected): :math:`SC(W; c) = \\sum_i l_i(W) + \\sum_j c_j f_j(W)`."""
    return float(np.sum(market.losses(allocation)) + np.asarray(costs) @ market.cost_shapes(allocation))


def _without(n: int, j: int) -> BoolArray:
    mask = np.ones(n, dtype=bool)
    mask[j] = False
    return mask


def coalition_value(market: TruthfulMarket, costs: FloatArray, members: Sequence[int]) -> float:
    """:math:`V(\\pi)`, buyers' total value with only the sellers ``members`` present; V(∅) = 0."""
    if len(members) == 0:
        return 0.0
    mask = np.zeros(market.n_sellers, dtype=bool)
    mask[list(members)] = True
    return float(np.sum(buyer_values(market, market.allocate(costs, mask))))


def _targets(n: int, sellers: Sequence[int] | None) -> list[int]:
    if sellers is None:
        return list(range(n))
    out = [int(j) for j in sellers]
    if any(not 0 <= j < n for j in out):
        raise InvalidMarketError("sellers", f"seller index out of range 0..{n - 1}")
    return out


def _fill(n: int, sellers: list[int], vals: list[float]) -> FloatArray:
    out = np.full(n, np.nan)
    out[sellers] = vals
    return out


def loo_payments(
    market: TruthfulMarket, costs: FloatArray, sellers: Sequence[int] | None = None
) -> FloatArray:
    """Eq. (1) for every seller (or only ``sellers``; the others are NaN): ``|S| + 1`` solves."""
    c = check_costs(costs, market.n_sellers)
    n = market.n_sellers
    todo = _targets(n, sellers)
    full = float(np.sum(buyer_values(market, market.allocate(c))))
    vals = [full - float(np.sum(buyer_values(market, market.allocate(c, _without(n, j))))) for j in todo]
    return _fill(n, todo, vals)


def vcg_payments(
    market: TruthfulMarket, costs: FloatArray, sellers: Sequence[int] | None = None
) -> FloatArray:
    """Eq. (10) for every seller (or only ``sellers``): :math:`\\hat c_j f_j + SC^*_{-j} - SC^*`."""
    c = check_costs(costs, market.n_sellers)
    n = market.n_sellers
    todo = _targets(n, sellers)
    w = market.allocate(c)
    sc = social_cost(market, w, c)
    f = market.cost_shapes(w)
    vals = [c[j] * f[j] + social_cost(market, market.allocate(c, _without(n, j)), c) - sc for j in todo]
    return _fill(n, todo, vals)


def seller_share_curve(market: TruthfulMarket, costs: FloatArray, seller: int, report: float) -> float:
    """:math:`f_j(W(u, \\hat c_{-j}))` at ``u = report``."""
    c = np.array(costs, dtype=np.float64)
    c[seller] = report
    return float(market.cost_shapes(market.allocate(c))[seller])


QUAD_EPSABS, QUAD_EPSREL = 1e-12, 1e-10  # asked of QUADPACK on each piece of myerson_quad


SUPPORT_GRID = 48  # reports scanned for support changes in myerson_quad (geometric in u - c_j)
SUPPORT_BISECTIONS = 52  # halvings that locate one change to the resolution of a double


def _support_changes(
    market: TruthfulMarket, costs: FloatArray, seller: int, lo: float, hi: float
) -> list[float]:
    r"""Reports :math:`u \in (lo, hi)` of ``seller`` where the set of sellers with positive allocation
    changes: the kinks of :math:`f_j(W(u, \hat c_{-j}))`. Scanned on a geometric grid of
    :data:`SUPPORT_GRID` offsets :math:`u - lo \in [10^{-6}, hi - lo]`, each change located by
    bisection; changes closer together than a grid step are found as one (the piece between them is
    then integrated adaptively, as before)."""
    c = np.array(costs, dtype=np.float64)

    def support(u: float) -> bytes:
        c[seller] = u
        return np.packbits(np.ravel(np.asarray(market.allocate(c)) > 0)).tobytes()

    grid = [lo, *(lo + np.geomspace(1e-6, hi - lo, SUPPORT_GRID))]
    found = []
    prev = support(grid[0])
    for x, y in itertools.pairwise(grid):
        here = support(y)
        if here != prev:
            left, right = x, y
            for _ in range(SUPPORT_BISECTIONS):
                mid = 0.5 * (left + right)
                if support(mid) == prev:
                    left = mid
                else:
                    right = mid
            found.append(0.5 * (left + right))
        prev = here
    return [u for u in found if lo < u < hi]


def myerson_quad(market: TruthfulMarket, costs: FloatArray, seller: int) -> tuple[float, float]:
    r"""The Myerson integral (9) by QUADPACK and its error estimate (summed over the pieces).

    QUADPACK's half-line rule maps :math:`[\hat c_j, \infty)` onto :math:`(0, 1]` and can miss the
    integral while its error estimate stays tiny (seen: 8.5e-10 off with an estimate of 1e-15, on a
    data-mixture market with :math:`t = (0, 0.875, 0.30078125)`, :math:`k = 3`, costs 1.75). So: the
    finite piece :math:`[\hat c_j, \hat c_j + 10^3 a]`, :math:`a = \max(1, \hat c_j)`, then the
    half-line beyond, summed exactly (``math.fsum``): 6e-13 off there, for about 3.6 times the
    integrand evaluations of the half-line alone. The finite piece is cut where the allocation's
    support changes (:func:`_support_changes`): :math:`f_j` has a kink there, which QUADPACK can
    straddle with a tiny error estimate (seen: 5.8e-9 off with an estimate of 1e-11, four sellers of
    equal cost on a data-mixture market).
    """
    c = np.asarray(costs, dtype=np.float64)
    lo = float(c[seller])
    a = max(1.0, lo)
    edges = [lo, *_support_changes(market, c, seller, lo, lo + a * 1e3), lo + a * 1e3]

    def f(u: float) -> float:
        return seller_share_curve(market, c, seller, u)

    opts = {"epsabs": QUAD_EPSABS, "epsrel": QUAD_EPSREL}
    parts = [integrate.quad(f, x, y, limit=200, **opts) for x, y in itertools.pairwise(edges)]  # type: ignore[arg-type]
    parts.append(integrate.quad(f, edges[-1], np.inf, limit=400, **opts))  # type: ignore[arg-type]
    return float(math.fsum(v for v, _ in parts)), float(math.fsum(e for _, e in parts))


def myerson_integral(
    market: TruthfulMarket, costs: FloatArray, seller: int, *, method: str = "quad", nodes: int = 200
) -> float:
    """:math:`I_j(\\hat c) = \\int_{\\hat c_j}^{\\infty} f_j(W(u, \\hat c_{-j}))\\,du` (eq. (9)).

    ``quad``: QUADPACK on finite pieces and the half-line beyond (:func:`myerson_quad`).
    ``gauss``: ``nodes``-point Gauss-Legendre after :math:`u = \\hat c_j + a s/(1-s)`,
    :math:`a = \\max(1, \\hat c_j)`; with
    :math:`f_j \\sim K/u^2` the transformed integrand tends to :math:`K/a` as :math:`s\\to 1`.
    ``envelope``: :math:`SC^*_{-j} - SC^*` (exact but makes Theorem 4.2 a tautology).

    Divergence: if :math:`f_j(W(u))` does not vanish as :math:`u \\to \\infty` -- e.g. the only seller of
    a simplex market always gets :math:`w = 1` -- the integral is :math:`+\\infty` (no finite report-
    independent payment is IR for every cost, Theorem 4.1) and ``inf`` is returned. The test is
    :math:`U f_j(U) > 1` at :math:`U = 10^{12}\\max(1, \\hat c_j)`; a convergent tail
    :math:`f_j \\sim K/u^2` gives :math:`U f_j(U) = K/U`. QUADPACK would otherwise return a finite,
    meaningless number.
    """
    c = check_costs(costs, market.n_sellers)
    lo = float(c[seller])
    if method in ("quad", "gauss"):
        far = 1e12 * max(1.0, lo)
        if far * seller_share_curve(market, c, seller, far) > 1.0:
            return float("inf")
    if method == "quad":
        return myerson_quad(market, c, seller)[0]
    if method == "gauss":
        s, wts = np.polynomial.legendre.leggauss(nodes)
        s = 0.5 * (s + 1.0)
        a = max(1.0, lo)
        u = lo + a * s / (1.0 - s)
        g = np.array([seller_share_curve(market, c, seller, float(x)) for x in u])
        return float(0.5 * np.sum(wts * g * a / (1.0 - s) ** 2))
    if method == "envelope":
        w = market.allocate(c)
        rest = market.allocate(c, _without(market.n_sellers, seller))
        return social_cost(market, rest, c) - social_cost(market, w, c)
    raise ConfigurationError("myerson_method", f"unknown method {method!r} (one of {MYERSON_METHODS})")


def myerson_payments(
    market: TruthfulMarket, costs: FloatArray, *, method: str = "auto", sellers: Sequence[int] | None = None
) -> FloatArray:
    """Eq. (9) for every seller; ``auto`` is the closed form on the mean-estimation market, else quad."""
    c = check_costs(costs, market.n_sellers)
    if method not in MYERSON_METHODS:
        raise ConfigurationError("myerson_method", f"unknown method {method!r} (one of {MYERSON_METHODS})")
    if method in ("auto", "closed_form") and isinstance(market, MeanEstimationMarket):
        return fast.myerson_payments(market, fast.inverse_system(market, c), c)
    if method == "closed_form":
        raise ConfigurationError("myerson_method", "closed_form exists only for the mean-estimation market")
    f = market.cost_shapes(market.allocate(c))
    how = "quad" if method == "auto" else method
    todo = _targets(market.n_sellers, sellers)
    return _fill(
        market.n_sellers, todo, [c[j] * f[j] + myerson_integral(market, c, j, method=how) for j in todo]
    )


@dataclass(frozen=True)
class ShapleyEstimate:
    """Shapley payments with their standard errors (zero when exact) and how they were computed."""

    values: FloatArray
    stderr: FloatArray
    method: str
    evaluations: int


def shapley_payments(
    market: TruthfulMarket,
    costs: FloatArray,
    *,
    max_exact: int | None = None,
    seed: int = 0,
    max_evaluations: int = 20_000,
) -> ShapleyEstimate:
    """Eq. (8): exact over all coalitions up to ``max_exact`` sellers, Monte Carlo beyond.

    ``max_exact=None`` (default) is :data:`EXACT_SHAPLEY_MEAN` = 20 on the mean-estimation market, whose
    coalition table is computed by batched solves (:func:`._truthful_fast.coalition_table`: exact is
    practical up to about 20 sellers), and :data:`EXACT_SHAPLEY_GENERIC` = 15 on
    other markets (one allocation solve per coalition through the valuation engine).

    Monte Carlo uses :func:`datamarket.valuation.monte_carlo_shapley` with ``max_evaluations`` game
    evaluations, except on the mean-estimation market where permutations are walked with rank-one
    updates (:func:`._truthful_fast.permutation_shapley`, ``max_evaluations // |S|`` permutations).
    """
    from datamarket.valuation import FunctionGame, exact_shapley, shapley_from_table

    c = check_costs(costs, market.n_sellers)
    n = market.n_sellers
    names = [f"seller_{j}" for j in range(n)]
    game = FunctionGame(lambda members: coalition_value(market, c, members), n, names)
    is_mean = isinstance(market, MeanEstimationMarket)
    if max_exact is None:
        max_exact = EXACT_SHAPLEY_MEAN if is_mean else EXACT_SHAPLEY_GENERIC
    if n <= max_exact and isinstance(market, MeanEstimationMarket):
        return ShapleyEstimate(
            shapley_from_table(fast.coalition_table(market, c)), np.zeros(n), "exact", 1 << n
        )
    if n <= max_exact:
        res = exact_shapley(game)
        return ShapleyEstimate(res.values, np.zeros(n), "exact", res.evaluations)
    if isinstance(market, MeanEstimationMarket):
        perms = max(2, max_evaluations // n)
        mean, se = fast.permutation_shapley(market, c, perms, seed)
        return ShapleyEstimate(mean, se, "permutation_rank_one", perms * n)
    try:
        from datamarket.valuation import monte_carlo_shapley  # type: ignore[attr-defined]
    except ImportError:  # not re-exported by the package yet
        from datamarket.valuation.montecarlo import monte_carlo_shapley
    res = monte_carlo_shapley(game, seed=seed, max_evaluations=max_evaluations)
    return ShapleyEstimate(np.asarray(res.values), np.asarray(res.stderr), res.method, int(res.evaluations))


def buyer_split(market: TruthfulMarket, allocation: FloatArray) -> FloatArray:
    """Eq. (17): :math:`\\eta_{ij}` (buyers x sellers); columns sum to 1."""
    w = np.asarray(allocation, dtype=np.float64)
    base = market.losses(w)
    nb, ns = w.shape
    marg = np.empty((nb, ns))
    for j in range(ns):
        zeroed = w.copy()
        zeroed[:, j] = 0.0
        marg[:, j] = market.losses(zeroed) - base  # v_i(W) - v_i(W^{-j})
    den = marg.sum(axis=0)
    scale = np.maximum(1.0, np.abs(marg).sum(axis=0))
    degenerate = np.abs(den) <= 1e-14 * scale
    eta = np.where(degenerate[None, :], 1.0 / nb, marg / np.where(degenerate, 1.0, den)[None, :])
    out: FloatArray = eta
    return out


@dataclass(frozen=True)
class PaymentResult:
    """Allocation and payments of every rule at the reported costs.

    Attributes
    ----------
    reported_costs : :math:`\\hat c`.
    allocation : :math:`W(\\hat c)` (buyers x sellers).
    shares : :math:`f_j(W)`; values : :math:`v_i(W)`; social_cost : :math:`SC(W; \\hat c)`.
    payments : rule -> payment to each seller.
    shapley_stderr : standard errors of the Shapley payments (zeros when exact).
    eta : buyer split (17); buyer_prices : rule -> price paid by each buyer (eta-weighted).
    """

    reported_costs: FloatArray
    allocation: FloatArray
    shares: FloatArray
    values: FloatArray
    social_cost: float
    payments: Mapping[str, FloatArray]
    eta: FloatArray
    buyer_prices: Mapping[str, FloatArray]
    shapley_stderr: FloatArray | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)


def compute_payments(
    market: TruthfulMarket,
    costs: Any,
    *,
    rules: Sequence[str] = RULES,
    myerson_method: str = "auto",
    fast_path: bool = True,
    shapley_max_exact: int | None = None,
    shapley_evaluations: int = 20_000,
    seed: int = 0,
    sellers: Sequence[int] | None = None,
) -> PaymentResult:
    """All requested payment rules at reports ``costs``.

    ``fast_path`` uses the closed forms / rank-one updates of :mod:`._truthful_fast` on the
    mean-estimation market (LOO, VCG, Myerson); otherwise every rule re-solves allocations generically.
    ``sellers`` restricts the generic LOO, VCG and Myerson computations to those sellers (the other
    entries are NaN, and so are the buyer prices); the misreport sweep uses it.

    >>> m = MeanEstimationMarket.from_variances([[1.0, 0.0]], [[1.0, 0.0], [0.8, 0.2]], [0.5, 0.5])
    >>> r = compute_payments(m, [1.0, 2.0])
    >>> bool(np.allclose(r.payments["myerson"], r.payments["vcg"], atol=1e-12))
    True
    """
    c = check_costs(costs, market.n_sellers)
    for r in rules:
        if r not in RULES:
            raise ConfigurationError("rules", f"unknown payment rule {r!r} (one of {RULES})")
    pays: dict[str, FloatArray] = {}
    stderr = None
    diag: dict[str, Any] = {}
    use_fast = fast_path and isinstance(market, MeanEstimationMarket)
    w, eta, h_inv = _allocation(market, c, use_fast)
    for rule in rules:
        if rule in ("loo", "vcg", "myerson"):
            pays[rule] = _allocation_rule(rule, market, c, w, h_inv, use_fast, myerson_method, sellers)
        else:
            est = shapley_payments(
                market, c, max_exact=shapley_max_exact, seed=seed, max_evaluations=shapley_evaluations
            )
            pays[rule] = est.values
            stderr = est.stderr
            diag["shapley_method"] = est.method
            diag["shapley_evaluations"] = est.evaluations
    return PaymentResult(
        reported_costs=c,
        allocation=w,
        shares=market.cost_shapes(w),
        values=buyer_values(market, w),
        social_cost=social_cost(market, w, c),
        payments=pays,
        eta=eta,
        buyer_prices={k: eta @ v for k, v in pays.items()},
        shapley_stderr=stderr,
        diagnostics=diag,
    )


def _allocation(
    market: TruthfulMarket, c: FloatArray, use_fast: bool
) -> tuple[FloatArray, FloatArray, FloatArray | None]:
    """The allocation :math:`W(\\hat c)`, the buyer split (17) and, on the fast path, the inverse of the
    mean-estimation system the closed forms reuse."""
    h_inv = fast.inverse_system(market, c) if use_fast and isinstance(market, MeanEstimationMarket) else None
    if h_inv is not None and isinstance(market, MeanEstimationMarket):
        w = market.cross @ h_inv  # eq. (22) from the same factorisation
        return w, fast.buyer_split(market, w, c), h_inv
    w = market.allocate(c)
    return w, buyer_split(market, w), h_inv


def _allocation_rule(
    rule: str,
    market: TruthfulMarket,
    c: FloatArray,
    w: FloatArray,
    h_inv: FloatArray | None,
    use_fast: bool,
    myerson_method: str,
    sellers: Sequence[int] | None,
) -> FloatArray:
    """The LOO, VCG or Myerson payments (closed forms on the fast path)."""
    if rule == "loo":
        if h_inv is not None and isinstance(market, MeanEstimationMarket):
            return fast.loo_payments(market, w, h_inv, c)
        return loo_payments(market, c, sellers)
    if rule == "vcg":
        return fast.vcg_payments(w, h_inv, c) if h_inv is not None else vcg_payments(market, c, sellers)
    method = myerson_method if use_fast or myerson_method != "auto" else "quad"
    return myerson_payments(market, c, method=method, sellers=sellers)
