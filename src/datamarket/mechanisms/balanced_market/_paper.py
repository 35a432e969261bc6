r"""Closed forms of Chaintreau et al. in the quasi-symmetric setting: the "paper model".

All functions are pure and take the potential economic values :math:`\rho_g` (eq. 14), the common unit
costs :math:`\kappa_g`, the common learning curve :math:`(Z, \alpha, \beta)` and, for the intervention,
the target demographics :math:`\gamma`.

For :math:`M \ge 2` the printed Lemma 4.1 (eqs. 16-17) is the sellers' *joint*
profit optimum split equally, not a Nash equilibrium of the Shapley game (7); the exact game is solved in
:mod:`datamarket.mechanisms.balanced_market._shapley`. Both coincide for :math:`M = 1`
(errata: Lemma 4.1 is the sellers' joint optimum).

Knife edges: at :math:`\kappa_g = \tau_g` sellers are indifferent (zero profit) and the paper counts the
group as formed; so does this module, with a relative tolerance: a group forms when
:math:`\kappa_g \le \tau_g (1 + \text{tol})`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from datamarket.core.types import FloatArray
from datamarket.learning.curves import LearningCurve, curve_value

EDGE_TOL = 1e-12


def baseline_thresholds(rho: FloatArray, curve: LearningCurve) -> FloatArray:
    r"""Participation thresholds :math:`\tau_g = \rho_g c_{\mathcal G}` (Claim 4.1, eqs. 18-19; the
    printed ":math:`t_g`" of (18) is :math:`\tau_g`; errata: notation).

    >>> baseline_thresholds(np.array([1.0, 2.0]), LearningCurve(1, 1, 1)).tolist()
    [0.25, 0.5]
    """
    out: FloatArray = np.asarray(rho, dtype=np.float64) * curve.c_g
    return out


def baseline_total(rho: FloatArray, kappa: FloatArray, curve: LearningCurve) -> FloatArray:
    r"""Aggregate production per group, Theorem 4.1 / Lemma 4.1 eq. (17):
    :math:`X_g = (\rho_g \alpha\beta/\kappa_g)^{1/(\beta+1)}` if :math:`\kappa_g \le \tau_g`, else 0.

    >>> baseline_total(np.array([10.0, 0.1]), np.array([1.0, 1.0]), LearningCurve(1, 1, 1)).tolist()
    [3.1622776601683795, 0.0]
    """
    rho = np.asarray(rho, dtype=np.float64)
    kappa = np.asarray(kappa, dtype=np.float64)
    a, b = curve.alpha, curve.beta
    x = np.power(rho * a * b / kappa, 1.0 / (b + 1.0))
    forms = (rho > 0) & (kappa <= baseline_thresholds(rho, curve) * (1 + EDGE_TOL))
    out: FloatArray = np.where(forms, x, 0.0)
    return out


def baseline_demographics(rho: FloatArray, kappa: FloatArray, curve: LearningCurve) -> FloatArray:
    r"""Corollary 4.1 eq. (22): demographics
    :math:`(\rho_g/\kappa_g)^{1/(\beta+1)} / \sum_{h\in F}(\rho_h/\kappa_h)^{1/(\beta+1)}`
    on the formed groups :math:`F` (called ``H`` in the paper, which is not
    the ``H`` of Lemma 4.2; renamed), 0 elsewhere."""
    total = baseline_total(rho, kappa, curve)
    formed = total > 0
    r = np.where(formed, np.power(np.asarray(rho) / np.asarray(kappa), 1.0 / (curve.beta + 1.0)), 0.0)
    s = r.sum()
    out: FloatArray = r / s if s > 0 else np.zeros_like(r)
    return out


def baseline_utilities_closed_form(
    rho: FloatArray, kappa: FloatArray, curve: LearningCurve, n_sellers: int
) -> tuple[float, float]:
    r"""Marketplace and per-seller utility of the paper model (from eqs. 215-218, 225-229):

    .. math::
       w = Z\sum_F \rho_g - \alpha \sum_F \rho_g^{1/(\beta+1)}(\alpha\beta/\kappa_g)^{-\beta/(\beta+1)},\quad
       v_j = \tfrac1M\Bigl[Z\sum_F\rho_g - \alpha(1+\beta)\sum_F \rho_g^{1/(\beta+1)}
             (\alpha\beta/\kappa_g)^{-\beta/(\beta+1)}\Bigr].
    """
    Z, a, b = curve.params()
    formed = baseline_total(rho, kappa, curve) > 0
    rho_f = np.asarray(rho)[formed]
    k_f = np.asarray(kappa)[formed]
    core = float(np.sum(rho_f ** (1 / (b + 1)) * (a * b / k_f) ** (-b / (b + 1))))
    w = Z * float(rho_f.sum()) - a * core
    v = (Z * float(rho_f.sum()) - a * (1 + b) * core) / n_sellers
    return w, v


def tau_h(rho: FloatArray, gamma: FloatArray, curve: LearningCurve, active: NDArray[np.bool_]) -> float:
    r"""Intervention threshold of Claim 4.2 / Thm 4.2, eq. (26)/(29):

    .. math::
       \tau_H(\rho,\gamma) = \frac{(\sum_H \rho_g)^{(\beta+1)/\beta}}
                                  {(\sum_H \rho_g\gamma_g^{-\beta})^{1/\beta}}\,c_{\mathcal G}.

    >>> both = np.array([True, True])
    >>> round(tau_h(np.array([1.0, 1.0]), np.array([0.6, 0.4]), LearningCurve(1, 1, 1), both), 6)
    0.24
    """
    b = curve.beta
    act = np.asarray(active, dtype=bool) & (np.asarray(gamma) > 0)
    if not act.any():
        return 0.0
    r = np.asarray(rho, dtype=np.float64)[act]
    g = np.asarray(gamma, dtype=np.float64)[act]
    s = float(np.sum(r * g ** (-b)))
    if s <= 0:
        return 0.0
    # Written as c_G R (R/S)^(1/beta) with R/S <= 1: the printed form overflows for small beta.
    rs = float(r.sum())
    return float(curve.c_g * rs * (rs / s) ** (1 / b))


def intervention_total(
    rho: FloatArray, gamma: FloatArray, kappa: FloatArray, curve: LearningCurve, active: NDArray[np.bool_]
) -> float:
    r"""Total samples :math:`N = M n^{(j)}` of Lemma 4.2 eq. (23) for active set ``H``:
    :math:`N = (\frac{\alpha\beta}{\kappa^\top\gamma}\sum_{g\in H}\rho_g\gamma_g^{-\beta})^{1/(\beta+1)}`."""
    a, b = curve.alpha, curve.beta
    act = np.asarray(active, dtype=bool) & (np.asarray(gamma) > 0)
    s = float(np.sum(np.asarray(rho)[act] * np.asarray(gamma)[act] ** (-b)))
    kg = float(np.dot(kappa, gamma))
    return float((a * b / kg * s) ** (1 / (b + 1))) if s > 0 else 0.0


def intervention_profit(
    n_total: float, rho: FloatArray, gamma: FloatArray, kappa: FloatArray, curve: LearningCurve
) -> float:
    r"""Sellers' joint profit (Section 4.2, paper model):
    :math:`\Pi_\gamma(N) = \sum_g \rho_g \mathcal G(\gamma_g N) - (\kappa^\top\gamma) N`."""
    acc = curve_value(np.asarray(gamma, dtype=np.float64) * n_total, curve.Z, curve.alpha, curve.beta)
    return float(np.dot(rho, acc) - np.dot(kappa, gamma) * n_total)


@dataclass(frozen=True)
class InterventionSolution:
    """Result of the intervention solver (paper model), :func:`solve_intervention`."""

    forms: bool
    total: float  # N = n^([M])
    active: NDArray[np.bool_]  # H: monetized groups (gamma_g N > n0)
    profit: float
    candidates: tuple[tuple[tuple[int, ...], float, float, bool], ...]  # (H, N, profit, consistent)


def upper_sets(gamma: FloatArray) -> list[NDArray[np.bool_]]:
    """Candidate active sets of :func:`solve_intervention` (step 1): top-k groups by gamma (ties enter
    together)."""
    gamma = np.asarray(gamma, dtype=np.float64)
    levels = np.unique(gamma[gamma > 0])[::-1]
    return [gamma >= lev for lev in levels]


def solve_intervention(
    rho: FloatArray, gamma: FloatArray, kappa: FloatArray, curve: LearningCurve
) -> InterventionSolution:
    r"""Exact intervention solver (paper model; errata: which active set H).

    Lemma 4.2 and Theorem 4.2 say "there exists a group h" but not which consistent active set to
    pick; several can be consistent local optima, so this takes the global profit maximiser.

    1. :math:`\kappa' = \kappa^\top\gamma`; candidate sets :math:`H_k` are the upper sets of :math:`\gamma`.
    2. For each :math:`H_k`: :math:`N_k` by (23) times :math:`M` and :math:`\Pi_\gamma(N_k)`.
    3. :math:`H_k` is consistent iff :math:`\min_{H_k}\gamma_g N_k > n_0` and
       :math:`\max_{g\notin H_k,\gamma_g>0}\gamma_g N_k \le n_0`.
    4. Among consistent :math:`H_k` with :math:`\Pi_\gamma(N_k) \ge 0` (knife edge with relative
       tolerance, as above) take the largest profit. 5. None: no formation.

    >>> from datamarket.learning.curves import LearningCurve
    >>> sol = solve_intervention(np.array([4.0, 1.2]), np.array([0.6, 0.4]), np.array([0.05, 0.01]),
    ...                          LearningCurve(1, 1, 1))
    >>> sol.forms, round(sol.total, 9)          # Thm 5.4's example
    (True, 16.861605069)
    """
    rho = np.asarray(rho, dtype=np.float64)
    gamma = np.asarray(gamma, dtype=np.float64)
    kappa = np.asarray(kappa, dtype=np.float64)
    n0 = curve.ante
    best: tuple[float, float, NDArray[np.bool_]] | None = None
    cands = []
    for act in upper_sets(gamma):
        n_k = intervention_total(rho, gamma, kappa, curve, act)
        inside = gamma[act] * n_k
        outside = gamma[(~act) & (gamma > 0)] * n_k
        consistent = bool(inside.min() > n0 and (outside.size == 0 or outside.max() <= n0))
        prof = intervention_profit(n_k, rho, gamma, kappa, curve)
        cands.append((tuple(int(i) for i in np.flatnonzero(act)), n_k, prof, consistent))
        scale = max(1.0, float(np.dot(rho[act], np.full(int(act.sum()), curve.Z))))
        if consistent and prof >= -EDGE_TOL * scale and (best is None or prof > best[0]):
            best = (prof, n_k, act)
    if best is None:
        return InterventionSolution(False, 0.0, np.zeros(gamma.size, dtype=bool), 0.0, tuple(cands))
    return InterventionSolution(True, best[1], best[2], best[0], tuple(cands))


def max_tau(rho: FloatArray, gamma: FloatArray, curve: LearningCurve) -> float:
    r""":math:`\max_{\emptyset \ne H\subseteq \operatorname{supp}\gamma} \tau_H(\rho,\gamma)`: the
    intervention forms iff :math:`\kappa^\top\gamma` is at most this (the formation test of Thm 4.2,
    over every non-empty subset of the support)."""
    supp = np.flatnonzero(np.asarray(gamma) > 0)
    best = 0.0
    for k in range(1, supp.size + 1):
        for sub in itertools.combinations(supp, k):
            act = np.zeros(len(gamma), dtype=bool)
            act[list(sub)] = True
            best = max(best, tau_h(rho, gamma, curve, act))
    return best


def intervention_utilities_closed_form(
    rho: FloatArray,
    gamma: FloatArray,
    kappa: FloatArray,
    curve: LearningCurve,
    active: NDArray[np.bool_],
    n_sellers: int,
) -> tuple[float, float]:
    r"""Intervention utilities of the paper model (appendix eqs. (222)-(223), (233)-(234), corrected: they
    reuse the index g, lose the exponent :math:`-\beta/(\beta+1)` and have a spurious :math:`1/M`; errata:
    intervention utilities), with :math:`R=\sum_H\rho_g`,
    :math:`S=\sum_H\rho_g\gamma_g^{-\beta}`, :math:`\kappa'=\kappa^\top\gamma`:

    .. math::
       w^f = ZR - \alpha(\alpha\beta/\kappa')^{-\beta/(\beta+1)}S^{1/(\beta+1)},\quad
       v_j^f = \tfrac1M[ZR - \alpha(1+\beta)(\alpha\beta/\kappa')^{-\beta/(\beta+1)}S^{1/(\beta+1)}].
    """
    Z, a, b = curve.params()
    act = np.asarray(active, dtype=bool)
    R = float(np.sum(np.asarray(rho)[act]))
    S = float(np.sum(np.asarray(rho)[act] * np.asarray(gamma)[act] ** (-b)))
    kp = float(np.dot(kappa, gamma))
    core = (a * b / kp) ** (-b / (b + 1)) * S ** (1 / (b + 1))
    return Z * R - a * core, (Z * R - a * (1 + b) * core) / n_sellers


def optimal_gamma(rho: FloatArray, curve: LearningCurve) -> tuple[FloatArray, float]:
    r"""Target maximising :math:`\tau_G(\rho,\gamma)` (A.11 step 1):
    :math:`\gamma_g \propto \rho_g^{1/(\beta+1)}`, with
    :math:`\max\tau = (\sum\rho/\sum\rho^{1/(\beta+1)})^{(\beta+1)/\beta}c_{\mathcal G}`. (The printed
    (153) has the wrong normaliser; errata: Theorem 5.3.)

    >>> g, t = optimal_gamma(np.array([4.0, 1.2]), LearningCurve(1, 1, 1))
    >>> g.round(9).tolist(), round(t, 9)
    ([0.646110632, 0.353889368], 0.705505624)
    """
    b = curve.beta
    r = np.asarray(rho, dtype=np.float64)
    q = r ** (1 / (b + 1))
    gamma = q / q.sum()
    return gamma, float((r.sum() / q.sum()) ** ((b + 1) / b) * curve.c_g)


def symmetric_shapley_quantity(rho: float, kappa: float, curve: LearningCurve, n_sellers: int) -> float:
    r"""Exact symmetric Shapley-Nash per-seller quantity (derived from (42)
    at a symmetric profile; errata: Lemma 4.1 is the sellers' joint optimum):
    :math:`y_S = [\rho\alpha\beta H_M/(M\kappa)]^{1/(\beta+1)}`, :math:`H_M = \sum_{s=1}^M s^{-(\beta+1)}`;
    it is an equilibrium iff :math:`\kappa \le \rho\,c(K)`, :math:`K = M^\beta H_M` (else 0 is returned).

    >>> round(symmetric_shapley_quantity(1.0, 0.075, LearningCurve(1, 1, 1), 2), 8)
    2.88675135
    """
    _, a, b = curve.params()
    h = float(np.sum(np.arange(1, n_sellers + 1, dtype=float) ** (-(b + 1))))
    K = n_sellers**b * h
    if rho <= 0 or kappa > rho * curve.c_k(K) * (1 + EDGE_TOL):
        return 0.0
    return float((rho * a * b * h / (n_sellers * kappa)) ** (1 / (b + 1)))


def thm54_bound(
    rho: FloatArray, kappa: FloatArray, gamma: FloatArray, curve: LearningCurve
) -> tuple[float, float]:
    r"""Theorem 5.4 sufficient condition (exponents of (176) and (198) corrected; errata: Theorem 5.4):
    the market forms under :math:`\gamma` if
    :math:`\eta < (b/a)^{\beta+1}/(r|G|)` with :math:`\eta = \max_g \kappa_g/\tau_g` (32),
    :math:`1/a = \min_g\gamma_g` (33), :math:`1/b = \max_g\gamma_g` (34), :math:`r = \max_{f,g}\rho_f/\rho_g`
    (181). Returns ``(eta, bound)``; needs :math:`\gamma_g > 0`, :math:`\rho_g > 0`.

    >>> eta, bound = thm54_bound(np.array([4, 1.2]), np.array([0.05, 0.01]), np.array([0.6, 0.4]),
    ...                          LearningCurve(1, 1, 1))
    >>> round(eta, 6), round(bound, 4)
    (0.05, 0.0667)
    """
    rho = np.asarray(rho, dtype=np.float64)
    gamma = np.asarray(gamma, dtype=np.float64)
    eta = float(np.max(np.asarray(kappa) / baseline_thresholds(rho, curve)))
    a_ = 1.0 / float(gamma.min())
    b_ = 1.0 / float(gamma.max())
    r = float(rho.max() / rho.min())
    return eta, float((b_ / a_) ** (curve.beta + 1) / (r * gamma.size))
