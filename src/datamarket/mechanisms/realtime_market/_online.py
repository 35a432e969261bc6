r"""The market online: one buyer answered at once, its charge divided later (Agarwal, Dahleh, Sarkar,
Sec. 2.4 and Algorithm 1).

A service answers buyer :math:`n` when its bid arrives and divides the charge afterwards, in another
process and possibly much later. What Algorithm 1 must remember between two buyers is small and is
kept as plain data (:class:`PricerState`): the number of buyers served, the current epoch of the
doubling trick (its first buyer and length :math:`2^k`) and that epoch's log-weights; the net and
:math:`\delta` follow from the epoch's length (:func:`~._pricing.algorithm1_parameters`). Advancing the
state buyer by buyer gives exactly :class:`~._pricing.Pricer`'s weights under ``horizon=None``
(tested), so the online market is the paper's Algorithm 1 with an unknown number of buyers.

:func:`answer` is steps 1-5 of a round (:mod:`._market`): the price drawn from the state, the gain
curve with the round's common random numbers (``noise_seed``), the level the bid affords, the
predictions of the learner trained on the allocated streams (what the buyer receives, Rem. 2.4), the
gain and the charge (eq. 3), and the next state. :func:`divide_answer` is step 6: the allocated
streams are rebuilt from the same ``noise_seed`` and level (AF* is a function of them) and PD* splits
the charge. Both are pure: the same inputs give the same numbers in any process.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from datamarket.core.errors import InvalidMarketError
from datamarket.core.random import make_rng
from datamarket.core.types import FloatArray
from datamarket.mechanisms.realtime_market._allocation import Degrader
from datamarket.mechanisms.realtime_market._data import CoalitionGame, Learner, Scorer, Streams, Task
from datamarket.mechanisms.realtime_market._division import Division, divide
from datamarket.mechanisms.realtime_market._market import MarketConfig, serve
from datamarket.mechanisms.realtime_market._pricing import algorithm1_parameters


@dataclass(frozen=True)
class PricerState:
    """Algorithm 1 with the doubling trick between two buyers: ``n`` buyers served, the current
    epoch's first buyer ``start``, length ``horizon`` and log-weights ``log_w`` (empty before the
    first buyer)."""

    n: int = 0
    start: int = 0
    horizon: int = 0
    log_w: tuple[float, ...] = ()

    def epoch(self, b_max: float, lipschitz: float) -> tuple[PricerState, FloatArray, float]:
        """The state at the start of buyer ``n``'s epoch (a new one, twice as long, when the current
        one is over), its net and delta."""
        state = self
        if not self.log_w or self.n >= self.start + self.horizon:
            horizon = 1 if not self.log_w else 2 * self.horizon
            _, net, _ = algorithm1_parameters(horizon, b_max, lipschitz)
            state = PricerState(self.n, self.n, horizon, (0.0,) * net.size)
        _, net, delta = algorithm1_parameters(state.horizon, b_max, lipschitz)
        return state, net, delta

    def observed(self, at_net: FloatArray, delta: float, b_max: float) -> PricerState:
        r"""The state after buyer ``n`` of this epoch (as :meth:`epoch` returned it) was charged
        ``at_net`` at each net price: Algorithm 1's update
        :math:`w_i \leftarrow w_i (1 + \delta\, r_i / B_{\max})`."""
        log_w = np.asarray(self.log_w) + np.log1p(delta * np.clip(np.asarray(at_net) / b_max, 0.0, 1.0))
        return PricerState(self.n + 1, self.start, self.horizon, tuple(float(w) for w in log_w))

    def probabilities(self) -> FloatArray:
        w = np.asarray(self.log_w, dtype=np.float64)
        p = np.exp(w - w.max())
        out: FloatArray = p / p.sum()
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "start": self.start, "horizon": self.horizon, "log_w": list(self.log_w)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> PricerState:
        """The state stored by :meth:`to_dict` (None: no buyer yet)."""
        if not data:
            return cls()
        state = cls(
            int(data["n"]), int(data["start"]), int(data["horizon"]), tuple(map(float, data["log_w"]))
        )
        if not (0 <= state.start <= state.n and state.horizon >= 1 and all(map(math.isfinite, state.log_w))):
            raise InvalidMarketError("pricing.state", "is not a state of Algorithm 1")
        return state


@dataclass(frozen=True)
class OnlineAnswer:
    """What buyer ``n`` is told at once, and what the division needs later."""

    price: float
    bid: float
    level: int
    gain: float
    charge: float
    predictions: FloatArray
    expected_charge: float
    state: PricerState


def answer(
    streams: Streams,
    task: Task,
    bid: float,
    learner: Learner,
    config: MarketConfig,
    state: PricerState,
    price_seed: int,
    noise_seed: int,
) -> OnlineAnswer:
    """Steps 1-5 for one buyer (module docstring): ``price_seed`` draws the price from the weights,
    ``noise_seed`` the common random numbers of AF*."""
    if not (math.isfinite(bid) and 0 <= bid <= config.max_bid):
        raise InvalidMarketError("bid", f"must be in [0, max_bid = {config.max_bid}] (Assumption 4)")
    if task.labels.shape[0] != streams.length:
        raise InvalidMarketError("task", f"needs one label per row of the streams ({streams.length})")
    epoch, net, delta = state.epoch(config.max_bid, config.lipschitz)
    pi = epoch.probabilities()
    i = min(int(np.searchsorted(np.cumsum(pi), make_rng(price_seed).random(), side="right")), pi.size - 1)
    a = serve(streams, task, float(bid), learner, config, float(net[i]), noise_seed)
    at_net = a.curve.payment(net, a.bid)
    train, test = ~task.test, task.test
    predictions = np.asarray(learner.fit_predict(a.allocated[train], task.labels[train], a.allocated[test]))
    return OnlineAnswer(
        price=a.price,
        bid=a.bid,
        level=int(a.level),
        gain=a.gain,
        charge=a.charge,
        predictions=predictions,
        expected_charge=float(pi @ at_net),
        state=epoch.observed(at_net, delta, config.max_bid),
    )


def divide_answer(
    streams: Streams,
    task: Task,
    level: int,
    learner: Learner,
    config: MarketConfig,
    noise_seed: int,
    split_seed: int,
) -> Division:
    """Step 6 for an answered buyer: the allocated streams rebuilt from ``noise_seed`` and ``level``,
    and PD* (``config.division``) of its game."""
    grid = config.allocation.grid(config.max_bid)
    if not 0 <= level < grid.size:
        raise InvalidMarketError("level", f"must be a level of the grid (0 to {grid.size - 1})")
    allocated = Degrader(streams, config.allocation, noise_seed).apply(float(grid[level]))
    scorer = Scorer.of(task, learner.classifier, config.baseline)
    game = CoalitionGame(allocated, streams.ids, streams.names, task, learner, scorer)
    return divide(game, streams.values, config.division, split_seed)
