r"""Shapley values with a control variate whose Shapley value is exact: a fitted learning-curve surrogate.

Linearity of the Shapley value (Shapley 1953) splits any game into a surrogate :math:`g` and a
residual :math:`r = v - g`: :math:`\phi(v) = \phi(g) + \phi(r)`. If :math:`\phi(g)` is computed
*exactly* and :math:`g` follows :math:`v` closely, only the small residual is left to sampling, and
the Monte Carlo error scales with the spread of the residual's marginal contributions instead of
:math:`v`'s (the classical control-variate argument, e.g. Glasserman 2004, "Monte Carlo methods in
financial engineering", Section 4.1; for Shapley values with an *estimated* control variate see Goldwasser &
Hooker 2024, "Stabilizing estimates of Shapley values with control variates", Section 3).

The surrogate is a *grouped quantity game* (the learning-curve markets of the balanced-market paper:
:math:`v_g(T) = \rho_g G_g(\sum_{j \in T} x_{j,g})`):

.. math::
   g(S) = \sum_{h=1}^{H} f_h\Bigl(\sum_{j \in S} q_{j,h}\Bigr),

with known non-negative integer features :math:`q_{j,h}` of the players (rows per class of a
seller's data for a :class:`~datamarket.valuation.ModelGame`) and unknown curves :math:`f_h`, whose
exact Shapley value the structured dynamic programme
(:func:`~datamarket.valuation.grouped_quantity_game_shapley`) gives in polynomial time.

Algorithm
---------
1. Draw antithetic pairs of uniformly random permutations (a permutation and its reverse; Mitchell et
   al. 2022) from the seeded stream and evaluate their prefixes (memoised; the budget cuts at a pair).
2. Cross-fitting (Chernozhukov et al. 2018, "Double/debiased machine learning", Def. 3.1): split the
   pairs into two folds. For each fold, fit the curves :math:`f_h` to the coalition values observed in
   the *other* fold by least squares over piecewise-linear functions with up to ``2 n_knots`` knots
   per group (``n_knots`` at quantiles of the observed totals, ``n_knots`` log-spaced from 1: learning
   curves are steepest near 0; a small second-difference penalty keeps empty spans smooth). The residual of a
   fold is then independent of its surrogate, so the estimator stays unbiased.
3. :math:`\phi(g)` exactly by the dynamic programme. Quantities are first coarsened to at most
   ``max_total`` units per group (integer division, at least 1 unit per non-zero quantity); any
   surrogate is a valid control variate, so coarsening changes the variance, never the bias.
4. :math:`\hat\phi_i(r)` = mean over the fold's permutations of the residual marginal contribution
   :math:`(v(P \cup i) - v(P)) - (g(P \cup i) - g(P))` (each permutation gives every player one;
   an antithetic pair is averaged first, and pair means are i.i.d.).
5. :math:`\hat\phi_i = \frac12 \sum_{\text{folds}} (\phi_i(g) + \hat\phi_i(r))`; standard error from
   the spread of the pair means of each fold.

Exact ends (``exact_ends``, on when the budget holds ``4 M`` evaluations and ``M >= 8``): the
residual's first and last positions are computed exactly from the ``M`` singletons and the ``M``
leave-one-out coalitions (``2 M`` evaluations, which permutation prefixes share):

.. math::
   \phi_i(r) = \tfrac1M \bigl(r(\{i\}) - r(\emptyset)\bigr) + \tfrac1M \bigl(r(N) - r(N \setminus i)\bigr)
   + \tfrac{M-2}{M}\, \mathbb{E}\bigl[r(P \cup i) - r(P) \mid 1 \le |P| \le M-2\bigr],

the Shapley value as the mean over positions (Shapley 1953; stratification by position as in Maleki
et al. 2013). Given its position, a permutation's prefix before ``i`` is a uniformly random subset of
that size, so the interior term is the mean over the antithetic pairs in which ``i`` is interior (a
permutation and its reverse put ``i`` at positions ``k`` and ``M - 1 - k``: both interior or both
ends). On learning curves the ends carry the steepest marginals (a seller alone, a seller added to
everyone else), the largest residual spread; the singletons also pin the fitted curves near 0.
A player with fewer than two interior pairs in a fold (with ``n`` pairs, probability about
``n (2/M)^(n-1)``) keeps the plain mean over all that fold's pairs, a fallback that is not
conditionally unbiased; it matters only for budgets of a few pairs.

If the surrogate fits perfectly (the game *is* a quantity game of the given features) the residual is
zero and the answer is exact after the first pairs; a poor surrogate costs only variance.
Switches to exact enumeration when the budget reaches :math:`2^M`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from datamarket.core.errors import ConfigurationError, InvalidMarketError
from datamarket.core.random import make_rng
from datamarket.valuation.exact import shapley_from_table
from datamarket.valuation.games import CoalitionGame
from datamarket.valuation.methods._common import Evaluator, check_seed_and_budget, exact_if_affordable
from datamarket.valuation.result import ValuationResult
from datamarket.valuation.structured import _quantity_kernel


def _features(game: CoalitionGame, quantities: Any) -> NDArray[np.int64]:
    q = getattr(game, "quantities", None) if quantities is None else quantities
    m = game.n_players
    if q is None:
        return np.ones((m, 1), dtype=np.int64)
    arr = np.asarray(q, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] != m:
        raise InvalidMarketError("quantities", f"need one row per player ({m}), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0) or np.any(arr != np.round(arr)):
        raise InvalidMarketError("quantities", "must be non-negative integers")
    return arr.astype(np.int64)


def coarsen(q: NDArray[np.int64], max_total: int) -> NDArray[np.int64]:
    """Step 3: integer-divide each group's quantities so that its total is at most ``max_total``.

    >>> coarsen(np.array([[10, 1], [30, 2]]), 8).tolist()
    [[2, 1], [6, 2]]
    """
    out = q.copy()
    for h in range(q.shape[1]):
        total = int(q[:, h].sum())
        if total > max_total:
            c = -(-total // max_total)
            out[:, h] = np.where(q[:, h] > 0, np.maximum(q[:, h] // c, 1), 0)
    return out


def _hat_basis(t: NDArray[np.float64], knots: NDArray[np.float64]) -> NDArray[np.float64]:
    """Piecewise-linear interpolation weights of ``t`` on ``knots`` (rows sum to 1)."""
    k = knots.size
    idx = np.clip(np.searchsorted(knots, t, side="right") - 1, 0, k - 2)
    lo, hi = knots[idx], knots[idx + 1]
    frac = np.clip((t - lo) / np.maximum(hi - lo, 1e-300), 0.0, 1.0)
    out = np.zeros((t.size, k))
    rows = np.arange(t.size)
    out[rows, idx] = 1.0 - frac
    out[rows, idx + 1] += frac
    return out


class _Surrogate:
    """Fitted curves ``f_h`` as value tables on ``0..Q_h`` (step 2)."""

    def __init__(
        self,
        totals: NDArray[np.float64],
        values: NDArray[np.float64],
        q: NDArray[np.int64],
        n_knots: int,
    ) -> None:
        h_count = q.shape[1]
        knots: list[NDArray[np.float64]] = []
        blocks = []
        for h in range(h_count):
            qt = float(q[:, h].sum())
            inner = np.quantile(totals[:, h], np.linspace(0, 1, n_knots)) if totals.size else np.array([])
            geo = np.geomspace(1.0, max(qt, 1.0), n_knots)  # learning curves are steepest near 0
            kn = np.unique(np.concatenate([[0.0, qt], np.round(inner), np.round(geo)]))
            if kn.size < 2:
                kn = np.array([0.0, max(qt, 1.0)])
            knots.append(kn)
            blocks.append(_hat_basis(totals[:, h], kn))
        design = np.hstack(blocks)
        n_par = design.shape[1]
        # second-difference penalty within each group's curve + a tiny ridge (the H constants are
        # not identified separately; their split does not change any marginal contribution)
        rows = []
        off = 0
        for kn in knots:
            for j in range(kn.size - 2):
                r = np.zeros(n_par)
                r[off + j : off + j + 3] = (1.0, -2.0, 1.0)
                rows.append(r)
            off += kn.size
        scale = float(np.sqrt(max(np.mean(np.sum(design**2, axis=1)), 1e-300) * values.size))
        pen = 1e-3 * scale * np.array(rows) if rows else np.zeros((0, n_par))
        ridge = 1e-8 * scale * np.eye(n_par)
        a = np.vstack([design, pen, ridge])
        b = np.concatenate([values, np.zeros(pen.shape[0] + n_par)])
        coef = np.linalg.lstsq(a, b, rcond=None)[0]
        self.tables: list[NDArray[np.float64]] = []
        off = 0
        for h, kn in enumerate(knots):
            grid = np.arange(int(q[:, h].sum()) + 1, dtype=np.float64)
            self.tables.append(np.interp(grid, kn, coef[off : off + kn.size]))
            off += kn.size

    def shapley(self, q: NDArray[np.int64]) -> NDArray[np.float64]:
        phi = np.zeros(q.shape[0])
        for h, f in enumerate(self.tables):
            phi += _quantity_kernel(q[:, h], f)
        return phi

    def marginals(self, before: NDArray[np.int64], q_i: NDArray[np.int64]) -> NDArray[np.float64]:
        """``g(P + i) - g(P)`` from the group totals of ``P`` (``(..., H)``) and ``q_i`` (same shape)."""
        out = np.zeros(before.shape[:-1])
        for h, f in enumerate(self.tables):
            out += f[before[..., h] + q_i[..., h]] - f[before[..., h]]
        return out


def control_variate_shapley(
    game: CoalitionGame,
    *,
    seed: int,
    max_evaluations: int,
    quantities: Any = None,
    n_knots: int = 12,
    max_total: int = 1024,
    backend: Any = None,
    batch_size: int = 8,
    exact_ends: bool = True,
) -> ValuationResult:
    """Shapley values = exact Shapley of a fitted learning-curve surrogate + sampled residual.

    Parameters
    ----------
    game : the coalition game.
    seed : seed of the permutation stream (bit-identical results on every backend).
    max_evaluations : hard budget of new evaluations; at ``2**M`` or more the exact value is computed
        by enumeration instead (``extra["switched_to_exact"]``).
    quantities : the players' features ``q`` (shape ``(M,)`` or ``(M, H)``, non-negative integers);
        default ``game.quantities`` when the game has it (a :class:`ModelGame`: rows per class),
        else one unit per player (the surrogate is then a function of the coalition size).
    n_knots : knots of each fitted piecewise-linear curve.
    max_total : coarsening cap of each group's total quantity (step 3).
    backend : where coalitions are evaluated.
    batch_size : antithetic pairs of permutations per batch.
    exact_ends : evaluate the ``M`` singletons and ``M`` leave-one-out coalitions first and take the
        residual's first and last positions exactly (used when ``M >= 8`` and the budget is at least
        ``4 M``; ``extra["exact_ends"]`` says whether it was).

    >>> from datamarket.valuation.games import FunctionGame
    >>> q = np.arange(1, 41)
    >>> game = FunctionGame(lambda s: float(np.sqrt(q[list(s)].sum())), 40)   # a quantity game
    >>> r = control_variate_shapley(game, seed=0, max_evaluations=800, quantities=q)
    >>> from datamarket.valuation import quantity_game_shapley
    >>> exact = quantity_game_shapley(q, np.sqrt).values
    >>> bool(np.max(np.abs(r.values - exact)) < 0.03 * exact.mean())   # 800 of 2^40 coalitions
    True
    """
    ss, budget, q_full = _checked(game, seed, max_evaluations, quantities, n_knots, max_total, batch_size)
    exact = exact_if_affordable(game, budget, shapley_from_table, "control_variate_shapley", backend)
    if exact is not None:
        return exact
    m = game.n_players
    q = coarsen(q_full, max_total)
    ev = Evaluator(game, backend, budget)
    ends = bool(exact_ends) and m >= 8 and budget >= 4 * m
    perms, prefix_vals, v0 = _sample_pairs(ev, make_rng(ss), m, batch_size, ends)
    sample = _Sample.of(perms, prefix_vals, q)
    end = _Ends.of(ev, q, ends, v0, float(sample.vals[0, -1]))
    values, stderr = _cross_fitted(sample, q, n_knots, end)
    n_perm = len(perms)
    extra = {
        "permutations": n_perm,
        "switched_to_exact": False,
        "groups": int(q.shape[1]),
        "exact_ends": ends,
    }
    return ev.result("control_variate_shapley", values, stderr, np.full(m, n_perm, dtype=np.int64), extra)


def _checked(
    game: CoalitionGame,
    seed: int,
    max_evaluations: int,
    quantities: Any,
    n_knots: int,
    max_total: int,
    batch_size: int,
) -> tuple[np.random.SeedSequence, int, NDArray[np.int64]]:
    """The validated seed sequence, budget and features of the players."""
    ss, budget = check_seed_and_budget(seed, max_evaluations)
    if n_knots < 2 or max_total < 1 or batch_size < 1:
        raise ConfigurationError("n_knots", "n_knots must be >= 2, max_total and batch_size >= 1")
    return ss, budget, _features(game, quantities)


def _cross_fitted(
    sample: _Sample, q: NDArray[np.int64], n_knots: int, end: _Ends
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Step 5: the mean of the two folds' estimates (:func:`_fold_estimate`) and its standard error."""
    phi_parts, var_parts = [], []
    for f in (0, 1):
        phi, var = _fold_estimate(sample, f, q, n_knots, end)
        phi_parts.append(phi)
        var_parts.append(var)
    values = 0.5 * (phi_parts[0] + phi_parts[1])
    stderr = 0.5 * np.sqrt(var_parts[0] + var_parts[1])
    return values, stderr


def _ends_masks(m: int) -> tuple[list[int], list[int]]:
    """The ``M`` singletons and the ``M`` leave-one-out coalitions."""
    full = (1 << m) - 1
    return [1 << j for j in range(m)], [full ^ (1 << j) for j in range(m)]


def _sample_pairs(
    ev: Evaluator, rng: np.random.Generator, m: int, batch_size: int, ends: bool
) -> tuple[list[NDArray[np.int64]], list[NDArray[np.float64]], float]:
    """Step 1: antithetic pairs of permutations and the values of their prefixes (sizes 0..M), until the
    budget is spent; with ``ends``, the singletons and leave-one-out coalitions first. Also ``v(empty)``.
    Closes the evaluator's backend."""
    try:
        perms, prefix_vals, v0 = _draw_pairs(ev, rng, m, batch_size, ends)
    finally:
        ev.close()
    if len(perms) < 4:
        raise ConfigurationError(
            "max_evaluations", f"budget {ev.budget} too small for two antithetic pairs of {m} players"
        )
    return perms, prefix_vals, v0


def _draw_pairs(
    ev: Evaluator, rng: np.random.Generator, m: int, batch_size: int, ends: bool
) -> tuple[list[NDArray[np.int64]], list[NDArray[np.float64]], float]:
    full = (1 << m) - 1
    perms: list[NDArray[np.int64]] = []
    prefix_vals: list[NDArray[np.float64]] = []
    ev.admit([[0, full]])
    v0 = ev.memo.peek(0)
    if ends:
        singles, loo = _ends_masks(m)
        ev.admit([singles + loo])
    while ev.used < ev.budget:
        batch = []
        for _ in range(batch_size):
            p = rng.permutation(m)
            batch.append([p, p[::-1].copy()])
        masks_of = [[_prefix_masks(p) for p in pair] for pair in batch]
        units = [pm[0] + pm[1] for pm in masks_of]
        k = ev.admit(units)
        for pair, pm in zip(batch[:k], masks_of[:k], strict=True):
            for p, pre in zip(pair, pm, strict=True):
                perms.append(p)
                prefix_vals.append(np.concatenate([[v0], ev.values(pre)]))
        if k < len(units):
            break
    return perms, prefix_vals, v0


def _prefix_masks(perm: NDArray[np.int64]) -> list[int]:
    """Masks of the prefixes of sizes 1..M of ``perm``."""
    acc, pre = 0, []
    for j in perm.tolist():
        acc |= 1 << j
        pre.append(acc)
    return pre


@dataclass(frozen=True)
class _Sample:
    """The sampled permutations (rows; antithetic pairs adjacent) and what every step reads from them."""

    perm: NDArray[np.int64]  # (n, M)
    vals: NDArray[np.float64]  # (n, M + 1): v of the prefixes of sizes 0..M
    dv: NDArray[np.float64]  # marginal contribution of perm[:, k]
    qp: NDArray[np.int64]  # (n, M, H): features in permutation order
    before: NDArray[np.int64]  # (n, M + 1, H): feature totals of the prefixes
    fold: NDArray[np.int64]  # cross-fitting fold of each permutation (antithetic pairs stay together)
    pos: NDArray[np.int64]  # position of each player in each permutation

    @classmethod
    def of(
        cls, perms: list[NDArray[np.int64]], prefix_vals: list[NDArray[np.float64]], q: NDArray[np.int64]
    ) -> _Sample:
        n_perm, m = len(perms), q.shape[0]
        perm_arr = np.array(perms)
        vals = np.array(prefix_vals)
        qp = q[perm_arr]
        before = np.concatenate(
            [np.zeros((n_perm, 1, q.shape[1]), dtype=np.int64), np.cumsum(qp, axis=1)], axis=1
        )
        pos = np.empty_like(perm_arr)
        np.put_along_axis(pos, perm_arr, np.broadcast_to(np.arange(m), perm_arr.shape), axis=1)
        return cls(perm_arr, vals, np.diff(vals, axis=1), qp, before, (np.arange(n_perm) // 2) % 2, pos)


@dataclass(frozen=True)
class _Ends:
    """The exact ends (module docstring): feature totals ``t`` and values ``v`` of the singletons and the
    leave-one-out coalitions (empty when unused), ``v(empty)``, ``v(N)`` and the feature totals of ``N``."""

    on: bool
    t: NDArray[np.float64]
    v: NDArray[np.float64]
    v0: float
    v_full: float
    total: NDArray[np.int64]

    @classmethod
    def of(cls, ev: Evaluator, q: NDArray[np.int64], on: bool, v0: float, v_full: float) -> _Ends:
        total = q.sum(axis=0)
        t, v = np.zeros((0, q.shape[1])), np.zeros(0)
        if on:
            singles, loo = _ends_masks(q.shape[0])
            t = np.vstack([q, total[None, :] - q]).astype(np.float64)
            v = np.concatenate([ev.values(singles), ev.values(loo)])
        return cls(on, t, v, v0, v_full, total)


def _fold_estimate(
    s: _Sample, f: int, q: NDArray[np.int64], n_knots: int, end: _Ends
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Steps 2-4 for fold ``f``: the surrogate fitted on the other fold, its exact Shapley value plus the
    residual's sampled mean, and the variance of that mean."""
    m = q.shape[0]
    train = s.fold != f
    sur = _Surrogate(
        np.vstack([s.before[train].reshape(-1, q.shape[1]).astype(np.float64), end.t]),
        np.concatenate([s.vals[train].ravel(), end.v]),
        q,
        n_knots,
    )
    resid = s.dv[s.fold == f] - sur.marginals(s.before[s.fold == f, :-1], s.qp[s.fold == f])
    per_player = np.empty_like(resid)  # reorder to player columns
    np.put_along_axis(per_player, s.perm[s.fold == f], resid, axis=1)
    pair_means = 0.5 * (per_player[0::2] + per_player[1::2])
    n_pairs = pair_means.shape[0]
    est = pair_means.mean(axis=0)
    var = pair_means.var(axis=0, ddof=1) / n_pairs if n_pairs > 1 else np.full(m, np.inf)
    if end.on:
        est, var = _with_exact_ends(sur, pair_means, s.pos[s.fold == f][0::2], q, end, est, var)
    return sur.shapley(q) + est, var


def _with_exact_ends(
    sur: _Surrogate,
    pair_means: NDArray[np.float64],
    p0: NDArray[np.int64],
    q: NDArray[np.int64],
    end: _Ends,
    est: NDArray[np.float64],
    var: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The residual's first and last positions exactly, the interior as the mean over the pairs in which
    the player is interior (``p0``: its position in the first permutation of each pair); players with
    fewer than two interior pairs keep ``est`` and ``var``."""
    m = q.shape[0]
    inner = (p0 >= 1) & (p0 <= m - 2)  # the reverse puts the player at m - 1 - p0
    cnt = inner.sum(axis=0)
    ok = cnt >= 2
    g_single = sur.marginals(np.zeros_like(q), q)
    g_last = sur.marginals(end.total[None, :] - q, q)
    r_ends = (end.v[:m] - end.v0 - g_single) + (end.v_full - end.v[m:] - g_last)
    safe = np.maximum(cnt, 1)
    in_mean = np.where(inner, pair_means, 0.0).sum(axis=0) / safe
    in_var = np.where(inner, (pair_means - in_mean) ** 2, 0.0).sum(axis=0) / np.maximum(cnt - 1, 1)
    scale = (m - 2) / m
    est = np.where(ok, r_ends / m + scale * in_mean, est)
    var = np.where(ok, scale**2 * in_var / safe, var)
    return est, var
