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

Leave-one-out: :math:`\mathrm{LOO}_i = v(N) - v(N \setminus \{i\})` (paper 001, eq. 1).
Banzhaf: :math:`\beta_i = 2^{-(M-1)} \sum_{S \not\ni i} (v(S\cup i) - v(S))`.
"""

from __future__ import annotations

import time

import numpy as np
from numpy.typing import NDArray
from scipy.special import gammaln

from datamarket.core.errors import InvalidMarketError
from datamarket.valuation.games import CoalitionGame
from datamarket.valuation.result import ValuationResult, exact_result

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


def value_table(game: CoalitionGame) -> NDArray[np.float64]:
    """``v`` on every coalition, each evaluated once, using ``game.values`` when it is batched."""
    n = game.n_players
    if n > MAX_EXACT_PLAYERS:
        raise InvalidMarketError(
            "players", f"exact enumeration supports at most {MAX_EXACT_PLAYERS} players, got {n}"
        )
    masks = np.arange(1 << n, dtype=np.int64)
    batched = getattr(game, "values", None)
    if callable(batched):
        table = np.asarray(batched(masks), dtype=np.float64)
    else:
        table = np.fromiter((game.value(int(m)) for m in masks), dtype=np.float64, count=masks.size)
    if not np.all(np.isfinite(table)):
        bad = int(np.flatnonzero(~np.isfinite(table))[0])
        raise InvalidMarketError("utility", f"game value is not finite for coalition {bad:#x}")
    return table


def shapley_from_table(table: NDArray[np.float64]) -> NDArray[np.float64]:
    """Exact Shapley values of every player from a full value table (pure, vectorised)."""
    table = np.asarray(table, dtype=np.float64)
    n = int(table.shape[0]).bit_length() - 1
    weights = np.append(shapley_weights(n), 0.0)[popcounts(n)]  # full mask never used
    masks = np.arange(1 << n, dtype=np.int64)
    phi = np.empty(n)
    for i in range(n):
        without = masks[(masks >> i & 1) == 0]
        phi[i] = np.dot(weights[without], table[without | (1 << i)] - table[without])
    return phi


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


def exact_shapley(game: CoalitionGame) -> ValuationResult:
    """Exact Shapley values with ``2**M`` evaluations of ``game``.

    >>> from datamarket.valuation.games import FunctionGame
    >>> glove = FunctionGame(lambda s: float(min(sum(i < 1 for i in s), sum(i >= 1 for i in s))), 3)
    >>> exact_shapley(glove).values.round(6).tolist()   # one left glove, two right gloves
    [0.666667, 0.166667, 0.166667]
    """
    t0 = time.perf_counter()
    table = value_table(game)
    return exact_result(
        "exact_shapley",
        game.player_names,
        shapley_from_table(table),
        evaluations=table.size,
        elapsed=time.perf_counter() - t0,
    )


def exact_banzhaf(game: CoalitionGame) -> ValuationResult:
    """Exact Banzhaf values with ``2**M`` evaluations."""
    t0 = time.perf_counter()
    table = value_table(game)
    return exact_result(
        "exact_banzhaf",
        game.player_names,
        banzhaf_from_table(table),
        evaluations=table.size,
        elapsed=time.perf_counter() - t0,
    )


def leave_one_out(game: CoalitionGame) -> ValuationResult:
    """Leave-one-out values ``v(N) - v(N \\ {i})`` with ``M + 1`` evaluations (paper 001, eq. 1)."""
    t0 = time.perf_counter()
    n = game.n_players
    full = (1 << n) - 1
    v_full = game.value(full)
    vals = np.array([v_full - game.value(full & ~(1 << i)) for i in range(n)])
    if not np.all(np.isfinite(vals)):
        raise InvalidMarketError("utility", "game value is not finite")
    return exact_result("loo", game.player_names, vals, evaluations=n + 1, elapsed=time.perf_counter() - t0)
