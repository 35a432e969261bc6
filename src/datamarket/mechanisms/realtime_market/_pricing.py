r"""PF*, Algorithm 1 of Agarwal, Dahleh, Sarkar: the price by multiplicative weights over an epsilon-net.

Algorithm 1 (full information: after each buyer the charge RF* is known at every candidate price)::

    C = minimal eps-net of the bid set B = [0, B_max];  w[c] = 1 for c in C
    for n = 1..N:
        p_n = c with probability w[c] / sum(w)            # drawn before the bid b_n
        for c in C: w[c] *= 1 + delta RF*(c, b_n, Y_n) / B_max

Thm 5.2 (Assumptions 1, 3, 4; ``L`` the Lipschitz constant of RF* in the price): with
:math:`\varepsilon = 1/(L\sqrt N)` and :math:`\delta = \sqrt{\log|C|/N}` the average regret against the
best fixed price in hindsight (Property 3.2) is :math:`O(\sqrt{\log N / N})`, independent of ``M``.

Implementation
--------------
* The net: :math:`|C| = \lceil B_{\max}/(2\varepsilon) \rceil` centres :math:`B_{\max}(2i+1)/(2|C|)`,
  every bid within :math:`\varepsilon` of one, the fewest any :math:`\varepsilon`-net of an interval can
  have (the paper's proof allows :math:`3B_{\max}/\varepsilon`; it gives no grid).
* :math:`\delta` is capped at 1/2, the range of the multiplicative-weights bound (Arora, Hazan and Kale,
  Thm 2.1) on which Thm 5.2 rests: for gains :math:`g \in [0, 1]` and every price :math:`c \in C`,
  :math:`\sum_n g_n(c) - \sum_n E_{\pi_n} g_n \le \delta \sum_n g_n(c) + \ln|C|/\delta`, whatever the bids.
  The certificate checks this inequality on the run (in money: times :math:`B_{\max}`).
* Weights are kept in log space (:math:`\log w \mathrel{+}= \log(1 + \delta g)`), so no horizon
  overflows them.
* ``horizon=None`` (N unknown): the doubling trick. Epoch :math:`j = 0, 1, \dots` serves
  :math:`2^j` buyers with Algorithm 1 tuned for :math:`N = 2^j` and fresh weights; the bound holds per
  epoch and the regret sums to :math:`O(\sqrt{N \log N})`.
* ``L`` is unknown for a learned gain (a step allocation even makes RF* jump in the price); it is a
  parameter (default 1: charges of at most :math:`B_{\max}` move by at most :math:`B_{\max}` over the bid
  range).
* Regret is measured against the best fixed price of a reference grid (uniform, plus the nets), with
  the algorithm's expected charge :math:`E_{\pi_n}\mathrm{RF}^*` (the expectation of Thm 5.2) and with
  the charge at the posted prices.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from datamarket.core.errors import InvalidMarketError
from datamarket.core.types import FloatArray

DELTA_CAP = 0.5
"""The multiplicative-weights bound needs a step of at most 1/2."""


def epsilon_net(b_max: float, eps: float) -> FloatArray:
    """The minimal ``eps``-net of ``[0, b_max]`` (module docstring).

    >>> epsilon_net(1.0, 0.25).tolist()
    [0.25, 0.75]
    """
    if not (b_max > 0 and eps > 0):
        raise InvalidMarketError("pricing", "b_max and eps must be positive")
    n = max(1, math.ceil(b_max / (2 * eps) - 1e-12))
    out: FloatArray = b_max * (2 * np.arange(n) + 1) / (2 * n)
    return out


def algorithm1_parameters(horizon: int, b_max: float, lipschitz: float) -> tuple[float, FloatArray, float]:
    """Thm 5.2's tuning for ``horizon`` buyers: ``(eps, net, delta)``.

    >>> eps, net, delta = algorithm1_parameters(10_000, 1.0, 0.5)
    >>> eps, net.size, round(delta, 6)
    (0.02, 25, 0.017941)
    """
    if horizon < 1 or not lipschitz > 0:
        raise InvalidMarketError("pricing", "horizon must be >= 1 and lipschitz > 0")
    eps = 1.0 / (lipschitz * math.sqrt(horizon))
    net = epsilon_net(b_max, eps)
    delta = min(DELTA_CAP, math.sqrt(math.log(net.size) / horizon))
    return eps, net, delta


@dataclass
class Epoch:
    """One run of Algorithm 1: its buyers ``[start, stop)``, tuning, and each net price's total charge."""

    start: int
    horizon: int
    eps: float
    net: FloatArray
    delta: float
    log_w: FloatArray
    totals: FloatArray
    stop: int = 0

    def probabilities(self) -> FloatArray:
        w = np.exp(self.log_w - self.log_w.max())
        out: FloatArray = w / w.sum()
        return out

    def ahk_bound(self, b_max: float) -> float:
        """The multiplicative-weights bound on this epoch's expected regret against its best net price."""
        if self.net.size == 1 or self.delta <= 0:
            return 0.0
        return self.delta * float(self.totals.max()) + b_max * math.log(self.net.size) / self.delta


@dataclass
class PricingTrace:
    """What Algorithm 1 did, buyer by buyer, and the totals behind the regret."""

    b_max: float
    posted: list[float] = field(default_factory=list)
    expected_price: list[float] = field(default_factory=list)
    expected_charge: list[float] = field(default_factory=list)
    charge: list[float] = field(default_factory=list)
    epochs: list[Epoch] = field(default_factory=list)
    reference: FloatArray | None = None
    reference_totals: FloatArray | None = None

    @property
    def n(self) -> int:
        return len(self.posted)

    def best_fixed(self) -> tuple[float, float]:
        """The best fixed price in hindsight among the reference grid and (one epoch only: the net saw
        every buyer) the net, with its total charge."""
        prices, totals = [], []
        if len(self.epochs) == 1:
            prices.append(self.epochs[0].net)
            totals.append(self.epochs[0].totals)
        if self.reference is not None and self.reference_totals is not None:
            prices.append(self.reference)
            totals.append(self.reference_totals)
        if not prices:
            raise InvalidMarketError("pricing", "the doubling trick needs a reference grid for the regret")
        p, t = np.concatenate(prices), np.concatenate(totals)
        i = int(np.argmax(t))
        return float(p[i]), float(t[i])

    def regret(self, expected: bool = True) -> float:
        """Best fixed total minus the algorithm's total (expected under its distributions, or posted)."""
        got = math.fsum(self.expected_charge if expected else self.charge)
        return self.best_fixed()[1] - got

    def learned_price(self) -> float:
        """The mean price of the last epoch's final weights."""
        e = self.epochs[-1]
        return float(e.probabilities() @ e.net)


class Pricer:
    """Algorithm 1 online: :meth:`post` draws the next price, :meth:`observe` updates the weights with
    the buyer's charge at every net price (module docstring; ``horizon=None``: doubling trick)."""

    def __init__(
        self,
        b_max: float,
        lipschitz: float,
        horizon: int | None,
        rng: np.random.Generator,
        reference: FloatArray | None = None,
    ) -> None:
        if not (np.isfinite(b_max) and b_max > 0):
            raise InvalidMarketError("pricing.max_bid", "must be positive")
        self.b_max = float(b_max)
        self.lipschitz = float(lipschitz)
        self.horizon = horizon
        self.rng = rng
        self.trace = PricingTrace(self.b_max, reference=reference)
        if reference is not None:
            self.trace.reference_totals = np.zeros(reference.size)
        self._pending: int | None = None

    def _epoch(self) -> Epoch:
        n = self.trace.n
        epochs = self.trace.epochs
        if epochs and (self.horizon is not None or n < epochs[-1].start + epochs[-1].horizon):
            return epochs[-1]
        horizon = self.horizon if self.horizon is not None else 2 ** len(epochs)
        eps, net, delta = algorithm1_parameters(horizon, self.b_max, self.lipschitz)
        if epochs:
            epochs[-1].stop = n
        e = Epoch(n, horizon, eps, net, delta, np.zeros(net.size), np.zeros(net.size), n)
        epochs.append(e)
        return e

    def post(self) -> float:
        """Draw ``p_n`` from the weights (before the bid)."""
        e = self._epoch()
        pi = e.probabilities()
        i = min(int(np.searchsorted(np.cumsum(pi), self.rng.random(), side="right")), pi.size - 1)
        self._pending = i
        return float(e.net[i])

    def observe(self, charge: Callable[[FloatArray], FloatArray]) -> None:
        """Record buyer ``n``'s charge ``charge(prices)`` at every net price and update the weights."""
        if self._pending is None:
            raise InvalidMarketError("pricing", "observe() needs a posted price (post() first)")
        e = self.trace.epochs[-1]
        ref = self.trace.reference
        prices = e.net if ref is None else np.concatenate([e.net, ref])
        r = np.asarray(charge(prices), dtype=np.float64)
        at_net = r[: e.net.size]
        pi = e.probabilities()
        t = self.trace
        t.posted.append(float(e.net[self._pending]))
        t.expected_price.append(float(pi @ e.net))
        t.expected_charge.append(float(pi @ at_net))
        t.charge.append(float(at_net[self._pending]))
        e.totals += at_net
        if ref is not None and t.reference_totals is not None:
            t.reference_totals += r[e.net.size :]
        e.log_w += np.log1p(e.delta * np.clip(at_net / self.b_max, 0.0, 1.0))
        e.stop = t.n
        self._pending = None


def closed_form_best(bids: FloatArray, b_max: float) -> tuple[float, float]:
    r"""The best fixed price in hindsight of the closed-form market (:math:`h_p(b) = \min(b/p, 1)`) and
    its total charge, exactly.

    :math:`\sum_n \mathrm{RF}^*(p, b_n) = \tfrac{p}{2}\#\{b_n \ge p\} + \sum_{b_n < p} b_n^2/(2p)` is convex
    in :math:`p` between consecutive bids, so its maximum over :math:`(0, B_{\max}]` is at a bid or at
    :math:`B_{\max}`.

    >>> price, total = closed_form_best(np.array([0.2, 0.9]), 1.0)
    >>> price, round(total, 12)   # 0.9/2 + 0.2^2/(2 * 0.9)
    (0.9, 0.472222222222)
    """
    b = np.sort(np.asarray(bids, dtype=np.float64))
    cand = np.unique(np.append(b[b > 0], b_max))
    below = np.searchsorted(b, cand, side="left")  # bids < p
    sq = np.concatenate([[0.0], np.cumsum(b * b)])
    totals = cand / 2 * (b.size - below) + sq[below] / (2 * cand)
    i = int(np.argmax(totals))
    return float(cand[i]), float(totals[i])
