r"""Exact semivalues by enumerating every coalition once.

Shapley value (Shapley 1953), for player :math:`i` of an :math:`M`-player game :math:`v`:

.. math::
   \phi_i = \sum_{S \subseteq N \setminus \{i\}} \frac{|S|!\,(M-|S|-1)!}{M!}
            \bigl(v(S \cup \{i\}) - v(S)\bigr).

Algorithm
---------
1. Evaluate :math:`v` on all :math:`2^M` coalitions exactly once (the value table; the characteristic
   function is the expensive part: one model fit per coalition).
2. For each player, gather the table at all masks without the player and with it and contract the
   marginal contributions with the size weights, in vectorised numpy. No coalition is evaluated twice.

Leave-one-out: :math:`\mathrm{LOO}_i = v(N) - v(N \setminus \{i\})` (Fan et al., eq. 1).
Banzhaf: :math:`\beta_i = 2^{-(M-1)} \sum_{S \not\ni i} (v(S\cup i) - v(S))`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import gammaln

from datamarket.core.errors import InvalidMarketError
from datamarket.valuation.backends import evaluate, plan_chunks, resolve_backend
from datamarket.valuation.games import CoalitionGame, MemoCache
from datamarket.valuation.result import ProgressInfo, ValuationResult, exact_result

MAX_EXACT_PLAYERS = 24


def popcounts(n_players: int) -> NDArray[np.int64]:
    """Number of members of every mask ``0 .. 2**n_players - 1``.

    >>> popcounts(3).tolist()
    [0, 1, 1, 2, 1, 2, 2, 3]
    """
    sizes = np.zeros(1, dtype=np.int64)
    for _ in range(n_players):
        sizes = np.concatenate([sizes, sizes + 1])
    return sizes


def shapley_weights(n_players: int) -> NDArray[np.float64]:
    """``w[s] = s! (M-s-1)! / M!`` for ``s = 0..M-1``, computed in log space (no overflow)."""
    s = np.arange(n_players, dtype=np.float64)
    m = float(n_players)
    return np.exp(gammaln(s + 1) + gammaln(m - s) - gammaln(m + 1))


def value_table(
    game: CoalitionGame,
    *,
    backend: Any = None,
    progress: Callable[[ProgressInfo], None] | None = None,
) -> NDArray[np.float64]:
    """``v`` on every coalition (index = bitmask), each evaluated once, on ``backend``.

    Games with a memo (``game.cache``, e.g. :class:`~datamarket.valuation.ModelGame`) are read from and
    written to it; others are evaluated straight into the table (batched ``values`` when available).
    """
    n = game.n_players
    if n > MAX_EXACT_PLAYERS:
        raise InvalidMarketError(
            "players", f"exact enumeration supports at most {MAX_EXACT_PLAYERS} players, got {n}"
        )
    total = 1 << n
    t0 = time.perf_counter()
    done = 0

    def tick(k: int) -> None:
        nonlocal done
        done += k
        if progress is not None:
            el = time.perf_counter() - t0
            progress(ProgressInfo(done, total, None, done / total, el))

    owned = backend is None or isinstance(backend, str)
    be = resolve_backend(backend)
    try:
        cache = getattr(game, "cache", None)
        if isinstance(cache, MemoCache):
            todo = [m for m in range(total) if cache.get(m) is None]
            tick(total - len(todo))
            evaluate(game, todo, be, cache, on_chunk=tick)
            table = np.fromiter((cache.peek(m) for m in range(total)), dtype=np.float64, count=total)
        else:
            masks = list(range(total))
            chunks = plan_chunks(masks, be.n_workers)
            parts = []
            for vals in be.map_values(game, chunks):
                parts.append(vals)
                tick(vals.size)
            table = np.concatenate(parts)
    finally:
        if owned:
            be.close()
    if not np.all(np.isfinite(table)):
        bad = int(np.flatnonzero(~np.isfinite(table))[0])
        raise InvalidMarketError("utility", f"game value is not finite for coalition {bad:#x}")
    return table


def weighted_marginals(table: NDArray[np.float64], per_set: NDArray[np.float64]) -> NDArray[np.float64]:
    """``sum_{S not containing i} per_set[|S|] (v(S + i) - v(S))`` for every player (pure, vectorised).

    ``per_set`` has ``M`` entries: the weight of one coalition of each size ``0..M-1``.
    """
    table = np.asarray(table, dtype=np.float64)
    n = int(table.shape[0]).bit_length() - 1
    weights = np.append(np.asarray(per_set, dtype=np.float64), 0.0)[popcounts(n)]  # full mask unused
    masks = np.arange(1 << n, dtype=np.int64)
    phi = np.empty(n)
    for i in range(n):
        without = masks[(masks >> i & 1) == 0]
        phi[i] = np.dot(weights[without], table[without | (1 << i)] - table[without])
    return phi


def shapley_from_table(table: NDArray[np.float64]) -> NDArray[np.float64]:
    """Exact Shapley values of every player from a full value table (pure, vectorised)."""
    n = int(np.asarray(table).shape[0]).bit_length() - 1
    return weighted_marginals(table, shapley_weights(n))


def subset_shapley(table: NDArray[np.float64]) -> NDArray[np.float64]:
    r"""Shapley values from a value table (``table[mask]``) by the subset formula, each sum exact
    (``math.fsum``): a second path to :func:`shapley_from_table` for certificates.

    :math:`\phi_i = \sum_{S \not\ni i} \frac{|S|!(n-|S|-1)!}{n!}(v(S\cup i) - v(S))`.

    >>> subset_shapley(np.array([0.0, 1.0, 2.0, 4.0])).tolist()
    [1.5, 2.5]
    """
    table = np.asarray(table, dtype=np.float64)
    n = int(table.shape[0]).bit_length() - 1
    masks = np.arange(1 << n, dtype=np.int64)
    size = np.array([bin(int(m)).count("1") for m in masks])
    weight = np.array([math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n) for k in range(n)])
    out = np.empty(n)
    for i in range(n):
        without = masks[(masks >> i & 1) == 0]
        out[i] = math.fsum((weight[size[without]] * (table[without | (1 << i)] - table[without])).tolist())
    return out


def banzhaf_from_table(table: NDArray[np.float64]) -> NDArray[np.float64]:
    """Exact Banzhaf values from a full value table."""
    table = np.asarray(table, dtype=np.float64)
    n = int(table.shape[0]).bit_length() - 1
    masks = np.arange(1 << n, dtype=np.int64)
    out = np.empty(n)
    for i in range(n):
        without = masks[(masks >> i & 1) == 0]
        out[i] = np.mean(table[without | (1 << i)] - table[without])
    return out


def _hits(game: CoalitionGame) -> int:
    cache = getattr(game, "cache", None)
    return cache.hits if isinstance(cache, MemoCache) else 0


def exact_from_kernel(
    method: str,
    kernel: Callable[[NDArray[np.float64]], NDArray[np.float64]],
    game: CoalitionGame,
    backend: Any,
    progress: Callable[[ProgressInfo], None] | None = None,
) -> ValuationResult:
    """Evaluate the value table once and apply ``kernel`` (table -> values) to it."""
    t0 = time.perf_counter()
    hits0 = _hits(game)
    table = value_table(game, backend=backend, progress=progress)
    values = kernel(table)
    hits = _hits(game) - hits0
    res = exact_result(
        method,
        game.player_names,
        values,
        evaluations=table.size - hits,
        cache_hits=hits,
        elapsed=time.perf_counter() - t0,
    )
    res.extra["efficiency_gap"] = float(values.sum() - (table[-1] - table[0]))
    return res


def exact_shapley(
    game: CoalitionGame,
    *,
    backend: Any = None,
    progress: Callable[[ProgressInfo], None] | None = None,
) -> ValuationResult:
    """Exact Shapley values with ``2**M`` evaluations of ``game``, each coalition once.

    ``backend``: ``None``/``"serial"``, ``"processes"``, a backend object
    (:mod:`datamarket.valuation.backends`), a ``distributed.Client`` or a ``tcp://`` scheduler address.
    Values are identical on every backend.

    >>> from datamarket.valuation.games import FunctionGame
    >>> glove = FunctionGame(lambda s: float(min(sum(i < 1 for i in s), sum(i >= 1 for i in s))), 3)
    >>> exact_shapley(glove).values.round(6).tolist()   # one left glove, two right gloves
    [0.666667, 0.166667, 0.166667]
    """
    return exact_from_kernel("exact_shapley", shapley_from_table, game, backend, progress)


def exact_banzhaf(
    game: CoalitionGame,
    *,
    backend: Any = None,
    progress: Callable[[ProgressInfo], None] | None = None,
) -> ValuationResult:
    """Exact Banzhaf values with ``2**M`` evaluations."""
    return exact_from_kernel("exact_banzhaf", banzhaf_from_table, game, backend, progress)


def leave_one_out(
    game: CoalitionGame,
    *,
    backend: Any = None,
    progress: Callable[[ProgressInfo], None] | None = None,
) -> ValuationResult:
    """Leave-one-out values ``v(N) - v(N \\ {i})`` with ``M + 1`` evaluations (Fan et al., eq. 1).

    >>> from datamarket.valuation.games import FunctionGame
    >>> leave_one_out(FunctionGame(lambda s: float(len(s) >= 2), 3)).values.tolist()
    [0.0, 0.0, 0.0]
    """
    t0 = time.perf_counter()
    n = game.n_players
    full = (1 << n) - 1
    masks = [full] + [full & ~(1 << i) for i in range(n)]
    cache = getattr(game, "cache", None)
    memo = cache if isinstance(cache, MemoCache) else MemoCache()
    hits0 = memo.hits
    todo = [m for m in masks if memo.get(m) is None]
    owned = backend is None or isinstance(backend, str)
    be = resolve_backend(backend)
    try:
        evaluate(game, todo, be, memo)
    finally:
        if owned:
            be.close()
    v_full = memo.peek(full)
    vals = np.array([v_full - memo.peek(m) for m in masks[1:]])
    if progress is not None:
        progress(ProgressInfo(len(masks), len(masks), None, 1.0, time.perf_counter() - t0))
    return exact_result(
        "loo",
        game.player_names,
        vals,
        evaluations=len(todo),
        cache_hits=memo.hits - hits0,
        elapsed=time.perf_counter() - t0,
    )
