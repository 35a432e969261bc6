"""Fits to a target accuracy at real sizes: our estimators vs pyDVL 0.10 at its best, in one run.

One evaluation = one "fit" (a call of the characteristic function not answered by a cache).
Target (parts lc, banzhaf, model): max |estimate - reference| <= 10% of the mean reference value; the
Spearman rank correlation with the reference is printed where the target is met. Part knn: Spearman
rank correlation >= ``--rho-target`` (a max-error target is out of reach with hundreds of players);
max |error| / mean value is printed with it. Every (game, seed) runs our methods first;
each pyDVL sampler then gets a fit cap of ``--cap-ratio`` (default 10) times the fits of our best
method on that seed. A pyDVL run that has not met the target at the cap is reported as "> cap", and
its ratio as the lower bound ">= cap / ours" (labelled so).

Parts (``--parts``):

``lc``  learning-curve markets (the balanced-market paper's setting) with M sellers (``--sizes``),
    each holding integer counts ``x[j, g]`` in 0..29 of three data groups,
    ``v(S) = sum_g rho_g (1 - (1 + t_g / b_g)^-0.7)`` with ``t_g`` the coalition's count of group g;
    exact Shapley values by the grouped structured DP. Ours: ``control_variate_shapley`` with the group
    counts as surrogate features ("CV groups": the surrogate family contains the game) and with the
    total counts only ("CV totals": it does not), ``stratified_semivalue`` (sample reuse) and
    ``monte_carlo_shapley`` (cyclic antithetic, stratified; stops on the target itself). pyDVL 0.10:
    ``ShapleyValuation`` with the permutation and antithetic-permutation samplers (its best at
    M = 10 and 50; TMC and Owen did not reach the target at M = 10 within all 1,024 coalitions) and,
    with ``--group-testing``, ``GroupTestingShapleyValuation`` with ``n_samples`` = the cap (one run).
    pyDVL's fits are its *distinct* coalitions: the benchmark memoises the game by coalition (a set),
    which is at least as generous as pyDVL's ``InMemoryCacheBackend`` (its key hashes the sample,
    index and subset order included) and avoids that cache's key hashing, which took 83% of pyDVL's
    run time on this game (2 ms a call, profiled). ``--native-cache`` uses pyDVL's cache instead.
    ``--peers odv odv5``: OpenDataVal's estimator, reimplemented (``odv_stratified``).
``banzhaf``  the same markets, Banzhaf values (exact: each other seller is in a uniform coalition with
    probability 1/2, independently, so the total of the others is a convolution of two-point laws):
    ours ``msr_banzhaf`` vs pyDVL's ``MSRBanzhafValuation`` (maximum sample reuse, Wang & Jia 2023).
``model``  model games (``--model-data``, default both): scikit-learn's breast-cancer data and
    ``make_classification(n_samples=1000, n_features=20, n_informative=8, random_state=0)``; seeded
    stratified 70/30 split, features standardised on the training rows, 20 equal sellers,
    ``LogisticRegression(max_iter=500)``, test accuracy, v(empty) = 0. No exact value exists:
    the reference is our ``monte_carlo_shapley`` with ``--reference-fits`` fits on seed 10,000 (a
    high-budget estimate; its own standard error is printed). pyDVL runs its own ``ModelUtility`` on
    a ``GroupedDataset``; its fits are distinct coalitions (a memo in the model, ``MemoLR``, instead
    of pyDVL's ``InMemoryCacheBackend``, whose key hashing dominated its run time; ``--native-cache``
    restores it).
``knn``  point-level games: the players are N individual training points of scikit-learn's digits
    (pixels / 16; N in ``--knn-sizes``, a seeded subsample per seed) and the game is Jia et al. 2019's
    K-NN utility (K = 5) on a fixed seeded set of ``--knn-test`` test points,
    ``v(S) = (1/T) sum_t (1/K) sum_{k <= min(K, |S|)} 1[label of the k-th nearest member of S == y_t]``,
    v(empty) = 0 (``KNNGame``). The reference is exact: ``knn_shapley`` (Jia et al.'s recursion),
    checked at the start against ``exact_shapley`` by enumeration on 12 points. Ours (``--knn-ours``,
    our fit cap ``--knn-cap``): ``control_variate_shapley`` with each point's class one-hot as
    surrogate features ("CV classes": the surrogate is a learning curve of rows per class) and with
    the size only, ``stratified_semivalue``, ``regression_shapley`` (KernelSHAP, paired) and
    ``monte_carlo_shapley``. Peers (``--knn-peers``): pyDVL's permutation and antithetic-permutation
    samplers (distinct-coalition memo) and OpenDataVal's estimator reimplemented, min_card 0 and 5.

Budget-driven methods (CV, stratified, regression, MSR) are run at budgets doubling from
``max(256, 8 M)`` and then bisected geometrically, once (``--knn-bisect``, default 3, in the knn
part): the reported fits are the smallest budget tried that met the target (an over-estimate by at
most 1.41x; 1.09x with three bisections).

Runs recorded in docs/valuation.md (``B=benchmarks/valuation_fits_at_scale.py``, from ``benchmarks/``):
``--parts lc --sizes 10 50 --cap-ratio 10 --group-testing``;
``--parts lc --sizes 100 --cap-ratio 30 --group-testing``; ``--parts lc --sizes 200 --cap-ratio 10``;
``--parts model --model-data breast_cancer``; ``--parts banzhaf --sizes 20 --cap-ratio 3`` (and
``--sizes 50``, ``--sizes 100 --seeds 3``);
OpenDataVal's estimator with ``--parts lc --sizes 100 --cap-ratio 30 --ours cv-groups --peers odv odv5``
(likewise 200, 10); ``--parts knn`` (sizes and seeds as recorded there) and
``--parts model --model-data make_classification``.

Writes ``benchmarks/results/valuation_fits_at_scale.json`` (``_support.Recorder``): the summary of
every table, one row per method, its ``section`` the table's title; the ratio rows are each peer's fits
over our best method's, per seed (median [min, max]; ``>=`` where a seed's ratio is a lower bound).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from _support import Recorder, TargetMet
from scipy.stats import spearmanr

from datamarket.valuation import (
    MaxEvaluations,
    control_variate_shapley,
    exact_shapley,
    grouped_quantity_game_shapley,
    knn_shapley,
    monte_carlo_shapley,
    msr_banzhaf,
    regression_shapley,
    stratified_semivalue,
)
from datamarket.valuation.games import FunctionGame, NamedPlayers, checked_player_names
from datamarket.valuation.methods.knn_shapley import neighbour_order

RHO, B, ALPHA = (1.0, 0.7, 1.3), (20.0, 60.0, 150.0), 0.7
FITS = {"n": 0}
RECORDS: list[dict[str, Any]] = []  # the summary rows of every table (the result file)
BEST: dict[str, float] = {}  # per table: median over seeds of the best peer's fits / our best's
TARGET_RATIO = 5.0  # fewer fits than the best peer configuration, learning-curve markets of 100 and 200


def curve(g: int) -> Callable[[Any], Any]:
    return lambda t: RHO[g] * (1.0 - (1.0 + np.asarray(t, dtype=np.float64) / B[g]) ** -ALPHA)


def mask_bits(mask: int, m: int) -> np.ndarray:
    """The coalition ``mask`` of ``m`` players as a boolean vector."""
    bits = np.unpackbits(np.frombuffer(mask.to_bytes((m + 7) // 8, "little"), np.uint8), bitorder="little")
    return bits[:m].astype(bool)


class IndexGame(NamedPlayers):
    """A benchmark game: ``raw(idx)`` is the value of the coalition of the player indices ``idx``
    (uncounted: ``Memo`` and pyDVL's utilities call it); ``value(mask)``, the engine's entry point,
    counts one fit in ``FITS`` per call (the engine memoises, so every call is a new coalition)."""

    def raw(self, idx: np.ndarray) -> float:
        raise NotImplementedError

    def value(self, mask: int) -> float:
        FITS["n"] += 1
        return self.raw(np.flatnonzero(mask_bits(mask, self.n_players)))


class LearningCurveGame(IndexGame):
    """``v(S) = sum_g f_g(sum_{j in S} x[j, g])``."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x
        self._names = checked_player_names(x.shape[0])
        self._f = [curve(g) for g in range(x.shape[1])]

    def raw(self, idx: np.ndarray) -> float:
        t = self.x[np.asarray(idx, dtype=np.int64)].sum(axis=0)
        return float(sum(f(t[g]) for g, f in enumerate(self._f)))


class KNNGame(IndexGame):
    """Jia et al. 2019's K-NN utility over training points, the game ``knn_shapley`` values exactly.

    ``v(S) = (1/T) sum_t (1/K) sum_{k <= min(K, |S|)} 1[label of the k-th nearest member of S to test
    point t == y_t]``, ``v(empty) = 0``. Each test point's neighbour order is computed once, with the
    distance formula and the neighbour order of ``knn_shapley`` (blocks of 64 test points; ties by
    training index), so points at equal distance are ordered as there; a coalition's value reads the
    first K members in each order, looking first at a prefix long enough for most rows (about
    ``4 K N / |S|`` places) and at full rows only where that prefix holds fewer than K members.
    """

    def __init__(self, xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray, k: int) -> None:
        xtr, xte = np.asarray(xtr, dtype=np.float64), np.asarray(xte, dtype=np.float64)
        sq_tr = np.einsum("ij,ij->i", xtr, xtr)
        orders = []
        for lo in range(0, xte.shape[0], 64):  # as knn_shapley: same blocks, same arithmetic
            xb = xte[lo : lo + 64]
            d2 = sq_tr[None, :] - 2.0 * (xb @ xtr.T) + np.einsum("ij,ij->i", xb, xb)[:, None]
            orders.append(neighbour_order(d2))  # ties by training index, as knn_shapley
        self.order = np.concatenate(orders)
        self.match = np.asarray(ytr)[self.order] == np.asarray(yte)[:, None]
        self.k = int(k)
        self._names = checked_player_names(xtr.shape[0])
        classes = np.unique(ytr)
        self.quantities = (np.asarray(ytr)[:, None] == classes[None, :]).astype(np.int64)  # one-hot

    def raw(self, idx: np.ndarray) -> float:
        inside = np.zeros(self.n_players, dtype=bool)
        inside[np.asarray(idx, dtype=np.int64)] = True
        return self.value_of(inside)

    def value(self, mask: int) -> float:
        FITS["n"] += 1
        return self.value_of(mask_bits(mask, self.n_players))

    def value_of(self, inside: np.ndarray, width: int | None = None) -> float:
        n, size = inside.size, int(inside.sum())
        if size == 0:
            return 0.0
        kk = min(self.k, size)
        if width is None:
            width = min(n, 4 * self.k * n // size + 32)
        ins = inside[self.order[:, :width]]
        cum = np.cumsum(ins, axis=1)
        hits = (ins & (cum <= kk) & self.match[:, :width]).sum(axis=1)
        short = np.flatnonzero(cum[:, -1] < kk)
        if short.size:
            ins = inside[self.order[short]]
            hits[short] = (ins & (np.cumsum(ins, axis=1) <= kk) & self.match[short]).sum(axis=1)
        return float(hits.sum()) / (self.order.shape[0] * self.k)


def market(m: int, seed: int) -> np.ndarray:
    return np.random.default_rng(1000 + seed).integers(0, 30, size=(m, 3))


def exact_shapley_lc(x: np.ndarray) -> np.ndarray:
    return grouped_quantity_game_shapley(x, [curve(g) for g in range(x.shape[1])]).values


def exact_banzhaf_lc(x: np.ndarray) -> np.ndarray:
    """Banzhaf (1965) values of the learning-curve game, exactly.

    beta_i = E[v(S + i) - v(S)] over S uniform on the subsets of the others; under that law each
    other seller is in S with probability 1/2 independently, so the law of S's count of group g is
    the convolution of the two-point laws (delta_0 + delta_{x[j, g]}) / 2 over j != i.
    """
    m, h = x.shape
    out = np.zeros(m)
    for g in range(h):
        q = x[:, g]
        f = curve(g)(np.arange(int(q.sum()) + 1))
        for i in range(m):
            p = np.zeros(int(q.sum()) + 1 - int(q[i]))
            p[0] = 1.0
            for j in range(m):
                if j != i and q[j] > 0:
                    p[q[j] :] = 0.5 * p[q[j] :] + 0.5 * p[: -q[j]]  # right side read before write
                    p[: q[j]] *= 0.5
            out[i] += float(p @ (f[q[i] : q[i] + p.size] - f[: p.size]))
    return out


class Target:
    """The accuracy target of a run against the reference ``ref``: max |estimate - ref| <= ``tol``
    (default 10% of the mean reference value) or, with ``rho``, Spearman rank correlation >= ``rho``."""

    def __init__(self, ref: np.ndarray, tol: float | None = None, rho: float | None = None) -> None:
        self.ref, self.mean, self.rho = ref, float(ref.mean()), rho
        self.tol = 0.1 * self.mean if tol is None else tol

    def report(self, values: np.ndarray) -> tuple[float, float]:
        """(max |error|, Spearman rank correlation) of ``values``."""
        return float(np.abs(values - self.ref).max()), float(spearmanr(values, self.ref)[0])

    def met(self, values: np.ndarray) -> bool:
        if self.rho is None:
            return float(np.abs(values - self.ref).max()) <= self.tol
        rho = spearmanr(values, self.ref)[0]
        return bool(np.isfinite(rho) and rho >= self.rho)

    def __str__(self) -> str:
        if self.rho is None:
            return "max|err| <= 10% of mean"
        return f"Spearman rank correlation >= {self.rho:g}"


def budget_search(run, target: Target, cap: int, start: int, steps: int = 1):
    """Smallest budget (doubling from ``start``, then ``steps`` geometric bisections) whose run meets
    ``target``: an over-estimate of the fits needed by at most ``2 ** (2 ** -steps)`` (1.41x for one).

    Returns (budget or None, max |error|, rank correlation): at that budget, or at the largest budget
    tried when none met the target."""
    tried: dict[int, tuple[bool, float, float]] = {}

    def ok(b: int) -> bool:
        if b not in tried:
            v = run(b).values
            tried[b] = (target.met(v), *target.report(v))
        return tried[b][0]

    b = min(start, cap)
    while b <= cap and not ok(b):
        b *= 2
    if b > cap:
        last = tried[max(tried)]
        return None, last[1], last[2]
    if b > min(start, cap):
        lo = b / 2  # failed
        for _ in range(steps):
            mid = int(b / np.sqrt(b / lo))
            if ok(mid):
                b = mid
            else:
                lo = mid
    return b, tried[b][1], tried[b][2]


class Memo:
    """Distinct-coalition memo of an ``IndexGame`` (pyDVL, OpenDataVal's estimator); misses count as fits."""

    def __init__(self, game: IndexGame) -> None:
        self.game, self.memo = game, {}

    def __call__(self, idx: np.ndarray) -> float:
        key = np.sort(np.asarray(idx, dtype=np.int64)).tobytes()
        v = self.memo.get(key)
        if v is None:
            FITS["n"] += 1
            v = self.memo[key] = self.game.raw(idx)
        return v


def pydvl_trace(target: Target, cap: int, t_cap: float):
    from pydvl.utils.status import Status
    from pydvl.valuation.stopping import StoppingCriterion

    m = target.ref.size

    class Trace(StoppingCriterion):
        """Checks the target on every batch pyDVL hands in; stops at the target, the fit or time cap."""

        def __init__(self) -> None:
            super().__init__()
            self.t0 = time.perf_counter()
            self.hit: int | None = None
            self.vals: np.ndarray | None = None

        def _check(self, result) -> Status:
            if len(result.indices) == m and np.all(result.counts > 0):
                vals = np.empty(m)
                vals[np.asarray(result.indices, dtype=int)] = result.values
                self.vals = vals
                if target.met(vals):
                    self.hit = FITS["n"]
                    return Status.Converged
            if FITS["n"] >= cap or time.perf_counter() - self.t0 > t_cap:
                return Status.Converged
            return Status.Pending

        def report(self) -> tuple[float, float]:
            return (np.inf, np.nan) if self.vals is None else target.report(self.vals)

        def completion(self) -> float:
            return 0.0

    return Trace()


def pydvl_index_utility(game: IndexGame, native_cache: bool):
    """pyDVL's ``ModelUtility`` over an ``IndexGame``: the training "data" are the player indices."""
    from pydvl.utils.caching import InMemoryCacheBackend
    from pydvl.valuation import Dataset as PDataset
    from pydvl.valuation import ModelUtility, SupervisedScorer

    m = game.n_players
    memo = Memo(game)

    class IndexModel:
        """A "model" whose fit evaluates the game on the rows it gets (their indices)."""

        def __init__(self) -> None:
            self.v = 0.0

        def fit(self, x, y):
            idx = np.asarray(x)[:, 0].astype(np.int64)
            if native_cache:
                FITS["n"] += 1
                self.v = game.raw(idx)
            else:
                self.v = memo(idx)
            return self

        def predict(self, x):
            return np.zeros(len(x))

        def get_params(self, deep=True):
            return {}

        def set_params(self, **kw):
            return self

    train = PDataset(np.arange(m, dtype=np.float64)[:, None], np.zeros(m))
    scorer = SupervisedScorer(
        lambda model, x, y: model.v, PDataset(np.zeros((1, 1)), np.zeros(1)), default=0.0
    )
    cache = InMemoryCacheBackend() if native_cache else None
    return train, ModelUtility(IndexModel(), scorer, cache_backend=cache, clone_before_fit=False)


def run_pydvl(kind: str, train, utility, target: Target, cap, t_cap, seed):
    """One pyDVL run; returns (fits at target or None, error, rho, fits spent)."""
    from pydvl.valuation import (
        AntitheticPermutationSampler,
        GroupTestingShapleyValuation,
        MSRBanzhafValuation,
        PermutationSampler,
        ShapleyValuation,
    )

    trace = pydvl_trace(target, cap, t_cap)
    FITS["n"] = 0
    if kind == "group-testing":
        # one run with n_samples = the cap; the problem's epsilon as in pyDVL's examples
        val = GroupTestingShapleyValuation(
            utility, n_samples=cap, epsilon=0.1 * target.tol, progress=False, seed=seed
        )
        val.fit(train)
        m = target.ref.size
        vals = np.empty(m)
        vals[np.asarray(val.result.indices, dtype=int)] = val.result.values
        err, rho = target.report(vals)
        hit = FITS["n"] if target.met(vals) else None
        return hit, err, rho if hit else np.nan, FITS["n"]
    if kind == "msr-banzhaf":
        val = MSRBanzhafValuation(utility, is_done=trace, seed=seed, progress=False)
    else:
        sampler = {
            "permutation": PermutationSampler(seed=seed),
            "antithetic": AntitheticPermutationSampler(seed=seed),
        }[kind]
        val = ShapleyValuation(utility, sampler, is_done=trace, progress=False)
    val.fit(train)
    err, rho = trace.report()
    return trace.hit, err, rho, FITS["n"]


def odv_stratified(game: IndexGame, target: Target, cap, seed, min_cardinality):
    """OpenDataVal's estimator, reimplemented (it cannot be installed next to this package).

    As in ``opendataval.dataval.margcontrib.shap.ShapEvaluator`` with its ``GrTMCSampler`` (version
    1.3): uniform random permutations; the first ``min_cardinality`` players of a permutation form the
    base coalition and get no marginal; each later player's marginal contribution is added to the cell
    (player, cardinality) of a sum and a count matrix (counts start at 1e-8, so an empty cell reads 0);
    the value is the sum over cardinalities of the cell means times the DataShapley weight 1/M (Maleki
    et al. 2013 stratification by position). Its truncation is kept: after 10 consecutive increments
    with ``|increment| / sum(this permutation's increments, each starting at 1e-8) < 1e-8`` the
    permutation stops and its remaining cells count a zero contribution (it never fires on the
    learning-curve games; how often it fired elsewhere is printed). Its Gelman-Rubin stop is replaced
    by the benchmark's target and fit cap. Fits are distinct coalitions (the ``Memo``; OpenDataVal
    itself refits every prefix). Returns (fits at target or None, error, rho, fits spent).
    """
    m = game.n_players
    memo = Memo(game)
    rng = np.random.default_rng(seed)
    sums, counts = np.zeros((m, m)), np.full((m, m), 1e-8)
    FITS["n"] = 0
    n_perm = n_truncated = 0
    vals = np.zeros(m)
    out = None
    while FITS["n"] < cap:
        p = rng.permutation(m)
        inc = np.full(m, 1e-8)
        small = 0
        prev = memo(p[:min_cardinality])
        for k in range(min_cardinality, m):
            cur = memo(p[: k + 1])
            inc[p[k]] = cur - prev
            sums[p[k], k] += cur - prev
            counts[p[k], k] += 1
            small = small + 1 if abs(cur - prev) / inc.sum() < 1e-8 else 0
            if small == 10:
                counts[p[k + 1 :], np.arange(k + 1, m)] += 1
                n_truncated += 1
                break
            prev = cur
        n_perm += 1
        if n_perm % 5 == 0 or FITS["n"] >= cap:
            vals = (sums / counts).sum(axis=1) / m
            if target.met(vals):
                out = FITS["n"]
                break
    if n_truncated:
        print(f"    (OpenDataVal's truncation fired in {n_truncated} of {n_perm} permutations)")
    err, rho = target.report(vals)
    return out, err, rho, FITS["n"]


PEER_NAMES = {
    "permutation": "pyDVL permutation",
    "antithetic": "pyDVL antithetic permutation",
    "group-testing": "pyDVL group testing",
    "msr-banzhaf": "pyDVL MSR Banzhaf",
    "odv": "OpenDataVal stratified (min_card 0)",
    "odv5": "OpenDataVal stratified (min_card 5)",
}


class Table:
    """Per-seed rows of every method; the summary with ratios vs the best peer configuration."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.rows: dict[str, list[tuple]] = {}
        self.ours_best: list[float] = []
        self.means: dict[int, float] = {}  # per seed: the mean reference value (relative errors)

    def add(self, seed, name, fits, err, rho, secs, spent=None) -> None:
        self.rows.setdefault(name, []).append((seed, fits, err, rho, secs, fits if fits else spent))
        shown = f"{fits:>8}" if fits is not None else f">{spent:>7}"
        rel = f" (/mean {err / self.means[seed]:.2f})" if seed in self.means else ""
        print(
            f"  seed {seed} {name:34s} fits {shown}  err {err:.2e}{rel}  rho {rho:.3f}  {secs:7.1f} s",
            flush=True,
        )

    def summary(self, n_seeds: int, cap_ratio: float) -> None:
        print(f"-- summary {self.title}: median [min, max] fits over {n_seeds} seeds; '>' = not reached")
        for name, rows in self.rows.items():
            fits = [float(r[5]) for r in rows]
            missed = sum(r[1] is None for r in rows)
            rhos = [r[3] for r in rows if r[1] is not None and np.isfinite(r[3])]
            rels = [r[2] / self.means[r[0]] for r in rows if r[1] is not None and r[0] in self.means]
            rel = f"  max|err|/mean at target {np.median(rels):.2f}" if rels else ""
            print(
                f"  {name:34s} {'>' if missed else ' '}{np.median(fits):>9.0f}  "
                f"[{min(fits):.0f}, {max(fits):.0f}]  missed {missed}/{len(rows)}  "
                f"rank corr at target {np.median(rhos) if rhos else np.nan:.3f}{rel}  "
                f"time {np.median([r[4] for r in rows]):.1f} s"
            )
            RECORDS.append(
                {
                    "section": self.title,
                    "method": name,
                    "median_fits": f"{'>' if missed else ''}{np.median(fits):.0f}",
                    "fits_range": [round(min(fits)), round(max(fits))],
                    "missed": f"{missed}/{len(rows)}",
                    "rank_corr": round(float(np.median(rhos)), 3) if rhos else None,
                    "median_seconds": round(float(np.median([r[4] for r in rows])), 1),
                    "fits_vs_ours_best": None,
                }
            )
        ours = {k: v for k, v in self.rows.items() if k.startswith("ours")}
        peers = {k: v for k, v in self.rows.items() if k.startswith(("pyDVL", "OpenDataVal"))}
        if not ours or not peers:
            return
        seeds = sorted({r[0] for v in ours.values() for r in v})
        best_ratio, lower = [], []
        for s in seeds:
            o = min((r[1] for v in ours.values() for r in v if r[0] == s and r[1]), default=None)
            # a one-shot run (group testing: n_samples fixed up front) that missed bounds nothing
            p_rows = [
                r for k, v in peers.items() for r in v if r[0] == s and (r[1] or "group testing" not in k)
            ]
            if o is None or not p_rows:
                continue
            best = min(p_rows, key=lambda r: r[5])
            best_ratio.append(best[5] / o)
            lower.append(best[1] is None)
        for name, rows in peers.items():
            pr = []
            for s in seeds:
                o = min((r[1] for v in ours.values() for r in v if r[0] == s and r[1]), default=None)
                p = [r for r in rows if r[0] == s]
                if o and p:
                    pr.append((p[0][5] / o, p[0][1] is None))
            if pr and "group testing" in name:
                print(
                    f"  {name}: one run of n_samples = cap per seed; reached in {sum(not x[1] for x in pr)}"
                    f"/{len(pr)} seeds (a missed one-shot run gives no lower bound)"
                )
            elif pr:
                vals = [x[0] for x in pr]
                n_lb = sum(x[1] for x in pr)
                _ratio_row(self.title, name, vals, n_lb > 0)
                print(
                    f"  {name} / ours best (per seed): median {np.median(vals):.1f}x "
                    f"[{min(vals):.1f}, {max(vals):.1f}]; {n_lb}/{len(pr)} seeds a lower bound (>=)"
                )
        if best_ratio:
            lb = ">= " if any(lower) else ""
            BEST[self.title] = float(np.median(best_ratio))
            _ratio_row(self.title, "BEST peer per seed", best_ratio, any(lower))
            print(
                f"  BEST peer per seed / ours best: {lb}median {np.median(best_ratio):.1f}x "
                f"[{min(best_ratio):.1f}, {max(best_ratio):.1f}] fewer fits "
                f"({sum(lower)}/{len(lower)} seeds: no peer reached the target within "
                f"{cap_ratio:g}x our fits; there the ratio is fits spent at the cap / ours, a lower bound)"
            )


def _ratio_row(title: str, name: str, ratios: list[float], lower_bound: bool) -> None:
    """A ratio row of the result file: a peer's fits over our best method's, median [min, max]."""
    spread = f"{np.median(ratios):.1f}x [{min(ratios):.1f}, {max(ratios):.1f}]"
    shown = f">= {spread}" if lower_bound else spread
    RECORDS.append({"section": title, "method": f"{name} / ours best", "fits_vs_ours_best": shown})


def our_runs(game, target: Target, cap, seed, which, cv, steps=1):
    """Our methods on one game and seed: yields (name, fits or None, err, rho, secs, fits spent).

    ``cv`` maps "cv-groups" / "cv-totals" to (row name, surrogate quantities) of the control variate."""
    m = game.n_players
    start = max(256, 8 * m)
    runs = {
        key: (
            name,
            lambda b, q=q: control_variate_shapley(game, seed=seed, max_evaluations=b, quantities=q),
        )
        for key, (name, q) in cv.items()
    }
    runs["stratified"] = (
        "ours stratified (reuse)",
        lambda b: stratified_semivalue(game, seed=seed, max_evaluations=b),
    )
    for sampler in ("leverage", "kernel"):
        runs[f"regression-{sampler}"] = (
            f"ours regression ({'KernelSHAP' if sampler == 'kernel' else 'leverage'})",
            lambda b, s=sampler: regression_shapley(game, seed=seed, max_evaluations=b, sampler=s),
        )
    for key, (name, run) in runs.items():
        if key not in which:
            continue
        t = time.perf_counter()
        fits, err, rho = budget_search(run, target, cap, start, steps)
        yield name, fits, err, rho, time.perf_counter() - t, cap
    for key, sampler, name in (
        ("mc", "cyclic", "ours permutation (MC)"),
        ("mc-random", "random", "ours permutation (MC, random)"),
    ):
        if key not in which:
            continue
        t = time.perf_counter()
        r = monte_carlo_shapley(
            game,
            seed=seed,
            stopping=TargetMet(target.met) | MaxEvaluations(cap),
            batch_size=2,
            sampler=sampler,
        )
        hit = r.stop_reason.startswith("target_met")
        yield (
            name,
            r.evaluations if hit else None,
            *target.report(r.values),
            time.perf_counter() - t,
            r.evaluations,
        )


def peer_cap(table: Table, seed: int, ratio: float, limit: int) -> int:
    best = min(
        (r[1] for v in table.rows.values() for r in v if r[0] == seed and r[1]),
        default=None,
    )
    return int(min(ratio * best, limit)) if best else limit


def run_peers(table: Table, game: IndexGame, target: Target, seed: int, peers, pcap: int, args) -> None:
    """The peers on an ``IndexGame``: pyDVL's samplers (memoised) and OpenDataVal's estimator."""
    for kind in peers:
        t = time.perf_counter()
        if kind.startswith("odv"):
            min_card = 5 if kind == "odv5" else 0
            hit, err, rho, spent = odv_stratified(game, target, pcap, seed, min_card)
        else:
            train, util = pydvl_index_utility(game, args.native_cache)
            hit, err, rho, spent = run_pydvl(kind, train, util, target, pcap, args.time_cap, seed)
        table.add(seed, PEER_NAMES[kind] + f" (cap {pcap})", hit, err, rho, time.perf_counter() - t, spent)


def part_lc(args) -> None:
    for m in args.sizes:
        print(
            f"\n== learning-curve market, M = {m} sellers, 3 groups, Shapley; target max|err| <= 10% of mean"
        )
        print(f"   load average at start {os.getloadavg()[0]:.1f}", flush=True)
        table = Table(f"Shapley M = {m}")
        for seed in range(args.seeds):
            x = market(m, seed)
            game, target = LearningCurveGame(x), Target(exact_shapley_lc(x))
            cap = min(args.cap, 2**m)
            cv = {"cv-groups": ("ours CV groups", x), "cv-totals": ("ours CV totals", x.sum(axis=1))}
            for row in our_runs(game, target, cap, seed, args.ours, cv):
                table.add(seed, *row)
            run_peers(
                table, game, target, seed, args.peers, peer_cap(table, seed, args.cap_ratio, 2**m), args
            )
        table.rows = _merge_caps(table.rows)
        table.summary(args.seeds, args.cap_ratio)
        print(f"   load average at end {os.getloadavg()[0]:.1f}", flush=True)


def _merge_caps(rows: dict[str, list]) -> dict[str, list]:
    """One row per peer whatever its per-seed cap (the cap is in the per-seed lines)."""
    out: dict[str, list] = {}
    for k, v in rows.items():
        out.setdefault(k.split(" (cap")[0], []).extend(v)
    return out


def part_banzhaf(args) -> None:
    for m in args.sizes:
        print(f"\n== learning-curve market, M = {m}, Banzhaf values; target max|err| <= 10% of mean")
        table = Table(f"Banzhaf M = {m}")
        for seed in range(args.seeds):
            x = market(m, seed)
            game, target = LearningCurveGame(x), Target(exact_banzhaf_lc(x))
            t = time.perf_counter()
            fits, err, rho = budget_search(
                lambda b, game=game, seed=seed: msr_banzhaf(game, seed=seed, max_evaluations=b),
                target,
                min(args.cap, 2**m),
                max(256, 8 * m),
            )
            table.add(seed, "ours MSR Banzhaf", fits, err, rho, time.perf_counter() - t, min(args.cap, 2**m))
            pcap = peer_cap(table, seed, args.cap_ratio, 2**m)
            train, util = pydvl_index_utility(game, args.native_cache)
            t = time.perf_counter()
            hit, err, rho, spent = run_pydvl("msr-banzhaf", train, util, target, pcap, args.time_cap, seed)
            table.add(seed, "pyDVL MSR Banzhaf", hit, err, rho, time.perf_counter() - t, spent)
        table.summary(args.seeds, args.cap_ratio)


def digits_split(n: int, seed: int, n_test: int):
    """Digits (pixels / 16): a fixed seeded test set of ``n_test`` points and a seeded subsample of
    ``n`` training points from the other rows (a new subsample per seed)."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    perm = np.random.default_rng(0).permutation(len(y))
    test, pool = perm[:n_test], perm[n_test:]
    if n > pool.size:
        raise SystemExit(f"digits has {pool.size} rows besides the {n_test} test points; N = {n} is too many")
    train = np.random.default_rng(3000 + seed).choice(pool, size=n, replace=False)
    return x[train], y[train], x[test], y[test]


def check_knn_game(k: int) -> None:
    """``knn_shapley`` is the exact Shapley value of ``KNNGame``: checked by enumeration on 12 points."""
    xtr, ytr, xte, yte = digits_split(12, 0, 30)
    game = KNNGame(xtr, ytr, xte, yte, k)
    fast = knn_shapley(xtr, ytr, xte, yte, k=k).values
    # the game against its definition, with each test point's order by a stable argsort of distances
    d = ((xte[:, None, :] - xtr[None, :, :]) ** 2).sum(axis=2)
    orders = np.argsort(d, axis=1, kind="stable")

    def definition(s: tuple[int, ...]) -> float:
        inside = set(s)
        return float(
            np.mean(
                [
                    sum(ytr[j] == yte[t] for j in [j for j in o if j in inside][:k]) / k
                    for t, o in enumerate(orders)
                ]
            )
        )

    err_game = float(np.abs(exact_shapley(game).values - fast).max())
    err_def = float(np.abs(exact_shapley(FunctionGame(definition, 12)).values - fast).max())
    print(
        f"   check: |knn_shapley - exact Shapley by enumeration| on 12 points, 30 test points: "
        f"KNNGame {err_game:.1e}, the definition {err_def:.1e}",
        flush=True,
    )
    assert err_game < 1e-12 and err_def < 1e-12


def part_knn(args) -> None:
    k = 5
    print(f"\n== point-level game: K-NN utility (K = {k}) on digits, {args.knn_test} test points")
    check_knn_game(k)
    for n in args.knn_sizes:
        print(f"\n== K-NN utility, N = {n} training points; target Spearman rho >= {args.rho_target:g}")
        print(f"   load average at start {os.getloadavg()[0]:.1f}", flush=True)
        table = Table(f"K-NN N = {n}")
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            xtr, ytr, xte, yte = digits_split(n, seed, args.knn_test)
            game = KNNGame(xtr, ytr, xte, yte, k)
            ref = knn_shapley(xtr, ytr, xte, yte, k=k).values
            target = Target(ref, rho=args.rho_target)
            table.means[seed] = target.mean
            # the prefix shortcut of KNNGame agrees with full rows, and the values are efficient
            rng = np.random.default_rng(seed)
            for size in (1, 3, n // 50, n // 2, n):
                inside = np.zeros(n, dtype=bool)
                inside[rng.choice(n, size, replace=False)] = True
                assert game.value_of(inside) == game.value_of(inside, width=n)
            assert abs(ref.sum() - game.value_of(np.ones(n, dtype=bool))) < 1e-12
            cv = {
                "cv-groups": ("ours CV classes (one-hot)", game.quantities),
                "cv-totals": ("ours CV size only", np.ones(n, dtype=np.int64)),
            }
            for row in our_runs(game, target, args.knn_cap, seed, args.knn_ours, cv, args.knn_bisect):
                table.add(seed, *row)
            pcap = peer_cap(table, seed, args.cap_ratio, args.cap_ratio * args.knn_cap)
            run_peers(table, game, target, seed, args.knn_peers, pcap, args)
        table.rows = _merge_caps(table.rows)
        table.summary(args.seeds, args.cap_ratio)
        print(f"   load average at end {os.getloadavg()[0]:.1f}", flush=True)


def model_data(name: str):
    """(features, labels) of a model-game data set."""
    from sklearn.datasets import load_breast_cancer, make_classification

    if name == "breast_cancer":
        return load_breast_cancer(return_X_y=True)
    if name == "make_classification":
        return make_classification(n_samples=1000, n_features=20, n_informative=8, random_state=0)
    raise SystemExit(f"unknown --model-data {name!r}")


def part_model(args) -> None:
    for name in args.model_data:
        model_game_run(args, name, *model_data(name))


def model_game_run(args, data_name: str, x: np.ndarray, y: np.ndarray) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    from datamarket.core.types import Dataset
    from datamarket.valuation import ModelGame

    class CountingLR(LogisticRegression):
        def fit(self, X, y, sample_weight=None):
            FITS["n"] += 1
            return super().fit(X, y, sample_weight=sample_weight)

    fitted: dict[bytes, tuple] = {}

    class MemoLR(LogisticRegression):
        """For pyDVL: a coalition's training rows (in any order) are fitted once; a repeat reuses the
        fitted coefficients and is not counted. Key: row count and column sums rounded to 1e-6 (order
        changes them by ~1e-13; two coalitions of different sellers differ far more)."""

        def fit(self, X, y, sample_weight=None):
            x_arr = np.asarray(X)
            key = np.concatenate([[len(x_arr)], np.round(x_arr.sum(axis=0), 6)]).tobytes()
            if key not in fitted:
                FITS["n"] += 1
                super().fit(X, y, sample_weight=sample_weight)
                fitted[key] = (self.coef_, self.intercept_, self.classes_, self.n_features_in_)
            self.coef_, self.intercept_, self.classes_, self.n_features_in_ = fitted[key]
            return self

    m = args.model_sellers
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    mu, sd = xtr.mean(axis=0), xtr.std(axis=0)
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    groups = np.empty(len(ytr), dtype=int)
    for k, part in enumerate(np.array_split(np.random.default_rng(0).permutation(len(ytr)), m)):
        groups[part] = k

    def game() -> ModelGame:
        parts = [Dataset(xtr[groups == k], ytr[groups == k]) for k in range(m)]
        return ModelGame(CountingLR(max_iter=500), parts, Dataset(xte, yte), empty_score=0.0)

    print(f"\n== model game: {data_name}, {m} sellers, logistic regression, test accuracy")
    print(f"   load average at start {os.getloadavg()[0]:.1f}", flush=True)
    t = time.perf_counter()
    FITS["n"] = 0
    ref_run = monte_carlo_shapley(game(), seed=10_000, max_evaluations=args.reference_fits)
    target = Target(ref_run.values)
    print(
        f"   reference: our permutation sampler, {ref_run.evaluations} fits, seed 10000, "
        f"{time.perf_counter() - t:.0f} s; max stderr {ref_run.stderr.max():.2e} vs tol {target.tol:.2e}; "
        f"mean value {target.mean:.4f}; load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    table = Table(f"model game {data_name} M = {m}")
    from pydvl.utils.caching import InMemoryCacheBackend
    from pydvl.valuation import Dataset as PDataset
    from pydvl.valuation import GroupedDataset, ModelUtility, SupervisedScorer

    for seed in range(args.seeds):
        g = game()
        FITS["n"] = 0
        cv = {
            "cv-groups": ("ours CV groups", None),  # None: the ModelGame's rows per class
            "cv-totals": ("ours CV totals", g.quantities.sum(axis=1)),
        }
        for row in our_runs(g, target, args.cap, seed, args.ours, cv):
            table.add(seed, *row)
        pcap = peer_cap(table, seed, args.cap_ratio, 2**m)
        for kind in [k for k in args.peers if k != "group-testing"]:
            train = GroupedDataset(xtr, ytr, data_groups=groups)
            scorer = SupervisedScorer("accuracy", PDataset(xte, yte), default=0.0)
            fitted.clear()
            # pyDVL's InMemoryCacheBackend hashes its arguments on every call (83% of its run time on
            # the learning-curve game, profiled); the MemoLR memo stands in for it
            cache = InMemoryCacheBackend() if args.native_cache else None
            util = ModelUtility(MemoLR(max_iter=500), scorer, cache_backend=cache)
            t = time.perf_counter()
            hit, err, rho, spent = run_pydvl(kind, train, util, target, pcap, args.time_cap, seed)
            table.add(
                seed, PEER_NAMES[kind] + f" (cap {pcap})", hit, err, rho, time.perf_counter() - t, spent
            )
    table.rows = _merge_caps(table.rows)
    table.summary(args.seeds, args.cap_ratio)
    print(f"   load average at end {os.getloadavg()[0]:.1f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", nargs="+", default=["lc", "model"], help="lc banzhaf model knn")
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 200])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0, help="knn: run seeds first..first+seeds-1")
    ap.add_argument("--cap", type=int, default=400_000, help="fit cap of our runs")
    ap.add_argument("--cap-ratio", type=float, default=10.0, help="pyDVL fit cap / our best fits")
    ap.add_argument("--time-cap", type=float, default=900.0, help="seconds per pyDVL run (a safety net)")
    ap.add_argument("--native-cache", action="store_true", help="pyDVL's InMemoryCacheBackend for lc")
    ap.add_argument("--group-testing", action="store_true", help="add pyDVL group testing (lc part)")
    ap.add_argument("--model-sellers", type=int, default=20)
    ap.add_argument("--reference-fits", type=int, default=20_000)
    ap.add_argument(
        "--model-data", nargs="+", default=["breast_cancer", "make_classification"], help="model part data"
    )
    ap.add_argument(
        "--ours",
        nargs="+",
        default=["cv-groups", "cv-totals", "stratified", "mc"],
        help="our methods (cv-groups cv-totals stratified regression-leverage regression-kernel mc); "
        "in the model game CV groups = rows per class",
    )
    ap.add_argument("--peers", nargs="+", default=["permutation", "antithetic"])
    ap.add_argument("--knn-sizes", type=int, nargs="+", default=[500, 1000], help="training points (knn)")
    ap.add_argument("--knn-test", type=int, default=200, help="test points of the K-NN utility")
    ap.add_argument("--knn-cap", type=int, default=2**17, help="fit cap of our runs in the knn part")
    ap.add_argument("--knn-bisect", type=int, default=3, help="knn: bisections of the budget search")
    ap.add_argument("--rho-target", type=float, default=0.9, help="knn: target Spearman rank correlation")
    ap.add_argument(
        "--knn-ours",
        nargs="+",
        default=["cv-groups", "cv-totals", "stratified", "mc-random"],
        help="our methods in the knn part (CV groups = one-hot class, CV totals = size only; "
        "also regression-kernel regression-leverage mc)",
    )
    ap.add_argument("--knn-peers", nargs="+", default=["permutation", "antithetic", "odv", "odv5"])
    args = ap.parse_args()
    rec = Recorder(__file__)
    if args.group_testing:
        args.peers = [*args.peers, "group-testing"]
    warnings.filterwarnings("ignore")
    logging.getLogger("pydvl").setLevel(logging.ERROR)
    print(
        f"valuation_fits_at_scale: parts {args.parts}, sizes {args.sizes}, knn sizes {args.knn_sizes}, "
        f"model data {args.model_data}, seeds {args.seeds}, "
        f"pyDVL cap {args.cap_ratio:g}x ours, cores {os.cpu_count()}"
    )
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # BLAS on one thread for both libraries (ours pins it anyway)
        for part in args.parts:
            {"lc": part_lc, "banzhaf": part_banzhaf, "model": part_model, "knn": part_knn}[part](args)
    judged = [v for title, v in BEST.items() if title in ("Shapley M = 100", "Shapley M = 200")]
    rec.write(
        RECORDS,
        claim=(
            "Our estimators reach the accuracy target with fewer model fits than pyDVL 0.10 at its best "
            "configuration (and OpenDataVal's estimator, reimplemented), per seed, at real sizes."
        ),
        target=(
            "max|err| <= 10% of the mean value (Spearman rho >= --rho-target in the knn part); median over "
            f"seeds of the best peer's fits / ours >= {TARGET_RATIO:g}x on the learning-curve markets of "
            "100 and 200 sellers"
        ),
        met=all(v >= TARGET_RATIO for v in judged) if judged else None,
        notes=f"pyDVL capped at {args.cap_ratio:g}x our best fits per seed; '>' marks a target not reached",
    )


if __name__ == "__main__":
    main()
