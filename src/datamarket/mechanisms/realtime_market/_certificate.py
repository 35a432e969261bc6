r"""Certificate of a run of the real-time market (Agarwal, Dahleh, Sarkar).

:func:`certify_run` checks each claim of a run by a path independent of the one that produced it where
one exists (:mod:`datamarket.core.certificates`):

``truthfulness``
    Property 3.1 / Thm 5.1: every buyer's utility (eq. 1) at its true value is at least its utility at
    every bid of a grid (201 bids over ``[0, max_bid]`` and every threshold of its gain curve at its
    price, where the step function changes), the curve and price fixed (common random numbers). Fails
    when the delivered gain curve falls (``monotone=False``).
``charge.myerson``
    Eq. (3): each charge equals :math:`b\,h(b) - \int_0^b h` with the integral summed rectangle by
    rectangle over the steps of :math:`h` (the charge itself is summed jump by jump).
``pricing.regret``
    Thm 5.2's core inequality (Arora, Hazan, Kale, Thm 2.1), epoch by epoch: the expected regret against
    the best price of the net is at most
    :math:`\delta \sum_n \mathrm{RF}^*(c^*, b_n) + B_{\max}\ln|C|/\delta`.
    The detail reports the regret against the best fixed price of the reference grid.
``division.balance`` (PD*_A)
    Property 3.3: the shares sum to 1 (the Shapley values to :math:`v([M]) - v(\emptyset)`); within
    rounding for exact values, within :math:`M\varepsilon/(v([M]) - v(\emptyset))` for Algorithm 2 (Thm 5.3,
    with probability at least :math:`1 - \delta`).
``division.unassigned`` (PD*_B)
    Algorithm 3 is not renormalised: the paid fractions are the shares times
    :math:`\exp(-\lambda\sum_{j \ne m}\mathrm{SM})` recomputed from the similarities, and payments plus the
    unassigned revenue add up to each charge.
``division.shapley`` (exact values)
    Eq. (2): the values recomputed from the game's value table by the subset formula, each sum exact.
``division.replication`` (with a replication sweep of PD*_B, the seller copying its own stream)
    Property 3.4 / Thm 5.4: the copier's streams together are paid at most the original's share, for
    every number of copies (within rounding for exact values, within :math:`\varepsilon` for sampled).
    Thm 5.4 presumes non-negative shares (:math:`\psi \in [0, 1]^M`); for a seller whose share is negative
    the check is not made (the penalty then raises its pay: see the guide).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from datamarket.core.certificates import Certificate, Check
from datamarket.core.types import FloatArray
from datamarket.mechanisms.realtime_market._allocation import GainCurve
from datamarket.mechanisms.realtime_market._market import ClosedFormRun, MarketRun, Round
from datamarket.mechanisms.realtime_market._pricing import PricingTrace
from datamarket.mechanisms.realtime_market._replication import ReplicationSweep
from datamarket.valuation import subset_shapley

EPS = float(np.finfo(np.float64).eps)
GRID = 201

Probe = tuple[str, Any, float, float]
"""``(buyer, curve, price, value)``: a curve with ``utility(price, value, bids)``."""


def truthfulness_check(probes: Sequence[Probe], max_bid: float, levels: int = 1) -> Check:
    """``truthfulness``: the largest gain of any buyer from a bid other than its value."""
    worst, detail = 0.0, dict[str, Any]()
    for name, curve, price, value in probes:
        bids = np.linspace(0.0, max_bid, GRID)
        if isinstance(curve, GainCurve):
            tau = curve.allocation.thresholds(curve.grid, [price])[0]
            bids = np.concatenate([bids, tau])  # h steps up at each threshold (inclusive)
        u = curve.utility(price, value, np.append(bids, value))
        gap = float(u[:-1].max() - u[-1])
        worst = max(worst, gap)
        if gap > 0 or len(detail) < 20:
            detail[name] = {
                "utility_at_value": float(u[-1]),
                "best_bid": float(bids[int(np.argmax(u[:-1]))]),
                "gain_by_misreport": gap,
            }
    # U(b) sums levels + 1 terms of magnitude <= max_bid, twice (at the value and at the bid)
    tol = 4 * (levels + 2) * EPS * max(1.0, max_bid)
    return Check(
        "truthfulness",
        "no buyer gains by bidding other than its value (Property 3.1, Thm 5.1)",
        f"eq. (1) at the value vs at {GRID} bids in [0, max_bid] and at every threshold of h",
        max(0.0, worst),
        tol,
        detail,
    )


def _myerson(curve: GainCurve, price: float, bid: float) -> float:
    """``b h(b) - int_0^b h``, the integral rectangle by rectangle."""
    tau = curve.allocation.thresholds(curve.grid, [price])[0]
    heights = curve.heights()
    upper = np.append(tau[1:], math.inf)
    widths = np.clip(np.minimum(upper, bid) - tau, 0.0, None)
    affordable = np.flatnonzero(tau <= bid)
    h_b = float(heights[affordable[-1]]) if affordable.size else 0.0
    return bid * h_b - math.fsum((heights * widths).tolist())


def myerson_check(rounds: Sequence[Round]) -> Check:
    """``charge.myerson``: every charge is eq. (3) integrated by a second route."""
    again = [_myerson(r.curve, r.price, r.bid) for r in rounds]
    diffs = [abs(a - r.charge) for a, r in zip(again, rounds, strict=True)]
    levels = max(r.curve.grid.size for r in rounds)
    scale = max(1.0, *(r.bid for r in rounds))
    return Check(
        "charge.myerson",
        "each charge is RF*(p, b) = b h(b) - integral of h over [0, b] (eq. 3)",
        "integral summed over the rectangles of the step function h, vs the jump-by-jump charge",
        max(diffs),
        4 * (levels + 2) * EPS * scale,
        {
            r.buyer: {"charge": r.charge, "recomputed": a}
            for a, r in zip(again[:20], rounds[:20], strict=True)
        },
    )


def regret_check(trace: PricingTrace) -> Check:
    """``pricing.regret``: the multiplicative-weights bound, epoch by epoch."""
    charges = np.asarray(trace.expected_charge)
    rows, worst = [], 0.0
    for e in trace.epochs:
        regret = float(e.totals.max()) - math.fsum(charges[e.start : e.stop].tolist())
        bound = e.ahk_bound(trace.b_max)
        worst = max(worst, regret - bound)
        rows.append(
            {
                "buyers": e.stop - e.start,
                "net_size": int(e.net.size),
                "eps": e.eps,
                "delta": e.delta,
                "regret_vs_net": regret,
                "bound": bound,
            }
        )
    n = max(1, trace.n)
    detail: dict[str, Any] = {"epochs": rows}
    if trace.reference is not None or len(trace.epochs) == 1:
        best, total = trace.best_fixed()
        detail.update(best_fixed_price=best, average_regret=(total - float(charges.sum())) / n)
    return Check(
        "pricing.regret",
        "Algorithm 1's expected regret against the best net price is within the multiplicative-weights "
        "bound delta sum_n RF*(c*, b_n) + B_max ln(net size) / delta, each epoch (Thm 5.2)",
        "per epoch: totals at every net price summed buyer by buyer, minus the expected charges",
        max(0.0, worst),
        # totals and sums of n charges of at most B_max each, added one by one: n^2 eps B_max each
        4 * n * n * EPS * max(1.0, trace.b_max),
        detail,
    )


def balance_check(rounds: Sequence[Round]) -> Check:
    """``division.balance`` (PD*_A): the shares of every buyer who paid sum to 1, each buyer within its
    own bound (the residual is the largest excess over it)."""
    worst, detail = 0.0, {}
    for r in rounds:
        d = r.division
        m = len(d.names)
        if d.grand <= 0:  # nothing to split: balanced only if nothing was charged
            gap, t = (0.0 if r.charge == 0 else 1.0), 0.0
        else:
            gap = abs(math.fsum(d.shares.tolist()) - 1.0)
            # exact: each value sums 2^(M-1) marginals of magnitude <= 1; sampled: Thm 5.3's eps each
            t = (8 * m * 2**m * EPS if d.method == "exact" else m * d.eps) / d.grand
        worst = max(worst, gap - t)
        detail[r.buyer] = {"sum_of_shares": float(d.shares.sum()), "method": d.method, "bound": t}
    return Check(
        "division.balance",
        "each buyer's shares sum to 1 (Property 3.3; Thm 5.3 for sampled values)",
        "shares summed exactly (math.fsum); excess of |sum - 1| over each buyer's bound: rounding of "
        "2^M terms, or M eps / (v(M) - v(empty)) when sampled",
        max(0.0, worst),
        0.0,
        detail,
    )


def unassigned_check(rounds: Sequence[Round], lam: float) -> Check:
    """``division.unassigned`` (PD*_B): paid = shares x penalty, and payments + unassigned = charge."""
    worst, detail = 0.0, {}
    for r in rounds:
        d = r.division
        penalty = np.exp(-lam * (d.similarity.sum(axis=1) - np.diag(d.similarity)))
        paid_gap = float(np.max(np.abs(d.paid - d.shares * penalty)))
        money = math.fsum([*r.payments().tolist(), r.charge * d.unassigned]) - r.charge
        worst = max(worst, paid_gap, abs(money))
        detail[r.buyer] = {"charge": r.charge, "unassigned": r.charge * d.unassigned}
    m = max(len(r.division.names) for r in rounds)
    return Check(
        "division.unassigned",
        "Algorithm 3's shares are not renormalised: the charge not paid to sellers is reported as unassigned",
        "penalty exp(-lambda sum SM) recomputed from the similarities; payments + unassigned vs the charge",
        worst,
        8 * (m + 2) * EPS * max(1.0, *(r.charge for r in rounds)),
        detail,
    )


def shapley_check(rounds: Sequence[Round]) -> Check | None:
    """``division.shapley``: exact values recomputed from the value table by the subset formula."""
    exact = [r for r in rounds if r.division.table is not None]
    if not exact:
        return None
    gaps = [float(np.max(np.abs(subset_shapley(r.division.table) - r.division.shapley))) for r in exact]  # type: ignore[arg-type]
    m = max(len(r.division.names) for r in exact)
    return Check(
        "division.shapley",
        "the shares are the Shapley values (eq. 2) of the gain game on the allocated streams",
        "subset formula over the value table, each sum exact (math.fsum), vs the engine's values",
        max(gaps),
        4 * 2**m * EPS,
        {"buyers_checked": len(exact)},
    )


def replication_check(sweep: ReplicationSweep) -> Check | None:
    """``division.replication``: Property 3.4 under PD*_B when the seller copies itself (premise:
    non-negative original share)."""
    points = [p for p in sweep.points if p.rule == "pd_b"]
    if not sweep.self_replication or not points:
        return None
    original = points[0].total(sweep.owner)
    if original < 0:
        return None
    rows, worst = [], 0.0
    for p in points:
        d = p.division
        n = len(d.names)
        # exact: rounding of 2^n table terms over the scale; sampled: Thm 5.4's eps
        t = 8 * n * 2**n * EPS / max(d.grand, EPS) if d.method == "exact" else d.eps
        worst = max(worst, p.total(sweep.owner) - original - t)
        rows.append(
            {"copies": p.copies, "copier_total": p.total(sweep.owner), "original_share": original, "bound": t}
        )
    return Check(
        "division.replication",
        f"{sweep.seller}'s streams and copies together are paid at most its original share (Property 3.4, "
        "Thm 5.4, PD*_B)",
        "excess of the replicator's total share at every number of copies over its share without copies "
        "plus the bound (rounding, or Thm 5.4's eps when sampled)",
        max(0.0, worst),
        0.0,
        {"points": rows},
    )


def certify_run(run: MarketRun, sweep: ReplicationSweep | None = None) -> Certificate:
    """The certificate of a market run (and of its replication sweep)."""
    rounds = run.rounds
    cfg = run.config
    probes = [(r.buyer, r.curve, r.price, r.value) for r in rounds]
    checks = [
        truthfulness_check(probes, cfg.max_bid, cfg.allocation.levels),
        myerson_check(rounds),
        regret_check(run.pricing),
    ]
    if cfg.division.rule == "pd_a":
        checks.append(balance_check(rounds))
    else:
        checks.append(unassigned_check(rounds, cfg.division.lam))
    for extra in (shapley_check(rounds), replication_check(sweep) if sweep is not None else None):
        if extra is not None:
            checks.append(extra)
    return Certificate.of(*checks)


def certify_closed_form(run: ClosedFormRun, max_bid: float, probes: int | None = None) -> Certificate:
    """Truthfulness (of every buyer, or of ``probes`` evenly spaced ones) and the regret bound of a
    closed-form run."""
    from datamarket.mechanisms.realtime_market._allocation import ClosedFormCurve

    idx = np.unique(
        np.linspace(0, run.values.size - 1, min(probes or run.values.size, run.values.size)).astype(int)
    )
    curve = ClosedFormCurve()
    posted: FloatArray = np.asarray(run.pricing.posted)
    items = [(f"buyer_{i + 1}", curve, float(posted[i]), float(run.values[i])) for i in idx]
    return Certificate.of(truthfulness_check(items, max_bid), regret_check(run.pricing))
