r"""AF* and RF* (Agarwal, Dahleh, Sarkar, Sec. 4.1 and eq. 3): the allocation and the Myerson charge.

AF* degrades every stream by the same amount, driven by the shortfall of the bid :math:`z` below the
price :math:`p`; at :math:`z \ge p` the data are delivered untouched. Its two forms:

* **noise** (Ex. 4.1): :math:`\tilde X_j(t) = X_j(t) + (p - z)^+ \sigma s_j \varepsilon_j(t)`,
  :math:`\varepsilon_j(t) \sim N(0, 1)`; :math:`s_j` is stream :math:`j`'s standard deviation (the paper
  has one :math:`\sigma` for streams of any unit; scaling it by each stream's spread makes ``sigma`` a
  fraction of the signal);
* **mask** (Ex. 4.2): :math:`\tilde X_j(t) = \mathrm{Bern}(\theta)\,X_j(t)`, :math:`\theta = \min(z/p, 1)`.

Common random numbers and the monotone gain curve (Assumption 1)
-----------------------------------------------------------------
The gain curve :math:`h(z) = \mathcal G(Y_n, \mathcal M(\mathrm{AF}^*(z, p)))` must be non-decreasing for
the charge to be truthful (Thm 5.1), but a fresh noise draw per bid makes it random. Here:

1. one draw per round and per distinct stream content (:math:`\varepsilon` for noise, a uniform
   :math:`U_j(t)` for masking, kept where :math:`U_j(t) < \theta`), so that every bid degrades the same
   draw and copies of a stream stay identical (the paper's Assumption 2 under noise);
2. the degradation is taken on a grid of :math:`K + 1` levels, most degraded first: noise multipliers
   :math:`s_k = B_{\max}(K - k)/K` (the shortfall rounded up to the grid) or :math:`\theta_k = k/K` (rounded
   down); level :math:`k` is affordable at bids :math:`z \ge \tau_k(p)` with :math:`\tau_k = (p - s_k)^+` or
   :math:`\tau_k = p\,\theta_k`;
3. the buyer receives the affordable level of highest gain (``monotone=True``): :math:`h(z) = \max\{g_k :
   \tau_k \le z\}`, a non-decreasing step function; ``monotone=False`` delivers the least degraded
   affordable level, the paper's rule on the grid, whose :math:`h` can fall.

RF* (eq. 3) by exact integration
--------------------------------
:math:`\mathrm{RF}^*(p, b) = b\,h(b) - \int_0^b h(z)\,dz`. For a step function :math:`h(z) = \sum_k
\Delta_k \mathbf 1[z \ge \tau_k]` (:math:`\Delta_k` the jump at :math:`\tau_k`) the integral is a finite
sum of rectangles and

.. math:: \mathrm{RF}^*(p, b) = \sum_{k:\ \tau_k \le b} \Delta_k\,\tau_k ,

each increment of gain bought at the bid where it becomes affordable. Only :math:`[0, \min(b, p)]`
carries steps (:math:`\tau_k \le p`), so a bid above the price pays the same capped charge. No
quadrature is involved: the charge is exact up to the rounding of :math:`K + 1` products. The
buyer's utility (eq. 1) is :math:`U(b) = \mu h(b) - \mathrm{RF}^*(p, b) = \sum_{\tau_k \le b}
\Delta_k(\mu - \tau_k)`, largest at :math:`b = \mu` whenever every :math:`\Delta_k \ge 0`.

The closed-form market :math:`h_p(b) = \min(b/p, 1)` has :math:`\mathrm{RF}^* = b^2/(2p)` for
:math:`b < p` and :math:`p/2` otherwise (:class:`ClosedFormCurve`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from datamarket.core.errors import InvalidMarketError
from datamarket.core.random import make_rng
from datamarket.core.types import FloatArray
from datamarket.mechanisms.realtime_market._data import CoalitionGame, Learner, Scorer, Streams, Task

Form = Literal["noise", "mask"]


class Curve(Protocol):
    """A buyer's gain curve at every candidate price: the charge and the gain of a bid."""

    def payment(self, prices: Any, bid: float) -> FloatArray: ...

    def gain(self, prices: Any, bid: float) -> FloatArray: ...


@dataclass(frozen=True)
class Allocation:
    """AF*'s form (``noise`` or ``mask``), noise scale ``sigma``, grid size ``levels`` (K) and whether the
    delivered level is the best affordable one (``monotone``, module docstring)."""

    form: Form = "noise"
    sigma: float = 1.0
    levels: int = 16
    monotone: bool = True

    def __post_init__(self) -> None:
        if self.form not in ("noise", "mask"):
            raise InvalidMarketError("allocation.form", "must be 'noise' or 'mask'")
        if not np.isfinite(self.sigma) or self.sigma <= 0:
            raise InvalidMarketError("allocation.sigma", "must be positive")
        if not 1 <= int(self.levels) <= 1000:
            raise InvalidMarketError("allocation.levels", "must be between 1 and 1000")

    def grid(self, b_max: float) -> FloatArray:
        """Each level's degradation, most degraded first: noise multipliers or kept fractions."""
        k = np.arange(self.levels + 1, dtype=np.float64)
        if self.form == "noise":
            out: FloatArray = b_max * (self.levels - k) / self.levels
            return out
        return k / self.levels

    def thresholds(self, grid: FloatArray, prices: Any) -> FloatArray:
        """``tau[i, k]``: the least bid at which level ``k`` is affordable at price ``prices[i]``."""
        p = np.asarray(prices, dtype=np.float64).reshape(-1, 1)
        if self.form == "noise":
            out: FloatArray = np.maximum(p - grid[None, :], 0.0)
            return out
        return p * grid[None, :]


class Degrader:
    """One round's common random numbers: degrades the streams at any level with the same draw,
    one per distinct content (module docstring, step 1)."""

    def __init__(self, streams: Streams, allocation: Allocation, seed: int) -> None:
        self.streams = streams
        self.allocation = allocation
        draws: dict[str, FloatArray] = {}
        for cid in streams.ids:
            if cid not in draws:
                rng = make_rng(np.random.SeedSequence([seed, int(cid[:15], 16), int(cid[15:], 16)]))
                t = streams.length
                draws[cid] = rng.standard_normal(t) if allocation.form == "noise" else rng.random(t)
        self.draws = np.column_stack([draws[c] for c in streams.ids])
        self.scale = streams.values.std(axis=0)

    def apply(self, level: float) -> FloatArray:
        """The streams degraded at ``level`` (a noise multiplier or a kept fraction)."""
        x = self.streams.values
        if self.allocation.form == "noise":
            out: FloatArray = x + level * self.allocation.sigma * self.scale[None, :] * self.draws
            return out
        return np.where(self.draws < level, x, 0.0)


@dataclass(frozen=True)
class GainCurve:
    """A round's gain curve on the grid: ``gains[k]`` of level ``k`` (most degraded first), and the
    charge, gain and delivered level of a bid at any price (module docstring)."""

    allocation: Allocation
    grid: FloatArray
    gains: FloatArray

    def heights(self) -> FloatArray:
        """``h`` on each step, in threshold order: the running maximum, or the raw gains."""
        out: FloatArray = np.maximum.accumulate(self.gains) if self.allocation.monotone else self.gains
        return out

    def steps(self, prices: Any) -> tuple[FloatArray, FloatArray]:
        """Thresholds ``tau[i, k]``, jumps ``delta[k]``: :math:`h = \\sum_k \\Delta_k 1[z \\ge \\tau_k]`."""
        tau = self.allocation.thresholds(self.grid, prices)
        return tau, np.diff(self.heights(), prepend=0.0)

    def payment(self, prices: Any, bid: float) -> FloatArray:
        """RF* (eq. 3) at every price: :math:`\\sum_{\\tau_k \\le b} \\Delta_k \\tau_k`, exactly."""
        tau, delta = self.steps(prices)
        out: FloatArray = np.where(tau <= bid, tau, 0.0) @ delta
        return out

    def gain(self, prices: Any, bid: float) -> FloatArray:
        """:math:`h(b)` at every price."""
        tau, delta = self.steps(prices)
        out: FloatArray = (tau <= bid).astype(np.float64) @ delta
        return out

    def level(self, price: float, bid: float) -> int:
        """The level delivered at ``bid``: the affordable one of highest gain (the first such), or the
        least degraded affordable one (``monotone=False``)."""
        tau = self.allocation.thresholds(self.grid, [price])[0]
        last = int(np.flatnonzero(tau <= bid)[-1])
        if not self.allocation.monotone:
            return last
        return int(np.argmax(self.gains[: last + 1]))

    def utility(self, price: float, value: float, bids: Any) -> FloatArray:
        """Eq. (1): :math:`U(b) = \\mu h(b) - \\mathrm{RF}^*(p, b)` for every bid in ``bids``."""
        tau, delta = self.steps([price])
        b = np.asarray(bids, dtype=np.float64).reshape(-1, 1)
        out: FloatArray = np.where(tau[0][None, :] <= b, value - tau[0][None, :], 0.0) @ delta
        return out


@dataclass(frozen=True)
class ClosedFormCurve:
    """The closed-form market: :math:`h_p(b) = \\min(b/p, 1)`, so :math:`\\mathrm{RF}^* = b^2/(2p)` below
    the price and :math:`p/2` at or above it.

    >>> c = ClosedFormCurve()
    >>> c.payment([0.5, 1.0], 0.8).round(12).tolist(), c.gain([1.0], 0.5).tolist()   # p/2, b^2/(2p); h
    ([0.25, 0.32], [0.5])
    """

    def payment(self, prices: Any, bid: float) -> FloatArray:
        p = np.asarray(prices, dtype=np.float64)
        out: FloatArray = np.where(bid < p, bid * bid / (2 * p), p / 2)
        return out

    def gain(self, prices: Any, bid: float) -> FloatArray:
        out: FloatArray = np.minimum(bid / np.asarray(prices, dtype=np.float64), 1.0)
        return out

    def utility(self, price: float, value: float, bids: Any) -> FloatArray:
        b = np.asarray(bids, dtype=np.float64)
        out: FloatArray = value * np.minimum(b / price, 1.0) - np.where(
            b < price, b * b / (2 * price), price / 2
        )
        return out


def measure_curve(
    streams: Streams,
    task: Task,
    learner: Learner,
    scorer: Scorer,
    allocation: Allocation,
    b_max: float,
    seed: int,
) -> tuple[GainCurve, Degrader]:
    """The round's gain curve: the learner on every stream, degraded at each of the ``K + 1`` levels
    with the round's common random numbers (``K + 1`` fits), and the degrader that made them.

    Least squares under noise (:func:`_least_squares_gains`) shares one set of Gram matrices across the
    levels; any other learner or form is fitted level by level on the coalition game."""
    degrader = Degrader(streams, allocation, seed)
    grid = allocation.grid(b_max)
    if learner.alpha is not None and allocation.form == "noise":
        gains = _least_squares_gains(streams, task, learner.alpha, scorer, degrader, grid)
        return GainCurve(allocation, grid, gains), degrader
    gains = np.empty(grid.size)
    full = (1 << streams.n_sellers) - 1
    for k, level in enumerate(grid):
        game = CoalitionGame(degrader.apply(float(level)), streams.ids, streams.names, task, learner, scorer)
        gains[k] = game.value(full)
    return GainCurve(allocation, grid, gains), degrader


def _least_squares_gains(
    streams: Streams, task: Task, alpha: float, scorer: Scorer, degrader: Degrader, grid: FloatArray
) -> FloatArray:
    r"""The gains of least squares (ridge ``alpha``, intercept) on all distinct streams at every noise
    level :math:`s`, from three Gram matrices instead of one refit per level.

    The streams at level :math:`s` are :math:`X + sN` (:math:`N = \sigma\,s_j\,\varepsilon_j`, the
    round's draw), so with centred training rows :math:`X_c, N_c` and target :math:`y_c`:
    :math:`G_s = X_c^\top X_c + s(X_c^\top N_c + N_c^\top X_c) + s^2 N_c^\top N_c` and
    :math:`c_s = X_c^\top y_c + s N_c^\top y_c`; the weights solve :math:`(G_s + \alpha I) w = c_s`
    (minimum norm at :math:`\alpha = 0`), the coalition game's least-squares fit exactly, up to rounding
    (and, for a rank-deficient :math:`G_s`, up to the rank decision of a pivoted QR instead of an SVD).
    """
    keep = sorted({c: j for j, c in reversed(list(enumerate(streams.ids)))}.items())  # first column per id
    cols = [j for _, j in keep]
    test, m = task.test, len(cols)
    noise = degrader.allocation.sigma * degrader.scale[cols]
    x = np.hstack([streams.values[:, cols], degrader.draws[:, cols] * noise])  # [X, N]
    y = np.asarray(task.labels[~test], dtype=np.float64)
    train = x[~test]
    mean, my = train.mean(axis=0), float(y.mean())
    train -= mean
    gram, cross = train.T @ train, train.T @ (y - my)
    xx, xn, nn = gram[:m, :m], gram[:m, m:], gram[m:, m:]
    xy, ny = cross[:m], cross[m:]
    held = x[test] - mean
    xt, nt = held[:, :m], held[:, m:]
    from scipy.linalg import lstsq

    eye, cutoff = alpha * np.eye(m), np.finfo(np.float64).eps * m  # numpy's rcond
    gains = np.empty(grid.size)
    for k, s in enumerate(grid.tolist()):
        g, c = xx + s * (xn + xn.T) + (s * s) * nn, xy + s * ny
        if alpha > 0:
            w = np.linalg.solve(g + eye, c)
        else:  # minimum norm by a complete orthogonal factorisation (LAPACK gelsy), not an SVD
            w = lstsq(g, c, cond=cutoff, lapack_driver="gelsy", check_finite=False)[0]
        gains[k] = scorer(xt @ w + s * (nt @ w) + my)
    return gains
