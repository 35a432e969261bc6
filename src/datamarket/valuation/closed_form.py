r"""Test games whose exact Shapley values are known in closed form (the oracles of the valuation tests).

* :class:`VotingGame`: symmetric quota game :math:`v(S) = 1[|S| \ge q]`; by symmetry and efficiency
  :math:`\phi_i = 1/M` (Shapley 1953; Shapley & Shubik 1954).
* :class:`AirportGame`: :math:`v(S) = \max_{i \in S} c_i` (the runway cost of the coalition); with
  costs sorted :math:`c_{(1)} \le \dots \le c_{(M)}` and :math:`c_{(0)} = 0`,
  :math:`\phi_{(i)} = \sum_{k=1}^{i} (c_{(k)} - c_{(k-1)}) / (M - k + 1)` (Littlechild & Owen 1973).
* :class:`GloveGame`: ``n_left`` left-glove and ``n_right`` right-glove holders,
  :math:`v(S) = \min(|S \cap L|, |S \cap R|)`; the value of a left holder is the exact rational sum
  :math:`\phi_L = \sum_{a,b} \binom{l-1}{a}\binom{r}{b} \frac{(a+b)!(M-a-b-1)!}{M!} 1[b > a]`
  (the marginal contribution of a left glove is 1 iff the coalition has more right than left gloves),
  and symmetrically for a right holder; computed with :class:`fractions.Fraction`, never by enumeration.

Each game has ``value(mask)``, a vectorised ``values(masks)`` and ``shapley()`` (the closed form).

>>> AirportGame([1.0, 3.0]).shapley().tolist()
[0.5, 2.5]
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from math import comb, factorial

import numpy as np
from numpy.typing import NDArray

from datamarket.core.errors import InvalidMarketError
from datamarket.core.types import finite_array
from datamarket.valuation.games import NamedPlayers, _names


def _bits(masks: NDArray[np.int64], n: int) -> NDArray[np.int64]:
    masks = np.asarray(masks, dtype=np.int64)
    out: NDArray[np.int64] = (masks[:, None] >> np.arange(n)) & 1
    return out


class VotingGame(NamedPlayers):
    """Symmetric quota (voting) game: a coalition wins (value 1) iff it has at least ``quota`` members."""

    def __init__(self, n_players: int, quota: int) -> None:
        if not 1 <= quota <= n_players:
            raise InvalidMarketError("quota", f"must be in 1..{n_players}, got {quota}")
        self.quota = int(quota)
        self._names = _names(n_players, None)

    def value(self, mask: int) -> float:
        return float(int(mask).bit_count() >= self.quota)

    def values(self, masks: NDArray[np.int64]) -> NDArray[np.float64]:
        return (_bits(masks, self.n_players).sum(axis=1) >= self.quota).astype(np.float64)

    def shapley(self) -> NDArray[np.float64]:
        return np.full(self.n_players, 1.0 / self.n_players)


class AirportGame(NamedPlayers):
    """Airport (runway cost) game ``v(S) = max_{i in S} c_i`` with non-negative costs."""

    def __init__(self, costs: Sequence[float] | NDArray[np.float64]) -> None:
        self.costs = finite_array("costs", costs, ndim=1, nonneg=True)
        self._names = _names(self.costs.size, None)

    def value(self, mask: int) -> float:
        idx = [i for i in range(self.n_players) if mask >> i & 1]
        return float(self.costs[idx].max()) if idx else 0.0

    def values(self, masks: NDArray[np.int64]) -> NDArray[np.float64]:
        out: NDArray[np.float64] = (_bits(masks, self.n_players) * self.costs).max(axis=1)
        return out

    def shapley(self) -> NDArray[np.float64]:
        """Littlechild & Owen (1973): each runway segment is shared equally by the players needing it."""
        order = np.argsort(self.costs, kind="stable")
        c = np.concatenate([[0.0], self.costs[order]])
        m = self.n_players
        share = np.cumsum(np.diff(c) / (m - np.arange(m)))
        phi = np.empty(m)
        phi[order] = share
        return phi


class GloveGame(NamedPlayers):
    """Glove market: players ``0..n_left-1`` hold a left glove, the others a right glove."""

    def __init__(self, n_left: int, n_right: int) -> None:
        if n_left < 0 or n_right < 0:
            raise InvalidMarketError("players", "glove counts must be non-negative")
        self.n_left, self.n_right = int(n_left), int(n_right)
        self._names = _names(self.n_left + self.n_right, None)

    def value(self, mask: int) -> float:
        left = (int(mask) & ((1 << self.n_left) - 1)).bit_count()
        return float(min(left, int(mask).bit_count() - left))

    def values(self, masks: NDArray[np.int64]) -> NDArray[np.float64]:
        b = _bits(masks, self.n_players)
        left = b[:, : self.n_left].sum(axis=1)
        return np.minimum(left, b.sum(axis=1) - left).astype(np.float64)

    def _exact(self, same: int, other: int) -> Fraction:
        # value of a holder with ``same - 1`` other holders of its side and ``other`` of the other side
        m = self.n_players
        total = Fraction(0)
        for a in range(same):
            for b in range(a + 1, other + 1):
                s = a + b
                total += Fraction(comb(same - 1, a) * comb(other, b) * factorial(s) * factorial(m - s - 1))
        return total / factorial(m)

    def shapley(self) -> NDArray[np.float64]:
        left = float(self._exact(self.n_left, self.n_right)) if self.n_left else 0.0
        right = float(self._exact(self.n_right, self.n_left)) if self.n_right else 0.0
        return np.array([left] * self.n_left + [right] * self.n_right)
