"""Declared guarantees of Chen et al.'s two mechanisms (the shared contract test runs them).

Kept apart from :mod:`._market` so that the simulation harness (:mod:`._simulation`, which backs M*'s IC
probes) can import the market without an import cycle: ``_guarantees -> _simulation -> _market``.
"""

from __future__ import annotations

from typing import Any

from datamarket.core.audits import MechanismInfo, Property, Scope
from datamarket.core.random import make_rng
from datamarket.mechanisms.broker._market import (
    PAPER,
    algorithm1_outcome,
    plan_collection,
    random_market,
    settle,
)
from datamarket.mechanisms.broker._simulation import ic_probes


def _sample_alg1(seed: int) -> Any:
    from datamarket.core.audits import Sample

    return Sample(algorithm1_outcome(random_market(seed)))


def _sample_mstar(seed: int) -> Any:
    from datamarket.core.audits import Sample

    market = random_market(seed)
    plan = plan_collection(market)
    rng = make_rng(seed + 1)
    mu = float(rng.normal())
    subs = {c: rng.normal(mu, market.sigma, plan.n_star[c]) for c in market.contributors}
    outcome = settle(market, plan, subs, seed=seed)
    return Sample(outcome, ic_probes(market, plan), tol=1e-9)


MECHANISMS: tuple[MechanismInfo, ...] = (
    MechanismInfo(
        name="broker_alg1",
        paper=PAPER,
        guarantees=frozenset(
            {Property.IR_BUYER, Property.IR_SELLER, Property.ENVY_FREE, Property.BUDGET_BALANCE_WEAK}
        ),
        sample=_sample_alg1,
        description="Algorithm 1 / Lemma 2: profit-optimal envy-free pricing, non-strategic contributors",
    ),
    MechanismInfo(
        name="broker_mstar",
        paper=PAPER,
        guarantees=frozenset(
            {
                Property.BUDGET_BALANCE_STRONG,
                Property.ENVY_FREE,
                Property.INCENTIVE_COMPATIBLE,
                Property.IR_BUYER,
                Property.IR_SELLER,
            }
        ),
        scopes={
            Property.IR_BUYER: Scope.EXPECTED,
            Property.IR_SELLER: Scope.EXPECTED,
            Property.ENVY_FREE: Scope.EX_ANTE,
        },
        sample=_sample_mstar,
        description="Algorithm 2 (M*): discrepancy-adjusted prices (14) and payments (15)",
        notes={
            "ir": "IRB and IRC hold in expectation (eqs. 9, 16), not ex post; audited by the scenario",
            "envy_free": "on the posted menu of expected prices q+ (ex post all prices shift equally)",
            "incentive_compatible": "Nash equilibrium, worst case over mu; probes: samples collected "
            "(mean-preserving submission) and mean shift, closed forms checked by Monte Carlo",
        },
    ),
)
