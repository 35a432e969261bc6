"""Figures for Chaintreau et al. (seed 0): the balanced online data market
(``datamarket reproduce balanced_market``).

(a) ``quintic``: van der Waerden's quintic, Example A.1, solved through the general best-response
    condition (42) (x* = 1.1673039783).
(b) ``gamma_sweep``: baseline vs intervention production and demographics as gamma moves across the
    simplex of a two-group market; the backfire region (Def 5.2) is shaded.
(c) ``utility_ratios``: UR (36)-(38) vs the number of buyers (log axis): convergence to 1 (Thm 6.1) and a
    buyer whose ratio exceeds 1. ``market_growth``: the same ratios when sellers and buyers grow together,
    M = N up to 200, at the exact Shapley-Nash equilibrium (class engine, one class of sellers).
(d) ``paper_vs_shapley``: paper-model (Lemma 4.1) vs exact Shapley-Nash total production as M grows
    (the paper's Lemma 4.1 is the sellers' joint optimum, not a Nash equilibrium for M >= 2).
(e) ``empirical_digits``: a real round on digits: learned accuracy per group with/without the intervention.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from datamarket.experiments._figure import FigureSpec, Records
from datamarket.experiments._style import PALETTE, integer_ticks, legend_outside
from datamarket.learning.curves import LearningCurve
from datamarket.mechanisms.balanced_market import (
    BalancedMarket,
    Terms,
    backfires,
    best_response,
    coalitions_of,
    digits_market,
    growth_sequence,
    payoff,
    run_empirical_round,
    solve_baseline,
    solve_intervention,
    symmetric_shapley_quantity,
    utility_ratios,
)

GROUP_COLORS = {"A": PALETTE[0], "B": PALETTE[1]}
SCENARIO_COLORS = {"baseline": PALETTE[2], "intervention": PALETTE[4]}


# -- (a) quintic ---------------------------------------------------------------------------------------
def compute_quintic(quick: bool, seed: int) -> Records:
    terms = Terms(
        np.ones(2), np.array(1.0), np.array([5.0, 5.0]), np.array([1 / 3, 1 / 4]), np.array([3.0, 4.0])
    )
    coal = coalitions_of([])
    br = best_response(coal, 1.0, terms)
    roots = np.roots([1, 0, 0, 0, -1, -1])
    real = float(roots[np.abs(roots.imag) < 1e-12].real.max())
    grid = np.linspace(0.05, 3.0, 60 if quick else 300)
    rows: Records = [
        {
            "x": float(x),
            "seller_utility": payoff(float(x), coal, 1.0, terms),
            "revenue": float(terms.value(x)),
            "kind": "curve",
        }
        for x in grid
    ]
    rows.append(
        {
            "x": br.quantity,
            "seller_utility": br.payoff,
            "revenue": float(terms.value(br.quantity)),
            "kind": "best_response",
            "np_roots": real,
            "abs_error": abs(br.quantity - real),
        }
    )
    return rows


def plot_quintic(records: Records, axes: Sequence[Any]) -> None:
    ax = axes[0]
    curve = [r for r in records if r["kind"] == "curve"]
    star = next(r for r in records if r["kind"] == "best_response")
    ax.plot([r["x"] for r in curve], [r["seller_utility"] for r in curve], label="seller utility v(x)")
    ax.plot([r["x"] for r in curve], [r["revenue"] for r in curve], "--", label="revenue w(x)")
    ax.axvline(star["x"], color="k", lw=0.8)
    ax.plot([star["x"]], [star["seller_utility"]], "ko", label=f"x* = {star['x']:.10f} (root of x^5 - x - 1)")
    ax.set_xlabel("samples produced x (M = 1, one group)")
    ax.set_ylabel("utility (money units)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


# -- (b) gamma sweep -----------------------------------------------------------------------------------
def sweep_market(gamma: Sequence[float]) -> BalancedMarket:
    """Two groups, rho = (1.2, 1), kappa close to the thresholds (c_G = 0.25 for Z = alpha = beta = 1)."""
    return BalancedMarket.quasi_symmetric(
        [[1.2, 1.0]], [0.26, 0.22], (1, 1, 1), n_sellers=2, gamma=gamma, groups=("A", "B")
    )


def compute_gamma_sweep(quick: bool, seed: int) -> Records:
    rows: Records = []
    base = solve_baseline(sweep_market([0.5, 0.5]))
    for ga in np.linspace(0.0, 1.0, 41 if quick else 401):
        m = sweep_market([ga, 1 - ga])
        f = solve_intervention(m)
        rows.append(
            {
                "gamma_A": float(ga),
                "baseline_A": float(base.total[0]),
                "baseline_B": float(base.total[1]),
                "intervention_A": float(f.total[0]),
                "intervention_B": float(f.total[1]),
                "baseline_share_A": float(base.total[0] / base.total.sum()),
                "intervention_share_A": float(f.total[0] / f.total.sum()) if f.forms else float("nan"),
                "active_groups": "".join(g for g, a in zip(m.groups, f.active, strict=True) if a),
                "backfire": backfires(base, f),
            }
        )
    return rows


def _shade(ax: Any, records: Records) -> None:
    xs = [r["gamma_A"] for r in records]
    bf = [r["backfire"] for r in records]
    step = xs[1] - xs[0] if len(xs) > 1 else 0.0
    labelled = False
    for x, b in zip(xs, bf, strict=True):
        if b:
            ax.axvspan(
                x - step / 2,
                x + step / 2,
                color="red",
                alpha=0.12,
                lw=0,
                label=None if labelled else "backfire (Def 5.2)",
            )
            labelled = True


def plot_gamma_sweep(records: Records, axes: Sequence[Any]) -> None:
    xs = [r["gamma_A"] for r in records]
    ax = axes[0]
    for g in ("A", "B"):
        ax.plot(
            xs,
            [r[f"intervention_{g}"] for r in records],
            color=GROUP_COLORS[g],
            label=f"intervention, group {g}",
        )
        ax.plot(
            xs,
            [r[f"baseline_{g}"] for r in records],
            "--",
            color=GROUP_COLORS[g],
            label=f"baseline, group {g}",
        )
    _shade(ax, records)
    ax.set_xlabel("target share of group A, gamma_A (gamma_B = 1 - gamma_A)")
    ax.set_ylabel("total samples produced")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    ax = axes[1]
    ax.plot(
        xs, [r["intervention_share_A"] for r in records], color="tab:green", label="intervention share of A"
    )
    ax.plot(
        xs, [r["baseline_share_A"] for r in records], "--", color="tab:purple", label="baseline share of A"
    )
    ax.plot(xs, xs, ":", color="gray", label="target gamma_A")
    _shade(ax, records)
    ax.set_xlabel("target share of group A, gamma_A")
    ax.set_ylabel("dataset demographics x_A / ||x||")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


# -- (c) utility ratios vs number of buyers -------------------------------------------------------------
def growth_market(n: int, n_sellers: int = 2) -> BalancedMarket:
    """Group A's rho = 1.5 N grows (p_A = 1.5, even buyers keep a surplus); rho_B = 0.6 stays fixed."""
    values = np.column_stack([np.where(np.arange(n) % 2 == 0, 2.0, 1.5), np.zeros(n)])
    values[:2, 1] = [0.5, 0.3]
    return BalancedMarket.quasi_symmetric(
        values, [0.1, 0.1], (1, 1, 1), n_sellers=n_sellers, gamma=[0.5, 0.5]
    )


def compute_utility_ratios(quick: bool, seed: int) -> Records:
    sizes = (
        [3, 5, 10, 20, 50, 100]
        if quick
        else [int(s) for s in np.unique(np.geomspace(3, 3000, 25).astype(int))]
    )
    rows = growth_sequence(growth_market(max(sizes)), sizes, "paper")
    return [
        {
            "n_buyers": r["n_buyers"],
            "ur_marketplace": r["ur_marketplace"],
            "ur_seller": r["ur_sellers"][0],
            "ur_buyer_0": r["ur_buyers"][0],
            "ur_buyer_2": r["ur_buyers"][2],
            "rho_A": r["rho"][0],
        }
        for r in rows
    ]


def _plot_ratios(ax: Any, records: Records, x_key: str, x_label: str, marker: str) -> None:
    xs = [r[x_key] for r in records]
    for key, label in (
        ("ur_marketplace", "marketplace w^f / w"),
        ("ur_seller", "seller v^f / v"),
        ("ur_buyer_0", "buyer 0 u^f / u (values A and B)"),
        ("ur_buyer_2", "buyer 2 u^f / u (values A only)"),
    ):
        ax.plot(xs, [r[key] for r in records], marker=marker, label=label)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel(x_label)
    ax.set_ylabel("utility ratio UR (intervention / baseline)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def plot_utility_ratios(records: Records, axes: Sequence[Any]) -> None:
    _plot_ratios(axes[0], records, "n_buyers", "number of buyers N (log scale)", ".")


# -- (c') utility ratios as the whole market grows (exact Shapley-Nash, class engine) --------------------
def compute_market_growth(quick: bool, seed: int) -> Records:
    """``growth_market(M)`` with ``M`` buyers *and* ``M`` identical sellers, exact Shapley-Nash equilibria
    (one class of sellers: :mod:`datamarket.mechanisms.balanced_market._classes`), M up to 200."""
    sizes = [3, 5, 8] if quick else [3, 5, 10, 20, 50, 100, 150, 200]
    rows: Records = []
    for m in sizes:
        market = growth_market(m, n_sellers=m)
        base = solve_baseline(market, "shapley_nash", seed=seed)
        interv = solve_intervention(market, "shapley_nash", seed=seed)
        ur = utility_ratios(base, interv)
        rows.append(
            {
                "n_sellers": m,
                "n_buyers": m,
                "ur_marketplace": ur["marketplace"],
                "ur_seller": ur["sellers"][0],
                "ur_buyer_0": ur["buyers"][0],
                "ur_buyer_2": ur["buyers"][2],
                "baseline_total": float(base.total.sum()),
                "intervention_total": float(interv.total.sum()),
                "active_sellers_baseline": int(np.sum(base.production.sum(axis=1) > 0)),
            }
        )
    return rows


def plot_market_growth(records: Records, axes: Sequence[Any]) -> None:
    _plot_ratios(axes[0], records, "n_sellers", "market size M = N (sellers = buyers, log scale)", "o")


# -- (d) paper vs exact Shapley-Nash --------------------------------------------------------------------
def compute_paper_vs_shapley(quick: bool, seed: int) -> Records:
    curve = LearningCurve(1.0, 1.0, 1.0)
    rows: Records = []
    for m in range(1, (5 if quick else 10) + 1):
        market = BalancedMarket.quasi_symmetric([[1.0]], [0.075], curve, n_sellers=m)
        p = solve_baseline(market, "paper")
        s = solve_baseline(market, "shapley_nash", seed=seed)
        rows.append(
            {
                "n_sellers": m,
                "paper_total": float(p.total[0]),
                "shapley_nash_total": float(s.total[0]),
                "closed_form_total": m * symmetric_shapley_quantity(1.0, 0.075, curve, m),
                "paper_seller_utility": float(p.utilities.sellers[0]),
                "shapley_nash_seller_utility": float(s.utilities.sellers[0]),
                "equilibria_found": s.n_equilibria,
            }
        )
    return rows


def plot_paper_vs_shapley(records: Records, axes: Sequence[Any]) -> None:
    m = [r["n_sellers"] for r in records]
    ax = axes[0]
    ax.plot(m, [r["paper_total"] for r in records], "s--", label="paper model (Lemma 4.1, joint optimum)")
    ax.plot(m, [r["shapley_nash_total"] for r in records], "o-", label="exact Shapley-Nash equilibrium")
    sym = [(r["n_sellers"], r["closed_form_total"]) for r in records if r["closed_form_total"] > 0]
    ax.plot(
        [x for x, _ in sym],
        [y for _, y in sym],
        "k+",
        ms=10,
        label="symmetric closed form $M y_S$ (none once $\\kappa > \\rho\\, c(K)$)",
    )
    ax.set_xlabel("number of sellers M")
    ax.set_ylabel("total samples produced")
    integer_ticks(ax)
    legend_outside(ax)
    ax.grid(alpha=0.3)
    ax = axes[1]
    ax.plot(m, [r["paper_seller_utility"] for r in records], "s--", label="paper model")
    ax.plot(m, [r["shapley_nash_seller_utility"] for r in records], "o-", label="exact Shapley-Nash")
    ax.set_xlabel("number of sellers M")
    ax.set_ylabel("utility of seller 1 (cheapest active)")
    integer_ticks(ax)
    legend_outside(ax)
    ax.grid(alpha=0.3)


# -- (e) empirical round on digits ----------------------------------------------------------------------
def compute_empirical(quick: bool, seed: int) -> Records:
    """Paper-model production (Z = alpha = beta = 1, 8 digits per unit) sold in real rounds on digits."""
    values = [[1.0, 0.4], [0.8, 0.3], [0.6, 0.3]]
    market = BalancedMarket.quasi_symmetric(
        values, [0.01, 0.02], (1, 1, 1), n_sellers=2, gamma=[0.5, 0.5], groups=("A", "B")
    )
    rows: Records = []
    test = 40 if quick else 150
    for sol in (solve_baseline(market), solve_intervention(market)):
        counts = np.floor(sol.production * 8.0)
        sellers, buyers, groups = digits_market(counts, len(values), test_per_group=test, seed=seed)
        rnd = run_empirical_round(sellers, buyers, market.values, market.costs, groups, seed=seed)
        for k, g in enumerate(groups):
            rows.append(
                {
                    "scenario": sol.scenario,
                    "group": g,
                    "samples": int(counts[:, k].sum()),
                    "accuracy_mean": float(rnd.accuracy[:, k].mean()),
                    "accuracy_min": float(rnd.accuracy[:, k].min()),
                    "accuracy_max": float(rnd.accuracy[:, k].max()),
                    "revenue": float(rnd.revenue.sum()),
                    "payments": float(rnd.payments.sum()),
                }
            )
    return rows


def plot_empirical(records: Records, axes: Sequence[Any]) -> None:
    ax = axes[0]
    width = 0.35
    for s, (scen, hatch) in enumerate((("baseline", ""), ("intervention", "//"))):
        rs = [r for r in records if r["scenario"] == scen]
        xs = np.arange(len(rs)) + (s - 0.5) * width
        acc = np.array([r["accuracy_mean"] for r in rs])
        err = np.array(
            [
                [r["accuracy_mean"] - r["accuracy_min"] for r in rs],
                [r["accuracy_max"] - r["accuracy_mean"] for r in rs],
            ]
        )
        bars = ax.bar(
            xs,
            acc,
            width,
            yerr=err,
            hatch=hatch,
            color=SCENARIO_COLORS[scen],
            edgecolor="k",
            label=scen,
            capsize=3,
        )
        for b, r in zip(bars, rs, strict=True):
            ax.annotate(
                f"n={r['samples']}",
                (b.get_x() + b.get_width() / 2, 0.02),
                ha="center",
                fontsize=8,
                rotation=90,
                color="w",
            )
    ax.set_xticks(range(2), ["group A (digits 0-4)", "group B (digits 5-9)"])
    ax.set_xlabel("demographic group")
    ax.set_ylabel("test accuracy (mean over buyers; bars = min..max)")
    ax.set_ylim(0, 1.05)
    legend_outside(ax, title="scenario (intervention: $\\gamma = (0.5, 0.5)$)", title_fontsize=8)
    ax.grid(alpha=0.3, axis="y")


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec(
        "quintic",
        "Example A.1: van der Waerden's quintic via the best-response condition (42)",
        compute_quintic,
        plot_quintic,
        in_demo=True,
    ),
    FigureSpec(
        "gamma_sweep",
        "Baseline vs intervention as gamma moves across the simplex (M = 2, paper model)",
        compute_gamma_sweep,
        plot_gamma_sweep,
        panels=2,
    ),
    FigureSpec(
        "utility_ratios",
        "Utility ratios (36)-(38) along a growth sequence of buyers",
        compute_utility_ratios,
        plot_utility_ratios,
    ),
    FigureSpec(
        "market_growth",
        "Utility ratios (36)-(38) as sellers and buyers grow together to M = 200 (exact Shapley-Nash)",
        compute_market_growth,
        plot_market_growth,
    ),
    FigureSpec(
        "paper_vs_shapley",
        "Paper model vs exact Shapley-Nash equilibrium (rho = 1, kappa = 0.075)",
        compute_paper_vs_shapley,
        plot_paper_vs_shapley,
        panels=2,
    ),
    FigureSpec(
        "empirical_digits",
        "Real rounds on digits: accuracy per group with and without the intervention",
        compute_empirical,
        plot_empirical,
    ),
)
