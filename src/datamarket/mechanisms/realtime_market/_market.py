r"""One round per buyer (Agarwal, Dahleh, Sarkar, Sec. 2.4), and the closed-form market.

A round, for buyer :math:`n` arriving with its task, value :math:`\mu_n` and bid :math:`b_n`:

1. :math:`p_n = \mathrm{PF}^*(\text{history})`, drawn before the bid (Algorithm 1, :class:`Pricer`);
2. the buyer bids :math:`b_n` (truthful: :math:`b_n = \mu_n`, Thm 5.1);
3. the market measures the gain curve :math:`h` (AF* at every level of the grid, common random numbers)
   and allocates the level a bid of :math:`b_n` affords, :math:`\tilde X = \mathrm{AF}^*(p_n, b_n)`;
4. the buyer gains :math:`\mathcal G(Y_n, \mathcal M(\tilde X)) = h(b_n)` (it receives predictions,
   never the data, Rem. 2.4);
5. the market charges :math:`r_n = \mathrm{RF}^*(p_n, b_n)` (eq. 3) and Algorithm 1 updates its weights
   with the charge :math:`\mathrm{RF}^*(c, b_n)` at every net price :math:`c`;
6. :math:`\psi_n = \mathrm{PD}^*(Y_n, \tilde X)` splits :math:`r_n` (Algorithm 2 or 3).

Cost per buyer (Cor. 5.1 counts calls to the learner): ``K + 1`` fits for the curve, ``|C|(K + 1)``
arithmetic operations for the charges at the net (steps 1-5, :func:`answer_buyer`, the online answer),
and ``2^M`` fits (exact), ``2MK`` calls (Algorithm 2) or the engine's evaluations until its stopping
rule fires for the split. The closed-form market (:func:`run_closed_form`) has no sellers: every buyer's curve
is :math:`h_p(b) = \min(b/p, 1)`; it isolates AF*/RF*/PF*.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from datamarket.core.errors import InvalidMarketError
from datamarket.core.random import make_rng, spawn_seeds
from datamarket.core.types import FloatArray, Outcome, Role
from datamarket.mechanisms.realtime_market._allocation import (
    Allocation,
    ClosedFormCurve,
    GainCurve,
    measure_curve,
)
from datamarket.mechanisms.realtime_market._data import (
    CoalitionGame,
    Learner,
    Scorer,
    Streams,
    Task,
    TaskBuyer,
)
from datamarket.mechanisms.realtime_market._division import Division, DivisionSpec, divide
from datamarket.mechanisms.realtime_market._pricing import Pricer, PricingTrace, closed_form_best

PAPER = "Agarwal, Dahleh, Sarkar: A Marketplace for Data: An Algorithmic Solution (ACM EC 2019)"
Horizon = Literal["known", "doubling"]


@dataclass(frozen=True)
class MarketConfig:
    """The market's functions: AF* (``allocation``), RF*, PF* (bids in ``[0, max_bid]``, Lipschitz
    constant ``lipschitz``, ``horizon`` known or by doubling), PD* (``division``), the gain (``baseline``:
    against the no-data predictor) and the reference grid of the regret (``reference_points``)."""

    allocation: Allocation = field(default_factory=Allocation)
    division: DivisionSpec = field(default_factory=DivisionSpec)
    max_bid: float = 1.0
    lipschitz: float = 1.0
    horizon: Horizon = "known"
    baseline: bool = True
    reference_points: int = 201

    def __post_init__(self) -> None:
        if not (np.isfinite(self.max_bid) and self.max_bid > 0):
            raise InvalidMarketError("pricing.max_bid", "must be positive")
        if not (np.isfinite(self.lipschitz) and self.lipschitz > 0):
            raise InvalidMarketError("pricing.lipschitz", "must be positive")
        if self.horizon not in ("known", "doubling"):
            raise InvalidMarketError("pricing.horizon", "must be 'known' or 'doubling'")

    def reference(self) -> FloatArray:
        """The uniform grid of prices the best fixed price is searched on (besides the net)."""
        out: FloatArray = np.linspace(0.0, self.max_bid, self.reference_points)[1:]
        return out


@dataclass(frozen=True)
class Round:
    """What happened to one buyer: price, bid, delivered level and gain, charge, utility, the split."""

    buyer: str
    value: float
    bid: float
    price: float
    level: int
    gain: float
    charge: float
    curve: GainCurve
    division: Division

    @property
    def utility(self) -> float:
        """Eq. (1): :math:`\\mu_n \\mathcal G - r_n`."""
        return self.value * self.gain - self.charge

    def payments(self) -> FloatArray:
        return self.division.payments(self.charge)


@dataclass(frozen=True)
class MarketRun:
    """A run of the market over a sequence of buyers."""

    sellers: tuple[str, ...]
    config: MarketConfig
    rounds: tuple[Round, ...]
    pricing: PricingTrace

    @property
    def mechanism(self) -> str:
        return f"realtime_market.{self.config.division.rule}"

    def seller_payments(self) -> FloatArray:
        """Each seller's total payment over the run."""
        out: FloatArray = np.sum([r.payments() for r in self.rounds], axis=0)
        return out

    def unassigned(self) -> float:
        """The money charged and paid to no seller (PD*_B; zero for an exact PD*_A)."""
        return float(sum(r.charge * r.division.unassigned for r in self.rounds))

    def outcome(self) -> Outcome:
        """Buyers (gain delivered, charge, value :math:`\\mu_n \\mathcal G`) then sellers (share of the
        revenue received, payment); the platform keeps the unassigned revenue."""
        nb, pay = len(self.rounds), self.seller_payments()
        revenue = sum(r.charge for r in self.rounds)
        zeros = [0.0] * len(self.sellers)
        return Outcome(
            mechanism=self.mechanism,
            participants=(*(r.buyer for r in self.rounds), *self.sellers),
            roles=(Role.BUYER,) * nb + (Role.SELLER,) * len(self.sellers),
            allocated=[*(r.gain for r in self.rounds), *(pay / revenue if revenue > 0 else pay)],
            prices=[*(r.charge for r in self.rounds), *zeros],
            payments=[0.0] * nb + pay.tolist(),
            values=[*(r.value * r.gain for r in self.rounds), *zeros],
            costs=[0.0] * (nb + len(self.sellers)),
            extra={"rule": self.config.division.rule, "unassigned": self.unassigned()},
        )


def _round_seed(seq: np.random.SeedSequence) -> int:
    return int(seq.generate_state(1)[0])


def run_market(
    streams: Streams,
    buyers: Sequence[TaskBuyer],
    learner: Learner | None = None,
    config: MarketConfig | None = None,
    *,
    seed: int = 0,
) -> MarketRun:
    """Serve ``buyers`` one at a time (module docstring). Pure: the same seed gives the same run."""
    cfg = config or MarketConfig()
    learn = learner or Learner()
    if not buyers:
        raise InvalidMarketError("buyers", "need at least one buyer")
    for b in buyers:
        if b.task.labels.shape[0] != streams.length:
            raise InvalidMarketError(f"buyers[{b.name}].task", "needs one label per row of the streams")
        if b.b > cfg.max_bid:
            raise InvalidMarketError(f"buyers[{b.name}].bid", f"exceeds max_bid {cfg.max_bid} (Assumption 4)")
    seeds = spawn_seeds(seed, len(buyers) + 1)
    horizon = len(buyers) if cfg.horizon == "known" else None
    pricer = Pricer(cfg.max_bid, cfg.lipschitz, horizon, make_rng(seeds[0]), cfg.reference())
    rounds = [_round(streams, b, learn, cfg, pricer, s) for b, s in zip(buyers, seeds[1:], strict=True)]
    return MarketRun(streams.names, cfg, tuple(rounds), pricer.trace)


@dataclass(frozen=True)
class Answer:
    """The online answer to one buyer (steps 1-5: PF*, AF*, RF*): the posted price, the gain curve, the
    delivered level and its streams, the gain and the charge; the split (step 6) can follow offline."""

    price: float
    bid: float
    level: int
    gain: float
    charge: float
    curve: GainCurve
    scorer: Scorer
    allocated: FloatArray


def answer_buyer(
    streams: Streams, buyer: TaskBuyer, learner: Learner, config: MarketConfig, pricer: Pricer, seed: int
) -> Answer:
    """Steps 1-5 of the module docstring for one buyer (``seed``: the round's noise draw): the price
    from ``pricer`` (whose weights it updates), the curve (``K + 1`` fits), the level, gain and charge."""
    price = pricer.post()
    a = serve(streams, buyer.task, buyer.b, learner, config, price, seed)
    pricer.observe(lambda prices: a.curve.payment(prices, a.bid))
    return a


def serve(
    streams: Streams, task: Task, bid: float, learner: Learner, config: MarketConfig, price: float, seed: int
) -> Answer:
    """Steps 3-5 for one buyer at the posted ``price``, whatever chose it (:func:`answer_buyer`'s
    :class:`Pricer`, or the state the service keeps, :mod:`._online`): the curve with the common random
    numbers of ``seed`` (``K + 1`` fits), the level ``bid`` affords, the allocated streams, the gain and
    the charge."""
    scorer = Scorer.of(task, learner.classifier, config.baseline)
    curve, degrader = measure_curve(streams, task, learner, scorer, config.allocation, config.max_bid, seed)
    level = curve.level(price, bid)
    return Answer(
        price=price,
        bid=bid,
        level=level,
        gain=float(curve.gain([price], bid)[0]),
        charge=float(curve.payment([price], bid)[0]),
        curve=curve,
        scorer=scorer,
        allocated=degrader.apply(float(curve.grid[level])),
    )


def _round(
    streams: Streams, buyer: TaskBuyer, learner: Learner, cfg: MarketConfig, pricer: Pricer, seed: Any
) -> Round:
    """Steps 1-6 of the module docstring for one buyer."""
    noise_seed, split_seed = (_round_seed(s) for s in seed.spawn(2))
    a = answer_buyer(streams, buyer, learner, cfg, pricer, noise_seed)
    game = CoalitionGame(a.allocated, streams.ids, streams.names, buyer.task, learner, a.scorer)
    division = divide(game, streams.values, cfg.division, split_seed)
    return Round(
        buyer=buyer.name,
        value=float(buyer.value),
        bid=a.bid,
        price=a.price,
        level=a.level,
        gain=a.gain,
        charge=a.charge,
        curve=a.curve,
        division=division,
    )


@dataclass(frozen=True)
class ClosedFormRun:
    """Algorithm 1 on the closed-form market: the values (= truthful bids), the trace, and the exact
    best fixed price in hindsight with its total charge."""

    values: FloatArray
    pricing: PricingTrace
    best_price: float
    best_total: float

    @property
    def average_regret(self) -> float:
        """(best fixed total - expected total charge) / N."""
        return (self.best_total - float(np.sum(self.pricing.expected_charge))) / self.values.size


def run_closed_form(
    values: Any,
    *,
    max_bid: float = 1.0,
    lipschitz: float = 0.5,
    horizon: Horizon = "known",
    seed: int = 0,
) -> ClosedFormRun:
    """Algorithm 1 against truthful buyers of values ``values`` when :math:`h_p(b) = \\min(b/p, 1)`.

    ``lipschitz = 1/2`` is the Lipschitz constant of :math:`\\mathrm{RF}^*(p, b)` in :math:`p` there
    (:math:`|\\partial_p \\, b^2/(2p)| \\le 1/2` for :math:`p > b` and :math:`\\partial_p\\, p/2 = 1/2`).
    """
    mu = np.asarray(values, dtype=np.float64)
    if mu.ndim != 1 or mu.size == 0 or np.any(mu < 0) or np.any(mu > max_bid) or not np.all(np.isfinite(mu)):
        raise InvalidMarketError("values", f"need a non-empty list of values in [0, {max_bid}]")
    curve = ClosedFormCurve()
    pricer = Pricer(max_bid, lipschitz, mu.size if horizon == "known" else None, make_rng(seed))
    for b in mu:
        pricer.post()
        bid = float(b)
        pricer.observe(lambda prices, bid=bid: curve.payment(prices, bid))  # type: ignore[misc]
    best, total = closed_form_best(mu, max_bid)
    return ClosedFormRun(mu, pricer.trace, best, total)


def closed_form_revenue(price: Any) -> FloatArray:
    """Expected charge per truthful buyer of value :math:`\\mu \\sim U[0, 1]` at a fixed price
    :math:`p \\le 1`: :math:`R(p) = p/2 - p^2/3`, largest at :math:`p^* = 3/4` with :math:`R^* = 3/16`.

    >>> closed_form_revenue([0.75]).tolist()
    [0.1875]
    """
    p = np.asarray(price, dtype=np.float64)
    out: FloatArray = p / 2 - p * p / 3
    return out
