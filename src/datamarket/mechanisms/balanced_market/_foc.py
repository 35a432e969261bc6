r"""First-order conditions (42) of Chaintreau et al.'s Shapley game with an analytic Jacobian.

Private helper of :mod:`datamarket.mechanisms.balanced_market._shapley` (general engine) and
:mod:`datamarket.mechanisms.balanced_market._classes` (class engine): a FOC system is a list of equations, one
per variable (a seller, or one seller of a class part), each with the coalitions of that seller's others
given once per solve as member counts per variable and Shapley weights (7) (:class:`FocAtoms`). Sellers
at zero are summed out of the weights (:func:`merged_size_weights`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import brentq, root
from scipy.special import gammaln, logsumexp

from datamarket.core.types import FloatArray
from datamarket.mechanisms.balanced_market._terms import inverse_power

if TYPE_CHECKING:
    from datamarket.mechanisms.balanced_market._terms import Terms


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
    return _solve_log(lambda z: foc_residual(z, atoms, costs, terms), start)


Residual = Callable[[FloatArray], tuple[FloatArray, FloatArray]]


def _solve_log(fun: Residual, start: FloatArray) -> FloatArray | None:
    z0 = np.log(np.maximum(start, 1e-12))
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        sol = root(fun, z0, jac=True, method="hybr", options={"xtol": 1e-14})
        if not np.all(np.isfinite(sol.x)):
            return None
        if np.max(np.abs(fun(sol.x)[0])) > 1e-10:
            return None
    out: FloatArray = np.exp(np.clip(sol.x, -60.0, 60.0))
    return out


class GridFoc:
    r"""The FOC (42) system of a class-structured profile on one grid of coalition count vectors.

    The producing parts :math:`b = 1..V` have :math:`m_b` sellers of quantity :math:`y_b`; ``n_zero``
    sellers produce nothing; :math:`M` sellers in all. Equation :math:`v` (one seller of part :math:`v`)
    sums over the coalitions :math:`t` of its others :math:`h(S_t + y_v)`; writing
    :math:`T = t + e_v` (the coalition *with* the seller), every equation evaluates :math:`h` on the same
    grid :math:`T \in \prod_b \{0..m_b\}` with weights

    .. math::
       W_{v,T} = B_T\,\frac{T_v}{m_v}, \qquad
       B_T = \Bigl(\prod_b \binom{m_b}{T_b}\Bigr) c'_{|T|-1}

    (:math:`\binom{m_v-1}{T_v-1} = \binom{m_v}{T_v} T_v/m_v`; :math:`c'` the size weights (7) with the
    idle sellers summed out, :func:`merged_size_weights`). So one evaluation of :math:`h` and :math:`h'`
    on :math:`\prod_b (m_b+1)` points serves all :math:`V` equations, and the Jacobian in
    :math:`z = \log y` is one Gram matrix:
    :math:`\partial r_v/\partial z_u = \kappa_v^{-1} m_v^{-1} y_u \sum_T B_T T_v T_u h'(S_T)`.
    Same system as :func:`foc_residual` with the part atoms (tested), ``V`` times fewer evaluations of
    :math:`h`. The weights :math:`B_T` are built once per system; only :math:`S_T = T \cdot y` changes
    between solver iterations.
    """

    def __init__(self, counts: ArrayLike, n_zero: int, terms: Terms) -> None:
        m = np.asarray(counts, dtype=np.int64)
        n_players = int(m.sum()) + int(n_zero)
        grids = np.meshgrid(*(np.arange(int(k) + 1) for k in m), indexing="ij")
        self.counts = np.stack([g.ravel() for g in grids], axis=1).astype(np.float64)  # (N, V)
        size = self.counts.sum(axis=1).astype(np.int64)
        keep = size > 0  # the coalition with the seller is never empty
        self.counts = np.ascontiguousarray(self.counts[keep])
        self.counts_t = np.ascontiguousarray(self.counts.T)
        size = size[keep]
        log_b = np.zeros(size.size)
        for b, k in enumerate(m):
            t = self.counts[:, b]
            log_b += gammaln(k + 1) - gammaln(t + 1) - gammaln(k - t + 1)
        log_c = log_merged_size_weights(n_players, int(n_zero))
        self.base = np.exp(log_b + log_c[size - 1])
        self.share = m.astype(np.float64)
        self.terms = terms

    def residual(self, z: FloatArray, costs: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Normalised residuals :math:`r_v` (as :func:`foc_residual`) and their Jacobian in ``z``."""
        y = np.exp(np.clip(z, -60.0, 60.0))
        u = self.counts @ y
        h: FloatArray | float = 0.0
        hp: FloatArray | float = 0.0
        for grp in self.terms.groups:
            n = np.searchsorted(grp.knots, u, side="left")  # terms paying: knot < u
            g = grp.cum_slope[n] * inverse_power(u, grp.beta + 1.0)
            h = h + g
            hp = hp - (grp.beta + 1.0) * g
        scale = 1.0 / (self.share * costs)
        res = (self.counts_t @ (self.base * h)) * scale - 1.0
        gram = (self.counts_t * (self.base * hp / u)) @ self.counts
        jac = gram * scale[:, None] * y[None, :]
        return res, jac

    def solve(self, costs: FloatArray, start: FloatArray) -> FloatArray | None:
        """As :func:`solve_foc` (MINPACK ``hybrj`` in log quantities, residual below ``1e-10``)."""
        return _solve_log(lambda z: self.residual(z, costs), start)

    def symmetric_root(self, cost: float, hi: float, points: int = 200) -> float | None:
        """One part (``V = 1``): the largest quantity where the residual changes sign from + to -
        (a local maximum of the payoff along the symmetric profiles), bracketed on a log grid up to
        ``hi`` and refined by ``brentq``; ``None`` when there is none. Robust where MINPACK stalls on the
        flat residual below the knots (used as a start of the class system)."""
        costs = np.array([cost])
        lo = max(float(self.terms.knots.min()) / float(self.share[0]) * 0.5, 1e-12)
        if not hi > lo:
            return None
        zs = np.linspace(np.log(lo), np.log(hi), points)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            r = np.array([self.residual(np.array([z]), costs)[0][0] for z in zs])
            down = np.flatnonzero((r[:-1] > 0) & (r[1:] <= 0))
            if down.size == 0:
                return None
            k = int(down[-1])
            z = brentq(
                lambda x: float(self.residual(np.array([x]), costs)[0][0]), zs[k], zs[k + 1], xtol=1e-14
            )
        return float(np.exp(z))
