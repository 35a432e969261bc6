r"""First-order conditions (42) of paper 000's Shapley game with an analytic Jacobian.

Private helper of :mod:`datamarket.mechanisms.balanced_market._shapley` (general engine) and
:mod:`datamarket.mechanisms.balanced_market._classes` (class engine): a FOC system is a list of equations, one
per variable (a seller, or one seller of a class part), each with the coalitions of that seller's others
given once per solve as member counts per variable and Shapley weights (7) (:class:`FocAtoms`). Sellers
at zero are summed out of the weights (:func:`merged_size_weights`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import root
from scipy.special import gammaln, logsumexp

if TYPE_CHECKING:
    from datamarket.mechanisms.balanced_market._terms import Terms

FloatArray = NDArray[np.float64]


def merged_size_weights(n_players: int, n_zero: int) -> FloatArray:
    r"""Shapley weights (7) by the number ``s`` of *producing* members of a coalition of the others, when
    ``n_zero`` of the others produce nothing: :math:`c'_s = \sum_{u} \binom{n_0}{u} c_{s+u}`.

    Sellers at zero change no coalition total, so they are summed out (in log space) instead of
    multiplying the coalitions by :math:`2^{n_0}`.

    >>> [round(w, 12) for w in merged_size_weights(3, 1).tolist()]  # the producing other: in T or not
    [0.5, 0.5]
    >>> round(float(merged_size_weights(3, 2)[0]), 12)   # nobody else produces: all weight on T = {}
    1.0
    """
    out: FloatArray = np.exp(log_merged_size_weights(n_players, n_zero))
    return out


def log_merged_size_weights(n_players: int, n_zero: int) -> FloatArray:
    """Logarithms of :func:`merged_size_weights` (no overflow of the binomials for large ``M``)."""
    return _log_merged(int(n_players), int(n_zero))


@lru_cache(maxsize=1024)
def _log_merged(n_players: int, n_zero: int) -> FloatArray:
    m_pos = n_players - 1 - n_zero
    u = np.arange(n_zero + 1, dtype=np.float64)
    s = np.arange(m_pos + 1, dtype=np.float64)[:, None]
    log_c = gammaln(s + u + 1) + gammaln(n_players - s - u) - gammaln(n_players + 1)  # c_{s+u}
    log_b = gammaln(n_zero + 1) - gammaln(u + 1) - gammaln(n_zero - u + 1)
    out: FloatArray = logsumexp(log_c + log_b, axis=1)
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class FocAtoms:
    """The coalitions of the others of one FOC equation: member counts per variable and weights."""

    counts: FloatArray  # (A, V): members of variable v's sellers in coalition a (own seller excluded)
    weights: FloatArray  # (A,): summed Shapley weights c_T of coalition a (7)


def foc_residual(
    z: FloatArray, atoms: Sequence[FocAtoms], costs: FloatArray, terms: Terms
) -> tuple[FloatArray, FloatArray]:
    r"""Normalised FOC (42) residuals :math:`r_v = \partial_s v/\kappa_v` of every variable at
    :math:`y = e^{z}` and their analytic Jacobian in ``z``.

    Equation ``v`` is the slope of one seller with quantity :math:`y_v` against the coalitions
    ``atoms[v]`` of the others (totals :math:`S_a = \sum_u n_{a,u} y_u`):
    :math:`r_v = \kappa_v^{-1}\sum_a c_a \sum_t 1[S_a + y_v > n_{0,t}/a_t]\, g_t(S_a + y_v) - 1` with
    :math:`g_t(u) = w_t a_t \alpha_t\beta_t (a_t u)^{-\beta_t-1}`, so
    :math:`\partial r_v/\partial z_u = \kappa_v^{-1} y_u \sum_a c_a (n_{a,u} + \delta_{uv})
    \sum_t 1[\cdot]\, g_t'(S_a+y_v)` with :math:`g_t'(u) = -(\beta_t+1) g_t(u)/u` (the paying set is
    locally constant almost everywhere). Callers hold ``np.errstate``.
    """
    y = np.exp(np.clip(z, -60.0, 60.0))
    v_n = y.size
    res = np.empty(v_n)
    jac = np.empty((v_n, v_n))
    coef = terms.weight * terms.scale * terms.alpha * terms.beta
    for v, at in enumerate(atoms):
        u = at.counts @ y + y[v]
        mask = u[:, None] > terms.knots[None, :]
        g = np.where(mask, coef * np.power(u[:, None] * terms.scale, -terms.beta - 1.0), 0.0)
        h = g.sum(axis=1)
        hp = np.where(mask, g * (-terms.beta - 1.0), 0.0).sum(axis=1) / u
        res[v] = (at.weights @ h) / costs[v] - 1.0
        whp = at.weights * hp
        jac[v] = (whp @ at.counts) * y / costs[v]
        jac[v, v] += float(whp.sum()) * y[v] / costs[v]
    return res, jac


def solve_foc(
    atoms: Sequence[FocAtoms], costs: FloatArray, start: FloatArray, terms: Terms
) -> FloatArray | None:
    """Solve the FOC (42) system of :func:`foc_residual` in log quantities (``scipy.optimize.root``,
    MINPACK ``hybrj`` with the analytic Jacobian); ``None`` unless the residual is below ``1e-10``."""
    z0 = np.log(np.maximum(start, 1e-12))
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        sol = root(
            foc_residual, z0, args=(atoms, costs, terms), jac=True, method="hybr", options={"xtol": 1e-14}
        )
        if not np.all(np.isfinite(sol.x)):
            return None
        if np.max(np.abs(foc_residual(sol.x, atoms, costs, terms)[0])) > 1e-10:
            return None
    out: FloatArray = np.exp(np.clip(sol.x, -60.0, 60.0))
    return out
