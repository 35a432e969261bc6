r"""Equilibria of the online data market with a demographic-balance intervention (Chaintreau et al.).

Paper: A. Chaintreau, R. Maio, J. Ziani, "The Cost of Balanced Training-Data Production in an Online Data
Market", WWW 2025, arXiv:2501.19294 (equation numbers are the paper's own). Where the paper is wrong or
silent, the docstrings say what is implemented instead and why; each such point is an item of the
documentation's errata page.

Model (Sections 3-4)
--------------------
:math:`M` sellers with unit costs :math:`\kappa^{(j)}_g > 0`, :math:`N` buyers with values of accuracy
:math:`\mu_{i,g} \ge 0` and learning curves :math:`\mathcal G_{i,g}(n) = (Z - \alpha n^{-\beta})_+` (eq. 2).
Buyers bid truthfully (Fact 4.1). The marketplace posts reserve prices maximising the potential value
:math:`\rho_g(p) = p\,\#\{i: \mu_{i,g}\ge p\}` (eqs. 14-15: the best of
:math:`k\,\mu_{(k)}` over the bids sorted descending). Sellers then play the
Shapley game (7)/(9).

Two equilibrium models (errata: Lemma 4.1 is the sellers' joint optimum)
-----------------------------------------------------------------------
``model="paper"``
    The paper's closed forms (Lemma 4.1/4.2, Claim 4.1/4.2, Thm 4.1/4.2, Cor 4.1) in the quasi-symmetric
    setting (Def 4.1). **The paper's error**: the proof of Lemma 4.1 (A.3, eqs. 54-58) substitutes
    symmetry before differentiating, so (16) is the sellers' *joint* profit optimum split equally, not a
    Nash equilibrium for :math:`M \ge 2`. With :math:`Z=\alpha=\beta=\rho=1`, :math:`\kappa=0.075`,
    :math:`M=2` the paper gives :math:`x^{(j)} = 1.825742` while the best response to it is
    :math:`3.045028`; the exact symmetric equilibrium is :math:`2.886751`.
``model="shapley_nash"``
    The exact game, for heterogeneous sellers and buyers (the setting of Prop. 4.1): global best response
    by breakpoint enumeration, all equilibria by support enumeration and iterated best response
    with a global best-response check, see :mod:`datamarket.mechanisms.balanced_market._shapley`. With
    heterogeneous learning curves the marketplace's best response depends on production; prices and
    production are then iterated to a fixed point (errata: reserve prices).

The intervention solver of the paper model enumerates the consistent active sets ``H``
(errata: which active set H).

>>> m = BalancedMarket.quasi_symmetric([[1.0, 1.0]], [0.25, 0.25], (1, 1, 1), n_sellers=1, gamma=[0.6, 0.4])
>>> solve_baseline(m).forms, solve_intervention(m).forms   # Thm 5.3's construction
(True, False)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from datamarket.core.errors import ConfigurationError, InvalidMarketError
from datamarket.core.types import FloatArray
from datamarket.learning.curves import LearningCurve
from datamarket.mechanisms.balanced_market import _paper as paper
from datamarket.mechanisms.balanced_market._classes import seller_classes, seller_equilibria
from datamarket.mechanisms.balanced_market._core import (
    BalancedMarket,
    MarketSolution,
    Model,
    group_terms,
    intervention_terms,
    marketplace_best_response,
    reserve_prices,
    settle,
    validate_gamma,
)

MAX_PRICE_ROUNDS = 10


def _paper_curve(market: BalancedMarket) -> LearningCurve:
    if not market.quasi_symmetric_setting:
        raise ConfigurationError(
            "model",
            "model='paper' needs the quasi-symmetric setting (one curve, identical sellers); "
            "use model='shapley_nash'",
        )
    return market.curve


Engine = Literal["auto", "classes", "general"]


def solve_baseline(
    market: BalancedMarket,
    model: Model = "paper",
    *,
    seed: int = 0,
    engine: Engine = "auto",
    within_class: bool = False,
) -> MarketSolution:
    """Baseline equilibrium (Section 4.1): Thm 4.1 closed form or the exact Shapley-Nash game.

    ``engine`` (``shapley_nash`` only): ``"auto"`` solves over seller classes (equal cost rows) when some
    class has two or more sellers and with the general engine otherwise; ``within_class`` also searches
    equilibria where a class splits into producing and idle sellers
    (:mod:`datamarket.mechanisms.balanced_market._classes`).
    """
    m, _, g_count = market.shape
    p, rho = reserve_prices(market.values, market.tie)
    notes: dict[str, Any] = {}
    n_eq = 1
    if model == "paper":
        curve = _paper_curve(market)
        total = paper.baseline_total(rho, market.costs[0], curve)
        production = np.tile(total / m, (m, 1))
    elif model == "shapley_nash":
        labels = seller_classes(market.costs)
        production = np.zeros((m, g_count))
        for it in range(MAX_PRICE_ROUNDS):  # price/production fixed point (one round if quasi-symmetric)
            counts = []
            for g in range(g_count):
                eq = seller_equilibria(
                    market.costs[:, g],
                    group_terms(market, p, g),
                    labels=labels,
                    seed=seed,
                    engine=engine,
                    within_class=within_class,
                )
                production[:, g] = eq.selected
                counts.append(len(eq.profiles))
                if eq.diagnostics.get("found", 1) == 0:  # none verified: zero production is a fallback
                    notes.setdefault("no_equilibrium_found", []).append(market.groups[g])
            n_eq = int(np.prod(counts))
            new_p = marketplace_best_response(market, production.sum(axis=0))
            if np.array_equal(new_p, p):
                break
            if it == MAX_PRICE_ROUNDS - 1:  # keep the prices the production responds to
                notes["price_fixed_point"] = False
                break
            p = new_p
    else:
        raise ConfigurationError("model", f"must be 'paper' or 'shapley_nash', got {model!r}")
    util, pay, rev, rec, cost = settle(market, p, production)
    active = production.sum(axis=0) > 0
    return MarketSolution("baseline", model, p, production, active, util, pay, rev, rec, cost, n_eq, notes)


def solve_intervention(
    market: BalancedMarket,
    model: Model = "paper",
    *,
    gamma: ArrayLike | None = None,
    seed: int = 0,
    engine: Engine = "auto",
    within_class: bool = False,
) -> MarketSolution:
    """Intervention equilibrium (Section 4.2): active-set enumeration (paper) or the exact Shapley-Nash game.

    Reserve prices are those of the baseline (Fact 4.2; in the general setting they are iterated with
    production as in the baseline). ``engine``, ``within_class``: as in :func:`solve_baseline`.
    """
    m, _, g_count = market.shape
    gam = market.gamma if gamma is None else validate_gamma(gamma, g_count)
    if gam is None:
        raise InvalidMarketError("gamma", "the intervention needs a target demographics vector")
    p, rho = reserve_prices(market.values, market.tie)
    notes: dict[str, Any] = {}
    n_eq = 1
    kappa_gamma = market.costs @ gam
    if model == "paper":
        curve = _paper_curve(market)
        sol = paper.solve_intervention(rho, gam, market.costs[0], curve)
        production = np.tile(gam * sol.total / m, (m, 1))
        active = sol.active.copy()
        notes["candidates"] = [
            {"H": list(h), "N": n, "profit": pr, "consistent": c} for h, n, pr, c in sol.candidates
        ]
    elif model == "shapley_nash":
        production = np.zeros((m, g_count))
        for it in range(MAX_PRICE_ROUNDS):
            eq = seller_equilibria(
                kappa_gamma,
                intervention_terms(market, p, gam),
                labels=seller_classes(market.costs),
                seed=seed,
                engine=engine,
                within_class=within_class,
            )
            production = np.outer(eq.selected, gam)
            n_eq = len(eq.profiles)
            if eq.diagnostics.get("found", 1) == 0:  # none verified: zero production is a fallback
                notes["no_equilibrium_found"] = True
            new_p = marketplace_best_response(market, production.sum(axis=0))
            if np.array_equal(new_p, p):
                break
            if it == MAX_PRICE_ROUNDS - 1:  # keep the prices the production responds to
                notes["price_fixed_point"] = False
                break
            p = new_p
        acc = market.accuracy(production.sum(axis=0))
        active = (acc > 0).any(axis=0) & (gam > 0)
    else:
        raise ConfigurationError("model", f"must be 'paper' or 'shapley_nash', got {model!r}")
    util, pay, rev, rec, cost = settle(market, p, production, gam)
    return MarketSolution(
        "intervention", model, p, production, active, util, pay, rev, rec, cost, n_eq, notes
    )


def potential_value(values: ArrayLike, prices: ArrayLike) -> FloatArray:
    r"""Potential economic value (14) at posted prices: :math:`\rho_g = p_g\,\#\{i:\mu_{i,g}\ge p_g\}`.

    >>> potential_value([[3.0], [2.0], [1.0]], [2.0]).tolist()
    [4.0]
    """
    mu = np.asarray(values, dtype=np.float64)
    p = np.asarray(prices, dtype=np.float64)
    return np.where(p > 0, p * (mu >= p[None, :]).sum(axis=0), 0.0)


def thresholds(market: BalancedMarket, prices: ArrayLike | None = None) -> FloatArray:
    r"""Per-group participation threshold :math:`\tau_g` (Claim 4.1): the largest unit cost at which a lone
    seller breaks even, :math:`\sup_X F_g(X)/X`; equals :math:`\rho_g c_{\mathcal G}` (eq. 18-19) in the
    quasi-symmetric setting (computed in closed form there).

    ``prices``: the posted reserve prices (default: the best of :math:`k\,\mu_{(k)}`). With heterogeneous
    curves the posted prices are the baseline's price/production fixed point (Section 4's general
    setting), which can differ from the quasi-symmetric prices.
    """
    p, rho = reserve_prices(market.values, market.tie)
    if prices is not None:
        p = np.asarray(prices, dtype=np.float64)
        rho = potential_value(market.values, p)
    if market.identical_curves:
        return paper.baseline_thresholds(rho, market.curve)
    return np.array([group_terms(market, p, g).sup_ratio() for g in range(market.shape[2])])


def intervention_threshold(market: BalancedMarket, gamma: ArrayLike | None = None) -> float:
    r""":math:`\max_H \tau_H(\rho,\gamma)` (Thm 4.2, eq. 29): the intervention forms iff
    :math:`\kappa^\top\gamma` is at most this (quasi-symmetric); in general :math:`\sup_N F_\gamma(N)/N`."""
    p, rho = reserve_prices(market.values, market.tie)
    gam = market.gamma if gamma is None else validate_gamma(gamma, market.shape[2])
    if gam is None:
        raise InvalidMarketError("gamma", "the intervention needs a target demographics vector")
    if market.identical_curves:
        return paper.max_tau(rho, gam, market.curve)
    return intervention_terms(market, p, gam).sup_ratio()


def _ratio(a: float, b: float, tol: float = 1e-12) -> float:
    """``a / b``; NaN when the baseline utility ``b`` is 0 (the ratios (36)-(38) are undefined there)."""
    return float("nan") if abs(b) <= tol else float(a / b)


def utility_ratios(base: MarketSolution, interv: MarketSolution) -> dict[str, Any]:
    r"""Utility ratios (36)-(38): :math:`UR_{Mkt} = w^f/w`, :math:`UR_{S,j} = v_j^f/v_j`,
    :math:`UR_{B,i} = u_i^f/u_i`; NaN where the baseline utility is 0 (undefined ratio)."""
    b, f = base.utilities, interv.utilities
    return {
        "marketplace": _ratio(f.marketplace, b.marketplace),
        "sellers": [_ratio(x, y) for x, y in zip(f.sellers, b.sellers, strict=True)],
        "buyers": [_ratio(x, y) for x, y in zip(f.buyers, b.buyers, strict=True)],
    }


def backfires(base: MarketSolution, interv: MarketSolution) -> bool:
    """Def 5.2: the market forms in the baseline but not under the intervention."""
    return base.forms and not interv.forms


def price_of_fairness(base: MarketSolution, interv: MarketSolution) -> float:
    """Relative welfare loss ``1 - W^f / W`` (NaN when the baseline welfare is 0)."""
    return float("nan") if abs(base.welfare) <= 1e-12 else 1.0 - interv.welfare / base.welfare


GROWTH_ALL = 12
"""Markets of at most this many buyers get a growth row per buyer count by default."""


def default_growth_sizes(n_buyers: int) -> list[int]:
    """The buyer counts of the growth table when none are given: every count up to ``GROWTH_ALL``
    buyers; beyond, the market at a quarter, half and all of its buyers (two doublings). Each count is
    a full equilibrium solve of both scenarios, as costly as the market itself (the sellers set the
    cost), so a row per count would multiply a large market's run time by its number of buyers.

    >>> default_growth_sizes(3), default_growth_sizes(100)
    ([1, 2, 3], [25, 50, 100])
    """
    if n_buyers <= GROWTH_ALL:
        return list(range(1, n_buyers + 1))
    return sorted({math.ceil(n_buyers / 4), math.ceil(n_buyers / 2), n_buyers})


def growth_sequence(
    market: BalancedMarket,
    sizes: Sequence[int],
    model: Model = "paper",
    *,
    seed: int = 0,
    engine: Engine = "auto",
    within_class: bool = False,
    solved: tuple[MarketSolution, MarketSolution] | None = None,
) -> list[dict[str, Any]]:
    """Utility ratios along a growth sequence: the markets of the first ``n`` buyers (Section 6).

    ``solved``: the baseline and intervention of the whole market, already solved with the same
    options (reused for ``n`` equal to the number of buyers instead of solving it again)."""
    rows = []
    opts: dict[str, Any] = {"seed": seed, "engine": engine, "within_class": within_class}
    for n in sizes:
        sub = market.first_buyers(int(n))
        if solved is not None and int(n) == market.shape[1]:
            base, interv = solved
        else:
            base = solve_baseline(sub, model, **opts)
            interv = solve_intervention(sub, model, **opts)
        ur = utility_ratios(base, interv)
        rows.append(
            {
                "n_buyers": int(n),
                "rho": reserve_prices(sub.values, sub.tie)[1].tolist(),
                "baseline_forms": base.forms,
                "intervention_forms": interv.forms,
                "ur_marketplace": ur["marketplace"],
                "ur_sellers": ur["sellers"],
                "ur_buyers": ur["buyers"],
                "no_equilibrium_found": bool(
                    base.notes.get("no_equilibrium_found") or interv.notes.get("no_equilibrium_found")
                ),
            }
        )
    return rows


def backfire_market(
    gamma: ArrayLike, curve: LearningCurve, *, corrected_5_3: bool = False
) -> tuple[FloatArray, FloatArray]:
    r"""A market ``(rho, kappa)`` in which ``gamma`` backfires.

    ``corrected_5_3=False``: Theorem 5.1's construction (A.9): one group :math:`h \ne h'` with
    :math:`\kappa_h = \tau_h` and :math:`\kappa_{h'} > \lceil\tau\rceil/\gamma_{h'}` (needs
    :math:`\gamma_{h'} > 0`, :math:`|G| \ge 2`). ``corrected_5_3=True``: Theorem 5.3 as corrected
    (errata: Theorem 5.3 is false for targets uniform on their support; here ``gamma`` has full support
    and is not uniform): one buyer with :math:`\mu_g = 1` and
    :math:`\kappa_g = c_{\mathcal G}`, a fully-forming market at the knife edge.
    """
    gam = np.asarray(gamma, dtype=np.float64)
    k = gam.size
    rho = np.ones(k)
    if corrected_5_3:
        if np.any(gam <= 0) or np.allclose(gam, 1.0 / k):
            raise InvalidMarketError("gamma", "Thm 5.3 (corrected) needs full support and gamma != uniform")
        return rho, np.full(k, curve.c_g)
    if k < 2:
        raise InvalidMarketError("gamma", "Thm 5.1 needs at least two groups")
    h_prime = int(np.argmax(gam))
    h = (h_prime + 1) % k
    top = paper.max_tau(rho, gam, curve)
    kappa = np.full(k, curve.c_g)
    kappa[h_prime] = 2.0 * top / gam[h_prime] + curve.c_g
    kappa[h] = curve.c_g * 0.5
    return rho, kappa


def fully_forming(base: MarketSolution) -> bool:
    """Def 5.3: every group has positive aggregate production in the baseline."""
    return bool(np.all(base.total > 0))
