r"""Scenario kind ``realtime_market``: the real-time data marketplace of Agarwal, Dahleh and Sarkar.

A file chooses the data (``[data]``) and the buyers (``[buyers]``); the market's functions are flat
(:class:`~datamarket.scenarios.inputs.realtime_market.Params`). Data sources:

* ``source = "sklearn"``: a data set scikit-learn ships (``diabetes``, a regression; ``iris``, ``wine``
  or ``breast_cancer``, classifications), each feature column a seller (``features`` picks them);
* ``source = "synthetic"``: streams built from shared factors (a stream is its factor plus ``jitter``
  noise plus ``offset``; streams of one factor without jitter are exact copies), the target the sum of
  the factors plus ``noise``: the paper's examples (Ex. 3.1 and Ex. 4.5: two identical streams);
* ``source = "closed_form"``: no data, every buyer's gain curve :math:`h_p(b) = \min(b/p, 1)`; only
  AF*, RF* and PF* run (buyers' values :math:`U[{\tt value\_low}, {\tt value\_high}]`).

Buyers: ``count`` buyers with values :math:`\mu_n \sim U[{\tt value\_low}, {\tt value\_high}]`, bidding
truthfully; buyer :math:`n`'s task is the data set's target plus ``label_noise`` times its standard
deviation of independent noise (regression), with its own random test rows (``test_fraction``). An
optional ``[replication]`` table copies a seller's stream ``copies`` times (by the seller itself, or by a
third party ``copier``) and splits the first buyer's charge under PD*_A and PD*_B for each count.

JSON fields (public interface): ``market`` (``data`` or ``closed_form``), ``rule``, ``buyers``,
``sellers`` (per seller: ``name``, ``payment``, ``share`` of the revenue), ``revenue``,
``revenue_per_buyer``, ``unassigned`` (revenue paid to no seller), ``best_fixed_price`` (in hindsight),
``average_regret`` (per buyer, expected under Algorithm 1's distributions), ``learned_price`` (mean
price of the final weights), ``price_path`` (at most 200 buyers: ``buyer``, ``posted``, ``expected``) and
``replication`` (``seller``, ``copier``, ``summary`` rows). Tables: ``rounds``, ``sellers``, ``pricing``,
``replication`` (``copies``, ``rule``, ``seller``, ``owner``, ``share``, ``shapley_share``) and
``replication_summary``.

Certificate: :func:`~datamarket.mechanisms.realtime_market.certify_run` (truthfulness, the charge,
the regret bound, balance or unassigned revenue, Shapley values, replication robustness of PD*_B);
a closed-form run certifies truthfulness and the regret bound.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, NonNegativeFloat, PositiveFloat, model_validator

from datamarket.core.audits import AuditResult, Property, Scope, audit_outcome
from datamarket.core.certificates import Certificate
from datamarket.core.random import make_rng, spawn_seeds
from datamarket.learning.models import estimator_from_path
from datamarket.mechanisms.realtime_market import (
    Allocation,
    DivisionSpec,
    Learner,
    MarketConfig,
    MarketRun,
    ReplicationSweep,
    Streams,
    Task,
    TaskBuyer,
    certify_closed_form,
    certify_run,
    replication_sweep,
    run_closed_form,
    run_market,
)
from datamarket.scenarios._base import ResultFields, ScenarioConfig, ScenarioResult, StrictModel
from datamarket.scenarios.inputs.realtime_market import Params

DATASETS = ("diabetes", "iris", "wine", "breast_cancer")
PATH_POINTS = 200


class BundledData(StrictModel):
    """A scikit-learn data set, each feature a seller."""

    source: Literal["sklearn"]
    name: Literal["diabetes", "iris", "wine", "breast_cancer"] = Field(
        default="diabetes", description="the data set (diabetes: regression; the others: classification)"
    )
    features: list[str] | None = Field(
        default=None, min_length=1, description="the features sold (default: every feature)"
    )


class StreamSpec(StrictModel):
    """A synthetic stream: factor ``factor`` plus ``jitter`` noise plus ``offset``."""

    name: str = Field(min_length=1, description="seller name, unique", json_schema_extra={"symbol": "m"})
    factor: int = Field(default=0, ge=0, le=20, description="the shared factor the stream carries")
    jitter: NonNegativeFloat = Field(default=0.0, description="standard deviation of the stream's own noise")
    offset: float = Field(default=0.0, description="a constant added to the stream")


class SyntheticData(StrictModel):
    """Streams built from shared factors; the target is the sum of the factors plus noise."""

    source: Literal["synthetic"]
    length: int = Field(
        default=200, ge=10, le=100_000, description="rows of every stream", json_schema_extra={"symbol": "T"}
    )
    distribution: Literal["normal", "uniform"] = Field(default="normal", description="law of the factors")
    noise: NonNegativeFloat = Field(default=0.5, description="standard deviation of the target's noise")
    streams: list[StreamSpec] = Field(min_length=1, max_length=20, description="the sellers' streams")


class ClosedFormData(StrictModel):
    """No data: every buyer's gain curve is h_p(b) = min(b/p, 1)."""

    source: Literal["closed_form"]


DataSpec = Annotated[BundledData | SyntheticData | ClosedFormData, Field(discriminator="source")]


class BuyersSpec(StrictModel):
    """The buyers: how many, their values, and their tasks."""

    count: int = Field(
        default=20, ge=1, le=100_000, description="number of buyers", json_schema_extra={"symbol": "N"}
    )
    value_low: NonNegativeFloat = Field(
        default=0.0,
        description="least value per unit of gain",
        json_schema_extra={"unit": "money per unit of gain"},
    )
    value_high: PositiveFloat = Field(
        default=1.0,
        description="largest value per unit of gain",
        json_schema_extra={"unit": "money per unit of gain"},
    )
    test_fraction: float = Field(
        default=0.3, gt=0.0, lt=1.0, description="share of each task's rows held out to score the gain"
    )
    label_noise: NonNegativeFloat = Field(
        default=0.0, description="noise added to each buyer's labels, in target standard deviations"
    )


class ReplicationSpec(StrictModel):
    """``copies`` exact copies of ``seller``'s stream, made by the seller or by a third party ``copier``."""

    seller: str = Field(min_length=1, description="the seller whose stream is copied")
    copies: int = Field(
        default=3, ge=0, le=4, description="largest number of copies", json_schema_extra={"symbol": "c"}
    )
    copier: str | None = Field(
        default=None, min_length=1, description="a third party making the copies (unset: the seller)"
    )


class Config(Params, ScenarioConfig):
    """A real-time market scenario: the market's functions (:class:`Params`), data, buyers, replication."""

    kind: Literal["realtime_market"]
    data: DataSpec = Field(
        default_factory=lambda: BundledData(source="sklearn"), description="the sellers' data"
    )
    buyers: BuyersSpec = Field(default_factory=BuyersSpec, description="the buyers")
    replication: ReplicationSpec | None = Field(default=None, description="optional replication sweep")

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        b = self.buyers
        if b.value_low > b.value_high or b.value_high > self.max_bid:
            raise ValueError("buyers: need value_low <= value_high <= max_bid (bids lie in [0, max_bid])")
        if self.data.source == "closed_form":
            if self.replication is not None:
                raise ValueError("replication: the closed-form market has no sellers")
            return self
        if b.count > 1000:
            raise ValueError("buyers.count: at most 1000 buyers on a data market")
        names = seller_names(self.data)
        if len(set(names)) != len(names):
            raise ValueError("data: seller names must be unique")
        if self.replication is not None and self.replication.seller not in names:
            raise ValueError(
                f"replication.seller: no seller {self.replication.seller!r} (sellers: {', '.join(names)})"
            )
        if self.replication is not None and self.replication.copier in names:
            raise ValueError("replication.copier: must not be a seller's name")
        return self


def seller_names(data: BundledData | SyntheticData) -> list[str]:
    """The sellers of a data source (checked against the data set's features)."""
    if isinstance(data, SyntheticData):
        return [s.name for s in data.streams]
    known = list(_bundled(data.name)[2])
    unknown = [f for f in data.features or [] if f not in known]
    if unknown:
        raise ValueError(f"data.features: {unknown} are not features of {data.name} ({', '.join(known)})")
    return list(data.features or known)


def _bundled(name: str) -> tuple[Any, Any, list[str]]:
    import sklearn.datasets as skd

    d = getattr(skd, f"load_{name}")()
    return np.asarray(d.data, dtype=np.float64), np.asarray(d.target), [str(f) for f in d.feature_names]


class Fields(ResultFields):
    """The kind's JSON fields (public interface)."""

    market: str = Field(description="data (sellers' streams) or closed_form (h_p(b) = min(b/p, 1))")
    rule: str | None = Field(description="pd_a or pd_b (null for the closed form)")
    buyers: int = Field(description="number of buyers N")
    sellers: list[Any] = Field(description="per seller: name, payment, share of the revenue")
    revenue: float = Field(description="total charge RF* over the buyers")
    revenue_per_buyer: float = Field(description="revenue / N")
    unassigned: float = Field(description="revenue paid to no seller (PD*_B)")
    best_fixed_price: float = Field(description="best fixed price in hindsight")
    average_regret: float = Field(description="(best fixed total - expected total charge) / N")
    learned_price: float = Field(description="mean price of Algorithm 1's final weights")
    price_path: list[Any] = Field(description="at most 200 buyers: buyer, posted price, expected price")
    replication: dict[str, Any] = Field(default_factory=dict, description="seller, copier, summary rows")


def default_config() -> Config:
    """Ten clinical measurements of scikit-learn's diabetes data sold to twelve buyers, PD*_B."""
    return Config.model_validate(
        {
            "kind": "realtime_market",
            "name": "diabetes: ten features sold to twelve buyers",
            "max_bid": 2.0,
            "data": {"source": "sklearn", "name": "diabetes"},
            "buyers": {"count": 12, "value_low": 0.5, "value_high": 2.0, "label_noise": 0.1},
            "replication": {"seller": "bmi", "copies": 2},
        }
    )


def market_config(config: Params) -> MarketConfig:
    """The library's market configuration of a validated scenario (or of a service market's
    parameters: the fields of :class:`Params`)."""
    return MarketConfig(
        allocation=Allocation(config.form, config.sigma, config.levels, config.monotone),
        division=DivisionSpec(
            rule=config.rule,
            similarity=config.similarity,
            lam=config.lam,
            shapley=config.shapley,
            exact_up_to=config.exact_up_to,
            eps=config.epsilon,
            delta=config.delta,
            samples=config.samples,
        ),
        max_bid=config.max_bid,
        lipschitz=config.lipschitz,
        horizon=config.horizon,
        baseline=config.gain == "baseline",
    )


def streams_of(config: Config, rng: np.random.Generator) -> tuple[Streams, Any]:
    """The sellers' streams and the target of a data scenario."""
    data = config.data
    if isinstance(data, BundledData):
        x, y, names = _bundled(data.name)
        keep = [names.index(f) for f in seller_names(data)]
        return Streams(x[:, keep], tuple(names[k] for k in keep)), y
    assert isinstance(data, SyntheticData)
    n_factors = 1 + max(s.factor for s in data.streams)
    shape = (data.length, n_factors)
    factors = rng.standard_normal(shape) if data.distribution == "normal" else rng.random(shape)
    cols = [
        factors[:, s.factor] + s.jitter * rng.standard_normal(data.length) + s.offset for s in data.streams
    ]
    y = factors[:, sorted({s.factor for s in data.streams})].sum(axis=1) + data.noise * rng.standard_normal(
        data.length
    )
    return Streams(np.column_stack(cols), tuple(s.name for s in data.streams)), y


def buyers_of(config: Config, target: Any, classifier: bool, rng: np.random.Generator) -> list[TaskBuyer]:
    """``count`` truthful buyers with their tasks and values (module docstring)."""
    b = config.buyers
    out = []
    y = np.asarray(target)
    for n in range(b.count):
        labels = y
        if not classifier and b.label_noise > 0:
            labels = y + b.label_noise * float(np.std(y)) * rng.standard_normal(y.shape[0])
        task = Task.split(labels, b.test_fraction, rng)
        out.append(TaskBuyer(f"buyer_{n + 1}", task, float(rng.uniform(b.value_low, b.value_high))))
    return out


def run(config: Config) -> ScenarioResult:
    """Serve the buyers (AF*, RF*, PF*, PD*), sweep the replication if asked, and certify the run."""
    if isinstance(config.data, ClosedFormData):
        return _run_closed_form(config)
    data_seed, market_seed = spawn_seeds(config.seed, 2)
    rng = make_rng(data_seed)
    streams, target = streams_of(config, rng)
    learner = Learner(estimator_from_path(config.learner.name, config.learner.params, seed=config.seed))
    buyers = buyers_of(config, target, learner.classifier, rng)
    cfg = market_config(config)
    result = run_market(streams, buyers, learner, cfg, seed=int(market_seed.generate_state(1)[0]))
    sweep = None
    if config.replication is not None:
        rep = config.replication
        sweep = replication_sweep(
            streams,
            buyers[0].task,
            rep.seller,
            rep.copies,
            learner=learner,
            division=cfg.division,
            owner=rep.copier,
            baseline=cfg.baseline,
            seed=config.seed,
        )
    certificate = certify_run(result, sweep)
    outcome = result.outcome()
    audits = {k: a for k, a in audit_outcome(outcome).items()}
    audits["incentive_compatible"] = _ic_audit(certificate)
    return ScenarioResult(
        kind="realtime_market",
        seed=config.seed,
        fields=_fields(result, sweep),
        outcome=outcome,
        audits=audits,
        tables=_tables(result, sweep),
        certificate=certificate,
    )


def _ic_audit(certificate: Certificate, mechanism: str = "") -> AuditResult:
    """Incentive compatibility of the buyers from the certificate's truthfulness check (ex post)."""
    check = certificate["truthfulness"]
    return AuditResult(
        Property.INCENTIVE_COMPATIBLE,
        check.passed,
        check.residual,
        "" if check.passed else "a buyer gains by bidding other than its value",
        Scope.EX_POST,
        mechanism,
    )


def _path(trace: Any) -> list[dict[str, Any]]:
    n = trace.n
    idx = np.unique(np.linspace(0, n - 1, min(n, PATH_POINTS)).round().astype(int))
    return [
        {"buyer": int(i) + 1, "posted": trace.posted[i], "expected": trace.expected_price[i]} for i in idx
    ]


def _pricing_fields(trace: Any, best: float, total: float) -> dict[str, Any]:
    n = max(1, trace.n)
    revenue = float(np.sum(trace.charge))
    return {
        "buyers": trace.n,
        "revenue": revenue,
        "revenue_per_buyer": revenue / n,
        "best_fixed_price": best,
        "average_regret": (total - float(np.sum(trace.expected_charge))) / n,
        "learned_price": trace.learned_price(),
        "price_path": _path(trace),
    }


def _fields(result: MarketRun, sweep: ReplicationSweep | None) -> dict[str, Any]:
    pay = result.seller_payments()
    revenue = float(np.sum(result.pricing.charge))
    fields = {
        "market": "data",
        "rule": result.config.division.rule,
        "sellers": [
            {"name": s, "payment": float(pay[i]), "share": float(pay[i] / revenue) if revenue > 0 else 0.0}
            for i, s in enumerate(result.sellers)
        ],
        "unassigned": result.unassigned(),
        **_pricing_fields(result.pricing, *result.pricing.best_fixed()),
    }
    if sweep is not None:
        fields["replication"] = {"seller": sweep.seller, "copier": sweep.owner, "summary": sweep.summary()}
    return fields


def _tables(result: MarketRun, sweep: ReplicationSweep | None) -> dict[str, list[dict[str, Any]]]:
    pay = result.seller_payments()
    revenue = float(np.sum(result.pricing.charge))
    tables: dict[str, list[dict[str, Any]]] = {
        "rounds": [
            {
                "buyer": r.buyer,
                "value": r.value,
                "bid": r.bid,
                "price": r.price,
                "level": r.level,
                "gain": r.gain,
                "charge": r.charge,
                "utility": r.utility,
                "unassigned": r.division.unassigned,
                "method": r.division.method,
                "fits": r.division.fits,
            }
            for r in result.rounds
        ],
        "sellers": [
            {
                "seller": s,
                "payment": float(pay[i]),
                "share": float(pay[i] / revenue) if revenue > 0 else 0.0,
                "mean_shapley_share": float(np.mean([r.division.shares[i] for r in result.rounds])),
                "mean_penalty": float(np.mean([r.division.penalty[i] for r in result.rounds])),
            }
            for i, s in enumerate(result.sellers)
        ],
        "pricing": _epoch_rows(result.pricing),
    }
    if sweep is not None:
        tables["replication"] = sweep.rows()
        tables["replication_summary"] = sweep.summary()
    return tables


def _epoch_rows(trace: Any) -> list[dict[str, Any]]:
    return [
        {
            "first_buyer": e.start + 1,
            "buyers": e.stop - e.start,
            "eps": e.eps,
            "net_size": int(e.net.size),
            "delta": e.delta,
            "bound": e.ahk_bound(trace.b_max),
        }
        for e in trace.epochs
    ]


def _run_closed_form(config: Config) -> ScenarioResult:
    """Algorithm 1 against truthful buyers when h_p(b) = min(b/p, 1)."""
    rng = make_rng(spawn_seeds(config.seed, 1)[0])
    b = config.buyers
    values = rng.uniform(b.value_low, b.value_high, b.count)
    cf = run_closed_form(
        values, max_bid=config.max_bid, lipschitz=config.lipschitz, horizon=config.horizon, seed=config.seed
    )
    certificate = certify_closed_form(cf, config.max_bid, probes=b.count)
    posted = np.asarray(cf.pricing.posted)
    surplus = values * np.minimum(values / posted, 1.0) - np.asarray(cf.pricing.charge)
    mech = "realtime_market.pricing"
    worst = max(0.0, -float(surplus.min()))
    tol = certificate["truthfulness"].tolerance  # the same two roundings of mu h(mu) - RF*
    audits = {
        "ir_buyer": AuditResult(Property.IR_BUYER, worst <= tol, worst, "", Scope.EX_POST, mech),
        "incentive_compatible": _ic_audit(certificate, mech),
    }
    fields = {
        "market": "closed_form",
        "rule": None,
        "sellers": [],
        "unassigned": 0.0,
        **_pricing_fields(cf.pricing, cf.best_price, cf.best_total),
    }
    return ScenarioResult(
        kind="realtime_market",
        seed=config.seed,
        fields=fields,
        audits=audits,
        tables={"pricing": _epoch_rows(cf.pricing)},
        certificate=certificate,
    )
