"""Cooperative games over players (sellers, contributors, parties).

A game maps a coalition, encoded as a bitmask over ``n_players`` (bit ``i`` set iff player ``i`` is in
the coalition), to a real value. Every valuation method works on this one protocol (STYLE practice 4:
a valuation is a game x a sampler x a stopping rule).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from datamarket.core.errors import InvalidMarketError


@runtime_checkable
class CoalitionGame(Protocol):
    """Characteristic function ``v: 2^N -> R`` over bitmask-encoded coalitions."""

    @property
    def n_players(self) -> int: ...

    @property
    def player_names(self) -> tuple[str, ...]: ...

    def value(self, mask: int) -> float: ...


def members(mask: int, n_players: int) -> tuple[int, ...]:
    """Indices of the players in ``mask``.

    >>> members(0b1011, 4)
    (0, 1, 3)
    """
    return tuple(i for i in range(n_players) if mask >> i & 1)


def to_mask(players: Sequence[int]) -> int:
    """Bitmask of a collection of player indices.

    >>> to_mask([0, 1, 3])
    11
    """
    m = 0
    for i in players:
        m |= 1 << int(i)
    return m


def checked_player_names(n_players: int, names: Sequence[str] | None = None) -> tuple[str, ...]:
    """Player names of a game: ``player_0 .. player_{M-1}`` by default, else ``names`` checked
    (one per player, unique).

    >>> checked_player_names(2)
    ('player_0', 'player_1')
    """
    if n_players < 1:
        raise InvalidMarketError("players", "a game needs at least one player")
    if names is None:
        return tuple(f"player_{i}" for i in range(n_players))
    names = tuple(str(n) for n in names)
    if len(names) != n_players:
        raise InvalidMarketError("players", f"{len(names)} names for {n_players} players")
    if len(set(names)) != n_players:
        raise InvalidMarketError("players", "player names must be unique")
    return names


_names = checked_player_names  # the package's short internal name


class NamedPlayers:
    """Mixin for games that keep their player names in ``self._names``: ``n_players``, ``player_names``."""

    _names: tuple[str, ...]

    @property
    def n_players(self) -> int:
        return len(self._names)

    @property
    def player_names(self) -> tuple[str, ...]:
        return self._names


class FunctionGame(NamedPlayers):
    """A game from a Python function of the coalition's member indices.

    >>> g = FunctionGame(lambda s: float(len(s) ** 2), 3)
    >>> g.value(0b101)
    4.0
    """

    def __init__(
        self,
        fn: Callable[[tuple[int, ...]], float],
        n_players: int,
        names: Sequence[str] | None = None,
    ) -> None:
        self.fn = fn
        self._names = _names(n_players, names)

    def value(self, mask: int) -> float:
        v = float(self.fn(members(mask, self.n_players)))
        if not np.isfinite(v):
            raise InvalidMarketError("utility", f"game value is not finite for coalition {mask:#x}")
        return v


class TableGame(NamedPlayers):
    """A game given by its full value table ``table[mask]`` (length ``2**n_players``)."""

    def __init__(self, table: NDArray[np.float64], names: Sequence[str] | None = None) -> None:
        table = np.asarray(table, dtype=np.float64)
        n = round(np.log2(table.shape[0])) if table.ndim == 1 and table.size else -1
        if n < 1 or table.shape != (1 << n,):
            raise InvalidMarketError("table", "value table length must be a power of two >= 2")
        if not np.all(np.isfinite(table)):
            raise InvalidMarketError("table", "value table must be finite")
        self.table = table
        self._names = _names(n, names)

    def value(self, mask: int) -> float:
        return float(self.table[mask])

    def values(self, masks: NDArray[np.int64]) -> NDArray[np.float64]:
        out: NDArray[np.float64] = self.table[np.asarray(masks, dtype=np.int64)]
        return out


class MemoCache:
    """Memo of coalition values: no coalition is evaluated twice within a run.

    ``hits`` counts look-ups answered from the memo, ``misses`` the values that had to be computed.

    >>> c = MemoCache()
    >>> c.get(3) is None, c.misses
    (True, 0)
    >>> c.put(3, 1.5); c.get(3), c.hits
    (1.5, 1)
    """

    def __init__(self) -> None:
        self._store: dict[int, float] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._store)

    def __contains__(self, mask: int) -> bool:
        return int(mask) in self._store

    def get(self, mask: int) -> float | None:
        """The memoised value of ``mask`` (counted as a hit), or ``None``."""
        v = self._store.get(int(mask))
        if v is not None:
            self.hits += 1
        return v

    def peek(self, mask: int) -> float:
        """The memoised value of ``mask`` without counting a hit (``KeyError`` if absent)."""
        return self._store[int(mask)]

    def put(self, mask: int, value: float) -> None:
        """Store a freshly computed value (counted as a miss)."""
        self._store[int(mask)] = float(value)
        self.misses += 1

    def clear(self) -> None:
        self._store.clear()
        self.hits = self.misses = 0


def raw_evaluator(game: CoalitionGame) -> Callable[[int], float]:
    """The un-memoised characteristic function of ``game`` (``evaluate_uncached`` if it has one)."""
    fn = getattr(game, "evaluate_uncached", None)
    return fn if callable(fn) else game.value
