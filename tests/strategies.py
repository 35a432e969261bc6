"""Hypothesis strategies shared by every test module (STYLE practice 9).

Mechanism tests add their market strategies here so that one module describes the markets the suite
quantifies over.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from datamarket.valuation.games import TableGame

finite_floats = st.floats(min_value=-100.0, max_value=100.0, allow_nan=False, allow_infinity=False)
positive_costs = st.floats(min_value=0.01, max_value=50.0, allow_nan=False, allow_infinity=False)
seeds = st.integers(min_value=0, max_value=2**32 - 1)


@st.composite
def cost_vectors(draw: st.DrawFn, min_size: int = 1, max_size: int = 8) -> np.ndarray:
    """Positive per-seller costs."""
    n = draw(st.integers(min_size, max_size))
    return np.array(draw(st.lists(positive_costs, min_size=n, max_size=n)))


@st.composite
def table_games(draw: st.DrawFn, min_players: int = 1, max_players: int = 6) -> TableGame:
    """Arbitrary games given by a random value table with v(empty) = 0."""
    n = draw(st.integers(min_players, max_players))
    table = draw(hnp.arrays(np.float64, 1 << n, elements=finite_floats))
    table[0] = 0.0
    return TableGame(table)


@st.composite
def monotone_games(draw: st.DrawFn, min_players: int = 1, max_players: int = 6) -> TableGame:
    """Monotone games: v(S) = sum of non-negative weights plus a non-negative pair synergy."""
    n = draw(st.integers(min_players, max_players))
    w = draw(hnp.arrays(np.float64, n, elements=st.floats(0, 10)))
    syn = draw(st.floats(0, 5))
    masks = np.arange(1 << n)
    bits = (masks[:, None] >> np.arange(n)) & 1
    size = bits.sum(axis=1)
    table = bits @ w + syn * size * (size - 1) / 2
    return TableGame(table.astype(np.float64))
