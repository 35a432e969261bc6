"""The market online (Agarwal, Dahleh, Sarkar): Algorithm 1's state kept as data between buyers gives
exactly :class:`Pricer`'s weights with the doubling trick, for any sequence of charges; an answer and
its later division are pure functions of their seeds; the answered charge is RF* of the curve."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datamarket.core.errors import InvalidMarketError
from datamarket.core.random import make_rng
from datamarket.mechanisms.realtime_market import (
    ClosedFormCurve,
    Learner,
    MarketConfig,
    Pricer,
    PricerState,
    Streams,
    Task,
    answer,
    divide_answer,
)
from datamarket.mechanisms.realtime_market._division import DivisionSpec


@settings(max_examples=40, deadline=None)
@given(
    bids=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40),
    lipschitz=st.floats(0.25, 4.0),
)
def test_the_state_between_buyers_is_algorithm_1_with_doubling(bids: list[float], lipschitz: float) -> None:
    """After every buyer, the stored state's weights equal :class:`Pricer`'s (doubling trick) to the
    last bits of the log-weights: both add the same log1p terms in the same order."""
    curve = ClosedFormCurve()
    pricer = Pricer(1.0, lipschitz, None, make_rng(0))
    state = PricerState()
    for b in bids:
        pricer.post()
        pricer.observe(lambda prices, b=b: curve.payment(prices, b))
        epoch, net, delta = state.epoch(1.0, lipschitz)
        state = epoch.observed(curve.payment(net, b), delta, 1.0)
        state = PricerState.from_dict(state.to_dict())  # what the service stores and reads back
        e = pricer.trace.epochs[-1]
        assert (state.start, state.horizon, state.n) == (e.start, e.horizon, pricer.trace.n)
        np.testing.assert_array_equal(np.asarray(state.log_w), e.log_w)


def test_a_stored_state_that_is_not_one_is_refused() -> None:
    with pytest.raises(InvalidMarketError, match=r"pricing\.state"):
        PricerState.from_dict({"n": 1, "start": 2, "horizon": 1, "log_w": [0.0]})


def _market() -> tuple[Streams, Task, MarketConfig]:
    rng = np.random.default_rng(4)
    x = rng.normal(0.0, 1.0, (50, 3))
    y = x @ np.array([1.0, 0.4, 0.0]) + rng.normal(0.0, 0.3, 50)
    test = np.zeros(50, dtype=bool)
    test[::4] = True
    cfg = MarketConfig(horizon="doubling", division=DivisionSpec(rule="pd_a"))
    return Streams(x, ("a", "b", "c")), Task(y, test), cfg


def test_an_answer_and_its_division_are_pure_functions_of_their_seeds() -> None:
    streams, task, cfg = _market()
    first = answer(streams, task, 0.8, Learner(), cfg, PricerState(), 11, 12)
    again = answer(streams, task, 0.8, Learner(), cfg, PricerState(), 11, 12)
    assert first.price == again.price and first.charge == again.charge and first.state == again.state
    np.testing.assert_array_equal(first.predictions, again.predictions)
    assert first.predictions.shape == (int(task.test.sum()),)
    assert 0.0 <= first.charge <= first.bid * first.gain + 1e-12  # RF* <= b h(b)
    d1 = divide_answer(streams, task, first.level, Learner(), cfg, 12, 5)
    d2 = divide_answer(streams, task, first.level, Learner(), cfg, 12, 5)
    np.testing.assert_array_equal(d1.paid, d2.paid)
    if d1.grand > 0:  # PD*_A with exact values: the shares add up to one
        assert abs(float(d1.shares.sum()) - 1.0) <= 1e-9
    with pytest.raises(InvalidMarketError, match="max_bid"):
        answer(streams, task, 1.5, Learner(), cfg, PricerState(), 11, 12)
