"""Figures of Westenbroek et al. (Westenbroek et al.), Section IV, and two the paper lacks.

Section IV example with the paper's parameters: two sources at ``x1`` and ``x2 = 1`` with ``alpha = 1``,
two identical buyers fitting a line (``phi = [x, 1]``) evaluated on ``U[-1, 1]``, ``delta = 0`` and
``eta = 1`` (implicit in the paper). The ``x1`` grid is
``linspace(-1, 0.99, 400)`` plus the log-spaced approach ``1 - logspace(-2, -6, 41)`` (quick mode:
60 + 9 points). Every number comes from :func:`datamarket.mechanisms.competing_buyers.analyse_market`
(weights computed from the estimator, not from the printed formulas).

* ``fig1_gamma``: gamma_i^j vs x1 (paper Fig. 1, corrected: the printed gamma swaps the sources);
  second panel vs 1 - x1 on log-log axes (gamma ~ (1 - x1)^-2).
* ``fig2_xi``: xi vs x1 (Fig. 2).
* ``fig3_d``: the four d's vs x1 (Fig. 3, with the corrected matrix B of eq. 31); second panel
  vs 1 - x1 (d ~ (1 - x1)^-4: d diverges much faster than gamma, as the caption says).
* ``fig4_poa``: price of anarchy vs x1 and vs 1 - x1 (Fig. 4). It tends to 2, not to
  infinity as the caption says.
* ``poa_competition``: PoA vs the competition level delta (two identical buyers) and vs the number
  of identical buyers (delta = 0), at a few x1, on the Section IV market with ``effort_alpha = 6``
  instead of 1: gamma_i >= 1/12 on the whole grid, so 2 alpha D_i >= 2 alpha gamma_i >= 1 and the
  missing feasibility condition never removes a point with delta = 0; what remains visible
  is the collapse at rho(A) >= 1 (rho grows like (M - 1) sqrt(xi_12 xi_21)) and, as delta -> 1
  (gamma = (1 - delta) beta -> 0), infeasibility or an undefined PoA (L(e_social) <= 0).
  Such points are recorded with ``poa = None`` and a ``status``.

Everything is deterministic: ``seed`` is accepted for the runner's interface and unused.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from datamarket.experiments._figure import FigureSpec, Records
from datamarket.experiments._style import integer_ticks, legend_outside
from datamarket.mechanisms.competing_buyers import analyse_market, section_iv_market

X2 = 1.0
DELTA_X1 = (-0.5, 0.0, 0.5)
BUYERS_X1 = (-0.5, 0.0, 0.3)
#: effort sensitivity of the competition figure (see the module docstring)
COMPETITION_ALPHA = 6.0


def x1_grid(quick: bool) -> np.ndarray:
    """``linspace(-1, 0.99, n)`` plus ``1 - logspace(-2, -6, m)``, sorted, unique (paper: no grid)."""
    lin = np.linspace(-1.0, 0.99, 60 if quick else 400)
    log = 1.0 - np.logspace(-2, -6, 9 if quick else 41)
    return np.unique(np.concatenate([lin, log]))


@lru_cache(maxsize=4)
def _sweep(quick: bool) -> tuple[dict[str, Any], ...]:
    rows = []
    for x1 in x1_grid(quick):
        an = analyse_market(section_iv_market(float(x1), X2), cross_check=False)
        g = an.gne
        rows.append(
            {
                "x1": float(x1),
                "gamma": an.gamma,
                "xi": an.xi,
                "d": g.d,
                "rho": g.spectral_radius,
                "poa": g.price_of_anarchy,
                "gne_exists": g.gne_exists,
                "loss_equilibrium": g.loss_equilibrium,
                "loss_social": g.loss_social,
            }
        )
    return tuple(rows)


def compute_gamma(quick: bool, seed: int) -> Records:
    """Tidy ``(x1, source, buyer, gamma)`` records."""
    return [
        {"x1": r["x1"], "source": i + 1, "buyer": j + 1, "gamma": float(r["gamma"][i, j])}
        for r in _sweep(quick)
        for i in range(2)
        for j in range(2)
    ]


def compute_xi(quick: bool, seed: int) -> Records:
    """Tidy ``(x1, i, l, buyer, xi)`` records for the off-diagonal xi_{i,l}^j."""
    return [
        {"x1": r["x1"], "i": i + 1, "l": 2 - i, "buyer": j + 1, "xi": float(r["xi"][i, 1 - i, j])}
        for r in _sweep(quick)
        for i in range(2)
        for j in range(2)
    ]


def compute_d(quick: bool, seed: int) -> Records:
    """Tidy ``(x1, source, buyer, d, spectral_radius)`` records."""
    return [
        {
            "x1": r["x1"],
            "source": i + 1,
            "buyer": j + 1,
            "d": None if r["d"] is None else float(r["d"][i, j]),
            "spectral_radius": r["rho"],
        }
        for r in _sweep(quick)
        for i in range(2)
        for j in range(2)
    ]


def compute_poa(quick: bool, seed: int) -> Records:
    """Tidy ``(x1, one_minus_x1, poa, losses, spectral_radius)`` records."""
    return [
        {
            "x1": r["x1"],
            "one_minus_x1": 1.0 - r["x1"],
            "poa": r["poa"],
            "loss_equilibrium": r["loss_equilibrium"],
            "loss_social": r["loss_social"],
            "spectral_radius": r["rho"],
        }
        for r in _sweep(quick)
    ]


def compute_competition(quick: bool, seed: int) -> Records:
    """PoA vs delta (2 buyers) and vs the number of buyers (delta = 0) on the Section IV market."""
    records: Records = []
    deltas = np.linspace(0.0, 0.95, 20 if quick else 96)
    for x1 in DELTA_X1:
        for delta in deltas:
            market = section_iv_market(x1, X2, 2, float(delta), COMPETITION_ALPHA)
            g = analyse_market(market, cross_check=False).gne
            records.append(
                {
                    "panel": "delta",
                    "x1": x1,
                    "delta": float(delta),
                    "n_buyers": 2,
                    "effort_alpha": COMPETITION_ALPHA,
                    "poa": g.price_of_anarchy,
                    "gne_exists": g.gne_exists,
                    "spectral_radius": g.spectral_radius,
                    "status": g.status,
                }
            )
    for x1 in BUYERS_X1:
        for m in range(1, 7 if quick else 14):
            market = section_iv_market(x1, X2, m, 0.0, COMPETITION_ALPHA)
            g = analyse_market(market, cross_check=False).gne
            records.append(
                {
                    "panel": "buyers",
                    "x1": x1,
                    "delta": 0.0,
                    "n_buyers": m,
                    "effort_alpha": COMPETITION_ALPHA,
                    "poa": g.price_of_anarchy,
                    "gne_exists": g.gne_exists,
                    "spectral_radius": g.spectral_radius,
                    "status": g.status,
                }
            )
    return records


# --------------------------------------------------------------------------------------------------
# plotting (draws only)
# --------------------------------------------------------------------------------------------------
_STYLE = {1: "-", 2: "--"}


def _series(records: Records, key: str, **match: Any) -> tuple[np.ndarray, np.ndarray]:
    rows = [r for r in records if all(r[k] == v for k, v in match.items())]
    x = np.array([r["x1"] for r in rows], dtype=float)
    y = np.array([np.nan if r[key] is None else r[key] for r in rows], dtype=float)
    return x, y


def _log_panel(ax: Any, records: Records, key: str, label: str, slope: float) -> None:
    """``key`` vs ``1 - x1`` on log-log axes with a reference slope (the divergence rate)."""
    for i in (1, 2):
        x, y = _series(records, key, source=i, buyer=1)
        ax.loglog(1.0 - x, y, lw=1.8, label=f"source {i} (both buyers: equal)")
    eps = np.logspace(-6, 0, 20)
    ax.loglog(eps, eps**slope, color="grey", ls=":", lw=1, label=f"$(1 - x_1)^{{{slope:g}}}$")
    ax.invert_xaxis()
    ax.set_xlabel("$1 - x_1$ (log scale; $x_1 \\to 1$ to the right)")
    ax.set_ylabel(f"{label} (log scale)")
    legend_outside(ax)
    ax.grid(True, alpha=0.3, which="major")


def plot_gamma(records: Records, axes: Sequence[Any]) -> None:
    ax = axes[0]
    for i in (1, 2):
        for j in (1, 2):
            x, y = _series(records, "gamma", source=i, buyer=j)
            ax.plot(x, y, _STYLE[j], lw=2.2 if j == 1 else 1.2, label=f"$\\gamma_{i}^{j}$")
    ax.set_yscale("log")
    ax.set_xlabel("location of source 1, $x_1$ ($x_2 = 1$)")
    ax.set_ylabel("$\\gamma_i^j$ (variance weight, log scale)")
    ax.legend(title="buyers identical: $\\gamma_i^1 = \\gamma_i^2$")
    ax.grid(True, alpha=0.3)
    _log_panel(axes[1], records, "gamma", "$\\gamma$", -2.0)


def plot_xi(records: Records, axes: Sequence[Any]) -> None:
    ax = axes[0]
    for i in (1, 2):
        for j in (1, 2):
            x, y = _series(records, "xi", i=i, buyer=j)
            ax.plot(x, y, _STYLE[j], lw=2.2 if j == 1 else 1.2, label=f"$\\xi_{{{i},{3 - i}}}^{j}$")
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("location of source 1, $x_1$ ($x_2 = 1$)")
    ax.set_ylabel("$\\xi_{i,l}^j$ (leave-$i$-out weight of $\\sigma_l^2$)")
    ax.legend()
    ax.grid(True, alpha=0.3)


def plot_d(records: Records, axes: Sequence[Any]) -> None:
    ax = axes[0]
    for i in (1, 2):
        for j in (1, 2):
            x, y = _series(records, "d", source=i, buyer=j)
            ax.plot(x, y, _STYLE[j], lw=2.2 if j == 1 else 1.2, label=f"$d_{i}^{j}$")
    ax.set_yscale("log")
    ax.set_xlabel("location of source 1, $x_1$ ($x_2 = 1$)")
    ax.set_ylabel("equilibrium $d_i^j$ (log scale)")
    ax.legend(title="$d_i^1 = d_i^2$")
    ax.grid(True, alpha=0.3)
    _log_panel(axes[1], [r for r in records if r["d"] is not None], "d", "$d$", -4.0)


def plot_poa(records: Records, axes: Sequence[Any]) -> None:
    x, y = _series(records, "poa")
    ax = axes[0]
    ax.plot(x, y, lw=2)
    ax.axhline(
        2.0,
        color="grey",
        ls="--",
        lw=1,
        label="limit 2 as $x_1 \\to 1$ (the paper states $\\infty$; corrected)",
    )
    ax.set_xlabel("location of source 1, $x_1$ ($x_2 = 1$)")
    ax.set_ylabel("price of anarchy $L(e^*)/L(\\hat e)$")
    ax.set_ylim(0.95, 2.05)
    ax.legend(loc="upper left")
    ax.grid(True, alpha=0.3)
    ax2 = axes[1]
    ax2.semilogx(1.0 - x, y, "o-", ms=2.5, lw=1.2)
    ax2.axhline(2.0, color="grey", ls="--", lw=1, label="limit 2")
    ax2.invert_xaxis()
    ax2.set_xlabel("$1 - x_1$ (log scale; $x_1 \\to 1$ to the right)")
    ax2.set_ylabel("price of anarchy")
    ax2.set_ylim(0.95, 2.05)
    ax2.legend(loc="upper left")
    ax2.grid(True, alpha=0.3, which="both")


def plot_competition(records: Records, axes: Sequence[Any]) -> None:
    ax, ax2 = axes[0], axes[1]
    for x1 in DELTA_X1:
        rows = [r for r in records if r["panel"] == "delta" and r["x1"] == x1]
        d = np.array([r["delta"] for r in rows])
        p = np.array([np.nan if r["poa"] is None else r["poa"] for r in rows], dtype=float)
        line = ax.plot(d, p, "o-", ms=2.5, label=f"$x_1 = {x1:g}$")[0]
        _mark_undefined(ax, d, p, line.get_color())
    ax.set_xlabel(f"competition level $\\delta$ (2 identical buyers, $\\alpha = {COMPETITION_ALPHA:g}$)")
    ax.set_ylabel("price of anarchy")
    ax.legend(title="gaps: no GNE or $L(\\hat e) \\leq 0$", fontsize=8)
    ax.grid(True, alpha=0.3)
    for x1 in BUYERS_X1:
        rows = [r for r in records if r["panel"] == "buyers" and r["x1"] == x1]
        m = np.array([r["n_buyers"] for r in rows])
        p = np.array([np.nan if r["poa"] is None else r["poa"] for r in rows], dtype=float)
        line = ax2.plot(m, p, "o-", label=f"$x_1 = {x1:g}$")[0]
        gone = [r["n_buyers"] for r in rows if r["spectral_radius"] >= 1.0]
        if gone:
            ax2.axvline(min(gone) - 0.5, color=line.get_color(), ls=":", lw=1.2)
        ok = np.array([r["spectral_radius"] < 1.0 for r in rows])
        _mark_undefined(ax2, m[ok], p[ok], line.get_color())
    ax2.set_xlabel("number of identical buyers $M$ ($\\delta = 0$)")
    ax2.set_ylabel("price of anarchy")
    integer_ticks(ax2)
    ax2.legend(title="dotted: $\\rho(A) \\geq 1$ from here on (no GNE)", fontsize=8)
    ax2.grid(True, alpha=0.3)
    for a in (ax, ax2):
        handles, labels = a.get_legend_handles_labels()
        title = a.get_legend().get_title().get_text()
        legend_outside(a, handles=handles, labels=labels, title=title)


def _mark_undefined(ax: Any, x: np.ndarray, p: np.ndarray, color: str) -> None:
    """Mark points where the price of anarchy is undefined (no GNE, or social loss <= 0) with an x on the
    axis, so a missing point is explained rather than silently absent."""
    gaps = ~np.isfinite(p)
    if gaps.any():
        label = "PoA undefined (no GNE or $L(\\hat e) \\leq 0$)"
        seen = label in ax.get_legend_handles_labels()[1]
        ax.plot(
            x[gaps],
            np.ones(int(gaps.sum())),
            "x",
            color=color,
            ms=7,
            clip_on=False,
            label="_nolegend_" if seen else label,
        )


_GRID = "68 values of x1 (full run: 440)"
_EXAMPLE = "the Section IV example (sources at x1 and x2 = 1, two identical buyers fitting a line)"

FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec(
        "fig1_gamma",
        "Westenbroek et al., Fig. 1: $\\gamma$ vs $x_1$",
        compute_gamma,
        plot_gamma,
        panels=2,
        reproduces="Fig. 1",
        claim=(
            f"Westenbroek et al., Fig. 1: in {_EXAMPLE} the variance weights gamma diverge as x1 -> 1, "
            "because a line is ever harder to estimate from two close points."
        ),
        agreement=(
            "Matches the caption, with the sources' weights computed from the estimator: the printed "
            "formula for gamma gives each source the other's weight (at x1 = 0 source 1's weight is 4/3 "
            "and source 2's 1/3, the printed formula swaps them, [errata](errata.md#westenbroek-gamma)); "
            "if the paper's figure was drawn from its formula, its two curves carry each other's labels. "
            "The second panel adds the rate the paper does not state, gamma ~ (1 - x1)^-2. The x1 grid "
            "is chosen here (the paper gives none)."
        ),
        quick_size=_GRID,
    ),
    FigureSpec(
        "fig2_xi",
        "Westenbroek et al., Fig. 2: $\\xi$ vs $x_1$",
        compute_xi,
        plot_xi,
        reproduces="Fig. 2",
        claim=(
            f"Westenbroek et al., Fig. 2: in {_EXAMPLE} all the leave-one-out weights xi converge to 1 as "
            "x1 -> 1, so the matrix B of eq. (31) becomes singular and the equilibrium penalties d break "
            "down."
        ),
        agreement=(
            "Matches: every xi tends to 1 as x1 -> 1. On the way they are not bounded by 1: xi_{2,1} peaks "
            "at (3 + 2 sqrt 2)/4 = 1.457 at x1 = sqrt 2 - 1. The weights come from the minimum-norm "
            "one-point fit the paper assumes ([errata](errata.md#westenbroek-section-iv))."
        ),
        quick_size=_GRID,
    ),
    FigureSpec(
        "fig3_d",
        "Westenbroek et al., Fig. 3: equilibrium $d$ vs $x_1$",
        compute_d,
        plot_d,
        panels=2,
        reproduces="Fig. 3",
        claim=(
            f"Westenbroek et al., Fig. 3: in {_EXAMPLE} the buyers' equilibrium penalties d go to infinity "
            "as x1 -> 1, much faster than gamma, so the Nash equilibrium between the buyers becomes "
            "increasingly inefficient."
        ),
        agreement=(
            "Matches the caption, with the corrected system (31): the printed matrix B has a wrong unknown "
            "vector and a wrong row and would give the two identical buyers different penalties "
            "([errata](errata.md#westenbroek-matrix-b)); here d = (I - A)^-1 gamma from the general "
            "eq. (25), equal for both buyers (d_1 = 2.2222 at x1 = 0). The second panel shows how much "
            "faster: d ~ (1 - x1)^-4 against gamma ~ (1 - x1)^-2."
        ),
        quick_size=_GRID,
    ),
    FigureSpec(
        "fig4_poa",
        "Westenbroek et al., Fig. 4: price of anarchy vs $x_1$",
        compute_poa,
        plot_poa,
        panels=2,
        in_demo=True,
        reproduces="Fig. 4",
        claim=(
            f"Westenbroek et al., Fig. 4: in {_EXAMPLE} the price of anarchy is 1 at x1 = -1, where the "
            "payments are decoupled, and, the caption says, diverges to infinity as x1 -> 1."
        ),
        agreement=(
            "Does not match the caption: the price of anarchy is 1 at x1 = -1 and increases, as in the "
            "paper, but tends to 2, not to infinity (1.807 at x1 = 0.99, 1.9245 at 0.999999): both losses "
            "grow like the logarithm of the penalties, D ~ (1 - x1)^-4 against Gamma ~ (1 - x1)^-2 "
            "([errata](errata.md#westenbroek-poa-limit)). Whether the printed curve itself shows a limit "
            "cannot be told from the paper's text; the caption's claim is what is compared."
        ),
        quick_size=_GRID,
    ),
    FigureSpec(
        "poa_competition",
        "Price of anarchy vs competition level and number of buyers (Section IV market)",
        compute_competition,
        plot_competition,
        panels=2,
        reproduces="Theorem 1 on the Section IV market, with competition (beyond the paper; no figure in it)",
        claim=(
            "Westenbroek et al., Theorem 1 and Section V: a generalized Nash equilibrium between the buyers "
            "exists iff the spectral radius of the Leontief matrix A is below 1, and such equilibria are "
            "frequently socially inefficient; the paper does not vary the competition level delta or the "
            "number of buyers numerically."
        ),
        agreement=(
            "Beyond the paper, so nothing to compare: on the Section IV market with effort sensitivity "
            "alpha = 6 instead of 1 (so that the feasibility condition 2 alpha D >= 1, missing from "
            "Theorem 1, never removes a point at delta = 0, [errata](errata.md#westenbroek-feasibility)), "
            "the price of anarchy grows with delta (at x1 = 0.5 from 1.26 at delta = 0 to 1.58 at 0.95), "
            "and with M identical buyers rho(A) = (M - 1) sqrt(xi_12 xi_21), so the equilibrium disappears "
            "at M = 3 for x1 = 0 and 0.3 and at M = 11 for x1 = -0.5 (full run). Points without an "
            "equilibrium or with a non-positive social loss are marked "
            "([errata](errata.md#westenbroek-social-loss))."
        ),
        quick_size="20 values of delta and 1 to 6 buyers (full run: 96 values, 1 to 13 buyers)",
    ),
)
