r"""Shapley values by weighted least squares: KernelSHAP with paired sampling, and leverage-score sampling.

The Shapley value is the solution of a constrained weighted regression over all coalitions
(Charnes et al. 1988; Lundberg & Lee 2017, "A unified approach to interpreting model predictions",
NeurIPS, Theorem 2):

.. math::
   \phi = \arg\min_{\phi:\ \mathbf 1^\top\phi = v(N) - v(\emptyset)}
     \sum_{\emptyset \ne S \subsetneq N} k(S)\,\bigl(v(S) - v(\emptyset) - z_S^\top \phi\bigr)^2,
   \qquad k(S) = \frac{M-1}{\binom{M}{|S|}\,|S|\,(M-|S|)},

with :math:`z_S \in \{0,1\}^M` the indicator of :math:`S`. Sampling coalitions and solving the
regression on the sample gives an estimator whose cost does not grow with the number of players the
way per-player marginal contributions do.

Samplers (the sampled regression is re-weighted by :math:`k(S)/\Pr[S]`, so both estimate the same
:math:`\phi`):

* ``"kernel"`` — KernelSHAP: :math:`\Pr[S] \propto k(S)` (size :math:`s` with probability
  :math:`\propto 1/(s(M-s))`, then a uniform subset), *paired*: each sample comes with its complement
  (Covert & Lee 2021, "Improving KernelSHAP: practical Shapley value estimation via linear
  regression", AISTATS, Section 4.2: paired sampling cancels the odd part of the error).
* ``"leverage"`` — Leverage SHAP (Musco & Witter 2024, "Provably accurate Shapley value estimation via
  leverage score sampling", Theorem 1.1 and Lemma 3.2): the statistical leverage scores of the
  (constraint-projected) regression are equal across sizes, so the size is drawn *uniformly* from
  :math:`1..M-1`, then a uniform subset, paired; weights :math:`\propto 1/(s(M-s))`.
  Deviation: the paper samples without replacement; here repeats are drawn but cost no fit (memo).

Algorithm
---------
1. Evaluate :math:`v(\emptyset)` and :math:`v(N)`.
2. Draw paired coalitions in batches from the seeded stream; evaluate them (budget cut at a pair).
3. Accumulate :math:`A = \sum_j w_j z_j z_j^\top` and :math:`b = \sum_j w_j z_j (v(S_j) - v(\emptyset))`.
4. Solve the equality-constrained problem in closed form (Lagrange multiplier):
   :math:`\phi = A^{-1}\bigl(b - \mathbf 1\,\frac{\mathbf 1^\top A^{-1} b - (v(N) - v(\emptyset))}
   {\mathbf 1^\top A^{-1}\mathbf 1}\bigr)` (Covert & Lee 2021, eq. 8). The values are efficient
   by construction.
5. Standard errors by the delete-a-group jackknife over ``n_groups`` groups of pairs.

Switches to exact enumeration when the budget reaches :math:`2^M`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from datamarket.core.errors import ConfigurationError, InvalidMarketError
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

SAMPLERS = ("kernel", "leverage")


def _solve(a: NDArray[np.float64], b: NDArray[np.float64], total: float) -> NDArray[np.float64]:
    """Step 4: the constrained least-squares solution (pseudo-inverse while ``A`` is singular)."""
    m = b.size
    ones = np.ones(m)
    try:
        ainv_b = np.linalg.solve(a, b)
        ainv_1 = np.linalg.solve(a, ones)
    except np.linalg.LinAlgError:
        pinv = np.linalg.pinv(a)
        ainv_b, ainv_1 = pinv @ b, pinv @ ones
    denom = float(ones @ ainv_1)
    if not np.isfinite(denom) or abs(denom) < 1e-300:
        return np.full(m, total / m)
    out: NDArray[np.float64] = ainv_b - ainv_1 * (float(ones @ ainv_b) - total) / denom
    return out


def regression_shapley(
    game: CoalitionGame,
    *,
    seed: int,
    max_evaluations: int,
    sampler: str = "leverage",
    backend: Any = None,
    batch_size: int = 128,
    n_groups: int = 8,
) -> ValuationResult:
    """Shapley values by sampled weighted least squares (see the module docstring).

    Parameters
    ----------
    game : the coalition game (at least 2 players).
    seed : seed of the sampling stream (bit-identical results on every backend).
    max_evaluations : hard budget of new evaluations; at ``2**M`` or more the exact value is computed
        by enumeration instead (``extra["switched_to_exact"]``).
    sampler : ``"leverage"`` (Musco & Witter 2024) or ``"kernel"`` (KernelSHAP, paired).
    backend : where coalitions are evaluated.
    batch_size : pairs drawn per batch.
    n_groups : jackknife groups for the standard errors.

    >>> from datamarket.valuation.games import FunctionGame
    >>> r = regression_shapley(FunctionGame(lambda s: float(sum(s)), 30), seed=0, max_evaluations=200)
    >>> bool(np.allclose(r.values, np.arange(30)))   # additive games are recovered exactly
    True
    """
    ss, budget = check_seed_and_budget(seed, max_evaluations)
    if sampler not in SAMPLERS:
        raise ConfigurationError("sampler", f"must be one of {SAMPLERS}, got {sampler!r}")
    name = f"{sampler}_regression_shapley"
    exact = exact_if_affordable(game, budget, shapley_from_table, name, backend)
    if exact is not None:
        return exact
    m = game.n_players
    if m < 2:  # pragma: no cover - a 1-player game has 2 coalitions, always switched to exact
        raise InvalidMarketError("players", "regression needs at least 2 players")
    if batch_size < 1 or n_groups < 2:
        raise ConfigurationError("batch_size", "batch_size must be >= 1 and n_groups >= 2")
    sizes_all, p_size, w_size = _size_law(sampler, m)
    ev = Evaluator(game, backend, budget)
    rng = make_rng(ss)
    eqs = _NormalEquations(m, n_groups)
    try:
        v0, vn = _sample_pairs(ev, rng, eqs, sizes_all, p_size, w_size, batch_size)
    finally:
        ev.close()
    total = vn - v0
    a, b = eqs.a_g.sum(axis=0), eqs.b_g.sum(axis=0)
    values = _solve(a, b, total) if eqs.n_pairs else np.full(m, total / m)
    stderr, counts = eqs.jackknife(a, b, total), np.full(m, 2 * eqs.n_pairs, dtype=np.int64)
    return ev.result(
        name, values, stderr, counts, {"pairs": eqs.n_pairs, "switched_to_exact": False, "sampler": sampler}
    )


def _size_law(sampler: str, m: int) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    """Coalition sizes ``1..M-1``, the probability of drawing each and the regression weight of a sample
    of each size (the kernel weight over the probability, up to a constant)."""
    sizes_all = np.arange(1, m, dtype=np.int64)
    kernel_size = 1.0 / (sizes_all * (m - sizes_all))  # k(S) * C(M, s), up to a constant
    if sampler == "kernel":
        p_size = kernel_size / kernel_size.sum()
        w_size = np.ones(m - 1)  # k(S) / Pr[S] is constant
    else:
        p_size = np.full(m - 1, 1.0 / (m - 1))
        w_size = kernel_size / kernel_size.mean()
    return sizes_all, p_size, w_size


class _NormalEquations:
    """Step 3's ``A`` and ``b``, accumulated per jackknife group of pairs (step 5)."""

    def __init__(self, m: int, n_groups: int) -> None:
        self.m, self.n_groups = m, n_groups
        self.a_g = np.zeros((n_groups, m, m))
        self.b_g = np.zeros((n_groups, m))
        self.n_pairs = 0

    def add(self, zz: NDArray[np.float64], y: NDArray[np.float64], w: NDArray[np.float64], k: int) -> None:
        """Add ``k`` pairs: rows ``zz`` (the ``k`` samples, then their complements), targets ``y`` and
        weights ``w``; pair ``n`` goes to group ``n mod n_groups``."""
        group = (self.n_pairs + np.concatenate([np.arange(k), np.arange(k)])) % self.n_groups
        for g in range(self.n_groups):
            sel = group == g
            if sel.any():
                zw = zz[sel] * w[sel, None]
                self.a_g[g] += zw.T @ zz[sel]
                self.b_g[g] += zw.T @ y[sel]
        self.n_pairs += k

    def jackknife(self, a: NDArray[np.float64], b: NDArray[np.float64], total: float) -> NDArray[np.float64]:
        """Delete-a-group jackknife standard errors (``inf`` with fewer pairs than groups)."""
        n_groups = self.n_groups
        if self.n_pairs < n_groups:
            return np.full(self.m, np.inf)
        loo = np.array([_solve(a - self.a_g[g], b - self.b_g[g], total) for g in range(n_groups)])
        out: NDArray[np.float64] = np.sqrt(
            (n_groups - 1) / n_groups * np.sum((loo - loo.mean(axis=0)) ** 2, axis=0)
        )
        return out


def _sample_pairs(
    ev: Evaluator,
    rng: np.random.Generator,
    eqs: _NormalEquations,
    sizes_all: NDArray[np.int64],
    p_size: NDArray[np.float64],
    w_size: NDArray[np.float64],
    batch_size: int,
) -> tuple[float, float]:
    """Steps 1-3: ``v(empty)`` and ``v(N)``, then paired coalitions into ``eqs`` until the budget is
    spent."""
    m = eqs.m
    full = (1 << m) - 1
    ev.admit([[0, full]])
    v0, vn = ev.memo.peek(0), ev.memo.peek(full)
    while ev.used < ev.budget:
        sizes = sizes_all[rng.choice(m - 1, size=batch_size, p=p_size)]
        z = random_subsets(rng, m, sizes)
        masks = masks_from_rows(z)
        pairs = [[x, full ^ x] for x in masks]
        k = ev.admit(pairs)
        if k == 0:
            break
        zz = np.concatenate([z[:k], ~z[:k]]).astype(np.float64)
        vals = ev.values([x for pair in pairs[:k] for x in pair])
        y = np.concatenate([vals[0::2], vals[1::2]]) - v0
        w = np.concatenate([w_size[sizes[:k] - 1], w_size[m - sizes[:k] - 1]])
        eqs.add(zz, y, w, k)
        if k < len(pairs):
            break
    return v0, vn
