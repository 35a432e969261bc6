"""Scenario kind ``balanced_market``: Chaintreau et al.'s online data market and the balance intervention.

JSON fields (public interface): ``reserve_prices``, ``rho``, ``thresholds`` (per-group participation
thresholds: tau_g = rho_g c_G of Claim 4.1 with one shared learning curve; with per-buyer curves the general
threshold sup_S F(S)/S of the group's revenue F over totals S), ``baseline`` and ``intervention`` (each
``forms``, ``production`` sellers x groups, ``total`` per group, ``active_groups``, ``utilities``
{``marketplace``, ``sellers``, ``buyers``}), ``utility_ratios`` {``marketplace``, ``sellers``, ``buyers``}
(NaN -> null when the baseline utility is 0), ``backfire``, ``price_of_fairness``, ``kappa_gamma`` (kappa_j .
gamma per seller), ``tau_H_max``, ``equilibria`` {``baseline``, ``intervention`` (numbers of equilibria
found, up to permutations of sellers with equal costs), ``selection`` (the rule that picks one)},
``payments`` {``baseline``, ``intervention``} (Shapley payments per seller, eq. 7),
``best_response_regrets`` (each seller's gain from its exact best response; under ``shapley_nash`` the
regrets of the certificate), ``summary`` (every quantity of the summary table) and ``growth`` (the growth /
utility-ratio sequence; default buyer counts: every count up to 12 buyers, else a quarter, half and all).
Every result carries the ``certificate`` of its equilibria (every seller's best-response regret, or the
joint optimum under ``model = "paper"``), the payments' efficiency and the growth table's markets; its
status is ``no_equilibrium_found`` when a sub-game's search verified no profile.
``model = "paper" | "shapley_nash"`` selects the equilibrium model; an optional ``[empirical]`` table also
runs real rounds on scikit-learn's digits.

>>> cfg = default_config()
>>> sorted(run(cfg).fields)[:6]
['backfire', 'baseline', 'best_response_regrets', 'equilibria', 'growth', 'intervention']
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, field_validator

from datamarket.core.audits import audit_outcome
from datamarket.core.certificates import Check
from datamarket.mechanisms.balanced_market import (
    BalancedMarket,
    MarketSolution,
    analyse,
    best_response_regrets,
    default_growth_sizes,
    digits_market,
    fully_forming,
    group_terms,
    growth_sequence,
    intervention_terms,
    optimal_gamma,
    regrets,
    round_outcome,
    run_empirical_round,
)
from datamarket.scenarios._base import ResultFields, ScenarioConfig, ScenarioResult, StrictModel
from datamarket.scenarios.inputs.balanced_market import Bid, Cost, Market


class CurveConfig(StrictModel):
    """Learning curve G(n) = (Z - alpha n^-beta)_+ (Chaintreau et al., eq. 2); all parameters > 0."""

    Z: PositiveFloat = Field(
        default=1.0,
        description="asymptotic accuracy of the learning curve G(n) = (Z - alpha n^-beta)_+ (eq. 2)",
        json_schema_extra={"unit": "accuracy", "symbol": "Z"},
    )
    alpha: PositiveFloat = Field(
        default=1.0,
        description="scale of the learning curve's error term (eq. 2)",
        json_schema_extra={"unit": "accuracy", "symbol": "α"},
    )
    beta: PositiveFloat = Field(
        default=1.0,
        description="decay exponent of the learning curve (eq. 2)",
        json_schema_extra={"unit": "1", "symbol": "β"},
    )


class SellerConfig(Cost):
    """A seller: its name and unit costs per group (the service's ``cost`` submission)."""

    name: str = Field(min_length=1, description="seller name, unique", json_schema_extra={"symbol": "j"})


class BuyerConfig(Bid):
    """A buyer: its name, values per group (the service's ``bid`` submission) and learning curves."""

    name: str = Field(min_length=1, description="buyer name, unique", json_schema_extra={"symbol": "i"})
    curves: list[CurveConfig] | None = Field(
        default=None,
        description="one learning curve per group for this buyer (default: `curve`)",
        json_schema_extra={"symbol": "G_{i,g}"},
    )
    test_samples: list[NonNegativeInt] | None = Field(
        default=None,
        description="empirical mode: labelled test samples per group (default: `empirical.test_per_group`)",
        json_schema_extra={"unit": "samples"},
    )


class EmpiricalConfig(StrictModel):
    """A real round on digits with the equilibrium production scaled to sample counts."""

    grouping: Literal["label_partition", "stroke"] = Field(
        default="label_partition",
        description="how digits form the groups: a label partition (0-4 / 5-9) or the ink-stroke attribute",
        json_schema_extra={"symbol": "g"},
    )
    samples_per_unit: PositiveFloat = Field(
        default=10.0,
        description="digits per unit of equilibrium production",
        json_schema_extra={"unit": "samples"},
    )
    test_per_group: PositiveInt = Field(
        default=60,
        description="labelled test digits per buyer and group",
        json_schema_extra={"unit": "samples"},
    )


class Config(Market, ScenarioConfig):
    """A balanced-market scenario: the market parameters
    (:class:`~datamarket.scenarios.inputs.balanced_market.Market`, shared with the service), the named
    groups, the target demographics, the learning curves, sellers and buyers."""

    kind: Literal["balanced_market"] = "balanced_market"
    model: Literal["paper", "shapley_nash"] = Field(
        default="paper",
        description="equilibrium model: the paper's closed forms or the exact Shapley-Nash game",
    )
    groups: list[str] = Field(
        min_length=1, description="group names (demographic groups)", json_schema_extra={"symbol": "G"}
    )
    gamma: list[NonNegativeFloat] = Field(
        min_length=1,
        description="target demographics of the intervention, on the simplex",
        json_schema_extra={"unit": "share", "symbol": "γ"},
    )
    curve: CurveConfig = Field(
        default=CurveConfig(),
        description="learning curve shared by every buyer and group",
        json_schema_extra={"symbol": "G"},
    )
    sellers: list[SellerConfig] = Field(
        min_length=1, description="the sellers (at least one)", json_schema_extra={"symbol": "M"}
    )
    buyers: list[BuyerConfig] = Field(
        min_length=1, description="the buyers (at least one)", json_schema_extra={"symbol": "N"}
    )
    growth: list[PositiveInt] | None = Field(
        default=None,
        description="buyer counts of the growth table (Section 6: utility ratios of the first n buyers); "
        "default: every count up to 12 buyers, else a quarter, half and all of the buyers (each count is a "
        "full equilibrium solve)",
        json_schema_extra={"unit": "buyers", "symbol": "N"},
    )
    engine: Literal["auto", "classes", "general"] = Field(
        default="auto",
        description="shapley_nash equilibrium engine: 'auto' solves over seller classes (equal cost rows) "
        "when some class has two or more sellers, 'general' always enumerates coalitions of sellers",
    )
    within_class: bool = Field(
        default=False,
        description="class engine: also search equilibria in which a class splits into producing "
        "and idle sellers",
    )
    empirical: EmpiricalConfig | None = Field(
        default=None,
        description="optional real rounds on scikit-learn's digits at the equilibrium production",
    )

    @field_validator("gamma")
    @classmethod
    def _simplex(cls, v: list[float]) -> list[float]:
        if abs(sum(v) - 1.0) > 1e-9:
            raise ValueError(f"target demographics must sum to 1 (simplex), got sum {sum(v):.6g}")
        return v

    def market(self) -> BalancedMarket:
        """The library market (raises InvalidMarketError naming the field on inconsistent shapes)."""
        g = len(self.groups)
        from datamarket.core.errors import InvalidMarketError

        for i, b in enumerate(self.buyers):
            if len(b.values) != g:
                raise InvalidMarketError(f"buyers[{i + 1}].values", f"need one value per group ({g})")
            if b.curves is not None and len(b.curves) != g:
                raise InvalidMarketError(f"buyers[{i + 1}].curves", f"need one curve per group ({g})")
        for j, s in enumerate(self.sellers):
            if len(s.costs) != g:
                raise InvalidMarketError(f"sellers[{j + 1}].costs", f"need one cost per group ({g})")
        if len(self.gamma) != g:
            raise InvalidMarketError("gamma", f"need one entry per group ({g})")
        curves = [[(c.Z, c.alpha, c.beta) for c in (b.curves or [self.curve] * g)] for b in self.buyers]
        arr = np.array(curves, dtype=float)  # (N, G, 3)
        return BalancedMarket(
            values=np.array([b.values for b in self.buyers], dtype=float),
            costs=np.array([s.costs for s in self.sellers], dtype=float),
            Z=arr[..., 0],
            alpha=arr[..., 1],
            beta=arr[..., 2],
            gamma=np.array(self.gamma, dtype=float),
            groups=tuple(self.groups),
            sellers=tuple(s.name for s in self.sellers),
            buyers=tuple(b.name for b in self.buyers),
            tie=self.tie,
        )


class Fields(ResultFields):
    """The kind's JSON fields (public interface)."""

    reserve_prices: list[Any] = Field(description="reserve price p_g per group")
    rho: list[Any] = Field(description="potential economic value rho_g per group (eq. 14)")
    thresholds: list[Any] = Field(
        description="participation threshold per group: rho_g c_G (one curve) or sup_S F(S)/S (per-buyer "
        "curves)"
    )
    baseline: dict[str, Any] = Field(
        description="baseline equilibrium: forms, production, total, active_groups, utilities"
    )
    intervention: dict[str, Any] = Field(description="intervention equilibrium, same fields as baseline")
    utility_ratios: dict[str, Any] = Field(
        description="marketplace, sellers, buyers: intervention / baseline utility (null when undefined)"
    )
    backfire: bool = Field(description="Def 5.2: the intervention lowers every party's utility")
    price_of_fairness: float | None = Field(default=None, description="price of fairness")
    kappa_gamma: list[Any] = Field(default_factory=list, description="kappa_j . gamma per seller")
    tau_H_max: float | None = Field(default=None, description="largest intervention threshold tau_H")
    equilibria: dict[str, Any] = Field(
        default_factory=dict,
        description="baseline, intervention: numbers of equilibria found (up to permutations of sellers "
        "with equal costs); selection: the rule that picks one",
    )
    payments: dict[str, Any] = Field(
        default_factory=dict, description="baseline, intervention: Shapley payments per seller (eq. 7)"
    )
    best_response_regrets: dict[str, Any] = Field(
        default_factory=dict,
        description="baseline (sellers x groups), intervention (per seller): gain from the exact best "
        "response",
    )
    summary: dict[str, Any] = Field(default_factory=dict, description="every quantity of the summary table")
    growth: list[Any] = Field(
        default_factory=list, description="growth / utility-ratio sequence: one row per number of buyers"
    )


def default_config() -> Config:
    """A small two-group, two-seller, three-buyer market with gamma = (0.8, 0.2) (runs in well under 1 s)."""
    return Config(
        name="two groups, three buyers",
        groups=["A", "B"],
        gamma=[0.8, 0.2],
        curve=CurveConfig(Z=1.0, alpha=1.0, beta=1.0),
        sellers=[SellerConfig(name=f"s{j}", costs=[0.2, 0.05]) for j in range(2)],
        buyers=[
            BuyerConfig(name="b0", values=[1.0, 0.6]),
            BuyerConfig(name="b1", values=[0.4, 0.6]),
            BuyerConfig(name="b2", values=[0.2, 0.5]),
        ],
    )


def _empirical_rows(
    cfg: Config, market: BalancedMarket, sol: MarketSolution
) -> tuple[Any, list[dict[str, Any]]]:
    emp = cfg.empirical
    assert emp is not None
    if len(cfg.groups) != 2:
        from datamarket.core.errors import InvalidMarketError

        raise InvalidMarketError("empirical", "digits markets have exactly two groups")
    sizes = np.array(
        [b.test_samples if b.test_samples is not None else [emp.test_per_group] * 2 for b in cfg.buyers]
    )
    counts = np.floor(sol.production * emp.samples_per_unit)
    sellers, buyers, _ = digits_market(
        counts, len(cfg.buyers), test_per_group=sizes, grouping=emp.grouping, seed=cfg.seed
    )
    rnd = run_empirical_round(
        sellers,
        buyers,
        market.values,
        market.costs,
        ("A", "B"),
        tie=cfg.tie,
        seed=cfg.seed,
        seller_names=market.sellers,
    )
    rows = [
        {
            "scenario": sol.scenario,
            "buyer": market.buyers[i],
            **{f"samples_{g}": int(counts[:, k].sum()) for k, g in enumerate(cfg.groups)},
            **{f"accuracy_{g}": float(rnd.accuracy[i, k]) for k, g in enumerate(cfg.groups)},
            "price": float(rnd.revenue[i]),
        }
        for i in range(len(buyers))
    ]
    return rnd, rows


SELECTION_RULE = {
    "paper": "the closed-form equilibrium of the paper (Thm 4.1; the intervention's candidate with the "
    "largest profit that is consistent)",
    "shapley_nash": "per sub-game: the symmetric equilibrium with production if there is one, else the "
    "one with the most active sellers, ties to the cheapest active sellers, then to larger total "
    "production; all-zero only when no equilibrium has production",
}


def _regrets(market: BalancedMarket, b: MarketSolution, f: MarketSolution) -> dict[str, Any]:
    """Each seller's gain from its exact best response (Shapley game) against the reported production.

    ``baseline``: sellers x groups (each group's sub-game); ``intervention``: one per seller (the scalar
    game of the target mix; empty without gamma). Zero at a Shapley-Nash equilibrium; under
    ``model = "paper"`` a positive entry shows the paper's quantity is not a best response.
    """
    base = np.column_stack(
        [
            regrets(b.production[:, g], market.costs[:, g], group_terms(market, b.prices, g))
            for g in range(market.shape[2])
        ]
    )
    out: dict[str, Any] = {"baseline": base.tolist(), "intervention": []}
    gam = market.gamma
    if gam is not None and np.any(gam > 0):
        g = int(np.argmax(gam))
        x = f.production[:, g] / gam[g]
        terms = intervention_terms(market, f.prices, gam)
        out["intervention"] = regrets(x, market.costs @ gam, terms).tolist()
    return out


def run(config: Config) -> ScenarioResult:
    """Solve baseline and intervention equilibria, ratios, backfire; optionally real digits rounds."""
    market = config.market()
    opts: dict[str, Any] = {"seed": config.seed, "engine": config.engine, "within_class": config.within_class}
    a = analyse(market, config.model, **opts)
    b, f = a.baseline, a.intervention
    fields = _fields(config, market, a)
    tables = _tables(config, market, a)
    fields["summary"] = dict(tables["summary"][0])
    tables["summary"] = [
        {"quantity": k, "value": v if not isinstance(v, list) else ", ".join(repr(x) for x in v)}
        for k, v in tables["summary"][0].items()
    ]
    sizes = config.growth or default_growth_sizes(market.shape[1])
    if max(sizes) > market.shape[1]:
        from datamarket.core.errors import InvalidMarketError

        raise InvalidMarketError("growth", f"buyer counts must be <= {market.shape[1]}")
    growth = growth_sequence(market, sizes, config.model, **opts, solved=(b, f))
    tables["growth"] = [_growth_row(r) for r in growth]
    fields["growth"] = [
        {**row, "ur_sellers": np.asarray(r["ur_sellers"]).tolist()}
        for row, r in zip(tables["growth"], growth, strict=True)
    ]
    outcome = round_outcome(market, b, "balanced_market")
    if config.empirical is not None:
        rnd, rows = _empirical_rows(config, market, b)
        _, rows_f = _empirical_rows(config, market, f)
        tables["empirical"] = rows + rows_f
        outcome = rnd.outcome
    return ScenarioResult(
        kind="balanced_market",
        seed=config.seed,
        fields=fields,
        outcome=outcome,
        audits=audit_outcome(outcome),
        tables=tables,
        status=a.status,
        reason=_reason(a, growth),
        certificate=a.certificate.merge([_growth_check(growth)]),
    )


def _fields(config: Config, market: BalancedMarket, a: Any) -> dict[str, Any]:
    """The kind's JSON fields from the analysis (the module docstring lists them)."""
    b, f = a.baseline, a.intervention
    groups = list(market.groups)
    kg = market.costs @ market.gamma if market.gamma is not None else np.zeros(1)
    return {
        "reserve_prices": a.reserve_prices.tolist(),
        "rho": a.rho.tolist(),
        "thresholds": a.thresholds.tolist(),
        "baseline": b.to_dict(groups),
        "intervention": f.to_dict(groups),
        "utility_ratios": a.utility_ratios,
        "backfire": a.backfire,
        "price_of_fairness": a.price_of_fairness,
        "kappa_gamma": np.asarray(kg).tolist(),
        "tau_H_max": a.intervention_threshold,
        "equilibria": {
            "baseline": b.n_equilibria,
            "intervention": f.n_equilibria,
            "selection": SELECTION_RULE[config.model],
        },
        "payments": {"baseline": b.payments.tolist(), "intervention": f.payments.tolist()},
        "best_response_regrets": (
            best_response_regrets(a.certificate, market)
            if config.model == "shapley_nash"
            else _regrets(market, b, f)
        ),
    }


def _tables(config: Config, market: BalancedMarket, a: Any) -> dict[str, list[dict[str, Any]]]:
    """The groups, summary (one row, reshaped by ``run``), sellers and buyers tables."""
    b, f = a.baseline, a.intervention
    kg = market.costs @ market.gamma if market.gamma is not None else np.zeros(1)
    summary: dict[str, Any] = {
        "model": config.model,
        "baseline_forms": b.forms,
        "intervention_forms": f.forms,
        "backfire": a.backfire,
        "kappa_gamma_max": float(np.max(kg)),
        "tau_H_max": a.intervention_threshold,
        "ur_marketplace": a.utility_ratios["marketplace"],
        "price_of_fairness": a.price_of_fairness,
        "fully_forming": fully_forming(b),
        "equilibria_baseline": b.n_equilibria,
        "equilibria_intervention": f.n_equilibria,
    }
    if market.identical_curves:
        g_star, t_star = optimal_gamma(a.rho, market.curve)
        summary["gamma_maximising_tau"] = [float(x) for x in g_star]
        summary["tau_max_over_gamma"] = t_star
    groups = [
        {
            "group": g,
            "reserve_price": float(a.reserve_prices[k]),
            "rho": float(a.rho[k]),
            "tau": float(a.thresholds[k]),
            "gamma": float(config.gamma[k]),
            "baseline_total": float(b.total[k]),
            "intervention_total": float(f.total[k]),
        }
        for k, g in enumerate(market.groups)
    ]
    return {
        "groups": groups,
        "summary": [summary],
        "sellers": _utility_rows(
            "seller", market.sellers, b.utilities.sellers, f.utilities.sellers, a, "sellers"
        ),
        "buyers": _utility_rows("buyer", market.buyers, b.utilities.buyers, f.utilities.buyers, a, "buyers"),
    }


def _utility_rows(key: str, names: Any, base: Any, interv: Any, a: Any, side: str) -> list[dict[str, Any]]:
    return [
        {
            key: name,
            "baseline_utility": float(base[i]),
            "intervention_utility": float(interv[i]),
            "ur": a.utility_ratios[side][i],
        }
        for i, name in enumerate(names)
    ]


def _growth_row(r: dict[str, Any]) -> dict[str, Any]:
    ur = np.asarray(r["ur_sellers"], dtype=float)
    return {
        "n_buyers": r["n_buyers"],
        "baseline_forms": r["baseline_forms"],
        "intervention_forms": r["intervention_forms"],
        "ur_marketplace": r["ur_marketplace"],
        "ur_sellers_mean": float(np.nanmean(ur)) if np.isfinite(ur).any() else float("nan"),
    }


def _reason(a: Any, growth: list[dict[str, Any]]) -> str | None:
    """Why the status is not ``ok``: the sub-games where no profile passed the regret check."""
    if not a.unfound:
        return None
    return (
        "no equilibrium found in " + ", ".join(a.unfound) + ": no candidate profile passed the best-response "
        "regret check; the reported production is the candidate with the smallest regret (see certificate)"
    )


def _growth_check(growth: list[dict[str, Any]]) -> Check:
    """Each market of the growth table was solved by profiles that passed the engine's regret check."""
    bad = [r["n_buyers"] for r in growth if r["no_equilibrium_found"]]
    return Check(
        "growth.verified",
        "every market of the growth table is solved by equilibria that passed the regret check",
        "the engine's global best-response check of every selected profile (count of markets without one)",
        float(len(bad)),
        0.0,
        {"n_buyers_without_equilibrium": bad},
    )
