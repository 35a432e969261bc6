r"""Monte Carlo Shapley values: antithetic permutation sampling, stratified by position, memoised.

The Shapley value is the mean marginal contribution over uniformly random orders
(Shapley 1953; Castro, Gómez & Tejada 2009):
:math:`\phi_i = \mathbb{E}_\pi[v(P_i^\pi \cup i) - v(P_i^\pi)]`, with :math:`P_i^\pi` the players
before :math:`i` in :math:`\pi`. Grouping by the position :math:`k = |P_i^\pi|` (Maleki et al. 2013,
eq. 4, the estimator OpenDataVal averages "by position"):

.. math::
   \phi_i = \frac{1}{M} \sum_{k=0}^{M-1} \mu_{i,k}, \qquad
   \mu_{i,k} = \binom{M-1}{k}^{-1} \sum_{S \subseteq N\setminus i,\ |S| = k} v(S \cup i) - v(S).

Algorithm (one batch; batches repeat until the stopping rule fires)
-------------------------------------------------------------------
1. Draw the batch's permutations in the parent, each block from its own child seed
   (``SeedSequence.spawn``). The default ``"cyclic"`` sampler takes a uniformly random permutation
   :math:`\pi` and its :math:`M` rotations: every player visits every position exactly once per block,
   and the players before :math:`i` at position :math:`k` are the :math:`k` players preceding it on the
   circle, a uniformly random :math:`k`-subset of :math:`N \setminus i` (so each stratum sample is
   unbiased). With ``antithetic=True`` each permutation comes with its reverse (Mitchell et al. 2022: a
   player early in one is late in the other). The reverse of a rotation orders the same circle
   backwards, so its prefixes are again arcs of the circle that the block evaluates anyway: the
   antithetic half costs no extra evaluation. (``"random"``: independent uniform permutations.)
2. Collect the prefix coalitions of the batch that are not memoised yet and evaluate them on the
   backend (parallel, order-preserving). A coalition is never evaluated twice: repeated prefixes
   (small and large coalitions recur often) cost nothing. With a hard evaluation budget, whole
   antithetic pairs are admitted in order while the budget allows (so ``max_evaluations`` is never
   exceeded in the untruncated sampler).
3. Each marginal contribution is a sample of stratum :math:`(i, k)`. Because the game is deterministic,
   a stratum's estimate :math:`\hat\mu_{i,k}` is the mean over its *distinct* prefixes; the sampling
   distribution is invariant under relabelling the other players, which acts transitively on the
   stratum, so this mean is unbiased, and it is exact once all :math:`\binom{M-1}{k}` prefixes were
   seen (finite-population correction in the standard error).
4. :math:`\hat\phi_i = \frac1M\sum_k \hat\mu_{i,k}` when every stratum of player :math:`i` has a sample
   (always true after one block of the cyclic sampler); otherwise (random sampler, many players, few
   permutations) collapsed strata: each empty position is merged into the nearest sampled one
   (Cochran 1977, Section 5A.12; slightly biased when neighbouring strata differ; ``extra["stratified"]``
   says which estimator was used).
   Standard error: :math:`\sqrt{\sum_k (1 - d_{ik}/C_{k})\, s_{ik}^2 / (M^2 d_{ik})}` with
   :math:`d_{ik}` distinct samples, :math:`C_k = \binom{M-1}{k}` and :math:`s_{ik}^2` the stratum's sample
   variance (the player's pooled variance when :math:`d_{ik} = 1`).
5. If the memo ever holds all :math:`2^M` coalitions (small games, long runs), the exact values are
   computed from it and the run stops (``stop_reason = "exhausted"``).

Truncation (TMC, Ghorbani & Zou 2019, Alg. 1): with ``truncation_tol = t``, once a prefix satisfies
:math:`|v(N) - v(P)| \le t\,|v(N)|` the remaining marginal contributions of that permutation are set to 0
without evaluation (biased by at most the residual; evaluated position by position across the batch).
With truncation the budget is checked between batches, so it may be exceeded by less than one batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from math import comb
from typing import Any

import numpy as np
from numpy.typing import NDArray

from datamarket.core.errors import ConfigurationError
from datamarket.core.random import make_rng, seed_sequence
from datamarket.valuation.backends import evaluate, resolve_backend
from datamarket.valuation.certificate import certified
from datamarket.valuation.exact import shapley_from_table
from datamarket.valuation.games import CoalitionGame, MemoCache
from datamarket.valuation.result import ProgressInfo, ValuationResult
from datamarket.valuation.stopping import MaxEvaluations, RunState, StoppingRule

MAX_EXHAUST = 20  # below this many players, a run that has memoised every coalition returns exact values


class _Strata:
    """Per (player, position) statistics over distinct prefixes, plus per-player pooled moments."""

    def __init__(self, m: int, distinct: bool = True, rep_perms: int = 1) -> None:
        self.m = m
        self.distinct = distinct
        # replicates: consecutive groups of ``rep_perms`` permutations (a cyclic block with its
        # reverses, or one antithetic pair) are i.i.d.; their per-player means give the standard error
        self.rep_perms = rep_perms
        self.n_perms = 0
        self.open: dict[int, list[Any]] = {}
        self.n_reps = 0
        self.r1 = np.zeros(m)
        self.r2 = np.zeros(m)
        self.seen: list[list[set[int]]] = [[set() for _ in range(m)] for _ in range(m)]
        self.s1 = np.zeros((m, m))
        self.s2 = np.zeros((m, m))
        self.d = np.zeros((m, m), dtype=np.int64)
        self.n = np.zeros(m, dtype=np.int64)  # all samples, with repeats
        self.t1 = np.zeros(m)
        self.t2 = np.zeros(m)
        self.pop = np.array([float(comb(m - 1, k)) for k in range(m)])

    def new_perm(self) -> int:
        """Register one more sampled permutation; returns the id of its replicate."""
        rep = self.n_perms // self.rep_perms
        self.n_perms += 1
        return rep

    def add(self, i: int, k: int, prefix: int, x: float, rep: int) -> None:
        acc = self.open.setdefault(rep, [np.zeros(self.m), 0])
        acc[0][i] += x
        acc[1] += 1
        if acc[1] == self.rep_perms * self.m:  # replicate complete: every player once per permutation
            est = acc[0] / self.rep_perms
            self.n_reps += 1
            self.r1 += est
            self.r2 += est * est
            del self.open[rep]
        self.n[i] += 1
        self.t1[i] += x
        self.t2[i] += x * x
        seen = self.seen[i][k]
        if not self.distinct or prefix not in seen:
            seen.add(prefix)
            self.d[i, k] += 1
            self.s1[i, k] += x
            self.s2[i, k] += x * x

    def estimate(self) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
        m = self.m
        n = np.maximum(self.n, 1)
        mean_all = self.t1 / n
        var_all = np.where(self.n > 1, (self.t2 - n * mean_all**2) / np.maximum(n - 1, 1), np.inf)
        var_all = np.maximum(var_all, 0.0)
        stratified = np.all(self.d > 0, axis=1)
        d = np.maximum(self.d, 1)
        mu = self.s1 / d
        s2 = np.where(self.d > 1, (self.s2 - d * mu**2) / np.maximum(d - 1, 1), var_all[:, None])
        s2 = np.maximum(s2, 0.0)
        fpc = np.clip(1.0 - self.d / self.pop, 0.0, 1.0) if self.distinct else np.ones((m, m))
        values = np.zeros(m)
        stderr = np.full(m, np.inf)
        ks = np.arange(m)
        for i in range(m):
            nz = np.flatnonzero(self.d[i] > 0)
            if nz.size == 0:
                continue
            # collapsed strata: each empty position joins the nearest sampled one (ties: the lower)
            owner = np.argmin(np.abs(ks[:, None] - nz[None, :]), axis=1)
            w = np.bincount(owner, minlength=nz.size) / m
            f = np.where(w > 1.0 / m, 1.0, fpc[i, nz])
            values[i] = float(np.dot(w, mu[i, nz]))
            stderr[i] = float(np.sqrt(np.sum(w**2 * f * s2[i, nz] / d[i, nz])))
        if self.n_reps >= 2:
            # The strata of one replicate are not independent (nested arcs of one circle, a
            # permutation and its reverse), so the stratified formula above understates the error
            # (by about 3x at M = 40). The spread of i.i.d. replicate means is an honest standard
            # error of their average, and an upper bound for the distinct-prefix estimator.
            b = self.n_reps
            mean_r = self.r1 / b
            var_r = np.maximum((self.r2 - b * mean_r**2) / (b - 1), 0.0)
            exact = np.all(self.d >= self.pop, axis=1) if self.distinct else np.zeros(m, dtype=bool)
            stderr = np.where(exact, 0.0, np.sqrt(var_r / b))
        return values, stderr, stratified


def _units(
    ss: np.random.SeedSequence, m: int, sampler: str, antithetic: bool
) -> Iterator[list[NDArray[np.int64]]]:
    """Endless stream of sampling units; each block of units draws from its own spawned seed."""
    while True:
        rng = make_rng(ss.spawn(1)[0])
        if sampler == "cyclic":
            base = rng.permutation(m)
            perms = [np.roll(base, -s) for s in range(m)]
        else:
            perms = [rng.permutation(m) for _ in range(8)]
        for p in perms:
            yield [p, p[::-1].copy()] if antithetic else [p]


def _prefixes(perm: NDArray[np.int64]) -> list[int]:
    """Masks of the prefixes of sizes 1..M of ``perm`` (Python ints: any number of players)."""
    out, acc = [], 0
    for p in perm.tolist():
        acc |= 1 << p
        out.append(acc)
    return out


def monte_carlo_shapley(
    game: CoalitionGame,
    *,
    seed: int,
    max_evaluations: int | None = None,
    stopping: StoppingRule | None = None,
    antithetic: bool = True,
    truncation_tol: float | None = None,
    backend: Any = None,
    batch_size: int | None = None,
    sampler: str = "cyclic",
    distinct: bool = True,
    progress: Callable[[ProgressInfo], None] | None = None,
) -> ValuationResult:
    r"""Monte Carlo Shapley values (see the module docstring for the estimator and its error).

    Parameters
    ----------
    game : the cooperative game.
    seed : seed of the permutation stream; the same seed gives bit-identical values on every backend
        and any number of workers (unless a time-based rule stops the run).
    max_evaluations : hard budget of new evaluations (model fits); shorthand for
        ``MaxEvaluations(n)``, combined with ``stopping`` by "any".
    stopping : a :mod:`~datamarket.valuation.stopping` rule (or combination).
    antithetic : pair each permutation with its reverse.
    truncation_tol : TMC's relative tolerance ``t`` (``None``: no truncation).
    backend : ``None``/"serial", "processes", a backend, a ``distributed.Client`` or ``tcp://`` address.
    batch_size : sampling units (a permutation, with its reverse when antithetic) per batch; the
        stopping rule is checked between batches. Default: ``4 M`` for "cyclic" (four blocks), 32 for
        "random": enough new coalitions per batch to keep two or more workers busy (with one block
        per batch, 2 processes were only 1.0-1.3x faster than 1 on the breast-cancer benchmark; with
        four, 1.7x). Independent of the number of workers, so that results are too; a budget
        (``max_evaluations``) cuts a batch at a sampling unit, so it does not change the values.
    sampler : ``"cyclic"`` (blocks of the ``M`` rotations of a random permutation: every player
        visits every position once per block) or ``"random"`` (independent permutations).
    distinct : average each stratum over its distinct prefixes (step 3); ``False`` averages every
        sample (then, with whole cyclic blocks, the per-block averages are i.i.d. and Hoeffding's
        inequality applies to :math:`\hat\phi_i` directly).
    progress : called after each batch with a :class:`~datamarket.valuation.result.ProgressInfo`.

    >>> from datamarket.valuation.closed_form import AirportGame
    >>> r = monte_carlo_shapley(AirportGame([1.0, 2.0, 4.0]), seed=0, max_evaluations=50)
    >>> r.values.round(6).tolist(), r.evaluations   # 3 players: every stratum is exhausted -> exact
    ([0.333333, 0.833333, 2.833333], 8)
    """
    ss, rule = _checked_rule(seed, max_evaluations, stopping, truncation_tol, batch_size, sampler)
    m = game.n_players
    strata = _Strata(m, distinct, rep_perms=(2 if antithetic else 1) * (m if sampler == "cyclic" else 1))
    run = _Run(_memo_of(game), strata, rule)
    owned = backend is None or isinstance(backend, str)
    be = resolve_backend(backend)
    run.t0 = time.perf_counter()
    stream = _units(ss, m, sampler, antithetic)
    per_batch = int(batch_size) if batch_size is not None else (4 * m if sampler == "cyclic" else 32)
    try:
        reason = run.batches(game, be, stream, per_batch, truncation_tol, progress)
    finally:
        if owned:
            be.close()
    return _result(game, run, reason, truncation_tol)


def _memo_of(game: CoalitionGame) -> MemoCache:
    """The game's own memo when it has one (a shared cache), else a fresh one."""
    cached = getattr(game, "cache", None)
    return cached if isinstance(cached, MemoCache) else MemoCache()


def _checked_rule(
    seed: int,
    max_evaluations: int | None,
    stopping: StoppingRule | None,
    truncation_tol: float | None,
    batch_size: int | None,
    sampler: str,
) -> tuple[np.random.SeedSequence, StoppingRule]:
    """The validated seed sequence and the stopping rule (``max_evaluations`` or-ed into ``stopping``)."""
    try:
        ss = seed_sequence(seed)
    except ValueError as exc:
        raise ConfigurationError("seed", str(exc).split(": ", 1)[-1]) from None
    if max_evaluations is not None and not isinstance(max_evaluations, int | np.integer):
        raise ConfigurationError("max_evaluations", "must be an integer")
    rule = stopping
    if max_evaluations is not None:
        cap = MaxEvaluations(int(max_evaluations))
        rule = cap if rule is None else cap | rule
    if rule is None:
        raise ConfigurationError("stopping", "give max_evaluations or a stopping rule")
    if truncation_tol is not None and not (np.isfinite(truncation_tol) and truncation_tol >= 0):
        raise ConfigurationError("truncation_tol", f"must be a non-negative number, got {truncation_tol}")
    if batch_size is not None and batch_size < 1:
        raise ConfigurationError("batch_size", f"must be >= 1, got {batch_size}")
    if sampler not in ("cyclic", "random"):
        raise ConfigurationError("sampler", f"must be 'cyclic' or 'random', got {sampler!r}")
    return ss, rule


class _Run:
    """One Monte Carlo run: the memo, the strata, the stopping rule and what the rule reads (evaluations
    used, elapsed time, the ranking after each batch)."""

    def __init__(self, memo: MemoCache, strata: _Strata, rule: StoppingRule) -> None:
        self.memo, self.strata, self.rule = memo, strata, rule
        self.budget = rule.budget()
        self.hits0, self.misses0 = memo.hits, memo.misses
        self.t0 = time.perf_counter()
        self.rankings: list[tuple[int, ...]] = []
        self.n_batches = 0

    def used(self) -> int:
        return self.memo.misses - self.misses0

    def state(self) -> RunState:
        values, stderr, _ = self.strata.estimate()
        elapsed = time.perf_counter() - self.t0
        return RunState(self.used(), elapsed, stderr, self.strata.n.copy(), tuple(self.rankings), values)

    def batches(
        self,
        game: CoalitionGame,
        be: Any,
        stream: Iterator[list[NDArray[np.int64]]],
        per_batch: int,
        truncation_tol: float | None,
        progress: Callable[[ProgressInfo], None] | None,
    ) -> list[str]:
        """Steps 1-5 batch after batch until the rule fires; returns why the run stopped."""
        memo, strata, m = self.memo, self.strata, self.strata.m
        full = (1 << m) - 1
        evaluate(game, [x for x in (0, full) if memo.get(x) is None], be, memo)
        while True:
            st = self.state()
            if self.n_batches and self.rule.check(st):
                return self.rule.fired(st)
            units = [next(stream) for _ in range(per_batch)]
            left = None if self.budget is None else self.budget - self.used()
            if truncation_tol is None:
                ok = _run_full(game, units, memo, strata, be, left)
            else:
                ok = _run_truncated(game, units, memo, strata, be, float(truncation_tol))
            self.n_batches += 1
            values, stderr, _ = strata.estimate()
            self.rankings.append(tuple(np.argsort(-values, kind="stable").tolist()))
            if progress is not None:
                self._report(progress, stderr)
            if not ok:
                return ["max_evaluations"]
            if m <= MAX_EXHAUST and len(memo) == 1 << m and all(x in memo for x in range(1 << m)):
                return ["exhausted"]

    def _report(self, progress: Callable[[ProgressInfo], None], stderr: NDArray[np.float64]) -> None:
        st = self.state()
        finite = stderr[np.isfinite(stderr)]
        progress(
            ProgressInfo(
                st.evaluations,
                self.budget,
                float(finite.max()) if finite.size else None,
                self.rule.fraction(st),
                st.elapsed,
            )
        )


def _result(
    game: CoalitionGame, run: _Run, reason: list[str], truncation_tol: float | None
) -> ValuationResult:
    """The certified result of a finished run (exact values when every coalition is memoised)."""
    memo, strata, m = run.memo, run.strata, run.strata.m
    values, stderr, stratified = strata.estimate()
    st = run.state()
    converged = run.rule.converged(st)
    if reason == ["exhausted"]:  # every coalition is memoised: the exact values cost nothing more
        values = shapley_from_table(np.array([memo.peek(x) for x in range(1 << m)]))
        stderr, converged = np.zeros(m), True
    return certified(
        ValuationResult(
            "permutation_shapley" if truncation_tol is None else "tmc_shapley",
            game.player_names,
            values,
            stderr,
            strata.n.copy(),
            evaluations=run.used(),
            cache_hits=memo.hits - run.hits0,
            converged=converged,
            stop_reason="+".join(reason) or "max_evaluations",
            elapsed=time.perf_counter() - run.t0,
            extra={
                "batches": run.n_batches,
                "permutations": int(strata.n.sum() // max(m, 1)),
                "stratified": bool(np.all(stratified)),
                "distinct_counts": strata.d.copy(),
                "truncation_tol": truncation_tol,
            },
        ),
        game,
    )


def _run_full(
    game: CoalitionGame,
    units: list[list[NDArray[np.int64]]],
    memo: MemoCache,
    strata: _Strata,
    be: Any,
    left: int | None,
) -> bool:
    """One untruncated batch; returns False when the budget cut the batch short."""
    pending: dict[int, None] = {}
    admitted: list[tuple[NDArray[np.int64], list[int]]] = []
    complete = True
    for unit in units:
        prefixes = [_prefixes(p) for p in unit]
        new = {x: None for pre in prefixes for x in pre if x not in memo and x not in pending}
        if left is not None and len(pending) + len(new) > left:
            complete = False
            break
        pending.update(new)
        admitted.extend(zip(unit, prefixes, strict=True))
    n_lookups = sum(len(pre) for _, pre in admitted)
    evaluate(game, list(pending), be, memo)
    memo.hits += n_lookups - len(pending)
    v0 = memo.peek(0)
    for perm, pre in admitted:
        prev, prev_mask = v0, 0
        rep = strata.new_perm()
        for k, (i, mask) in enumerate(zip(perm.tolist(), pre, strict=True)):
            val = memo.peek(mask)
            strata.add(i, k, prev_mask, val - prev, rep)
            prev, prev_mask = val, mask
    return complete and bool(admitted or not units)


def _run_truncated(
    game: CoalitionGame,
    units: list[list[NDArray[np.int64]]],
    memo: MemoCache,
    strata: _Strata,
    be: Any,
    tol: float,
) -> bool:
    """One TMC batch, evaluated position by position so truncated tails are never evaluated."""
    m = strata.m
    full = (1 << m) - 1
    v_full = memo.peek(full)
    thr = tol * abs(v_full)
    perms = [p.tolist() for unit in units for p in unit]
    reps = [strata.new_perm() for _ in perms]
    prev = [memo.peek(0)] * len(perms)
    masks = [0] * len(perms)
    active = list(range(len(perms)))
    for k in range(m):
        nxt = {j: masks[j] | (1 << perms[j][k]) for j in active}
        todo = list(dict.fromkeys(x for x in nxt.values() if x not in memo))
        evaluate(game, todo, be, memo)
        memo.hits += len(nxt) - len(todo)
        still = []
        for j in active:
            val = memo.peek(nxt[j])
            strata.add(perms[j][k], k, masks[j], val - prev[j], reps[j])
            prev[j], masks[j] = val, nxt[j]
            if abs(v_full - val) <= thr and k < m - 1:
                acc = masks[j]
                for kk in range(k + 1, m):
                    strata.add(perms[j][kk], kk, acc, 0.0, reps[j])
                    acc |= 1 << perms[j][kk]
            else:
                still.append(j)
        active = still
    return True
