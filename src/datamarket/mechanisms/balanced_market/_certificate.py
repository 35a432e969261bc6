r"""Certificates of the balanced market's results (Chaintreau, Maio, Ziani, WWW 2025, arXiv:2501.19294).

What a :class:`~datamarket.mechanisms.balanced_market.MarketAnalysis` claims, and the check of each
claim (:mod:`datamarket.core.certificates`):

``model = "shapley_nash"``
    *Every reported production profile is a Nash equilibrium of the sellers' Shapley game (7)* -- per
    group in the baseline (the baseline is separable across groups) and over the totals
    :math:`n^{(j)}` under the intervention (Def 3.6). Check: every seller's *regret*, the payoff of its
    exact global best response (breakpoint enumeration of
    :func:`~datamarket.mechanisms.balanced_market._shapley.best_response`) against the coalitions of the
    others built from the reported profile (:func:`~datamarket.mechanisms.balanced_market._shapley.regrets`,
    a path independent of the class engine's count grid), minus its payoff at the reported quantity.
    Tolerance: ``1e-9`` times the payoff scale ``max(1, max_j |v_j|)``, the engine's own acceptance
    rule (the FOC roots are solved to about ``1e-12`` relative, so a true equilibrium's regret is
    rounding, far below the tolerance).
``model = "paper"``
    *The production is the closed form of Lemma 4.1 / Thm 4.1 (baseline) and Lemma 4.2 / Thm 4.2
    (intervention)*: the sellers' joint profit optimum, not a Nash equilibrium (errata). Check by a
    second path: the joint optimum recomputed as the global best response of one seller who owns the
    whole market (the same breakpoint enumeration), and the reported total's profit shortfall against
    it, with the same tolerance.

Both models: *the Shapley payments divide the revenue* (eq. 7 is efficient): the sum of the sellers'
payments equals the buyers' payments, per scenario (tolerance ``1e-9`` relative to the revenue); and,
with heterogeneous curves, *the posted prices are the marketplace's best response to the production*
(Section 4's general setting; residual the largest price difference, tolerance 0: prices are chosen
among the bids exactly).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from datamarket.core.certificates import RELATIVE_TOL, Certificate, Check, max_residual, scaled_tol
from datamarket.core.types import FloatArray
from datamarket.mechanisms.balanced_market._classes import merge_terms
from datamarket.mechanisms.balanced_market._core import (
    BalancedMarket,
    MarketSolution,
    group_terms,
    intervention_terms,
    marketplace_best_response,
)
from datamarket.mechanisms.balanced_market._shapley import Coalitions, best_response, payoff, regrets
from datamarket.mechanisms.balanced_market._terms import Terms

NASH_METHOD = (
    "exact global best response of every seller (breakpoint enumeration of eq. 7's payoff) against "
    "the coalitions of the others in the reported profile"
)


def _games(market: BalancedMarket, sol: MarketSolution) -> list[tuple[str, FloatArray, FloatArray, Terms]]:
    """The scalar sub-games of one scenario: (label, quantities, costs, terms)."""
    if sol.scenario == "baseline":
        return [
            (str(name), sol.production[:, g], market.costs[:, g], group_terms(market, sol.prices, g))
            for g, name in enumerate(market.groups)
        ]
    gam = market.gamma
    assert gam is not None
    g = int(np.argmax(gam))
    x = sol.production[:, g] / gam[g]
    return [("total", x, market.costs @ gam, intervention_terms(market, sol.prices, gam))]


def _nash_check(name: str, x: FloatArray, costs: FloatArray, terms: Terms) -> Check:
    terms = merge_terms(terms)  # the same F with buyers of one curve merged (exact): one term, not N
    reg = regrets(x, costs, terms) if not terms.empty else np.zeros(x.size)
    pays = [
        payoff(float(x[j]), _coalitions(x, j), float(costs[j]), terms) if not terms.empty else 0.0
        for j in _representatives(x, costs)
    ]
    return Check(
        name,
        "the reported production is a Nash equilibrium of the sellers' Shapley game (eq. 7)",
        NASH_METHOD,
        max_residual(reg),
        scaled_tol(pays, RELATIVE_TOL),
        {"regrets": reg.tolist()},
    )


def _coalitions(x: FloatArray, j: int) -> Coalitions:
    from datamarket.mechanisms.balanced_market._shapley import coalitions_of

    return coalitions_of(np.delete(x, j))


def _representatives(x: FloatArray, costs: FloatArray) -> list[int]:
    """One seller per distinct (quantity, cost): sellers with both equal face the same coalitions."""
    seen: dict[tuple[float, float], int] = {}
    for j in range(x.size):
        seen.setdefault((float(x[j]), float(costs[j])), j)
    return list(seen.values())


def _joint_check(name: str, x: FloatArray, costs: FloatArray, terms: Terms) -> Check:
    """Paper model: the reported total against the joint optimum (one owner of the whole market)."""
    total = float(np.sum(x))
    kappa = float(costs[0])
    lone = Coalitions(np.zeros(1), np.ones(1))
    terms = merge_terms(terms)
    if terms.empty:
        best, got = 0.0, -kappa * total
    else:
        best = best_response(lone, kappa, terms).payoff
        got = payoff(total, lone, kappa, terms)
    return Check(
        name,
        "the reported total is the sellers' joint profit optimum (Lemma 4.1 / 4.2, Thm 4.1 / 4.2)",
        "joint profit F(X) - kappa X of the reported total against its global maximum (breakpoint "
        "enumeration)",
        max(0.0, best - got),
        scaled_tol([best, got], RELATIVE_TOL),
        {"total": total, "optimal_profit": best, "reported_profit": got},
    )


def _scenario_checks(market: BalancedMarket, sol: MarketSolution) -> list[Check]:
    out: list[Check] = []
    for label, x, costs, terms in _games(market, sol):
        name = f"{sol.scenario}.{'nash' if sol.model == 'shapley_nash' else 'joint_optimum'}.{label}"
        if sol.model == "shapley_nash":
            out.append(_nash_check(name, x, costs, terms))
        else:
            out.append(_joint_check(name, x, costs, terms))
    revenue = float(np.sum(sol.revenue))
    paid = float(np.sum(sol.payments))
    out.append(
        Check(
            f"{sol.scenario}.payments_efficient",
            "the sellers' Shapley payments add up to the buyers' payments (eq. 7 is efficient)",
            "sum of the sellers' payments against the sum of the buyers' prices",
            abs(paid - revenue),
            scaled_tol([revenue], RELATIVE_TOL),
            {"revenue": revenue, "payments": paid},
        )
    )
    if not market.identical_curves:
        best = marketplace_best_response(market, sol.total)
        out.append(
            Check(
                f"{sol.scenario}.prices_best_response",
                "the posted prices are the marketplace's best response to the production (Section 4)",
                "revenue-maximising price among the bids, recomputed at the reported totals",
                float(np.max(np.abs(best - sol.prices))) if best.size else 0.0,
                0.0,
                {"posted": sol.prices.tolist(), "best_response": best.tolist()},
            )
        )
    return out


def certify_solutions(market: BalancedMarket, *solutions: MarketSolution) -> Certificate:
    """The certificate of the given scenarios' solutions (module docstring)."""
    return Certificate(tuple(c for sol in solutions for c in _scenario_checks(market, sol)))


def best_response_regrets(certificate: Certificate, market: BalancedMarket) -> dict[str, Any]:
    """The regrets of a ``shapley_nash`` certificate in the scenario's ``best_response_regrets`` layout:
    ``baseline`` sellers x groups, ``intervention`` one per seller (empty without the check)."""
    base = [certificate[f"baseline.nash.{g}"].detail["regrets"] for g in market.groups]
    names = [c.name for c in certificate.checks]
    interv = (
        certificate["intervention.nash.total"].detail["regrets"] if "intervention.nash.total" in names else []
    )
    return {"baseline": np.column_stack(base).tolist(), "intervention": list(interv)}


def certify_empirical_round(
    prices: FloatArray, revenue: FloatArray, payments: FloatArray, values: FloatArray
) -> Certificate:
    """The claims of a real round (:func:`~datamarket.mechanisms.balanced_market.run_empirical_round`):
    the posted prices maximise the potential value (14)-(15), recomputed by brute force over every bid
    (tolerance 1e-12 relative, the tie rule's own), and the Shapley payments divide the revenue
    (eq. 7 is efficient; tolerance 1e-9 relative to the revenue)."""
    mu = np.asarray(values, dtype=np.float64)
    p = np.asarray(prices, dtype=np.float64)
    shortfall = []
    for g in range(mu.shape[1]):
        col = mu[:, g]
        best = max((float(b) * int(np.sum(col >= b)) for b in col if b > 0), default=0.0)
        posted = float(p[g]) * int(np.sum(col >= p[g])) if p[g] > 0 else 0.0
        shortfall.append(max(0.0, best - posted))
    total, paid = float(np.sum(revenue)), float(np.sum(payments))
    return Certificate.of(
        Check(
            "prices.potential_value",
            "each group's reserve price maximises the potential value p #{i: mu_ig >= p} (eqs. 14-15)",
            "the potential value at every bid, by brute force",
            max(shortfall, default=0.0),
            scaled_tol(np.abs(mu).sum(axis=0), 1e-12),
            {"shortfall": shortfall},
        ),
        Check(
            "payments_efficient",
            "the sellers' Shapley payments add up to the buyers' payments (eq. 7 is efficient)",
            "sum of the sellers' payments against the sum of the buyers' prices",
            abs(paid - total),
            scaled_tol([total], RELATIVE_TOL),
            {"revenue": total, "payments": paid},
        ),
    )
