r"""Semivalues with sample reuse: Banzhaf by maximum sample reuse, and stratified Shapley / Beta Shapley.

A *semivalue* (Dubey, Neyman & Weber 1981) weighs the mean marginal contribution at each coalition
size :math:`k` of the other players by a probability vector :math:`p_0..p_{M-1}`:

.. math::
   \phi_i = \sum_{k=0}^{M-1} p_k\, \bigl(\mu^+_{i,k} - \mu^-_{i,k}\bigr), \qquad
   \mu^+_{i,k} = \mathbb{E}[v(S) \mid i \in S, |S| = k+1],\quad
   \mu^-_{i,k} = \mathbb{E}[v(S) \mid i \notin S, |S| = k],

the expectations over uniformly random coalitions of the stated size (so the marginal contribution is
*not* needed: Kolpaczki, Bengs, Muschalik & Hüllermeier 2024, "Approximating the Shapley value
without marginal contributions", AAAI, eq. 4 and Stratified SVARM). Weights:

* Shapley (Shapley 1953): :math:`p_k = 1/M`.
* Beta Shapley (Kwon & Zou 2022, "Beta Shapley: a unified and noise-reduced data valuation framework
  for machine learning", AISTATS, eq. 4 and Prop. 3.1): with :math:`B` the Beta function,
  :math:`p_k = \binom{M-1}{k} B(k+\beta, M-1-k+\alpha) / B(\alpha, \beta)` (beta-binomial);
  ``Beta(1, 1)`` is Shapley, ``Beta(16, 1)`` (the paper's choice) favours small coalitions.
* Banzhaf (Banzhaf 1965): :math:`p_k = \binom{M-1}{k} / 2^{M-1}`.

Stratified estimator (:func:`stratified_semivalue`)
---------------------------------------------------
1. Evaluate the sizes whose strata are cheap to enumerate exactly (Stratified SVARM's warm-up):
   :math:`\emptyset`, :math:`N`, the :math:`M` singletons and the :math:`M` leave-one-out coalitions
   (:math:`2M + 2` evaluations) give :math:`\mu^+_{i,0}` and :math:`\mu^-_{i,M-1}` exactly.
2. Repeat: draw a size :math:`s \in \{2..M-2\}` with probability
   :math:`q_s \propto \sqrt{p_{s-1}^2 M/s + p_s^2 M/(M-s)}` (Neyman allocation for equal variances:
   the expected number of samples of stratum :math:`(i, k)` is proportional to :math:`p_k`), then a
   uniformly random coalition of that size. **Every** evaluation updates the strata of **every**
   player: the ``+`` stratum of each member and the ``-`` stratum of each non-member.
3. :math:`\hat\phi_i = \sum_k p_k(\hat\mu^+_{i,k} - \hat\mu^-_{i,k})`; an empty stratum takes the mean
   of the nearest sampled size of the same player (collapsed strata, Cochran 1977, Section 5A.12).

Maximum sample reuse (:func:`msr_banzhaf`; Wang & Jia 2023, "Data Banzhaf: a robust data valuation
framework for machine learning", AISTATS, Alg. 1 and eq. 6): draw coalitions uniformly from
:math:`2^N`; :math:`\hat\beta_i` is the mean value of the sampled coalitions containing :math:`i`
minus the mean of those that do not.

Both switch to exact enumeration when the budget reaches :math:`2^M`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import betaln, gammaln

from datamarket.core.errors import ConfigurationError
from datamarket.core.random import make_rng
from datamarket.valuation.exact import weighted_marginals
from datamarket.valuation.games import CoalitionGame
from datamarket.valuation.methods._common import (
    Evaluator,
    check_seed_and_budget,
    exact_if_affordable,
    masks_from_rows,
    random_subsets,
)
from datamarket.valuation.result import ValuationResult


def _log_binom(n: float, k: NDArray[np.float64]) -> NDArray[np.float64]:
    out: NDArray[np.float64] = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
    return out


def shapley_size_weights(m: int) -> NDArray[np.float64]:
    """:math:`p_k = 1/M` for ``k = 0..M-1``."""
    return np.full(m, 1.0 / m)


def beta_size_weights(m: int, alpha: float, beta: float) -> NDArray[np.float64]:
    """Beta(alpha, beta) Shapley size weights (Kwon & Zou 2022, eq. 4), a beta-binomial pmf.

    >>> bool(np.allclose(beta_size_weights(5, 1.0, 1.0), 0.2))   # Beta(1, 1) is Shapley
    True
    >>> w = beta_size_weights(5, 16.0, 1.0); bool(w[0] > w[-1] and abs(w.sum() - 1) < 1e-12)
    True
    """
    if not (np.isfinite(alpha) and np.isfinite(beta) and alpha > 0 and beta > 0):
        raise ConfigurationError("beta", f"alpha and beta must be positive, got ({alpha}, {beta})")
    k = np.arange(m, dtype=np.float64)
    logw = _log_binom(m - 1, k) + betaln(k + beta, m - 1 - k + alpha) - betaln(alpha, beta)
    return np.exp(logw)


def banzhaf_size_weights(m: int) -> NDArray[np.float64]:
    r""":math:`p_k = \binom{M-1}{k} 2^{-(M-1)}`."""
    k = np.arange(m, dtype=np.float64)
    return np.exp(_log_binom(m - 1, k) - (m - 1) * np.log(2.0))


def size_weights(m: int, weights: str | tuple[float, float] | Sequence[float]) -> NDArray[np.float64]:
    """``"shapley"``, ``"banzhaf"``, ``(alpha, beta)`` for Beta Shapley, or an explicit vector."""
    if isinstance(weights, str):
        if weights == "shapley":
            return shapley_size_weights(m)
        if weights == "banzhaf":
            return banzhaf_size_weights(m)
        raise ConfigurationError("weights", f"unknown semivalue {weights!r}")
    w = np.asarray(weights, dtype=np.float64)
    if w.shape == (2,) and m != 2:
        return beta_size_weights(m, float(w[0]), float(w[1]))
    if w.shape != (m,) or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ConfigurationError("weights", f"need {m} non-negative size weights")
    return w


def semivalue_from_table(table: NDArray[np.float64], p: NDArray[np.float64]) -> NDArray[np.float64]:
    r"""Exact semivalue from a full value table: :math:`\sum_{S \not\ni i} p_{|S|}/\binom{M-1}{|S|}
    (v(S \cup i) - v(S))`."""
    n = int(np.asarray(table).shape[0]).bit_length() - 1
    return weighted_marginals(table, p * np.exp(-_log_binom(n - 1, np.arange(n, dtype=np.float64))))


def _size_distribution(p: NDArray[np.float64]) -> NDArray[np.float64]:
    m = p.size
    s = np.arange(2, m - 1, dtype=np.float64)
    q = np.sqrt(p[1 : m - 2] ** 2 * m / s + p[2 : m - 1] ** 2 * m / (m - s))
    total = q.sum()
    return q / total if total > 0 else np.full(s.size, 1.0 / s.size)


def _fill_nearest(mean: NDArray[np.float64], cnt: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per row, empty entries take the value of the nearest non-empty column (ties: the lower)."""
    out = mean.copy()
    cols = np.arange(mean.shape[1])
    for i in range(mean.shape[0]):
        nz = np.flatnonzero(cnt[i] > 0)
        if nz.size == 0 or nz.size == cols.size:
            continue
        owner = nz[np.argmin(np.abs(cols[:, None] - nz[None, :]), axis=1)]
        out[i] = mean[i, owner]
    return out


def stratified_semivalue(
    game: CoalitionGame,
    *,
    seed: int,
    max_evaluations: int,
    weights: str | tuple[float, float] | Sequence[float] = "shapley",
    backend: Any = None,
    batch_size: int = 256,
) -> ValuationResult:
    """Semivalue by stratified sampling with reuse of every evaluation for every player (see module).

    Parameters
    ----------
    game : the coalition game.
    seed : seed of the sampling stream (bit-identical results on every backend).
    max_evaluations : hard budget of new evaluations; at ``2**M`` or more the exact value is
        computed by enumeration instead (``extra["switched_to_exact"]``).
    weights : ``"shapley"``, ``"banzhaf"``, ``(alpha, beta)`` for Beta Shapley, or ``M`` size weights.
    backend : where coalitions are evaluated (see :func:`~datamarket.valuation.exact_shapley`).
    batch_size : coalitions drawn per batch.

    >>> from datamarket.valuation.closed_form import AirportGame
    >>> r = stratified_semivalue(AirportGame([1.0, 2.0, 4.0]), seed=0, max_evaluations=8)
    >>> r.values.round(6).tolist(), r.extra["switched_to_exact"]
    ([0.333333, 0.833333, 2.833333], True)
    """
    ss, budget = check_seed_and_budget(seed, max_evaluations)
    m = game.n_players
    p = size_weights(m, weights)
    name = "beta_shapley" if not isinstance(weights, str) else f"stratified_{weights}"
    exact = exact_if_affordable(game, budget, lambda t: semivalue_from_table(t, p), name, backend)
    if exact is not None:
        return exact
    if budget < 2 * m + 2:
        raise ConfigurationError("max_evaluations", f"need at least 2M + 2 = {2 * m + 2} evaluations")
    if batch_size < 1:
        raise ConfigurationError("batch_size", f"must be >= 1, got {batch_size}")
    ev = Evaluator(game, backend, budget)  # here m >= 4: for m <= 3, 2M + 2 >= 2^M switched to exact
    rng = make_rng(ss)
    st = _SizeStrata(m)
    try:
        exact_ends = _warm_up(ev, m)
        st.sample(ev, rng, _size_distribution(p), batch_size)
    finally:
        ev.close()
    mean_in, mean_out = st.means(*exact_ends)
    values = (mean_in[:, 1:] - mean_out[:, :m]) @ p
    v_in, v_out = st.variances(st.s_in, st.q_in, st.c_in), st.variances(st.s_out, st.q_out, st.c_out)
    var = (v_in[:, 1:] + v_out[:, :m]) @ p**2
    counts = (st.c_in.sum(axis=1) + st.c_out.sum(axis=1)).astype(np.int64)
    return ev.result(
        name, values, np.sqrt(var), counts, {"samples": st.n_samples, "switched_to_exact": False}
    )


def _warm_up(ev: Evaluator, m: int) -> tuple[float, float, NDArray[np.float64], NDArray[np.float64]]:
    """Step 1: ``v(empty)``, ``v(N)``, the singletons' values ``v({i})`` and the leave-one-out values
    ``v(N minus i)``."""
    full = (1 << m) - 1
    singles = [1 << i for i in range(m)]
    loo = [full & ~(1 << i) for i in range(m)]
    ev.admit([[0, full, *singles, *loo]])
    return ev.memo.peek(0), ev.memo.peek(full), ev.values(singles), ev.values(loo)


class _SizeStrata:
    """Per (player, coalition size 0..M) sums, sums of squares and counts of the sampled values, over
    the coalitions with the player (``in``) and without it (``out``): step 2's reuse of every sample."""

    def __init__(self, m: int) -> None:
        self.m = m
        self.s_in = np.zeros(
            (m, m + 1)
        )  # [player, coalition size] sums over sampled coalitions with the player
        self.c_in = np.zeros((m, m + 1))
        self.s_out = np.zeros((m, m + 1))
        self.c_out = np.zeros((m, m + 1))
        self.q_in = np.zeros((m, m + 1))  # sums of squares
        self.q_out = np.zeros((m, m + 1))
        self.n_samples = 0

    def add(self, z: NDArray[np.bool_], sizes: NDArray[np.int64], vals: NDArray[np.float64]) -> None:
        """Count the sampled coalitions ``z`` (membership rows) of sizes ``sizes`` and values ``vals``."""
        k = z.shape[0]
        onehot = np.zeros((k, self.m + 1))
        onehot[np.arange(k), sizes] = 1.0
        zf = z.astype(np.float64)
        hv, hv2 = onehot * vals[:, None], onehot * (vals**2)[:, None]
        self.s_in += zf.T @ hv
        self.q_in += zf.T @ hv2
        self.c_in += zf.T @ onehot
        self.s_out += (1.0 - zf).T @ hv
        self.q_out += (1.0 - zf).T @ hv2
        self.c_out += (1.0 - zf).T @ onehot
        self.n_samples += k

    def sample(
        self, ev: Evaluator, rng: np.random.Generator, q: NDArray[np.float64], batch_size: int
    ) -> None:
        """Step 2 until the budget is spent: a size ``2 + k`` with probability ``q[k]``, then a uniformly
        random coalition of that size, ``batch_size`` at a time."""
        m = self.m
        while ev.used < ev.budget:
            sizes = 2 + rng.choice(q.size, size=batch_size, p=q)
            z = random_subsets(rng, m, sizes)
            masks = masks_from_rows(z)
            k = ev.admit([[x] for x in masks])
            if k == 0:
                break
            self.add(z[:k], sizes[:k], ev.values(masks[:k]))
            if k < len(masks):
                break

    def means(
        self, v0: float, vn: float, mu_plus0: NDArray[np.float64], mu_minus_last: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Step 3: per (player, coalition size 0..M) means of v over coalitions with / without the player;
        sizes 0, 1, M-1 and M are exact from step 1, sizes 2..M-2 sampled (empty strata: nearest size)."""
        m = self.m
        mean_in, mean_out = self.s_in / np.maximum(self.c_in, 1), self.s_out / np.maximum(self.c_out, 1)
        mean_in[:, 1] = mu_plus0
        mean_out[:, 1] = (mu_plus0.sum() - mu_plus0) / (m - 1)
        mean_in[:, m - 1] = (mu_minus_last.sum() - mu_minus_last) / (m - 1)
        mean_out[:, m - 1] = mu_minus_last
        mean_in[:, m], mean_out[:, 0] = vn, v0
        known = np.zeros(m + 1, dtype=bool)
        known[[0, 1, m - 1, m]] = True
        return _fill_nearest(mean_in, self.c_in + known), _fill_nearest(mean_out, self.c_out + known)

    def variances(
        self, s1: NDArray[np.float64], s2: NDArray[np.float64], c: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """Variance of each stratum's mean. The strata of one player come from disjoint samples (a
        coalition either holds the player or not, and has one size), so their variances add; exact
        strata contribute 0."""
        m = self.m
        d = np.maximum(c, 1)
        var = np.where(c > 1, (s2 - s1**2 / d) / np.maximum(c - 1, 1), 0.0)
        out = np.maximum(var, 0.0) / d
        out[:, [0, 1, m - 1, m]] = 0.0
        return out


def beta_shapley(
    game: CoalitionGame,
    *,
    alpha: float = 16.0,
    beta: float = 1.0,
    seed: int,
    max_evaluations: int,
    backend: Any = None,
) -> ValuationResult:
    """Beta(alpha, beta) Shapley values (Kwon & Zou 2022) by :func:`stratified_semivalue`.

    The default ``Beta(16, 1)`` is the paper's recommended choice for noisy-label detection.
    """
    return stratified_semivalue(
        game, seed=seed, max_evaluations=max_evaluations, weights=(alpha, beta), backend=backend
    )


def msr_banzhaf(
    game: CoalitionGame,
    *,
    seed: int,
    max_evaluations: int,
    backend: Any = None,
    batch_size: int = 256,
) -> ValuationResult:
    r"""Banzhaf values by maximum sample reuse (Wang & Jia 2023, Alg. 1; see the module docstring).

    Standard error per player: :math:`\sqrt{s_+^2/n_+ + s_-^2/n_-}` with the sample variances and
    counts of the coalitions with and without the player.

    >>> from datamarket.valuation.games import FunctionGame
    >>> r = msr_banzhaf(FunctionGame(lambda s: float(sum(s)), 12), seed=0, max_evaluations=400)
    >>> bool(np.all(np.abs(r.values - np.arange(12)) < 6 * r.stderr + 1e-12))   # additive game
    True
    """
    from datamarket.valuation.exact import banzhaf_from_table

    ss, budget = check_seed_and_budget(seed, max_evaluations)
    exact = exact_if_affordable(game, budget, banzhaf_from_table, "msr_banzhaf", backend)
    if exact is not None:
        return exact
    m = game.n_players
    ev = Evaluator(game, backend, budget)
    rng = make_rng(ss)
    t0 = time.perf_counter()
    try:
        (s1_in, s2_in, n_in), (s1_out, s2_out, n_out), n_samples = _msr_sums(ev, rng, m, batch_size)
    finally:
        ev.close()
    a, b = np.maximum(n_in, 1), np.maximum(n_out, 1)
    mi, mo = s1_in / a, s1_out / b
    vi = np.where(n_in > 1, (s2_in - a * mi**2) / np.maximum(a - 1, 1), np.inf)
    vo = np.where(n_out > 1, (s2_out - b * mo**2) / np.maximum(b - 1, 1), np.inf)
    stderr = np.sqrt(np.maximum(vi, 0) / a + np.maximum(vo, 0) / b)
    return ValuationResult(
        "msr_banzhaf",
        game.player_names,
        mi - mo,
        stderr,
        (n_in + n_out).astype(np.int64),
        evaluations=ev.used,
        cache_hits=ev.hits,
        converged=False,
        stop_reason="max_evaluations",
        elapsed=time.perf_counter() - t0,
        extra={"samples": n_samples, "switched_to_exact": False},
    )


_Sums = tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]


def _msr_sums(ev: Evaluator, rng: np.random.Generator, m: int, batch_size: int) -> tuple[_Sums, _Sums, int]:
    """Uniform coalitions until the budget is spent: per player the sum, sum of squares and count of
    the values of the sampled coalitions with it and without it, and the number of samples."""
    s1_in, s2_in, n_in = np.zeros(m), np.zeros(m), np.zeros(m)
    s1_out, s2_out, n_out = np.zeros(m), np.zeros(m), np.zeros(m)
    n_samples = 0
    while ev.used < ev.budget:
        z = rng.random((batch_size, m)) < 0.5
        masks = masks_from_rows(z)
        k = ev.admit([[x] for x in masks])
        if k == 0:
            break
        zf = z[:k].astype(np.float64)
        v = ev.values(masks[:k])
        s1_in += zf.T @ v
        s2_in += zf.T @ v**2
        n_in += zf.sum(axis=0)
        s1_out += (1 - zf).T @ v
        s2_out += (1 - zf).T @ v**2
        n_out += (1 - zf).sum(axis=0)
        n_samples += k
        if k < len(masks):
            break
    return (s1_in, s2_in, n_in), (s1_out, s2_out, n_out), n_samples
