"""Declared guarantees of the real-time market (the shared contract test runs them).

``realtime_market.pricing`` is AF*, RF* and PF* alone, on the closed-form market; ``pd_a`` and ``pd_b``
run the whole round on a small generated market (three random streams, a linear task, three truthful
buyers). The buyers' incentive-compatibility probes sweep each buyer's bid over a grid with the round's
gain curve and price fixed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from datamarket.core.audits import ICProbe, MechanismInfo, Property, Sample
from datamarket.core.random import make_rng
from datamarket.core.types import Outcome, Role
from datamarket.mechanisms.realtime_market._allocation import ClosedFormCurve
from datamarket.mechanisms.realtime_market._data import Streams, Task, TaskBuyer
from datamarket.mechanisms.realtime_market._division import DivisionSpec, Rule
from datamarket.mechanisms.realtime_market._market import (
    PAPER,
    MarketConfig,
    MarketRun,
    run_closed_form,
    run_market,
)


def random_market(seed: int, rule: Rule = "pd_a", n_buyers: int = 3) -> MarketRun:
    """A run on a generated market: 3 streams of 40 rows, tasks ``y = X w + noise`` per buyer."""
    rng = make_rng(seed)
    x = rng.normal(size=(40, 3))
    streams = Streams(x, ("s1", "s2", "s3"))
    buyers = []
    for n in range(n_buyers):
        y = x @ rng.normal(size=3) + rng.normal(scale=0.5, size=40)
        buyers.append(TaskBuyer(f"buyer_{n + 1}", Task.split(y, 0.3, rng), float(rng.uniform(0.2, 1.0))))
    config = MarketConfig(division=DivisionSpec(rule=rule), max_bid=1.0)
    return run_market(streams, buyers, config=config, seed=seed)


def bid_utility(curve: Any, price: float, value: float) -> Callable[[float], float]:
    """A buyer's utility (eq. 1) as a function of its bid, its gain curve and price fixed."""

    def utility(bid: float) -> float:
        return float(curve.utility(price, value, [bid])[0])

    return utility


def ic_probes(run: MarketRun) -> tuple[ICProbe, ...]:
    """Each buyer's utility (eq. 1) as a function of its bid, its curve and price fixed."""
    grid = tuple(np.linspace(0.0, run.config.max_bid, 41).tolist())
    return tuple(ICProbe(r.buyer, bid_utility(r.curve, r.price, r.value), r.value, grid) for r in run.rounds)


def closed_form_sample(seed: int, n_buyers: int = 20) -> Sample:
    """Algorithm 1 on the closed-form market: buyers only (the platform keeps the charges)."""
    values = make_rng(seed).random(n_buyers)
    run = run_closed_form(values, seed=seed)
    curve = ClosedFormCurve()
    posted = np.asarray(run.pricing.posted)
    names = tuple(f"buyer_{n + 1}" for n in range(n_buyers))
    outcome = Outcome(
        mechanism="realtime_market.pricing",
        participants=names,
        roles=(Role.BUYER,) * n_buyers,
        allocated=np.minimum(values / posted, 1.0),
        prices=run.pricing.charge,
        values=values * np.minimum(values / posted, 1.0),
    )
    grid = tuple(np.linspace(0.0, 1.0, 41).tolist())
    probes = tuple(
        ICProbe(n, bid_utility(curve, float(p), float(v)), float(v), grid)
        for n, p, v in zip(names, posted, values, strict=True)
    )
    return Sample(outcome, probes, tol=1e-9)


def _sample(rule: Rule) -> Any:
    def sample(seed: int) -> Sample:
        run = random_market(seed, rule)
        return Sample(run.outcome(), ic_probes(run), tol=1e-9)

    return sample


_TRUTHFUL = "AF* with a monotone gain curve and the Myerson charge RF* (eq. 3): Thm 5.1"

MECHANISMS: tuple[MechanismInfo, ...] = (
    MechanismInfo(
        name="realtime_market.pricing",
        paper=PAPER,
        guarantees=frozenset(
            {Property.IR_BUYER, Property.INCENTIVE_COMPATIBLE, Property.BUDGET_BALANCE_WEAK}
        ),
        sample=closed_form_sample,
        description="AF*, RF* and PF* (Algorithm 1) without sellers: the closed form h_p(b) = min(b/p, 1)",
        notes={"incentive_compatible": "the Myerson charge of a non-decreasing h (Thm 5.1)"},
    ),
    MechanismInfo(
        name="realtime_market.pd_a",
        paper=PAPER,
        guarantees=frozenset(
            {
                Property.IR_BUYER,
                Property.INCENTIVE_COMPATIBLE,
                Property.BUDGET_BALANCE_STRONG,
                Property.BUDGET_BALANCE_WEAK,
            }
        ),
        sample=_sample("pd_a"),
        description="AF*, RF*, PF* (Algorithm 1) and PD*_A (Algorithm 2): Shapley shares summing to 1",
        notes={
            "incentive_compatible": _TRUTHFUL,
            "budget_balance_strong": "exact Shapley shares sum to 1 (Property 3.3); Algorithm 2's up to "
            "M eps with probability 1 - delta (Thm 5.3)",
            "ir_seller": "not claimed: a stream that lowers the held-out gain has a negative Shapley value",
        },
    ),
    MechanismInfo(
        name="realtime_market.pd_b",
        paper=PAPER,
        guarantees=frozenset({Property.IR_BUYER, Property.INCENTIVE_COMPATIBLE}),
        violates=frozenset({Property.BUDGET_BALANCE_STRONG}),
        sample=_sample("pd_b"),
        description="AF*, RF*, PF* and PD*_B (Algorithm 3): replication-robust shares, not renormalised",
        notes={
            "incentive_compatible": _TRUTHFUL,
            "budget_balance_strong": "lost by design: the penalised shares sum to less than 1 and the rest "
            "is unassigned (Thm 5.4, Prop. 5.1)",
        },
    ),
)
