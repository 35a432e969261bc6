r"""Shapley values by size-stratified sampling, adjusted by a regression fitted to the evaluated coalitions.

The Shapley value as a sum over coalition sizes (Kolpaczki, Bengs, Muschalik & Hüllermeier 2024,
"Approximating the Shapley value without marginal contributions", AAAI, eq. 4 and Stratified SVARM):
with :math:`A_i(s) = \mathbb{E}[v(S) \mid i \in S, |S| = s]` and
:math:`B_i(s) = \mathbb{E}[v(S) \mid i \notin S, |S| = s]` (uniformly random coalitions of size
:math:`s`),

.. math::
   \phi_i = \frac1M \sum_{k=0}^{M-1} \bigl(A_i(k+1) - B_i(k)\bigr)
          = \frac{v(N) - v(\emptyset)}{M} + \frac1M \sum_{s=1}^{M-1} D_i(s),
   \qquad D_i(s) = A_i(s) - B_i(s),

so one evaluated coalition of size :math:`s` informs :math:`D_i(s)` of *every* player (as a member or
as a non-member), and no marginal contribution is needed. :math:`\sum_i D_i(s) = 0` for every
:math:`s` (both sums are :math:`M\,\mathbb{E}[v(S)]`).

Regression adjustment (the control-variate idea of Witter, Musco et al. 2025, "Regression-adjusted
Monte Carlo estimators for Shapley values and probabilistic values", with a model class of our own
choice): within one size the value of a coalition varies mostly with *who* is in it, which sampling
alone resolves slowly. A size-varying additive model

.. math::
   g(S) = c_{|S|} + \sum_{j \in S} h_j(|S|), \qquad h_j(s) = \sum_{b < K} \theta_{jb}\, t_s^{\,b},
   \quad t_s = \frac{s - M/2}{M/2},

is fitted to the evaluated coalitions, and its :math:`D` is exact:
:math:`D^g_i(s) = \frac{M}{M-1}\bigl(h_i(s) - \bar h(s)\bigr)` (:math:`\bar h` the mean over all
players). Only the residual :math:`r = v - g` is left to sampling:
:math:`D_i(s) = D^g_i(s) + D^r_i(s)`.

Algorithm
---------
1. Evaluate :math:`\emptyset`, :math:`N`, the :math:`M` singletons and the :math:`M` leave-one-out
   coalitions (:math:`2M + 2` evaluations, Stratified SVARM's exact warm-up). They give
   :math:`D_i(1) = v(\{i\}) - \frac{1}{M-1}\sum_{j \ne i} v(\{j\})` and
   :math:`D_i(M-1) = \frac{1}{M-1}\sum_{j \ne i} v(N \setminus j) - v(N \setminus i)` exactly: the
   sizes where data-valuation games are steepest (a seller alone; a seller added to everyone else).
2. Draw pairs of a coalition and its complement (Covert & Lee 2021's paired sampling): a size
   :math:`s \in \{2..M-2\}` with probability :math:`\propto (s(M-s))^{-1/2}` (each stratum
   :math:`(i, s)` then gets a share of samples proportional to the square root of its weight in the
   variance, Neyman's allocation for equal within-stratum spreads), then a uniformly random coalition
   of that size. Whole pairs are admitted while the budget of new evaluations allows.
3. Fit :math:`\theta` by ridge regression on the evaluated coalitions of sizes :math:`2..M-2`, with
   the size effects :math:`c_s` removed by centring within each size (the fixed-effects estimator).
   The model uses :math:`K' = \min(K, \lfloor n / 2M \rfloor)` terms (at least one) for
   :math:`n` sampled coalitions, at least two coalitions per coefficient: with few coalitions per
   player (many players, a small budget) it falls back to constant coefficients, which the
   point-level game of the benchmark needed (a quadratic model fitted to 3 coalitions per player
   doubled the max error). The ridge penalty is chosen by generalised cross-validation (Golub,
   Heath & Wahba 1979) from a grid of multiples of the mean eigenvalue of the design's Gram matrix.
4. :math:`\hat D^r_i(s)` = mean residual of the sampled coalitions of size :math:`s` that contain
   :math:`i` minus the mean of those that do not (0 where either side has no sample: the model is
   trusted there), then centred over players so that :math:`\sum_i \hat D^r_i(s) = 0` like the
   truth; the values are therefore efficient.
5. :math:`\hat\phi_i = \frac{v(N) - v(\emptyset)}{M} + \frac1M\bigl(D_i(1) + D_i(M-1)\bigr)
   + \frac1M \sum_{s=2}^{M-2} \bigl(D^g_i(s) + \hat D^r_i(s)\bigr)`.
6. Standard errors by the delete-a-group jackknife over ``n_groups`` groups of pairs (steps 3-5 redone
   without each group).

Deviations, stated: the model is fitted on the same coalitions whose residuals are averaged (no
cross-fitting), which lowers the variance at small budgets and leaves a bias of the order of the
model's overfit (the number of parameters :math:`MK` over the number of coalitions); where a stratum
has no sample the model's value stands in for it. The jackknife measures the sampling spread, not
that bias. With :math:`K` basis functions the fit costs :math:`O((MK)^3)`; :math:`K` is lowered for
large :math:`M` so that :math:`MK \le 1200`.

Switches to exact enumeration when the budget reaches :math:`2^M`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from datamarket.core.errors import ConfigurationError
from datamarket.core.random import make_rng
from datamarket.valuation.exact import shapley_from_table
from datamarket.valuation.games import CoalitionGame
from datamarket.valuation.methods._common import (
    Evaluator,
    check_seed_and_budget,
    exact_if_affordable,
    masks_from_rows,
    random_subsets,
)
from datamarket.valuation.result import ValuationResult

COALITIONS_PER_COEFFICIENT = 2  # K' = min(K, n // (2 M)): at least 2 sampled coalitions per coefficient
MAX_PARAMETERS = 1200  # M * K at most: the ridge fit's Gram matrix is (M K) x (M K)
RIDGE_GRID = (1e-6, 1e-4, 1e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0)  # multiples of the mean Gram eigenvalue


def regression_adjusted_shapley(
    game: CoalitionGame,
    *,
    seed: int,
    max_evaluations: int,
    backend: Any = None,
    basis: int = 3,
    batch_size: int = 64,
    n_groups: int = 8,
) -> ValuationResult:
    """Shapley values by size-stratified paired sampling with a fitted size-varying additive model.

    Parameters
    ----------
    game : the coalition game.
    seed : seed of the sampling stream (bit-identical results on every backend).
    max_evaluations : hard budget of new evaluations (model fits), at least ``2M + 4``; at ``2**M``
        or more the exact value is computed by enumeration instead (``extra["switched_to_exact"]``).
    backend : where coalitions are evaluated.
    basis : ``K``, polynomial terms of each player's size-varying coefficient (1: a constant).
    batch_size : pairs drawn per batch.
    n_groups : jackknife groups of pairs for the standard errors.

    >>> from datamarket.valuation.games import FunctionGame
    >>> g = FunctionGame(lambda s: float(sum(s)) ** 0.5, 40)
    >>> r = regression_adjusted_shapley(g, seed=0, max_evaluations=400)
    >>> bool(abs(r.values.sum() - 780 ** 0.5) < 1e-9), r.evaluations <= 400
    (True, True)
    """
    ss, budget = check_seed_and_budget(seed, max_evaluations)
    name = "regression_adjusted_shapley"
    exact = exact_if_affordable(game, budget, shapley_from_table, name, backend)
    if exact is not None:
        return exact
    m = game.n_players
    if not isinstance(basis, int | np.integer) or isinstance(basis, bool) or basis < 1:
        raise ConfigurationError("basis", f"must be an integer >= 1, got {basis!r}")
    if batch_size < 1 or n_groups < 2:
        raise ConfigurationError("batch_size", "batch_size must be >= 1 and n_groups >= 2")
    if budget < 2 * m + 4:  # m >= 4 here: for m <= 3, 2M + 4 >= 2^M switched to exact
        raise ConfigurationError(
            "max_evaluations", f"need at least 2M + 4 = {2 * m + 4} evaluations (the exact ends and a pair)"
        )
    k = int(min(basis, max(1, MAX_PARAMETERS // m)))
    ev = Evaluator(game, backend, budget)
    rng = make_rng(ss)
    try:
        ends, z, y = _sample(ev, rng, m, batch_size)
    finally:
        ev.close()
    n_pairs = y.size // 2
    group = (np.arange(y.size) // 2) % n_groups
    values = _estimate(ends, z, y, m, k)
    if n_pairs >= n_groups:
        loo = np.array([_estimate(ends, z[group != g], y[group != g], m, k) for g in range(n_groups)])
        stderr = np.sqrt((n_groups - 1) / n_groups * np.sum((loo - loo.mean(axis=0)) ** 2, axis=0))
    else:
        stderr = np.full(m, np.inf)
    counts = np.full(m, 2 * m + 2 + y.size, dtype=np.int64)
    return ev.result(name, values, stderr, counts, {"pairs": n_pairs, "basis": k, "switched_to_exact": False})


def _sample(
    ev: Evaluator, rng: np.random.Generator, m: int, batch_size: int
) -> tuple[NDArray[np.float64], NDArray[np.bool_], NDArray[np.float64]]:
    """Steps 1-2: the exact ends (``[v(empty), v(N), v({i})..., v(N - i)...]``), then the sampled pairs
    (membership rows, values; a coalition and its complement are adjacent)."""
    full = (1 << m) - 1
    singles = [1 << i for i in range(m)]
    loos = [full ^ (1 << i) for i in range(m)]
    ev.admit([[0, full, *singles, *loos]])
    ends = ev.values([0, full, *singles, *loos])
    sizes_all = np.arange(2, m - 1, dtype=np.int64)
    q = 1.0 / np.sqrt(sizes_all * (m - sizes_all))
    q /= q.sum()
    rows: list[NDArray[np.bool_]] = []
    vals: list[NDArray[np.float64]] = []
    while ev.used < ev.budget:
        sizes = sizes_all[rng.choice(sizes_all.size, size=batch_size, p=q)]
        zb = random_subsets(rng, m, sizes)
        masks = masks_from_rows(zb)
        pairs = [[x, full ^ x] for x in masks]
        n_ok = ev.admit(pairs)
        if n_ok == 0:
            break
        both = np.empty((2 * n_ok, m), dtype=bool)
        both[0::2], both[1::2] = zb[:n_ok], ~zb[:n_ok]
        rows.append(both)
        vals.append(ev.values([x for pair in pairs[:n_ok] for x in pair]))
        if n_ok < len(pairs):
            break
    z = np.concatenate(rows) if rows else np.zeros((0, m), dtype=bool)
    y = np.concatenate(vals) if vals else np.zeros(0)
    return ends, z, y


def _basis(s: NDArray[np.int64], m: int, k: int) -> NDArray[np.float64]:
    """``t_s ** b`` for ``b < k``, ``t_s = (s - M/2) / (M/2)`` (rows: sizes)."""
    t = (np.asarray(s, dtype=np.float64) - m / 2) / (m / 2)
    return np.stack([t**b for b in range(k)], axis=-1)


def _estimate(
    ends: NDArray[np.float64], z: NDArray[np.bool_], y: NDArray[np.float64], m: int, k: int
) -> NDArray[np.float64]:
    """Steps 3-5 on the sampled coalitions ``z`` with values ``y``."""
    v0, vn = ends[0], ends[1]
    single, loo = ends[2 : 2 + m], ends[2 + m :]
    d1 = single - (single.sum() - single) / (m - 1)
    dm1 = (loo.sum() - loo) / (m - 1) - loo
    phi = (vn - v0) / m + (d1 + dm1) / m
    if y.size == 0:
        return phi
    sz = z.sum(axis=1)
    zf = z.astype(np.float64)
    k = int(min(k, max(1, y.size // (COALITIONS_PER_COEFFICIENT * m))))
    theta = _fit(zf, sz, y, m, k)[1]
    sizes = np.arange(2, m - 1)
    h = _basis(sizes, m, k) @ theta.T  # h[s, j] = h_j(s)
    dg = m / (m - 1) * (h - h.mean(axis=1, keepdims=True))
    r = y - np.einsum("nj,nj->n", zf, _basis(sz, m, k) @ theta.T)
    dr = np.zeros_like(dg)
    for row, s in enumerate(sizes):
        sel = sz == s
        if not sel.any():
            continue
        zs, rs = zf[sel], r[sel]
        n_in = zs.sum(axis=0)
        n_out = sel.sum() - n_in
        mean_in = (zs * rs[:, None]).sum(axis=0) / np.maximum(n_in, 1)
        mean_out = ((1.0 - zs) * rs[:, None]).sum(axis=0) / np.maximum(n_out, 1)
        d = np.where((n_in > 0) & (n_out > 0), mean_in - mean_out, 0.0)
        dr[row] = d - d.mean()
    out: NDArray[np.float64] = phi + (dg + dr).sum(axis=0) / m
    return out


def _fit(
    z: NDArray[np.float64], sz: NDArray[np.int64], y: NDArray[np.float64], m: int, k: int
) -> tuple[float, NDArray[np.float64]]:
    """Step 3: the GCV score and ``theta`` (``M x k``) by ridge on size-centred data, the penalty by GCV."""
    x = (z[:, :, None] * _basis(sz, m, k)[:, None, :]).reshape(y.size, m * k)
    xc, yc = x.copy(), y.copy()
    for s in np.unique(sz):
        sel = sz == s
        xc[sel] -= x[sel].mean(axis=0)
        yc[sel] -= y[sel].mean()
    gram = xc.T @ xc
    w, u = np.linalg.eigh(gram)
    w = np.maximum(w, 0.0)
    ub = u.T @ (xc.T @ yc)
    scale = float(w.mean())
    if scale <= 0.0:  # no within-size variation to fit (one coalition per size)
        return np.inf, np.zeros((m, k))
    best_gcv, best = np.inf, np.zeros(m * k)
    n = y.size
    for factor in RIDGE_GRID:
        lam = factor * scale
        coef = u @ (ub / (w + lam))
        res = yc - xc @ coef
        dof = float(np.sum(w / (w + lam)))
        gcv = float(res @ res) / max(n - dof, 1.0) ** 2
        if gcv < best_gcv:
            best_gcv, best = gcv, coef
    return best_gcv, best.reshape(m, k)
