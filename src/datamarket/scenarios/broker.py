"""Scenario kind ``broker``: the mean-estimation broker of Chen et al. (Algorithms 1 and 2, M*).

JSON fields (public interface): ``n_plus``, ``allocations`` (m+ per buyer), ``prices`` (q+ per buyer),
``opt_profit`` (OPT, eq. 3), ``mechanism_profit`` (W, the expected profit of M*), ``collection`` (N*_i
per contributor) and ``simulation`` with ``expected_prices``, ``expected_payments``,
``max_budget_imbalance`` and ``deviation_gain`` (worst case over the true means, largest over the two
paid contributors, per deviation). See ``docs/broker.md``.

Audits: ``ir_buyer`` and ``ir_seller`` in expectation (eqs. 9, 16), ``envy_free`` on the posted menu (ex
ante), ``incentive_compatible`` in expectation (worst case over the true mean), ``budget_balance_strong``
ex post over every simulated realisation, and ``ex_post.ir_buyer`` / ``ex_post.ir_seller`` of the one
settled outcome (the paper does not guarantee these). The keys ``irb``, ``efb``, ``irc``, ``icc``, ``bb``
of schema version 1 are deprecated aliases.

Certificate (:func:`~datamarket.mechanisms.broker.certify_broker`): ``pricing.envy_free``,
``pricing.ir_buyer``, ``pricing.revenue``, ``pricing.optimality_gap``, ``mstar.expected_profit``,
``mstar.transfers`` and ``mstar.budget_balance`` of the settled round.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, PositiveFloat, model_validator

from datamarket.core.audits import (
    AuditResult,
    Property,
    Scope,
    audit_envy_free,
    audit_ir_buyers,
    audit_ir_sellers,
    audit_outcome,
)
from datamarket.core.certificates import Certificate
from datamarket.core.random import make_rng
from datamarket.core.types import Offers, Outcome, Role
from datamarket.mechanisms.broker import (
    BrokerMarket,
    CollectionPlan,
    SimulationResult,
    certify_broker,
    plan_collection,
    settle,
    simulate,
)
from datamarket.pricing.valuations import (
    Exponential,
    Gaussian,
    PiecewiseLinear,
    Tabulated,
    Threshold,
    Valuation,
)
from datamarket.scenarios._base import ResultFields, ScenarioConfig, ScenarioResult, StrictModel
from datamarket.scenarios.inputs.broker import Cost, Params, scale_field

Unit = Annotated[float, Field(ge=0.0, le=1.0)]

#: The incentive-compatibility audit allows each Monte Carlo gain this many standard errors.
IC_STANDARD_ERRORS = 4


class BuyerSpec(StrictModel):
    """A buyer and its error valuation: ``threshold`` (t), ``gaussian`` (tau), ``exponential`` (tau),
    ``piecewise`` (errors, values: a non-increasing error valuation) or ``table`` (values: the data
    valuation v(1), v(2), ... directly, non-decreasing)."""

    name: str = Field(min_length=1, description="buyer name, unique", json_schema_extra={"symbol": "j"})
    valuation: Literal["threshold", "gaussian", "exponential", "piecewise", "table"] = Field(
        description="error valuation v^e: threshold, gaussian, exponential, piecewise, or a table of v(m)",
        json_schema_extra={"symbol": "v^e_j"},
    )
    t: PositiveFloat | None = Field(
        default=None,
        description="error threshold of v^e(e) = 1[e <= t]",
        json_schema_extra={"unit": "data units", "symbol": "t"},
    )
    tau: PositiveFloat | None = Field(
        default=None,
        description="width of the gaussian or exponential error valuation",
        json_schema_extra={"unit": "data units", "symbol": "τ"},
    )
    scale: float = scale_field()
    errors: list[Annotated[float, Field(ge=0.0)]] | None = Field(
        default=None,
        description="breakpoints of a piecewise-linear error valuation",
        json_schema_extra={"unit": "data units", "symbol": "e"},
    )
    values: list[Unit] | None = Field(
        default=None,
        min_length=1,
        description="values at the breakpoints (piecewise) or v(1), v(2), ... (table)",
        json_schema_extra={"unit": "money", "symbol": "v"},
    )

    @model_validator(mode="after")
    def _params(self) -> BuyerSpec:
        need = {
            "threshold": ("t",),
            "gaussian": ("tau",),
            "exponential": ("tau",),
            "piecewise": ("errors", "values"),
            "table": ("values",),
        }[self.valuation]
        for p in need:
            if getattr(self, p) is None:
                raise ValueError(f"valuation {self.valuation!r} needs {p!r}")
        v = self.values or []
        if self.valuation == "table" and any(b < a for a, b in pairwise(v)):
            raise ValueError("values: data valuation must be non-decreasing in m")
        if self.valuation == "piecewise" and any(b > a for a, b in pairwise(v)):
            raise ValueError("values: error valuation must be non-increasing in the error")
        return self

    def build(self) -> Valuation:
        if self.valuation == "threshold":
            return Threshold(float(self.t), self.scale)  # type: ignore[arg-type]
        if self.valuation == "gaussian":
            return Gaussian(float(self.tau), self.scale)  # type: ignore[arg-type]
        if self.valuation == "exponential":
            return Exponential(float(self.tau), self.scale)  # type: ignore[arg-type]
        if self.valuation == "piecewise":
            return PiecewiseLinear(self.errors or [], self.values or [], self.scale)
        return Tabulated([self.scale * x for x in self.values or []])


class ContributorSpec(Cost):
    """A contributor: its name and per-sample cost (the service's ``cost`` submission)."""

    name: str = Field(min_length=1, description="contributor name, unique", json_schema_extra={"symbol": "i"})


class Config(Params, ScenarioConfig):
    """A broker scenario: the market parameters (:class:`~datamarket.scenarios.inputs.broker.Params`,
    shared with the service), the buyers and contributors, and the strategic simulation."""

    kind: Literal["broker"]
    buyers: list[BuyerSpec] = Field(min_length=1, description="the buyers", json_schema_extra={"symbol": "B"})
    contributors: list[ContributorSpec] = Field(
        min_length=2,
        description="the contributors (at least two: M* compares two datasets)",
        json_schema_extra={"symbol": "C"},
    )
    true_mean: float = Field(
        default=0.0,
        description="the mean contributors sample from in the settled round",
        json_schema_extra={"unit": "data units", "symbol": "μ"},
    )
    reps: int = Field(
        default=20_000,
        ge=100,
        le=1_000_000,
        description="Monte Carlo rounds of the strategic simulation",
        json_schema_extra={"unit": "rounds"},
    )
    mus: list[float] = Field(
        default_factory=lambda: [-3.0, 0.0, 1.7, 6.0],
        min_length=1,
        description="true means over which deviation gains are maximised (worst case)",
        json_schema_extra={"unit": "data units", "symbol": "μ"},
    )
    guess: float = Field(
        default=0.0,
        description="the mean a fabricating contributor guesses",
        json_schema_extra={"unit": "data units"},
    )


class Fields(ResultFields):
    """The kind's JSON fields (public interface)."""

    n_plus: int = Field(description="N+ (total samples collected)")
    allocations: dict[str, Any] = Field(description="m+ per buyer")
    prices: dict[str, Any] = Field(description="q+ per buyer")
    opt_profit: float | None = Field(description="OPT (eq. 3)")
    mechanism_profit: float | None = Field(description="W, expected profit of M*")
    collection: dict[str, Any] = Field(description="N*_i per contributor")
    simulation: dict[str, Any] = Field(
        description="expected_prices, expected_payments, max_budget_imbalance, deviation_gain"
    )


def default_config() -> Config:
    """Three buyers (threshold, Gaussian, exponential error valuations) and three contributors."""
    return Config.model_validate(
        {
            "kind": "broker",
            "name": "three buyers, three contributors",
            "sigma": 1.0,
            "buyers": [
                {"name": "lab", "valuation": "threshold", "t": 0.3},
                {"name": "startup", "valuation": "gaussian", "tau": 0.7071, "scale": 0.8},
                {"name": "agency", "valuation": "exponential", "tau": 1.0, "scale": 0.5},
            ],
            "contributors": [
                {"name": "alice", "cost": 0.03},
                {"name": "bob", "cost": 0.04},
                {"name": "carol", "cost": 0.06},
            ],
            "reps": 20_000,
        }
    )


def market_of(config: Config) -> BrokerMarket:
    """The library market of a validated config."""
    return BrokerMarket(
        buyers=tuple(b.name for b in config.buyers),
        valuations=tuple(b.build() for b in config.buyers),
        contributors=tuple(c.name for c in config.contributors),
        costs=tuple(c.cost for c in config.contributors),
        sigma=config.sigma,
        solver=config.solver,
        delta=config.delta,
    )


def run(config: Config) -> ScenarioResult:
    """Plan (Algorithm 1, eq. 13), simulate M* strategically, settle one round and audit it.

    1. :func:`plan_collection` fixes ``N*_i``, ``m_j+`` and the posted prices ``q_j+``;
    2. :func:`simulate` estimates expected prices, payments, budget balance and every deviation's gain
       (worst case over ``mus``);
    3. one round is settled on data drawn at ``true_mean`` (eqs. 14, 15) and certified
       (:func:`certify_broker`);
    4. the audits: the posted menu in expectation (:func:`expected_outcome`), the simulation
       (:func:`simulation_audits`) and the settled round ex post.
    """
    market = market_of(config)
    plan = plan_collection(market)
    sim = simulate(
        market, plan, reps=config.reps, mus=tuple(config.mus), guess=config.guess, seed=config.seed
    )
    rng = make_rng(config.seed)
    subs = {c: rng.normal(config.true_mean, market.sigma, plan.n_star[c]) for c in market.contributors}
    outcome = settle(market, plan, subs, seed=config.seed)
    certificate = certify_broker(market, plan, outcome)
    ex_post = audit_outcome(outcome)
    audits = {
        **expected_audits(market, plan, certificate),
        **simulation_audits(sim, certificate),
        # The settled outcome is one realisation: prices p*_j and payments pi*_i shift with the
        # submitted data, so ex post IR can fail even though it holds in expectation (eqs. 9, 16).
        "ex_post.ir_buyer": ex_post["ir_buyer"],
        "ex_post.ir_seller": ex_post["ir_seller"],
    }
    return ScenarioResult(
        kind="broker",
        seed=config.seed,
        fields=_fields(market, plan, sim),
        outcome=outcome,
        audits=audits,
        certificate=certificate,
        tables=_tables(market, plan, sim),
        audit_aliases={
            "irb": "ir_buyer",
            "efb": "envy_free",
            "irc": "ir_seller",
            "icc": "incentive_compatible",
            "bb": "budget_balance_strong",
        },
    )


def expected_payment(plan: CollectionPlan, contributor: str) -> float:
    """``E pi*_i = c_i N*_i + W N*_i / N+`` on path (Thm 5.1); 0 for a contributor asked for nothing."""
    if contributor == plan.contributor_1:
        return plan.c1 * plan.n1 + plan.w * plan.n1 / plan.n_plus
    if contributor == plan.contributor_2:
        return plan.c2 * plan.n2 + plan.w * plan.n2 / plan.n_plus
    return 0.0


def expected_outcome(market: BrokerMarket, plan: CollectionPlan) -> Outcome:
    """M* in expectation: buyers get ``m_j+`` at ``E p*_j = q_j+`` (eq. 16) from the posted menu,
    contributors are paid ``E pi*_i`` for ``N*_i`` points at cost ``c_i N*_i``."""
    nb, nc = len(market.buyers), len(market.contributors)
    table, m = market.table, np.asarray(plan.allocations)
    costs = [float(market.costs[k]) * plan.n_star[c] for k, c in enumerate(market.contributors)]
    return Outcome(
        mechanism="broker_mstar",
        participants=(*market.buyers, *market.contributors),
        roles=(Role.BUYER,) * nb + (Role.SELLER,) * nc,
        allocated=[*m.tolist(), *(plan.n_star[c] for c in market.contributors)],
        prices=[*np.asarray(plan.prices).tolist(), *([0.0] * nc)],
        payments=[*([0.0] * nb), *(expected_payment(plan, c) for c in market.contributors)],
        values=[*table[np.arange(nb), m].tolist(), *([0.0] * nc)],
        costs=[*([0.0] * nb), *costs],
        offers=Offers(table[np.arange(nb)[:, None], m[None, :]], np.asarray(plan.prices), np.arange(nb)),
    )


def expected_audits(market: BrokerMarket, plan: CollectionPlan, cert: Certificate) -> dict[str, AuditResult]:
    """IR of buyers and sellers in expectation and EF of the posted menu ex ante, on
    :func:`expected_outcome`, each within the tolerance of the certificate's check of that claim."""
    o = expected_outcome(market, plan)
    ir_b = audit_ir_buyers(o, cert["pricing.ir_buyer"].tolerance)
    ef = audit_envy_free(o, cert["pricing.envy_free"].tolerance)
    ir_s = audit_ir_sellers(o, cert["mstar.expected_profit"].tolerance)
    return {
        "ir_buyer": replace(ir_b, detail="v_j(m+) - E p*_j (= q+, eq. 16)", scope=Scope.EXPECTED),
        "envy_free": replace(ef, detail="posted menu (m+, q+)", scope=Scope.EX_ANTE),
        "ir_seller": replace(ir_s, detail="E pi*_i - c_i N*_i = W N*_i / N+", scope=Scope.EXPECTED),
    }


def simulation_audits(sim: SimulationResult, cert: Certificate) -> dict[str, AuditResult]:
    """Incentive compatibility in expectation (each deviation's worst-case Monte Carlo gain, less
    :data:`IC_STANDARD_ERRORS` standard errors, is at most 0) and strong budget balance on every
    simulated realisation, within the tolerance of the settled round's balance check."""
    worst = max(d.gain - IC_STANDARD_ERRORS * d.gain_se for d in sim.deviations if d.strategy != "truthful")
    bb_tol = cert["mstar.budget_balance"].tolerance
    return {
        "incentive_compatible": AuditResult(
            Property.INCENTIVE_COMPATIBLE,
            worst <= 0,
            max(0.0, worst),
            f"largest worst-case deviation gain minus {IC_STANDARD_ERRORS} Monte Carlo standard errors",
            Scope.EXPECTED,
        ),
        "budget_balance_strong": AuditResult(
            Property.BUDGET_BALANCE_STRONG,
            sim.max_budget_imbalance <= bb_tol,
            sim.max_budget_imbalance,
            f"max |sum p - sum pi| over {sim.reps} realisations",
            Scope.EX_POST,
        ),
    }


def _fields(market: BrokerMarket, plan: CollectionPlan, sim: SimulationResult) -> dict[str, Any]:
    """The kind's JSON fields (:class:`Fields`)."""
    buyers = market.buyers
    return {
        "n_plus": plan.n_plus,
        "allocations": dict(zip(buyers, plan.allocations.tolist(), strict=True)),
        "prices": dict(zip(buyers, plan.prices.tolist(), strict=True)),
        "opt_profit": plan.opt_profit,
        "mechanism_profit": plan.mechanism_profit,
        "collection": dict(plan.n_star),
        "simulation": {
            "expected_prices": dict(zip(buyers, sim.expected_prices.tolist(), strict=True)),
            "expected_payments": _mc_payments(market, plan, sim),
            "max_budget_imbalance": sim.max_budget_imbalance,
            "deviation_gain": sim.deviation_gain(),
        },
    }


def _mc_payments(market: BrokerMarket, plan: CollectionPlan, sim: SimulationResult) -> dict[str, float]:
    """Monte Carlo expected payment per contributor (0 for those asked for nothing)."""
    out = {c: 0.0 for c in market.contributors}
    for k, c in enumerate((plan.contributor_1, plan.contributor_2)):
        out[c] = float(sim.expected_payments[k])
    return out


def _tables(market: BrokerMarket, plan: CollectionPlan, sim: SimulationResult) -> dict[str, Any]:
    """The pricing, collection, deviations and profit tables."""
    nb = len(market.buyers)
    own = market.table[np.arange(nb), plan.allocations]
    mc = _mc_payments(market, plan, sim)
    gap = float(plan.algorithm1.gaps.sum())
    return {
        "pricing": [
            {
                "buyer": b,
                "m_plus": int(plan.allocations[j]),
                "value_at_m_plus": float(own[j]),
                "q_plus": float(plan.prices[j]),
                "expected_price_mc": float(sim.expected_prices[j]),
                "expected_price_se": float(sim.price_se[j]),
                "realised_expected_value": float(sim.realised_values[j]),
            }
            for j, b in enumerate(market.buyers)
        ],
        "collection": [
            {
                "contributor": c,
                "cost": float(market.costs[k]),
                "n_star": plan.n_star[c],
                "expected_payment_mc": mc[c],
                "expected_payment_theory": expected_payment(plan, c),
            }
            for k, c in enumerate(market.contributors)
        ],
        "deviations": [
            {
                "contributor": d.contributor,
                "deviation": d.strategy,
                "collected": d.n_collected,
                "gain_mc": d.gain,
                "gain_se": d.gain_se,
                "gain_closed_form": d.closed_form_gain,
                "worst_mu": d.worst_mu,
            }
            for d in sim.deviations
        ],
        "profit": [
            {
                "opt_profit": plan.opt_profit,
                "n_opt": plan.opt_n,
                "n_plus": plan.n_plus,
                "profit_at_n_plus": plan.profit_n_plus,
                "mechanism_profit_w": plan.w,
                "cost_gap_c2_minus_c1": plan.c2 - plan.c1,
                "profit_bound_holds": plan.w >= plan.opt_profit - (plan.c2 - plan.c1) - gap - 1e-9,
                "split": plan.split,
            }
        ],
    }
