"""Scenario kind ``truthful_payments``: LOO, Shapley, Myerson and VCG payments (Fan et al.).

A file names true cost factors ``costs`` and exactly one market table: ``[mean_estimation]`` (eqs.
(21)-(22): ``buyer_means``, ``seller_means`` and either ``variances`` -- total variance of each seller's
estimate -- or a full SPD ``covariance``) or ``[data_mixture]`` (eqs. (23)-(24): ``b``, ``k``, ``t``;
several buyers: ``t`` one list per buyer, ``b`` and ``k`` shared or one per buyer). An optional
``[sweep]`` names a seller whose misreports are analysed.

JSON fields (public interface): ``allocation`` (W, buyers x sellers), ``payments`` {``loo``, ``shapley``,
``myerson``, ``vcg``} (one list entry per seller), ``social_cost`` (SC at the true costs), ``shares`` (f_j per
seller), ``buyer_values`` and ``buyer_prices`` (keyed by rule: the buyer split (17)) and, with ``[sweep]``,
``sweep`` {``reported_costs``, ``utility``, ``best_report``, ``price_of_anarchy``, ``best_grid_report``,
``gain`` (keyed by rule), ``seller``, ``true_cost``}.

The outcome is the payment ``rule``'s (default ``myerson``: the minimal IC and IR payment, Theorem 4.1;
the parameters ``rule`` and ``myerson_method`` are shared with the service) with the buyer split (17);
the audits cover every rule (key ``<rule>.<property>``, ``mechanism`` ``truthful_payments.<rule>``; incentive
compatibility of LOO and Shapley is expected to fail, Claim 2). Non-finite numbers are JSON ``null``: the
Myerson payment of the only seller of a data-mixture market is infinite (its allocation ``w = 1`` never
depends on its report), and then there is no outcome and no Myerson audit.

The certificate (:func:`~datamarket.mechanisms.truthful_payments.payment_certificate`) checks the payments
at the true costs (efficiency of Shapley, every rule re-solved per coalition, Myerson = VCG, budget
balance, seller IR); the misreport sweep is measured, not claimed, and stays in the audits.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

import numpy as np
from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, model_validator

from datamarket.core.audits import AuditResult, Property, audit_outcome
from datamarket.core.errors import InvalidMarketError
from datamarket.mechanisms.truthful_payments import (
    RULES,
    DataMixtureMarket,
    MeanEstimationMarket,
    PaymentResult,
    TruthfulMarket,
    compute_payments,
    misreport_sweep,
    payment_certificate,
    payment_outcome,
)
from datamarket.scenarios._base import ResultFields, ScenarioConfig, ScenarioResult, StrictModel
from datamarket.scenarios.inputs.truthful_payments import Params, cost_field

Rule = Literal["loo", "shapley", "myerson", "vcg"]


class MeanEstimationConfig(StrictModel):
    """Mean-estimation market (Fan et al., Sec. 6.1)."""

    buyer_means: list[list[float]] = Field(
        min_length=1,
        description="each buyer's target mean, one row per buyer",
        json_schema_extra={"unit": "data units", "symbol": "μ_i"},
    )
    seller_means: list[list[float]] = Field(
        min_length=1,
        description="each seller's mean, one row per seller",
        json_schema_extra={"unit": "data units", "symbol": "μ_j"},
    )
    variances: list[PositiveFloat] | None = Field(
        default=None,
        description="total (trace) variance of each seller's estimate",
        json_schema_extra={"unit": "data units squared", "symbol": "σ_j²"},
    )
    covariance: list[list[float]] | None = Field(
        default=None,
        description="full covariance of the sellers' estimates (generalises diag(σ²))",
        json_schema_extra={"unit": "data units squared", "symbol": "N"},
    )

    @model_validator(mode="after")
    def _one_noise_model(self) -> MeanEstimationConfig:
        if (self.variances is None) == (self.covariance is None):
            raise ValueError("mean_estimation: give exactly one of variances or covariance")
        return self


class DataMixtureConfig(StrictModel):
    """Data-mixture market (Fan et al., Sec. 6.2): L_i(w) = b_i + k_i exp(t_i.w), each row on the simplex.

    One buyer (the paper): scalars ``b``, ``k`` and ``t`` a list with one entry per seller. Several
    buyers: ``t`` a list of such lists (one per buyer) and ``b``, ``k`` scalars (shared) or one per buyer.
    """

    b: float | list[float] = Field(
        default=0.0,
        description="loss offset, shared or one per buyer (eq. 23)",
        json_schema_extra={"unit": "loss", "symbol": "b"},
    )
    k: PositiveFloat | list[PositiveFloat] = Field(
        default=1.0,
        description="loss scale, shared or one per buyer (eq. 23)",
        json_schema_extra={"unit": "loss", "symbol": "k"},
    )
    t: list[float] | list[list[float]] = Field(
        min_length=1,
        description="loss exponents, one per seller (or one list per buyer) (eq. 23)",
        json_schema_extra={"unit": "1", "symbol": "t"},
    )


def _all_rules() -> list[Rule]:
    return ["loo", "shapley", "myerson", "vcg"]


class SweepConfig(StrictModel):
    """Misreport analysis of one seller (0-based index) on the grid [0, max_report] with ``step``."""

    seller: NonNegativeInt = Field(
        default=0,
        description="0-based index of the seller whose report is swept",
        json_schema_extra={"symbol": "j"},
    )
    max_report: PositiveFloat | None = Field(
        default=None,
        description="largest report of the grid (default max(1, 3 c_j))",
        json_schema_extra={"unit": "money per unit of f", "symbol": "ĉ_max"},
    )
    step: PositiveFloat = Field(
        default=0.1, description="grid step of the reports", json_schema_extra={"unit": "money per unit of f"}
    )
    rules: list[Rule] = Field(default_factory=_all_rules, min_length=1, description="payment rules to sweep")


class ShapleyConfig(StrictModel):
    """Exact Shapley up to ``max_exact`` sellers, Monte Carlo with ``max_evaluations`` beyond.

    ``max_exact`` unset: 20 on the mean-estimation market (batched coalition table), 15 otherwise.
    """

    max_exact: int | None = Field(
        default=None,
        ge=1,
        le=20,
        description="exact Shapley up to this many sellers (default 20 on mean estimation, 15 otherwise)",
        json_schema_extra={"unit": "sellers"},
    )
    max_evaluations: PositiveInt = Field(
        default=20_000,
        description="Monte Carlo budget beyond max_exact",
        json_schema_extra={"unit": "coalition evaluations"},
    )


class Config(Params, ScenarioConfig):
    """A truthful-payments scenario: the market parameters (the outcome's ``rule`` and the Myerson
    integral's method, :class:`~datamarket.scenarios.inputs.truthful_payments.Params`, shared with the
    service), the sellers' true costs, one market table, Shapley's budget and the optional sweep."""

    kind: Literal["truthful_payments"]
    costs: list[NonNegativeFloat] = cost_field(
        min_length=1,
        description="true private cost factor of each seller (reported truthfully unless swept)",
    )
    mean_estimation: MeanEstimationConfig | None = Field(
        default=None, description="the mean-estimation market (Sec. 6.1); give it or data_mixture"
    )
    data_mixture: DataMixtureConfig | None = Field(
        default=None, description="the data-mixture market (Sec. 6.2); give it or mean_estimation"
    )
    shapley: ShapleyConfig = Field(
        default_factory=ShapleyConfig,
        description="exact or Monte Carlo Data Shapley (eq. 8)",
        json_schema_extra={"symbol": "P^SP"},
    )
    sweep: SweepConfig | None = Field(
        default=None,
        description="optional misreport sweep of one seller (Figures 1, 4)",
        json_schema_extra={"symbol": "ĉ_j"},
    )

    @model_validator(mode="after")
    def _one_market(self) -> Config:
        if (self.mean_estimation is None) == (self.data_mixture is None):
            raise ValueError("market: give exactly one of [mean_estimation] or [data_mixture]")
        return self


def default_config() -> Config:
    """Figure 1's setting: 1 buyer, 3 sellers in R^3, true costs (5, 8, 1), seller 0 sweeps to 15."""
    return Config(
        kind="truthful_payments",
        name="mean estimation, 3 sellers",
        costs=[5.0, 8.0, 1.0],
        mean_estimation=MeanEstimationConfig(
            buyer_means=[[1.0, 0.5, -0.3]],
            seller_means=[[0.9, 0.6, -0.2], [1.2, 0.1, 0.4], [0.3, 0.8, -0.9]],
            variances=[0.4, 0.6, 1.0],
        ),
        sweep=SweepConfig(seller=0, max_report=15.0),
    )


def build_market(config: Config) -> TruthfulMarket:
    """The market of ``config``; errors name the config field."""
    if config.mean_estimation is not None:
        me = config.mean_estimation
        if me.variances is not None and len(me.variances) != len(me.seller_means):
            raise InvalidMarketError(
                "mean_estimation.variances",
                f"need one variance per seller ({len(me.seller_means)}), got {len(me.variances)}",
            )
        try:
            if me.variances is not None:
                market: TruthfulMarket = MeanEstimationMarket.from_variances(
                    me.buyer_means, me.seller_means, me.variances
                )
            else:
                market = MeanEstimationMarket(me.buyer_means, me.seller_means, me.covariance)  # type: ignore[arg-type]
        except InvalidMarketError as exc:
            name = "covariance" if exc.field == "noise" else exc.field
            raise InvalidMarketError(f"mean_estimation.{name}", exc.message) from None
    else:
        dm = config.data_mixture
        assert dm is not None
        try:
            market = DataMixtureMarket(dm.b, dm.k, dm.t)  # type: ignore[arg-type]
        except InvalidMarketError as exc:
            raise InvalidMarketError(f"data_mixture.{exc.field}", exc.message) from None
    if len(config.costs) != market.n_sellers:
        raise InvalidMarketError(
            "costs", f"need one cost per seller ({market.n_sellers}), got {len(config.costs)}"
        )
    return market


class Fields(ResultFields):
    """The kind's JSON fields (public interface)."""

    allocation: list[Any] = Field(description="W, buyers x sellers")
    payments: dict[str, Any] = Field(description="loo, shapley, myerson, vcg: one entry per seller")
    social_cost: float | None = Field(description="SC at the true costs")
    shares: list[Any] = Field(default_factory=list, description="f_j per seller")
    buyer_values: list[Any] = Field(default_factory=list, description="value per buyer")
    buyer_prices: dict[str, Any] = Field(
        default_factory=dict, description="per rule: price per buyer (split (17))"
    )
    sweep: dict[str, Any] = Field(
        default_factory=dict,
        description="misreport sweep: reported_costs, utility, best_report, price_of_anarchy, "
        "best_grid_report, gain, seller, true_cost",
    )


def run(config: Config) -> ScenarioResult:
    """Payments of all four rules at the true costs, audits, and the optional misreport sweep.

    The outcome is ``rule``'s (Myerson by default, the minimal IC and IR payment) with the buyer split
    (17); every rule with finite payments is audited (``<rule>.<property>``).
    """
    market = build_market(config)
    costs = np.array(config.costs, dtype=np.float64)
    opts: dict[str, Any] = {
        "myerson_method": config.myerson_method,
        "shapley_max_exact": config.shapley.max_exact,
        "shapley_evaluations": config.shapley.max_evaluations,
        "seed": config.seed,
    }
    res = compute_payments(market, costs, **opts)
    # A rule whose payment is infinite (Myerson for the only seller of a simplex market, whose
    # allocation never depends on its report) has no Outcome: JSON null, no audits for it.
    finite = [r for r in RULES if np.all(np.isfinite(res.payments[r]))]
    audits = _rule_audits(market, res, finite)
    fields = _fields(res)
    tables = _tables(market, costs, res)
    if config.sweep is not None:
        fields["sweep"], tables["misreport"], ic = _sweep(config.sweep, market, costs, opts)
        audits.update(ic)
    return ScenarioResult(
        kind="truthful_payments",
        seed=config.seed,
        fields=fields,
        outcome=payment_outcome(market, res, config.rule) if config.rule in finite else None,
        audits=audits,
        tables=tables,
        certificate=payment_certificate(market, res, myerson_method=config.myerson_method),
    )


def _rule_audits(market: TruthfulMarket, res: PaymentResult, rules: list[str]) -> dict[str, AuditResult]:
    """The outcome audits of each rule's outcome, keyed ``<rule>.<property>``."""
    audits: dict[str, AuditResult] = {}
    for rule in rules:
        for key, audit in audit_outcome(payment_outcome(market, res, rule), tol=1e-9).items():
            detail = f"{rule}: {audit.detail}" if audit.detail else rule
            audits[f"{rule}.{key}"] = replace(audit, detail=detail, mechanism=f"truthful_payments.{rule}")
    return audits


def _fields(res: PaymentResult) -> dict[str, Any]:
    return {
        "allocation": res.allocation.tolist(),
        "payments": {r: res.payments[r].tolist() for r in RULES},
        "social_cost": res.social_cost,
        "shares": res.shares.tolist(),
        "buyer_values": res.values.tolist(),
        "buyer_prices": {r: res.buyer_prices[r].tolist() for r in RULES},
    }


def _tables(market: TruthfulMarket, costs: np.ndarray, res: PaymentResult) -> dict[str, list[dict[str, Any]]]:
    return {
        "sellers": [
            {
                "seller": j,
                "cost": float(costs[j]),
                "f_j": float(res.shares[j]),
                "cost_incurred": float(costs[j] * res.shares[j]),
                **{r: float(res.payments[r][j]) for r in RULES},
            }
            for j in range(market.n_sellers)
        ],
        "buyers": [
            {
                "buyer": i,
                "value": float(res.values[i]),
                **{f"price_{r}": float(res.buyer_prices[r][i]) for r in RULES},
            }
            for i in range(market.n_buyers)
        ],
    }


def _sweep(
    cfg: SweepConfig, market: TruthfulMarket, costs: np.ndarray, opts: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, AuditResult]]:
    """The misreport sweep of one seller: the JSON field, the table and each rule's IC audit (the
    gain of the best report on the grid over the truthful utility)."""
    if cfg.seller >= market.n_sellers:
        raise InvalidMarketError("sweep.seller", f"must be in 0..{market.n_sellers - 1}, got {cfg.seller}")
    sw = misreport_sweep(
        market, costs, cfg.seller, rules=cfg.rules, max_report=cfg.max_report, step=cfg.step, **opts
    )
    field = {
        "reported_costs": sw.reported_costs.tolist(),
        "utility": {r: sw.utility[r].tolist() for r in cfg.rules},
        "best_report": dict(sw.best_report),
        "price_of_anarchy": dict(sw.price_of_anarchy),
        "seller": sw.seller,
        "true_cost": sw.true_cost,
        "best_grid_report": dict(sw.best_grid_report),
        "gain": {r: sw.gain(r) for r in cfg.rules},
    }
    table = [
        {
            "rule": r,
            "true_cost": sw.true_cost,
            "best_grid_report": sw.best_grid_report[r],
            "best_report": sw.best_report[r],
            "gain": sw.gain(r),
            "price_of_anarchy": sw.price_of_anarchy[r],
        }
        for r in cfg.rules
    ]
    audits = {}
    for r in cfg.rules:
        gain = max(0.0, sw.gain(r))
        audits[f"{r}.incentive_compatible"] = AuditResult(
            Property.INCENTIVE_COMPATIBLE,
            gain <= 1e-9,
            gain,
            f"{r}: seller {sw.seller} gains {gain:.6g} by reporting {sw.best_report[r]:.6g}"
            if gain > 1e-9
            else r,
            mechanism=f"truthful_payments.{r}",
        )
    return field, table, audits
