r"""Misreport analysis of Fan et al. (Sec. 4.2, Figures 1 and 4).

For seller j with true cost :math:`c_j`, others truthful, the utility of reporting :math:`\hat c_j` under
rule R is :math:`u^R_j(\hat c_j) = P^R_j(\hat c_j, c_{-j}) - c_j f_j(W(\hat c_j, c_{-j}))`.

Algorithm:

1. evaluate every rule on the report grid :math:`0, h, 2h, \dots \le \hat c_{\max}` (step
   :math:`h = 0.1` by default). The grid is exactly that: the true cost is **not** inserted, so
   ``reported_costs`` is the plain grid whatever :math:`c_j` is; the truthful utility
   (for :meth:`MisreportSweep.gain`) is evaluated separately;
2. the grid maximiser is the **smallest** report whose utility is within ``1e-12`` (relative) of the
   grid maximum (ties go to the smallest maximiser, so a flat utility -- a seller that never
   trades -- does not pick a report from rounding noise); it is refined by bounded Brent
   (``minimize_scalar(method="bounded")``) on the two neighbouring grid cells, keeping the better of
   grid and refined points;
3. price of anarchy: the ratio of **true-cost** social costs,
   :math:`PoA = SC(W(\hat c^*_j, c_{-j}); c) / SC(W(c); c) \ge 1`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize

from datamarket.core.errors import ConfigurationError, InvalidMarketError
from datamarket.core.types import FloatArray
from datamarket.equilibrium.anarchy import price_of_anarchy
from datamarket.mechanisms.truthful_payments._markets import TruthfulMarket, check_costs
from datamarket.mechanisms.truthful_payments._rules import RULES, compute_payments, social_cost


@dataclass(frozen=True)
class ReportEval:
    """One report's payments (per rule), utility (per rule) and the true-cost social cost."""

    report: float
    payments: dict[str, float]
    utility: dict[str, float]
    share: float
    share_others: float
    social_cost: float


def evaluate_report(
    market: TruthfulMarket, costs: FloatArray, seller: int, report: float, rules: Sequence[str], **kw: Any
) -> ReportEval:
    """Payments and utilities of ``seller`` when it reports ``report`` and the others are truthful."""
    c = np.array(costs, dtype=np.float64)
    true_cost = float(c[seller])
    c[seller] = report
    res = compute_payments(market, c, rules=rules, sellers=[seller], **kw)
    f = res.shares
    pays = {r: float(res.payments[r][seller]) for r in rules}
    truth = check_costs(costs, market.n_sellers)
    return ReportEval(
        report=float(report),
        payments=pays,
        utility={r: pays[r] - true_cost * float(f[seller]) for r in rules},
        share=float(f[seller]),
        share_others=float(np.sum(f) - f[seller]),
        social_cost=social_cost(market, res.allocation, truth),
    )


@dataclass(frozen=True)
class MisreportSweep:
    """Result of :func:`misreport_sweep` (arrays aligned with ``reported_costs``)."""

    seller: int
    true_cost: float
    reported_costs: FloatArray
    payments: Mapping[str, FloatArray]
    utility: Mapping[str, FloatArray]
    shares: FloatArray
    shares_others: FloatArray
    social_cost: FloatArray
    truthful_social_cost: float
    best_grid_report: Mapping[str, float]
    best_report: Mapping[str, float]
    best_utility: Mapping[str, float]
    price_of_anarchy: Mapping[str, float]
    truthful_utility: Mapping[str, float]

    def gain(self, rule: str) -> float:
        """Utility gained by the best misreport over truthful reporting (<= 0 for truthful rules).

        Negative when the true cost lies outside the grid's range and the best in-range report is
        worse than the truth.
        """
        return self.best_utility[rule] - self.truthful_utility[rule]


def misreport_sweep(
    market: TruthfulMarket,
    costs: Any,
    seller: int,
    *,
    rules: Sequence[str] = RULES,
    max_report: float | None = None,
    step: float = 0.1,
    grid: Sequence[float] | None = None,
    refine: bool = True,
    **kw: Any,
) -> MisreportSweep:
    """Utility of ``seller`` over a report grid under each rule, best reports and PoA.

    ``max_report`` defaults to ``3 * c_j`` (at least 1; Figure 1 sweeps [0, 15] for c_j = 5). The
    grid is ``0, step, 2 step, ...`` up to ``max_report``; the true cost is not inserted
    (so ``reported_costs`` does not depend on it), and best reports are searched within the grid's range.
    Extra keyword arguments go to :func:`compute_payments` (``myerson_method``, ``seed``...).
    """
    c = check_costs(costs, market.n_sellers)
    if not 0 <= seller < market.n_sellers:
        raise InvalidMarketError("sweep.seller", f"must be in 0..{market.n_sellers - 1}, got {seller}")
    truth = float(c[seller])
    pts = _report_grid(truth, max_report, step, grid)
    evals = [evaluate_report(market, c, seller, float(r), rules, **kw) for r in pts]
    utility = {r: np.array([e.utility[r] for e in evals]) for r in rules}
    payments = {r: np.array([e.payments[r] for e in evals]) for r in rules}
    sc = np.array([e.social_cost for e in evals])
    at_truth = evaluate_report(market, c, seller, truth, rules, **kw)
    sc_truth = at_truth.social_cost
    best_grid: dict[str, float] = {}
    best: dict[str, float] = {}
    best_u: dict[str, float] = {}
    poa: dict[str, float] = {}
    for r in rules:
        k = _first_maximiser(utility[r])
        best_grid[r] = float(pts[k])
        b_rep, b_u, b_sc = float(pts[k]), float(utility[r][k]), float(sc[k])
        if refine and pts.size > 1 and np.isfinite(b_u):
            b_rep, b_u, b_sc = _refined(market, c, seller, r, pts, k, (b_rep, b_u, b_sc), kw)
        best[r], best_u[r] = b_rep, b_u
        poa[r] = price_of_anarchy(b_sc, sc_truth)
    return MisreportSweep(
        seller=seller,
        true_cost=truth,
        reported_costs=pts,
        payments=payments,
        utility=utility,
        shares=np.array([e.share for e in evals]),
        shares_others=np.array([e.share_others for e in evals]),
        social_cost=sc,
        truthful_social_cost=sc_truth,
        best_grid_report=best_grid,
        best_report=best,
        best_utility=best_u,
        price_of_anarchy=poa,
        truthful_utility=dict(at_truth.utility),
    )


def _report_grid(
    truth: float, max_report: float | None, step: float, grid: Sequence[float] | None
) -> FloatArray:
    """The reports swept: ``grid``, else ``0, step, 2 step, ...`` up to ``max_report`` (default
    ``max(1, 3 c_j)``)."""
    if grid is not None:
        pts = np.asarray(grid, dtype=np.float64)
        if pts.ndim != 1 or pts.size == 0 or np.any(~np.isfinite(pts)) or np.any(pts < 0):
            raise ConfigurationError("sweep.grid", "must be a non-empty list of finite non-negative reports")
        return pts
    if step <= 0:
        raise ConfigurationError("sweep.step", "must be positive")
    top = max(1.0, 3 * truth) if max_report is None else float(max_report)
    if top <= 0:
        raise ConfigurationError("sweep.max_report", "must be positive")
    n = int(np.floor(top / step + 1e-9)) + 1
    return np.round(np.arange(n) * step, 12)


def _refined(
    market: TruthfulMarket,
    c: FloatArray,
    seller: int,
    rule: str,
    pts: FloatArray,
    k: int,
    on_grid: tuple[float, float, float],
    kw: dict[str, Any],
) -> tuple[float, float, float]:
    """The best report of ``rule`` between the grid neighbours of ``pts[k]`` (bounded Brent search): the
    report, its utility and social cost, when it beats ``on_grid``'s utility (else ``on_grid``)."""
    lo, hi = float(pts[max(k - 1, 0)]), float(pts[min(k + 1, pts.size - 1)])
    opt = optimize.minimize_scalar(
        lambda x: -evaluate_report(market, c, seller, x, [rule], **kw).utility[rule],
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": 1e-8},
    )
    if -float(opt.fun) > on_grid[1] + 1e-12:
        ev = evaluate_report(market, c, seller, float(opt.x), [rule], **kw)
        return float(opt.x), ev.utility[rule], ev.social_cost
    return on_grid


def _first_maximiser(values: FloatArray, rtol: float = 1e-12) -> int:
    """Index of the smallest report whose utility is within ``rtol`` (relative) of the maximum.

    : ties go to the smallest maximiser. Without the tolerance a flat utility curve (e.g. a
    seller that is never allocated) would pick its report from floating-point noise.

    >>> _first_maximiser(np.array([1.0, 2.0, 2.0 + 1e-15, 1.5]))
    1
    """
    finite = np.isfinite(values)
    if not np.any(finite):
        return 0
    top = float(np.max(values[finite]))
    return int(np.flatnonzero(finite & (values >= top - rtol * max(1.0, abs(top))))[0])
