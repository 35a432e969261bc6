"""Hypothesis strategies of the real-time market's tests: small data markets (the family keeps its
strategies in its own test folder, so that adding the family edits no shared file)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from datamarket.mechanisms.realtime_market import Allocation, Learner, Scorer, Streams, Task, measure_curve

seeds = st.integers(min_value=0, max_value=2**32 - 1)
LEARNER = Learner()  # imports scikit-learn here, not inside a strategy (hypothesis would see its seeding)


@dataclass(frozen=True)
class CurveCase:
    """A measured gain curve with the price a buyer meets and its value."""

    curve: object
    price: float
    value: float
    max_bid: float


@st.composite
def data_markets(draw: st.DrawFn, max_sellers: int = 4) -> tuple[Streams, Task]:
    """1 to ``max_sellers`` random streams of 20 to 60 rows and a noisy linear task on them."""
    rng = np.random.default_rng(draw(seeds))
    t, m = draw(st.integers(20, 60)), draw(st.integers(1, max_sellers))
    x = rng.normal(size=(t, m)) * rng.uniform(0.1, 3.0, size=m) + rng.uniform(-2, 2, size=m)
    y = x @ rng.normal(size=m) + rng.normal(scale=draw(st.floats(0.05, 2.0)), size=t)
    return Streams(x, tuple(f"s{k}" for k in range(m))), Task.split(y, 0.3, rng)


@st.composite
def gain_curves(draw: st.DrawFn) -> CurveCase:
    """A gain curve measured on a random market, either form of AF*, with a price and a value."""
    streams, task = draw(data_markets())
    max_bid = draw(st.floats(0.5, 3.0))
    alloc = Allocation(
        form=draw(st.sampled_from(["noise", "mask"])),
        sigma=draw(st.floats(0.1, 3.0)),
        levels=draw(st.integers(1, 12)),
    )
    curve, _ = measure_curve(streams, task, LEARNER, Scorer.of(task, False), alloc, max_bid, draw(seeds))
    price = draw(st.floats(0.01, max_bid))
    value = draw(st.floats(0.0, max_bid))
    return CurveCase(curve, price, value, max_bid)
