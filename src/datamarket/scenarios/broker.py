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

from itertools import pairwise
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, PositiveFloat, model_validator

from datamarket.core.audits import AuditResult, Property, Scope, audit_outcome
from datamarket.core.random import make_rng
from datamarket.mechanisms.broker import BrokerMarket, certify_broker, plan_collection, settle, simulate
from datamarket.pricing.valuations import (
    Exponential,
    Gaussian,
    PiecewiseLinear,
    Tabulated,
    Threshold,
    Valuation,
)
from datamarket.scenarios._base import ScenarioConfig, ScenarioResult, StrictModel

Unit = Annotated[float, Field(ge=0.0, le=1.0)]


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
    scale: float = Field(
        default=1.0,
        gt=0.0,
        le=1.0,
        description="scale of the valuation, in (0, 1]",
        json_schema_extra={"unit": "money", "symbol": "α"},
    )
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


class ContributorSpec(StrictModel):
    name: str = Field(min_length=1, description="contributor name, unique", json_schema_extra={"symbol": "i"})
    cost: PositiveFloat = Field(
        description="cost of collecting one sample",
        json_schema_extra={"unit": "money per sample", "symbol": "c_i"},
    )


class Config(ScenarioConfig):
    kind: Literal["broker"]
    sigma: PositiveFloat = Field(
        default=1.0,
        description="standard deviation of the data distribution N(mu, sigma^2)",
        json_schema_extra={"unit": "data units", "symbol": "σ"},
    )
    buyers: list[BuyerSpec] = Field(min_length=1, description="the buyers", json_schema_extra={"symbol": "B"})
    contributors: list[ContributorSpec] = Field(
        min_length=2,
        description="the contributors (at least two: M* compares two datasets)",
        json_schema_extra={"symbol": "C"},
    )
    solver: Literal["auto", "E1", "E2", "E3", "support"] = Field(
        default="auto",
        description="pricing oracle of Algorithm 1: auto, enumeration E1, MILP E2, DP E3 or support",
    )
    delta: PositiveFloat = Field(
        default=0.1,
        description="grid parameter of the support-restriction approximation",
        json_schema_extra={"unit": "1", "symbol": "δ"},
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
    market = market_of(config)
    plan = plan_collection(market)
    sim = simulate(
        market, plan, reps=config.reps, mus=tuple(config.mus), guess=config.guess, seed=config.seed
    )
    rng = make_rng(config.seed)
    subs = {c: rng.normal(config.true_mean, market.sigma, plan.n_star[c]) for c in market.contributors}
    outcome = settle(market, plan, subs, seed=config.seed)

    nb = len(market.buyers)
    table = market.table
    own = table[np.arange(nb), plan.allocations]
    menu = table[np.arange(nb)[:, None], plan.allocations[None, :]] - plan.prices[None, :]
    paid = (plan.contributor_1, plan.contributor_2)
    exp_pay = {c: 0.0 for c in market.contributors}
    for k, c in enumerate(paid):
        exp_pay[c] = float(sim.expected_payments[k])
    gains = sim.deviation_gain()
    gap = float(plan.algorithm1.gaps.sum())
    fields: dict[str, Any] = {
        "n_plus": plan.n_plus,
        "allocations": dict(zip(market.buyers, plan.allocations.tolist(), strict=True)),
        "prices": dict(zip(market.buyers, plan.prices.tolist(), strict=True)),
        "opt_profit": plan.opt_profit,
        "mechanism_profit": plan.mechanism_profit,
        "collection": dict(plan.n_star),
        "simulation": {
            "expected_prices": dict(zip(market.buyers, sim.expected_prices.tolist(), strict=True)),
            "expected_payments": exp_pay,
            "max_budget_imbalance": sim.max_budget_imbalance,
            "deviation_gain": gains,
        },
    }
    irb = float(max(0.0, -(own - plan.prices).min()))
    efb = float(max(0.0, (menu.max(axis=1) - (own - plan.prices)).max()))
    irc = max(0.0, -plan.w)
    worst_icc = max(d.gain - 4 * d.gain_se for d in sim.deviations if d.strategy != "truthful")
    ex_post = audit_outcome(outcome)
    audits = {
        "ir_buyer": AuditResult(
            Property.IR_BUYER, irb <= 1e-9, irb, "v_j(m+) - E p*_j (= q+, eq. 16)", Scope.EXPECTED
        ),
        "envy_free": AuditResult(Property.ENVY_FREE, efb <= 1e-9, efb, "posted menu (m+, q+)", Scope.EX_ANTE),
        "ir_seller": AuditResult(
            Property.IR_SELLER, irc <= 1e-9, irc, "E pi*_i - c_i N*_i = W N*_i / N+", Scope.EXPECTED
        ),
        "incentive_compatible": AuditResult(
            Property.INCENTIVE_COMPATIBLE,
            worst_icc <= 0,
            max(0.0, worst_icc),
            "largest worst-case deviation gain minus 4 Monte Carlo standard errors",
            Scope.EXPECTED,
        ),
        "budget_balance_strong": AuditResult(
            Property.BUDGET_BALANCE_STRONG,
            sim.max_budget_imbalance <= 1e-9,
            sim.max_budget_imbalance,
            f"max |sum p - sum pi| over {sim.reps} realisations",
            Scope.EX_POST,
        ),
        # The settled outcome is one realisation: prices p*_j and payments pi*_i shift with the
        # submitted data, so ex post IR can fail even though it holds in expectation (eqs. 9, 16).
        "ex_post.ir_buyer": ex_post["ir_buyer"],
        "ex_post.ir_seller": ex_post["ir_seller"],
    }
    po_bound = plan.opt_profit - (plan.c2 - plan.c1) - gap
    rows_pricing = [
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
    ]
    rows_collection = [
        {
            "contributor": c,
            "cost": float(market.costs[k]),
            "n_star": plan.n_star[c],
            "expected_payment_mc": exp_pay[c],
            "expected_payment_theory": (plan.c1 * plan.n1 + plan.w * plan.n1 / plan.n_plus)
            if c == paid[0]
            else (plan.c2 * plan.n2 + plan.w * plan.n2 / plan.n_plus)
            if c == paid[1]
            else 0.0,
        }
        for k, c in enumerate(market.contributors)
    ]
    rows_dev = [
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
    ]
    rows_profit = [
        {
            "opt_profit": plan.opt_profit,
            "n_opt": plan.opt_n,
            "n_plus": plan.n_plus,
            "profit_at_n_plus": plan.profit_n_plus,
            "mechanism_profit_w": plan.w,
            "cost_gap_c2_minus_c1": plan.c2 - plan.c1,
            "profit_bound_holds": plan.w >= po_bound - 1e-9,
            "split": plan.split,
        }
    ]
    return ScenarioResult(
        kind="broker",
        seed=config.seed,
        fields=fields,
        outcome=outcome,
        audits=audits,
        certificate=certify_broker(market, plan, outcome),
        tables={
            "pricing": rows_pricing,
            "collection": rows_collection,
            "deviations": rows_dev,
            "profit": rows_profit,
        },
        audit_aliases={
            "irb": "ir_buyer",
            "efb": "envy_free",
            "irc": "ir_seller",
            "icc": "incentive_compatible",
            "bb": "budget_balance_strong",
        },
    )
