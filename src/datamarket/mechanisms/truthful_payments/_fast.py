r"""Closed forms and rank-one updates for the mean-estimation market (Fan et al., Sec. 6.1).

With :math:`M = G + N + A` (:math:`A = \mathrm{diag}(\hat c)`), :math:`H = M^{-1}` (one Cholesky
factorisation), :math:`W = BH` and :math:`h = \mathrm{diag}(H)`, every payment of every seller follows
from rank-one identities, in :math:`O(|S|^3 + |B||S|^2)` in total instead of one solve per seller and
per quadrature node:

* **Seller removal** (block inverse / Schur complement):
  :math:`W^{(-j)}_{i,:} = W_{i,:} - (W_{ij}/h_j) H_{j,:}` and
  :math:`SC^*_{-j} - SC^* = \sum_i W_{ij}^2 / h_j`.
* **VCG (10)**: :math:`P^{VCG}_j = \hat c_j f_j + SC^*_{-j} - SC^* = f_j(\hat c_j + 1/h_j)`.
* **LOO (1)**: at an optimum :math:`v_i = q_i + \sum_k \hat c_k W_{ik}^2` with
  :math:`q_i = B_iHB_i^\top` (:math:`v_i = y(M+A)y^\top`), so :math:`V(S\setminus j)` expands
  into three matrix products (see :func:`loo_payments`).
* **Myerson (9)** (d) (Sherman-Morrison): :math:`M_0 = M - \hat c_j e_je_j^\top`,
  :math:`x = M_0^{-1}e_j = He_j/(1-\hat c_j h_j)`, :math:`m = x_j`, :math:`g = Bx`;
  :math:`f_j(W(u)) = \|g\|^2/(1+um)^2` and
  :math:`P^{MS}_j = \|g\|^2(1+2\hat c_j m)/(m(1+\hat c_j m)^2)` -- the integral to infinity in closed
  form. (It equals VCG algebraically: Theorem 4.2. The tests check Theorem 4.2 against quadrature of
  freshly solved allocations, never against this identity.)
* **Monte Carlo Shapley (8)** over random permutations: in permutation order the prefix coalitions are
  leading blocks, and the Cholesky factor of a leading block is the leading block of the factor
  (nested factorisations), so one :math:`O(|S|^3)` factorisation per permutation gives all :math:`|S|`
  prefix values (:math:`q` by cumulative sums of :math:`z = L^{-1}B^\top`, the cost term through
  :math:`L^{-1}`) instead of :math:`|S|` fresh solves (:math:`O(|S|^4)`).
* **Exact Shapley (8)**: the value table of all :math:`2^{|S|}` coalitions by batched small solves
  (:func:`coalition_table`), so exact Shapley is practical up to :math:`|S| = 20`.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import linalg

from datamarket.core.random import Seed, make_rng
from datamarket.core.types import FloatArray
from datamarket.mechanisms.truthful_payments._markets import MeanEstimationMarket, check_costs


def inverse_system(market: MeanEstimationMarket, costs: FloatArray) -> FloatArray:
    """:math:`H = (G + N + \\mathrm{diag}(\\hat c))^{-1}` via one Cholesky factorisation."""
    c = check_costs(costs, market.n_sellers)
    m = market.gram_plus_noise + np.diag(c)
    factor = linalg.cho_factor(m)
    h: FloatArray = linalg.cho_solve(factor, np.eye(m.shape[0]))
    return 0.5 * (h + h.T)


def vcg_payments(w: FloatArray, h_inv: FloatArray, costs: FloatArray) -> FloatArray:
    """Eq. (10) for every seller: :math:`f_j(\\hat c_j + 1/h_j)`."""
    f = np.sum(w**2, axis=0)
    out: FloatArray = f * (costs + 1.0 / np.diag(h_inv))
    return out


def myerson_payments(market: MeanEstimationMarket, h_inv: FloatArray, costs: FloatArray) -> FloatArray:
    """Eq. (9) for every seller through its closed form (Sherman-Morrison)."""
    h = np.diag(h_inv)
    scale = 1.0 - costs * h  # > 0 because M_0 = M - c_j e_j e_j^T is positive definite
    x = h_inv / scale[None, :]  # column j: M_0^{-1} e_j
    m = h / scale
    g2 = np.sum((market.cross @ x) ** 2, axis=0)
    cm = costs * m
    out: FloatArray = g2 * (1 + 2 * cm) / (m * (1 + cm) ** 2)
    return out


def myerson_allocation_curve(
    market: MeanEstimationMarket, costs: FloatArray, seller: int
) -> tuple[float, float]:
    """``(|g|^2, m)`` with :math:`f_j(W(u, \\hat c_{-j})) = |g|^2/(1+um)^2`."""
    c = check_costs(costs, market.n_sellers).copy()
    c[seller] = 0.0
    m0 = market.gram_plus_noise + np.diag(c)
    x = linalg.cho_solve(linalg.cho_factor(m0), np.eye(market.n_sellers)[:, seller])
    return float(np.sum((market.cross @ x) ** 2)), float(x[seller])


def coalition_value_sum(w: FloatArray, costs: FloatArray, cross: FloatArray) -> float:
    """:math:`V = \\sum_i q_i + \\sum_k \\hat c_k W_{ik}^2` at an optimum, :math:`q_i = W_iB_i^\\top`."""
    return float(np.sum(w * cross) + np.sum(costs * w**2))


def loo_payments(
    market: MeanEstimationMarket, w: FloatArray, h_inv: FloatArray, costs: FloatArray
) -> FloatArray:
    r"""Eq. (1) for every seller from one inverse.

    :math:`V(S) - V(S\setminus j) = \sum_i [W_{ij}^2/h_j + 2W_{ij}T_{ij}/h_j - W_{ij}^2 U_j/h_j^2]`
    with :math:`T = (W \odot \hat c) H` and :math:`U_j = \sum_k \hat c_k H_{jk}^2`, because
    :math:`\sum_k \hat c_k (W_{ik} - W_{ij}H_{jk}/h_j)^2` expands into those three terms and
    :math:`q_i` drops by :math:`W_{ij}^2/h_j`.
    """
    h = np.diag(h_inv)
    t = (w * costs[None, :]) @ h_inv
    u = (h_inv**2) @ costs
    drop = w**2 / h[None, :] + 2 * w * t / h[None, :] - w**2 * (u / h**2)[None, :]
    out: FloatArray = np.sum(drop, axis=0)
    return out


def buyer_split(market: MeanEstimationMarket, w: FloatArray, costs: FloatArray) -> FloatArray:
    """Eq. (17) at an optimum:

    :math:`v_i(W) - v_i(W^{-j}) = w_{ij}^2((G+N)_{jj} + 2\\hat c_j)`.
    """
    marg = w**2 * (np.diag(market.gram_plus_noise) + 2 * costs)[None, :]
    den = marg.sum(axis=0)
    degenerate = den <= 1e-300
    out: FloatArray = np.where(
        degenerate[None, :], 1.0 / w.shape[0], marg / np.where(degenerate, 1.0, den)[None, :]
    )
    return out


def permutation_shapley(
    market: MeanEstimationMarket, costs: FloatArray, n_permutations: int, seed: Seed
) -> tuple[FloatArray, FloatArray]:
    """Monte Carlo Shapley (8) over ``n_permutations`` uniform permutations; returns (mean, stderr).

    Permutation ``r`` is ``make_rng(seed).permutation`` drawn in order, so any implementation that
    draws the same way sees the same permutations. All prefix values of one permutation come from a
    single Cholesky factorisation of :math:`M` in permutation order (see the module docstring).
    """
    c = check_costs(costs, market.n_sellers)
    n = market.n_sellers
    rng = make_rng(seed)
    big_m = market.gram_plus_noise + np.diag(c)
    cross = market.cross
    marg = np.zeros((n_permutations, n))
    eye = np.eye(n)
    for r in range(n_permutations):
        perm = rng.permutation(n)
        # In permutation order every prefix coalition is a leading block, and the Cholesky factor of a
        # leading block is the leading block of the Cholesky factor: one factorisation serves all prefixes.
        chol = linalg.cholesky(big_m[np.ix_(perm, perm)], lower=True)
        p_inv = linalg.solve_triangular(chol, eye, lower=True)  # L^{-1}, also prefix-consistent
        z = p_inv @ cross[:, perm].T  # (n, buyers): z[:k] = L_k^{-1} B_k^T
        values = np.cumsum(np.sum(z**2, axis=1))  # q(prefix k) = |z[:k]|^2
        cp = c[perm]
        for i in range(z.shape[1]):
            # y = W on prefix k is L_k^{-T} z[:k]; row k-1 of the cumulative sum holds it for every k
            y = np.cumsum(p_inv * z[:, i][:, None], axis=0)
            values = values + (y**2) @ cp
        marg[r, perm] = np.diff(values, prepend=0.0)
    mean: FloatArray = marg.mean(axis=0)
    se: FloatArray = marg.std(axis=0, ddof=1) / np.sqrt(n_permutations) if n_permutations > 1 else np.zeros(n)
    return mean, se


def coalition_table(market: MeanEstimationMarket, costs: FloatArray, chunk: int = 16384) -> FloatArray:
    """:math:`V(\\pi)` for every coalition (``table[mask]``, bit j = seller j; :math:`V(\\emptyset)=0`).

    Exact Shapley (8) needs all :math:`2^{|S|}` values. At the optimum of coalition
    :math:`\\pi`, with :math:`M_\\pi = (G+N+A)_{\\pi\\pi}` and :math:`X = M_\\pi^{-1}B_\\pi^\\top`
    (:math:`W_\\pi = X^\\top`, eq. (22)), :math:`v_i = 2W_iB_i^\\top - W_i(G+N)W_i^\\top
    = B_iX_{:,i} + \\sum_k \\hat c_k X_{ki}^2` (because :math:`W_iM_\\pi W_i^\\top = W_iB_i^\\top`). All
    coalitions of one size are solved as one batch of small systems (``numpy.linalg.solve``), about 20x
    faster than one call per coalition; :math:`|S| = 20` takes a few seconds.

    >>> m = MeanEstimationMarket.from_variances([[1.0, 0.0]], [[1.0, 0.0], [0.8, 0.2]], [0.5, 0.5])
    >>> t = coalition_table(m, np.array([1.0, 2.0]))
    >>> float(t[0]), round(float(t[1]), 6)   # V({0}): w = 1/2.5, v = 2w - 1.5 w^2
    (0.0, 0.56)
    """
    c = check_costs(costs, market.n_sellers)
    n = market.n_sellers
    gn, cross = market.gram_plus_noise, market.cross
    out = np.zeros(1 << n)
    for k in range(1, n + 1):
        combos = np.array(list(itertools.combinations(range(n), k)), dtype=np.int64)
        diag = np.arange(k)
        for start in range(0, combos.shape[0], chunk):
            cb = combos[start : start + chunk]
            mats = gn[cb[:, :, None], cb[:, None, :]]
            mats[:, diag, diag] += c[cb]
            rhs = np.transpose(cross[:, cb], (1, 2, 0))  # (coalitions, k, buyers)
            x = np.linalg.solve(mats, rhs)
            masks = np.sum(np.left_shift(np.int64(1), cb), axis=1)
            out[masks] = np.einsum("mkb,mkb->m", rhs, x) + np.einsum("mk,mkb->m", c[cb], x**2)
    return out
