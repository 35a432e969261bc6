r"""Certificate of a truthful-payments result (Fan, Rotello, Karimireddy, arXiv:2504.05563).

What a :class:`~datamarket.mechanisms.truthful_payments.PaymentResult` claims, and the check of each
claim (:mod:`datamarket.core.certificates`). Every check recomputes the claim by a second path that
re-solves the allocation per coalition (``market.allocate`` with a membership mask, one Cholesky solve
of the sub-block on the mean-estimation market), never through the shared inverse
:math:`H = (G+N+A)^{-1}` that the fast path (:mod:`._fast`) uses for all four rules.

``allocation.stationarity`` (mean-estimation market)
    *W is the optimum (22)*: :math:`W(G+N+A) = B`, residual :math:`\max|W(G+N+A) - B|`.
``shapley.efficiency``
    *Data Shapley (8) divides* :math:`V(S) - V(\emptyset) = \sum_i v_i(W)`, residual the gap.
``shapley.recomputed`` (up to :data:`RECOMPUTE_MAX_MEAN` / :data:`RECOMPUTE_MAX_GENERIC` sellers)
    *The payments are eq. (8)*: every :math:`V(\pi)` re-solved per coalition
    (:func:`~._rules.coalition_value`), Shapley values by the subset formula with exactly rounded sums
    (``math.fsum``); Monte Carlo estimates are compared with :data:`MC_SIGMAS` standard errors.
``loo.recomputed``, ``vcg.recomputed``
    *LOO (1)* :math:`V(S) - V(S\setminus j)` and *VCG (10)* :math:`\hat c_jf_j + SC^*_{-j} - SC^*`
    re-solved per removed seller (the fast path uses Schur-complement updates of :math:`H`).
``myerson.vcg_identity``
    *Myerson (9) is the minimal IC, IR payment and equals VCG* (Thm 4.2, the envelope theorem
    :math:`\partial SC^*/\partial \hat c_j = f_j`): the reported Myerson payment against the re-solved
    VCG payment, within the integration error of the method (closed form: rounding; ``quad``: the
    accuracy asked of QUADPACK or, where larger, QUADPACK's own error estimate (it exceeds the request
    when roundoff in the integrand is detected); ``gauss``: twice the difference to the rule with twice
    the nodes). Sellers
    whose Myerson integral diverges (the only seller of a simplex market) are listed, not certified.
``<rule>.budget_balance``
    *Strong budget balance of the split (17)*: :math:`\sum_i P_{i\to\cdot} = \sum_j P_{\to j}`.
``buyer_split.recomputed`` (mean-estimation market)
    *The buyer prices follow (17)*: :math:`\eta` recomputed by the generic split (losses with
    column j zeroed, not re-optimised) against the closed form :math:`w_{ij}^2((G+N)_{jj} + 2\hat c_j)`,
    compared through the prices :math:`\sum_j \eta_{ij} P_j` it induces.
``myerson.seller_ir``, ``vcg.seller_ir``
    *Seller IR at truthful reports* (Claims 3-4, Thm 4.1): :math:`P_j \ge \hat c_j f_j`.

Tolerances follow from floating point: a quantity formed from ``terms`` operations on numbers of
magnitude ``scale``, through linear systems of condition number ``cond``, is trusted to
:func:`fp_tol` :math:`= 8\,\mathrm{terms}\cdot\mathrm{cond}\cdot\varepsilon\max(1, \mathrm{scale})`
(the Cholesky forward-error bound, Higham 2002 Thm 10.4, with its modest constant absorbed in 8).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import integrate

from datamarket.core.certificates import Certificate, Check, max_residual
from datamarket.core.types import FloatArray
from datamarket.mechanisms.truthful_payments._markets import MeanEstimationMarket, TruthfulMarket
from datamarket.mechanisms.truthful_payments._rules import (
    PaymentResult,
    buyer_split,
    coalition_value,
    myerson_integral,
    myerson_quad,
    social_cost,
)
from datamarket.valuation import subset_shapley

EPS = float(np.finfo(np.float64).eps)
SAFETY = 8.0  # the constant of the standard forward-error bounds (Higham 2002, Thms 3.1 and 10.4)
MC_SIGMAS = 5.0  # a Monte Carlo estimate may differ from the exact value by this many standard errors
# myerson_quad asks 1e-12 abs / 1e-10 rel of each of its two pieces: their sum is within 2e-12 / 1e-10
QUAD_EPSABS, QUAD_EPSREL = 2e-12, 1e-10
GAUSS_NODES = 200  # myerson_integral's default rule; its error is estimated against 2x the nodes
RECOMPUTE_MAX_MEAN = 10  # 2^10 small Cholesky solves: milliseconds
RECOMPUTE_MAX_GENERIC = 8  # 2^8 allocations by root finding: well under a second
TELESCOPING = ("exact", "permutation_rank_one")  # estimators whose values sum to V(S) exactly


def fp_tol(terms: float, scale: float, cond: float = 1.0) -> float:
    """``SAFETY * terms * cond * eps * max(1, scale)`` (module docstring)."""
    return SAFETY * max(1.0, float(terms)) * float(cond) * EPS * max(1.0, float(scale))


@dataclass(frozen=True)
class _Ctx:
    market: TruthfulMarket
    result: PaymentResult
    costs: FloatArray
    cond: float  # condition number of the systems the closed forms solve (1: no closed form)
    scale: float  # magnitude of the losses, values and payments
    table: FloatArray | None  # V(pi) re-solved per coalition, or None beyond the recompute limit

    @property
    def n(self) -> int:
        return int(self.market.n_sellers)

    @property
    def terms(self) -> int:
        return int(self.market.n_sellers + self.market.n_buyers)


def _conditioning(market: TruthfulMarket, costs: FloatArray) -> float:
    """:math:`(\\lambda_{max}(G+N) + \\max c)/\\lambda_{min}(G+N)`: bounds the condition number of
    :math:`M = G+N+A` and of every :math:`M_0 = M - \\hat c_j e_je_j^\\top` in (9); 1 elsewhere."""
    if not isinstance(market, MeanEstimationMarket):
        return 1.0
    eig = np.linalg.eigvalsh(market.gram_plus_noise)
    return float((eig[-1] + float(np.max(costs))) / eig[0])


def _context(market: TruthfulMarket, result: PaymentResult) -> _Ctx:
    c = np.asarray(result.reported_costs, dtype=np.float64)
    n = market.n_sellers
    limit = RECOMPUTE_MAX_MEAN if isinstance(market, MeanEstimationMarket) else RECOMPUTE_MAX_GENERIC
    table = None
    if n <= limit:
        table = np.array(
            [coalition_value(market, c, [j for j in range(n) if m >> j & 1]) for m in range(1 << n)]
        )
    pays = np.concatenate(
        [np.asarray(p, dtype=np.float64) for p in result.payments.values()] or [np.zeros(1)]
    )
    parts = [np.sum(np.abs(market.base_losses())), abs(result.social_cost), np.sum(np.abs(result.values))]
    parts.append(float(np.max(np.abs(pays[np.isfinite(pays)]), initial=0.0)))
    if table is not None:
        parts.append(float(np.max(np.abs(table))))
    return _Ctx(market, result, c, _conditioning(market, c), float(max(parts)), table)


def _value_without(ctx: _Ctx, j: int) -> float:
    if ctx.table is not None:
        return float(ctx.table[((1 << ctx.n) - 1) ^ (1 << j)])
    return coalition_value(ctx.market, ctx.costs, [k for k in range(ctx.n) if k != j])


def _full_value(ctx: _Ctx) -> float:
    if ctx.table is not None:
        return float(ctx.table[-1])
    return coalition_value(ctx.market, ctx.costs, list(range(ctx.n)))


def _compare(
    name: str, claim: str, method: str, reported: Any, recomputed: Any, allowed: Any, tol: float
) -> Check:
    """Residual: the largest excess of ``|reported - recomputed|`` over the per-seller ``allowed`` error."""
    rep, rec = np.asarray(reported, dtype=np.float64), np.asarray(recomputed, dtype=np.float64)
    diff = np.abs(rep - rec)
    excess = diff - np.broadcast_to(np.asarray(allowed, dtype=np.float64), diff.shape)
    detail = {"reported": rep.tolist(), "recomputed": rec.tolist(), "difference": diff.tolist()}
    if np.any(np.asarray(allowed) != 0):
        detail["allowed"] = np.broadcast_to(np.asarray(allowed, dtype=np.float64), diff.shape).tolist()
    return Check(name, claim, method, max_residual(excess), tol, detail)


def _check_stationarity(ctx: _Ctx) -> Check | None:
    market = ctx.market
    if not isinstance(market, MeanEstimationMarket):
        return None
    w = np.asarray(ctx.result.allocation)
    big_m = market.gram_plus_noise + np.diag(ctx.costs)
    gap = np.abs(w @ big_m - market.cross)
    scale = float(np.max(np.abs(market.cross)))
    return Check(
        "allocation.stationarity",
        "W(c) minimises the social cost: W (G + N + A) = B (eq. 22)",
        "first-order condition of Def. 1 evaluated at the reported W",
        max_residual(gap),
        # W = B M^{-1}: |W M - B| <= |B| |M^{-1} M - I|, each entry a sum of |S| products
        fp_tol(ctx.n * ctx.n, scale, ctx.cond),
        {"per_seller": np.max(gap, axis=0).tolist()},
    )


def _check_shapley(ctx: _Ctx) -> list[Check]:
    res = ctx.result
    if "shapley" not in res.payments:
        return []
    pay = np.asarray(res.payments["shapley"], dtype=np.float64)
    se = np.zeros(ctx.n) if res.shapley_stderr is None else np.asarray(res.shapley_stderr, dtype=np.float64)
    method = str(res.diagnostics.get("shapley_method", "exact"))
    # Every V(pi) carries the error of one solve (cond); the subset formula sums 2^(n-1) marginals per
    # seller and efficiency adds n of them. A sampled estimator that does not telescope is allowed
    # MC_SIGMAS standard errors per seller (their sum for the efficiency gap, a bound under any correlation).
    tol_one = fp_tol(2**ctx.n + 2 * ctx.terms, ctx.scale, ctx.cond)
    mc = 0.0 if method in TELESCOPING else MC_SIGMAS * float(np.sum(se))
    total = float(np.sum(res.values))
    eff = Check(
        "shapley.efficiency",
        "the Shapley payments (8) sum to V(S) - V(empty) = sum_i v_i(W)",
        f"sum of the payments against the buyers' values at W ({method} estimate)",
        max(0.0, abs(float(math.fsum(pay.tolist())) - total) - mc),
        ctx.n * tol_one,
        {"payments": pay.tolist(), "stderr": se.tolist(), "sum": float(pay.sum()), "value": total},
    )
    if ctx.table is None:
        return [eff]
    exact = subset_shapley(ctx.table)
    rec = _compare(
        "shapley.recomputed",
        "the payments are the Data Shapley values (8) of V",
        "V(pi) re-solved for every coalition, subset formula with exact sums"
        + ("" if method == "exact" else f"; {MC_SIGMAS:g} standard errors allowed"),
        pay,
        exact,
        0.0 if method == "exact" else MC_SIGMAS * se,
        tol_one,
    )
    return [eff, rec]


def _check_loo(ctx: _Ctx) -> Check | None:
    if "loo" not in ctx.result.payments:
        return None
    full = _full_value(ctx)
    direct = np.array([full - _value_without(ctx, j) for j in range(ctx.n)])
    return _compare(
        "loo.recomputed",
        "the payments are leave-one-out values (1): V(S) - V(S \\ j)",
        "V(S) and V(S \\ j) re-solved as reduced problems",
        ctx.result.payments["loo"],
        direct,
        0.0,
        fp_tol(ctx.terms, ctx.scale, ctx.cond),
    )


def direct_vcg(market: TruthfulMarket, costs: FloatArray) -> FloatArray:
    """Eq. (10) with every allocation re-solved: :math:`\\hat c_jf_j(W) + SC(W_{-j}) - SC(W)`."""
    c = np.asarray(costs, dtype=np.float64)
    n = market.n_sellers
    w = market.allocate(c)
    sc, f = social_cost(market, w, c), market.cost_shapes(w)
    out = np.empty(n)
    for j in range(n):
        mask = np.ones(n, dtype=bool)
        mask[j] = False
        out[j] = c[j] * f[j] + social_cost(market, market.allocate(c, mask), c) - sc
    return out


def _check_vcg(ctx: _Ctx, vcg: FloatArray) -> Check | None:
    if "vcg" not in ctx.result.payments:
        return None
    return _compare(
        "vcg.recomputed",
        "the payments are VCG payments (10): c_j f_j + SC*_{-j} - SC*",
        "SC* and SC*_{-j} re-solved as reduced problems",
        ctx.result.payments["vcg"],
        vcg,
        0.0,
        fp_tol(ctx.terms, ctx.scale, ctx.cond),
    )


def _quad_error(ctx: _Ctx, j: int) -> float:
    """QUADPACK's own error estimate of the Myerson integral of seller ``j``, summed over the pieces of
    :func:`~._rules.myerson_quad` (the same calls, deterministic, so the same value), whose estimate
    the payment discards. It exceeds the requested accuracy when QUADPACK detects roundoff."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", integrate.IntegrationWarning)  # warned when the payment was made
        return myerson_quad(ctx.market, ctx.costs, j)[1]


def _myerson_allowed(ctx: _Ctx, method: str, pay: FloatArray, finite: list[int]) -> FloatArray:
    """Per-seller integration error of the Myerson integral under ``method`` (0 for closed forms)."""
    allowed = np.zeros(ctx.n)
    shares = np.asarray(ctx.result.shares)
    for j in finite:
        integral = abs(float(pay[j]) - float(ctx.costs[j] * shares[j]))
        if method == "quad":
            allowed[j] = max(QUAD_EPSABS, QUAD_EPSREL * integral, _quad_error(ctx, j))
        elif method == "gauss":
            fine = myerson_integral(ctx.market, ctx.costs, j, method="gauss", nodes=2 * GAUSS_NODES)
            allowed[j] = 2.0 * abs(fine - integral)  # a-posteriori estimate, doubled (stated)
    return allowed


def _check_myerson(ctx: _Ctx, vcg: FloatArray, method: str) -> Check | None:
    if "myerson" not in ctx.result.payments:
        return None
    pay = np.asarray(ctx.result.payments["myerson"], dtype=np.float64)
    finite = [j for j in range(ctx.n) if np.isfinite(pay[j])]
    how = method
    if method in ("auto", "closed_form"):
        how = "closed_form" if isinstance(ctx.market, MeanEstimationMarket) else "quad"
    allowed = _myerson_allowed(ctx, how, pay, finite)
    chk = _compare(
        "myerson.vcg_identity",
        "the Myerson payments (9) equal the VCG payments (Thm 4.2, envelope theorem)",
        f"Myerson ({how}) against VCG re-solved per removed seller, within the integration error",
        pay[finite],
        vcg[finite],
        allowed[finite],
        fp_tol(ctx.terms, ctx.scale, ctx.cond),
    )
    detail = {**chk.detail, "sellers": finite, "divergent": [j for j in range(ctx.n) if j not in finite]}
    return Check(chk.name, chk.claim, chk.method, chk.residual, chk.tolerance, detail)


def _check_budget(ctx: _Ctx, rule: str) -> Check | None:
    pay = np.asarray(ctx.result.payments[rule], dtype=np.float64)
    if not np.all(np.isfinite(pay)):
        return None  # no finite payment, no prices: the result claims nothing (JSON null)
    prices = np.asarray(ctx.result.buyer_prices[rule], dtype=np.float64)
    gap = abs(math.fsum(prices.tolist()) - math.fsum(pay.tolist()))
    return Check(
        f"{rule}.budget_balance",
        "buyers pay exactly what sellers receive (split (17), strong budget balance)",
        "sum of the buyer prices against the sum of the seller payments",
        gap,
        # each price sums |S| products eta_ij P_j, and the eta columns sum to 1 up to |B| roundings
        fp_tol(ctx.terms * ctx.n, float(np.sum(np.abs(pay)))),
        {"buyer_prices": prices.tolist(), "seller_payments": pay.tolist()},
    )


def _check_split(ctx: _Ctx) -> Check | None:
    market = ctx.market
    if not isinstance(market, MeanEstimationMarket):
        return None  # the generic split (17) is the one the result used
    w = np.asarray(ctx.result.allocation)
    eta = buyer_split(market, w)
    rules = [r for r, p in ctx.result.payments.items() if np.all(np.isfinite(p))]
    if not rules:
        return None
    reported = np.concatenate([np.asarray(ctx.result.buyer_prices[r]) for r in rules])
    recomputed = np.concatenate([eta @ np.asarray(ctx.result.payments[r]) for r in rules])
    # v_i(W) - v_i(W^{-j}) is a difference of losses of magnitude |l_i| (d + |S| terms), so eta_ij is
    # known to that error over the column sum den_j; a price moves by P_j times it.
    terms = market.buyer_means.shape[1] + ctx.n
    lmax = float(np.max(np.abs(market.base_losses())) + np.max(np.abs(market.losses(w))))
    den = np.sum(w**2, axis=0) * (np.diag(market.gram_plus_noise) + 2 * ctx.costs)
    allowed = []
    for r in rules:
        p = np.abs(np.asarray(ctx.result.payments[r]))
        rel = np.where(den > 0, fp_tol(terms, lmax, ctx.cond) / np.where(den > 0, den, 1.0), 1.0)
        allowed.append(np.full(market.n_buyers, float(np.sum(p * np.minimum(rel, 1.0)))))
    return _compare(
        "buyer_split.recomputed",
        "buyer prices are the split (17) of the seller payments",
        "eta recomputed from losses with column j zeroed (generic path), prices eta @ P per rule "
        + "("
        + ", ".join(rules)
        + ")",
        reported,
        recomputed,
        np.concatenate(allowed),
        fp_tol(ctx.terms * ctx.n, ctx.scale, ctx.cond),
    )


def _check_ir(ctx: _Ctx, rule: str) -> Check | None:
    if rule not in ctx.result.payments:
        return None
    pay = np.asarray(ctx.result.payments[rule], dtype=np.float64)
    cost = ctx.costs * np.asarray(ctx.result.shares)
    short = np.where(np.isfinite(pay), cost - np.where(np.isfinite(pay), pay, 0.0), -np.inf)
    return Check(
        f"{rule}.seller_ir",
        "every seller is paid at least its cost c_j f_j at truthful reports (Claims 3-4, Thm 4.1)",
        "payment minus incurred cost per seller",
        max_residual(short),
        fp_tol(ctx.terms, ctx.scale, ctx.cond),
        {"payment": pay.tolist(), "cost_incurred": cost.tolist()},
    )


def payment_certificate(
    market: TruthfulMarket, result: PaymentResult, *, myerson_method: str = "auto"
) -> Certificate:
    """The checks of every claim of ``result`` (module docstring); pure, no I/O.

    ``myerson_method`` is the method the Myerson payments were computed with (it sets the integration
    error the identity with VCG allows).
    """
    ctx = _context(market, result)
    needs_vcg = "vcg" in result.payments or "myerson" in result.payments
    vcg = direct_vcg(market, ctx.costs) if needs_vcg else np.zeros(ctx.n)
    checks: list[Check | None] = [_check_stationarity(ctx), *_check_shapley(ctx), _check_loo(ctx)]
    checks += [_check_vcg(ctx, vcg), _check_myerson(ctx, vcg, myerson_method)]
    checks += [_check_budget(ctx, r) for r in result.payments]
    checks += [_check_split(ctx), _check_ir(ctx, "myerson"), _check_ir(ctx, "vcg")]
    return Certificate.of(*(c for c in checks if c is not None))
