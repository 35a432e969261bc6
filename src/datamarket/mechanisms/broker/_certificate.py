r"""Certificate of a broker round (Chen, Clinton & Kandasamy, arXiv:2502.16052).

:func:`certify_broker` checks every claim a planned (and settled) round of mechanism M* makes, each by a
path independent of the one that produced it where one exists (:mod:`datamarket.core.certificates`):

``pricing.envy_free``
    EFB (Sec. 2.1) of the posted menu, ex ante: every buyer's utility ``v_j(m_j+) - q_j+`` at its own
    option is at least its utility at every option of the posted curve ``(m, q_{N+}(m))``,
    ``m = 0..N+`` (Lemma 1, eq. 4), and at every other buyer's bundle ``(m_k+, q_k+)``.
``pricing.ir_buyer``
    IRB (Sec. 2.1) for the expected prices, ``v_j(m_j+) - q_j+ >= 0`` (``E p*_j = q_j+``, eq. 16).
``pricing.revenue``
    the revenue ``sum_j q_{N+}(m~_j)`` (eq. 5) re-evaluated from the valuations: each buyer's choice (4)
    recomputed on the posted curve, its price read off the curve and summed exactly (``math.fsum``),
    compared with Algorithm 1's revenue, the posted prices and ``profit_{N+} + c_1 N+`` (line 5).
``pricing.optimality_gap``
    ``profit_{N+}`` is OPT of eq. (3) over ``N >= 2`` (Algorithm 1 line 6, as Algorithm 2 needs) and
    ``opt_profit`` OPT over ``N >= 1``, up to the oracle's certified gap: an upper bound on
    ``profit_N`` for every ``N <= floor(|B|/c_1)`` (line 2) is ``profit_N + gap_N`` where the oracle
    ran (E2: HiGHS's dual bound; support: ``sum_j v_j(N)``; E1, E3: gap 0) and ``sum_j v_j(N) - c_1 N``
    (IRB) where the range was pruned. The tolerance is the solver's: exact for E1/E3, HiGHS's
    tolerances for E2, the certified approximation bound for the support restriction.
``mstar.expected_profit``
    ``W = sum_j q_j+ - c_1 N*_1 - c_2 N*_2 >= 0`` recomputed (eq. 13, corrected), so that
    ``E pi*_i - c_i N*_i = W N*_i / N+ >= 0`` (IRC in expectation, Thm 5.1).
``mstar.transfers`` (with an outcome)
    the settled prices (14) and payments (15), recomputed scalar by scalar from the outcome's sizes
    ``|Y_i|`` and discrepancy ``D``.
``mstar.budget_balance`` (with an outcome)
    strong budget balance on the realisation: ``sum_j p*_j = sum_i pi*_i`` (Thm 5.1), from the outcome.

>>> from datamarket.mechanisms.broker import BrokerMarket, plan_collection
>>> from datamarket.pricing.valuations import Gaussian, Threshold
>>> market = BrokerMarket(buyers=("a", "b"), valuations=(Gaussian(0.5), Threshold(0.4)),
...                       contributors=("x", "y"), costs=(0.05, 0.06), sigma=1.0)
>>> cert = certify_broker(market, plan_collection(market))
>>> cert.passed, [c.name for c in cert.checks][:2]
(True, ['pricing.envy_free', 'pricing.ir_buyer'])
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from datamarket.core.certificates import Certificate, Check
from datamarket.core.types import FloatArray, Outcome
from datamarket.mechanisms.broker._algorithm import Algorithm1Result
from datamarket.mechanisms.broker._market import BrokerMarket, CollectionPlan
from datamarket.pricing.ordered_item import REV_TOL, TIE_TOL

EPS = float(np.finfo(np.float64).eps)
#: HiGHS's defaults (``scipy.optimize.milp``): with ``mip_rel_gap = 0`` it stops once the absolute gap
#: is at most ``mip_abs_gap``; rows and integrality hold within ``mip_feasibility_tolerance``.
HIGHS_MIP_ABS_GAP = 1e-6
HIGHS_MIP_FEASIBILITY_TOL = 1e-6
#: :func:`plan_collection` accepts ``W`` down to ``-1e-12`` (rounding of its sum) and reports it as 0.
W_CLIP = 1e-12
#: Algorithm 2 searches Algorithm 1 over ``N >= 2`` (``N*_1 = N+ - 1`` must be positive).
N_MIN = 2


def _utility_tol(n_ops: int) -> float:
    # Values and prices lie in [0, 1]; each subtraction v - q and the comparison of two utilities
    # round by at most eps each, on top of eq. (4)'s tie rule, which lets a buyer take an option up
    # to TIE_TOL below its best one (ties go to the largest m).
    return TIE_TOL + n_ops * EPS


def envy_check(names: tuple[str, ...], table: FloatArray, plan: CollectionPlan) -> Check:
    """``pricing.envy_free``: worst envy of a buyer towards an option of the posted menu."""
    m, q, curve = np.asarray(plan.allocations), np.asarray(plan.prices), np.asarray(plan.curve)
    nb, width = len(names), curve.size
    own = table[np.arange(nb), m] - q
    detail: dict[str, Any] = {}
    envy = np.zeros(nb)
    for j, b in enumerate(names):
        curve_u = table[j, :width] - curve  # every option (m, q_{N+}(m)) of the posted curve
        bundle_u = table[j, m] - q  # every buyer's posted bundle (m_k+, q_k+)
        best_m = int(np.flatnonzero(curve_u == curve_u.max())[-1])
        best_k = int(np.argmax(bundle_u))
        envy[j] = max(float(curve_u.max()), float(bundle_u.max())) - float(own[j])
        detail[b] = {
            "m": int(m[j]),
            "price": float(q[j]),
            "utility": float(own[j]),
            "best_curve_option": {"m": best_m, "utility": float(curve_u[best_m])},
            "best_bundle": {"buyer": names[best_k], "utility": float(bundle_u[best_k])},
            "envy": float(envy[j]),
        }
    return Check(
        "pricing.envy_free",
        "no buyer prefers another option of the posted menu (EFB, Sec. 2.1; Lemma 1)",
        "v_j(m_j+) - q_j+ against every curve option (m, q(m)), m <= N+, and every bundle (m_k+, q_k+)",
        max(0.0, float(envy.max())),
        _utility_tol(4),
        detail,
    )


def ir_check(names: tuple[str, ...], table: FloatArray, plan: CollectionPlan) -> Check:
    """``pricing.ir_buyer``: ``v_j(m_j+) - q_j+ >= 0`` (the curve's option ``m = 0`` is free)."""
    m, q = np.asarray(plan.allocations), np.asarray(plan.prices)
    surplus = table[np.arange(len(names)), m] - q
    return Check(
        "pricing.ir_buyer",
        "every buyer's expected surplus v_j(m_j+) - E p*_j = v_j(m_j+) - q_j+ is >= 0 (IRB; eq. 16)",
        "v_j(m_j+) - q_j+ from the valuation table",
        max(0.0, float(-surplus.min())),
        _utility_tol(2),
        {
            b: {"m": int(m[j]), "price": float(q[j]), "surplus": float(surplus[j])}
            for j, b in enumerate(names)
        },
    )


def _choices(table: FloatArray, curve: FloatArray) -> list[int]:
    """Eq. (4) again, buyer by buyer: the largest m whose utility is within TIE_TOL of the best."""
    out = []
    for row in table[:, : curve.size]:
        util = row - curve
        out.append(int(np.flatnonzero(util >= util.max() - TIE_TOL)[-1]))
    return out


def revenue_check(names: tuple[str, ...], table: FloatArray, plan: CollectionPlan) -> Check:
    """``pricing.revenue``: eq. (5) re-evaluated from the valuations on the posted curve."""
    alg = plan.algorithm1
    curve, q = np.asarray(plan.curve), np.asarray(plan.prices)
    choice = _choices(table, curve)
    paid = [float(curve[c]) for c in choice]
    rev = math.fsum(paid)
    c1n = plan.c1 * plan.n_plus
    diffs = [
        abs(rev - float(alg.revenues[plan.n_plus])),
        abs(rev - float(q.sum())),
        abs((rev - c1n) - plan.profit_n_plus),
        *(abs(p - float(q[j])) for j, p in enumerate(paid)),
    ]
    nb = len(names)
    # Two summations of nb prices in [0, 1] (total <= nb) round by at most (nb - 1) eps nb each, and
    # profit subtracts c_1 N+ <= |B| (line 2's range): a first-order bound of 2 (nb + 1) eps max(1, nb).
    tol = 2 * (nb + 1) * EPS * max(1.0, nb, c1n)
    return Check(
        "pricing.revenue",
        "Algorithm 1's revenue and profit at N+ are those of the posted curve (eqs. 4-5, line 5)",
        "choices (4) recomputed on q_{N+}, prices summed exactly; vs revenue, sum q+, profit + c_1 N+",
        max(diffs),
        tol,
        {
            "revenue_recomputed": rev,
            "revenue_reported": float(alg.revenues[plan.n_plus]),
            "profit_n_plus": plan.profit_n_plus,
            "buyers": {
                b: {"m_recomputed": choice[j], "m_posted": int(plan.allocations[j]), "price": paid[j]}
                for j, b in enumerate(names)
            },
        },
    )


def _profit_bounds(table: FloatArray, c1: float, alg: Algorithm1Result) -> tuple[FloatArray, FloatArray]:
    """Upper bound on ``profit_N`` for ``N = 0..n_cap`` (-inf at 0) and each N's certified gap."""
    ns = np.arange(alg.n_cap + 1)
    ir_bound = table[:, : alg.n_cap + 1].sum(axis=0) - c1 * ns  # rev^OPT(N) <= sum_j v_j(N) by IRB
    prof = np.full(alg.n_cap + 1, np.nan)
    gaps = np.zeros(alg.n_cap + 1)
    prof[: alg.n_searched + 1] = alg.profits
    gaps[: alg.n_searched + 1] = alg.gaps
    ub = np.where(np.isfinite(prof), np.minimum(prof + gaps, ir_bound), ir_bound)
    ub[0] = -np.inf
    return ub, gaps


def _gap_tolerance(solver: str, nb: int, gaps: FloatArray, scale: float) -> float:
    # Algorithm 1's argmax and E1's pruning compare profits with REV_TOL; the profits (<= |B| in size)
    # round by about nb eps each. E1 and E3 are exact: nothing more.
    tol = REV_TOL + 4 * (nb + 2) * EPS * max(1.0, scale)
    if solver == "E2":
        # HiGHS stops at an absolute gap of mip_abs_gap; its prices may overshoot each row (and its
        # binaries their integrality) by mip_feasibility_tolerance, along EF paths of <= nb arcs per
        # buyer, so the E1-repriced revenue may trail the MILP objective by 2 nb^2 of it.
        tol += HIGHS_MIP_ABS_GAP + 2 * nb**2 * HIGHS_MIP_FEASIBILITY_TOL
    elif solver == "support":
        # an approximation: the claim is the certified bound itself, OPT - profit <= max_N gap_N
        tol += float(gaps.max(initial=0.0))
    return tol


def optimality_check(names: tuple[str, ...], table: FloatArray, plan: CollectionPlan) -> Check:
    """``pricing.optimality_gap``: ``profit_{N+}`` (N >= 2) and ``opt_profit`` (N >= 1) are optimal
    up to the oracle's certified gap."""
    alg = plan.algorithm1
    ub, gaps = _profit_bounds(table, plan.c1, alg)
    ub_plus = float(ub[N_MIN:].max()) if ub.size > N_MIN else -math.inf
    ub_all = float(ub[1:].max())
    residual = max(0.0, ub_plus - alg.profit, ub_all - alg.opt_profit)
    nb = len(names)
    return Check(
        "pricing.optimality_gap",
        f"profit_N+ is OPT over N >= {N_MIN} and opt_profit OPT over N >= 1 (eq. 3), solver {alg.solver}",
        "max over N <= floor(|B|/c_1) of profit_N + certified gap_N (sum_j v_j(N) - c_1 N where pruned)",
        residual,
        _gap_tolerance(alg.solver, nb, gaps, float(np.nanmax(np.abs(alg.profits[1:])))),
        {
            "solver": alg.solver,
            "n_plus": plan.n_plus,
            "opt_n": alg.opt_n,
            "profit_n_plus": alg.profit,
            "opt_profit": alg.opt_profit,
            "upper_bound_n_plus_range": ub_plus,
            "upper_bound_opt": ub_all,
            "argmax_upper_bound": int(np.argmax(ub[1:])) + 1,
            "max_certified_gap": float(gaps.max(initial=0.0)),
            "n_pruned": int(np.isnan(alg.profits[1:]).sum()) + alg.n_cap - alg.n_searched,
            "buyers": {
                b: {"m": int(plan.allocations[j]), "price": float(plan.prices[j])}
                for j, b in enumerate(names)
            },
        },
    )


def expected_profit_check(market: BrokerMarket, plan: CollectionPlan) -> Check:
    """``mstar.expected_profit``: ``W`` recomputed from the posted prices and the plan (13)."""
    w = math.fsum([*map(float, plan.prices), -plan.c1 * plan.n1, -plan.c2 * plan.n2])
    scale = float(np.sum(plan.prices)) + plan.c1 * plan.n1 + plan.c2 * plan.n2
    # plan_collection's sum of nb + 2 terms rounds by at most (nb + 2) eps times their total; a W in
    # [-W_CLIP, 0) is reported as 0 by design.
    tol = W_CLIP + (len(market.buyers) + 2) * EPS * max(1.0, scale)
    detail: dict[str, Any] = {"w_recomputed": w, "w_reported": plan.w, "n_plus": plan.n_plus}
    for name, n_i, c_i in ((plan.contributor_1, plan.n1, plan.c1), (plan.contributor_2, plan.n2, plan.c2)):
        detail[name] = {"n_star": n_i, "cost": c_i, "expected_surplus": w * n_i / plan.n_plus}
    return Check(
        "mstar.expected_profit",
        "W = sum_j q_j+ - c_1 N*_1 - c_2 N*_2 >= 0, so E pi*_i - c_i N*_i = W N*_i / N+ >= 0 (IRC, Thm 5.1)",
        "W recomputed exactly (math.fsum) from q+ and N*; vs the reported W and 0",
        max(0.0, abs(w - plan.w), -w),
        tol,
        detail,
    )


def _mstar_terms(plan: CollectionPlan, nb: int, sigma: float, ok: tuple[bool, bool], disc: float) -> Any:
    """Eqs. (14)-(15) scalar by scalar: ``(prices, payments, magnitude)`` of one realisation."""
    s2 = sigma**2
    ns, cs, ds = (plan.n1, plan.n2), (plan.c1, plan.c2), (plan.d1, plan.d2)
    var = [ds[i] * (s2 / ns[1 - i] + s2 / ns[i]) for i in range(2)]  # d_i (s^2/N*_{-i} + s^2/N*_i)
    dsq = disc * disc
    prices = [
        sum(ok[i] * (float(q) * ns[i] / plan.n_plus + var[i] / nb) for i in range(2))
        - (ds[0] + ds[1]) / nb * dsq
        for q in plan.prices
    ]
    pays = [ok[i] * (plan.w * ns[i] / plan.n_plus + cs[i] * ns[i] + var[i]) - ds[i] * dsq for i in range(2)]
    # total magnitude of every term entering the two sides of the balance
    mag = (
        float(np.sum(plan.prices))
        + plan.w
        + sum(cs[i] * ns[i] + 2 * var[i] + 2 * ds[i] * dsq for i in range(2))
    )
    return prices, pays, mag


def transfer_checks(market: BrokerMarket, plan: CollectionPlan, outcome: Outcome) -> tuple[Check, Check]:
    """``mstar.transfers`` and ``mstar.budget_balance`` of a settled realisation."""
    nb = len(market.buyers)
    k1, k2 = (nb + market.contributors.index(c) for c in (plan.contributor_1, plan.contributor_2))
    sizes = np.asarray(outcome.allocated)
    ok = (int(sizes[k1]) == plan.n1, int(sizes[k2]) == plan.n2)
    disc = float(outcome.extra["discrepancy"])
    prices, pays, mag = _mstar_terms(plan, nb, market.sigma, ok, disc)
    got_p = np.asarray(outcome.prices, dtype=np.float64)
    got_pi = np.asarray(outcome.payments, dtype=np.float64)
    expect_pi = np.zeros(len(market.contributors))
    expect_pi[k1 - nb], expect_pi[k2 - nb] = pays
    dev_p = np.abs(got_p[:nb] - prices)
    dev_pi = np.abs(got_pi[nb:] - expect_pi)
    # Each transfer takes about 8 roundings of terms bounded by mag; summing nb + 2 of them adds nb + 2
    # more (first-order bound), on each side of the balance.
    tol = 2 * (nb + 10) * EPS * max(1.0, mag)
    charged, paid = math.fsum(got_p), math.fsum(got_pi)
    detail_p = {b: {"price": float(got_p[j]), "eq14": prices[j]} for j, b in enumerate(market.buyers)}
    detail_pi = {
        c: {"payment": float(got_pi[nb + k]), "eq15": float(expect_pi[k]), "submitted": int(sizes[nb + k])}
        for k, c in enumerate(market.contributors)
    }
    transfers = Check(
        "mstar.transfers",
        "the settled prices and payments are M*'s (14) and (15)",
        "(14)-(15) recomputed scalar by scalar from the outcome's sizes |Y_i| and discrepancy D",
        float(max(dev_p.max(), dev_pi.max())),
        tol,
        {"discrepancy": disc, "buyers": detail_p, "contributors": detail_pi},
    )
    balance = Check(
        "mstar.budget_balance",
        "sum_j p*_j = sum_i pi*_i on this realisation (strong budget balance, Thm 5.1)",
        "charges and payments of the outcome summed exactly (math.fsum)",
        abs(charged - paid) if math.isfinite(charged - paid) else math.inf,
        W_CLIP + tol,
        {"charged": charged, "paid": paid, "buyers": detail_p, "contributors": detail_pi},
    )
    return transfers, balance


def certify_broker(market: BrokerMarket, plan: CollectionPlan, outcome: Outcome | None = None) -> Certificate:
    """The certificate of a broker round: the plan's pricing and profit claims (Algorithm 1 at N+,
    eq. 13) and, given the settled ``outcome`` of :func:`settle`, its transfers (14)-(15) and
    budget balance. Pure: recomputes everything from ``market.table``, ``plan`` and ``outcome``."""
    names, table = tuple(market.buyers), np.asarray(market.table)
    checks = [
        envy_check(names, table, plan),
        ir_check(names, table, plan),
        revenue_check(names, table, plan),
        optimality_check(names, table, plan),
        expected_profit_check(market, plan),
    ]
    if outcome is not None:
        checks.extend(transfer_checks(market, plan, outcome))
    return Certificate.of(*checks)
