"""Scenario kind ``competing_buyers``: buyers competing for effort-averse sources (Westenbroek et al.).

A scenario lists the sources (location, ``effort_alpha``), the buyers (estimator, evaluation
distribution ``F_j``, conversion ``eta``, optional share ``theta`` of each source's effort cost),
the competition level ``competition`` (delta, a scalar or a symmetric matrix) and a Monte Carlo
section. ``run`` computes the weights and the generalized Nash equilibrium
(:mod:`datamarket.mechanisms.competing_buyers`), verifies every
buyer's best response numerically, and simulates the contracts.

JSON fields (public interface; arrays are indexed source first, buyer last):
``gamma`` [i][k], ``xi`` [i][l][k], ``spectral_radius``, ``gne_exists``, ``d`` [i][k] (solution of
(I - A) d = gamma, null when rho(A) >= 1), ``effort_equilibrium`` (e* of that d), ``effort_social``,
``loss_equilibrium``, ``loss_social``, ``price_of_anarchy`` (null when no GNE or L(e_social) <= 0),
``contracts`` {``c``, ``d``} (null when no GNE), ``total_gamma`` (Gamma_i = sum_k gamma_ik),
``total_d`` (D_i = sum_k d_ik, null when no solution), ``feasible_sources`` (2 alpha_i D_i >= 1),
``effort_social_unconstrained`` (true when some social-optimum effort is negative: the social optimum
(28) is taken without the constraint e >= 0), ``equilibrium_status`` (one line) and ``best_responses``
(per buyer: cost at the GNE, best-response cost found by L-BFGS-B, improvement, largest gap between the
best-response and equilibrium contracts; empty when no GNE). A market without a GNE is a result with
``status = "no_equilibrium"`` and a ``reason``.

Every result carries the ``certificate`` of its claims (:func:`certify_gne`): the existence conditions
of Theorem 1 (spectral radius, conditioning, d >= 0, the feasibility 2 alpha D >= 1), each source's
and each buyer's best response checked apart from the Leontief solve, and the social optimum, the
losses and the price of anarchy of Theorem 2 by a second path. Without a GNE the failing existence
check is the evidence of ``no_equilibrium``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, model_validator

from datamarket.core.audits import audit_incentive_compatibility, audit_outcome
from datamarket.mechanisms.competing_buyers import (
    Z_BOUND,
    BestResponse,
    CompetingAnalysis,
    CompetingMarket,
    DiscretePoints,
    EmpiricalSamples,
    EvaluationDistribution,
    FeatureOLS,
    PolynomialRegression,
    SeparableEstimator,
    UniformInterval,
    analyse_market,
    best_response,
    certify_gne,
    ic_probes,
    market_outcome,
    simulate_payments,
)
from datamarket.scenarios._base import ResultFields, ScenarioConfig, ScenarioResult, StrictModel
from datamarket.scenarios.inputs.competing_buyers import Params, Source, eta_field


class EstimatorSpec(StrictModel):
    """``polynomial`` (monomials up to ``degree``) or ``monomials`` (OLS on x**p for p in ``powers``)."""

    type: Literal["polynomial", "monomials"] = Field(
        default="polynomial",
        description="separable estimator: polynomial regression or least squares on chosen monomials",
        json_schema_extra={"symbol": "f̂^j"},
    )
    degree: NonNegativeInt = Field(default=1, description="degree of the polynomial regression")
    powers: list[NonNegativeInt] = Field(
        default_factory=list, description="monomial powers (type = monomials)"
    )

    @model_validator(mode="after")
    def _powers(self) -> EstimatorSpec:
        if self.type == "monomials" and (not self.powers or len(set(self.powers)) != len(self.powers)):
            raise ValueError("monomials need a non-empty list of distinct powers")
        return self

    def build(self) -> SeparableEstimator:
        if self.type == "polynomial":
            return PolynomialRegression(self.degree)
        powers = np.array(self.powers)
        return FeatureOLS(lambda x: np.asarray(x)[:, None] ** powers[None, :], f"monomials{self.powers}")


class EvaluationSpec(StrictModel):
    """``uniform`` on [low, high], ``points`` (with optional ``weights``) or ``samples``."""

    type: Literal["uniform", "points", "samples"] = Field(
        default="uniform",
        description="the buyer's evaluation distribution: uniform, weighted points or samples",
        json_schema_extra={"symbol": "F_j"},
    )
    low: float = Field(
        default=-1.0, description="lower end of the uniform interval", json_schema_extra={"unit": "location"}
    )
    high: float = Field(
        default=1.0, description="upper end of the uniform interval", json_schema_extra={"unit": "location"}
    )
    points: list[float] = Field(
        default_factory=list,
        description="evaluation points (type = points)",
        json_schema_extra={"unit": "location", "symbol": "x*"},
    )
    weights: list[NonNegativeFloat] = Field(
        default_factory=list,
        description="weights of the points (default equal)",
        json_schema_extra={"unit": "1"},
    )
    samples: list[float] = Field(
        default_factory=list,
        description="evaluation samples (type = samples)",
        json_schema_extra={"unit": "location", "symbol": "x*"},
    )

    @model_validator(mode="after")
    def _consistent(self) -> EvaluationSpec:
        if self.type == "uniform" and not self.high > self.low:
            raise ValueError("high must exceed low")
        if self.type == "points":
            if not self.points:
                raise ValueError("points must be non-empty")
            if self.weights and (len(self.weights) != len(self.points) or sum(self.weights) <= 0):
                raise ValueError("weights: one non-negative weight per point, with a positive sum")
        if self.type == "samples" and not self.samples:
            raise ValueError("samples must be non-empty")
        return self

    def build(self) -> EvaluationDistribution:
        if self.type == "uniform":
            return UniformInterval(self.low, self.high)
        if self.type == "points":
            return DiscretePoints(np.array(self.points), np.array(self.weights) if self.weights else None)
        return EmpiricalSamples(np.array(self.samples))


class SourceSpec(Source):
    """A source: its name, location and effort sensitivity (the service's ``source`` submission)."""

    name: str = Field(
        default="",
        description="source name (default source1, source2, ...)",
        json_schema_extra={"symbol": "i"},
    )


class BuyerSpec(StrictModel):
    name: str = Field(
        default="", description="buyer name (default buyer1, buyer2, ...)", json_schema_extra={"symbol": "j"}
    )
    estimator: EstimatorSpec = Field(
        default_factory=EstimatorSpec,
        description="the buyer's estimator (Assumption 3)",
        json_schema_extra={"symbol": "f̂^j"},
    )
    evaluation: EvaluationSpec = Field(
        default_factory=EvaluationSpec,
        description="where the buyer cares about its error (loss, eq. 2)",
        json_schema_extra={"symbol": "F_j"},
    )
    eta: PositiveFloat = eta_field()
    theta: NonNegativeFloat | None = Field(
        default=None,
        description="this buyer's share of every source's effort cost (all buyers or none, summing to 1)",
        json_schema_extra={"unit": "share", "symbol": "θ^j"},
    )


class SimulationSpec(StrictModel):
    rounds: int = Field(
        default=20_000,
        ge=2,
        le=2_000_000,
        description="Monte Carlo rounds of the contracts",
        json_schema_extra={"unit": "rounds"},
    )
    truth: list[float] = Field(
        default_factory=list,
        description="coefficients of the true function, f(x) = sum_p truth[p] x^p",
        json_schema_extra={"unit": "data units", "symbol": "f"},
    )


class Config(Params, ScenarioConfig):
    """A competing-buyers scenario: the market parameter ``competition``
    (:class:`~datamarket.scenarios.inputs.competing_buyers.Params`, shared with the service), the
    sources, the buyers and the Monte Carlo check."""

    kind: Literal["competing_buyers"]
    sources: list[SourceSpec] = Field(
        min_length=2,
        description="the data sources (at least two: payments use leave-one-out fits)",
        json_schema_extra={"symbol": "N"},
    )
    buyers: list[BuyerSpec] = Field(
        min_length=1, description="the buyers (data aggregators)", json_schema_extra={"symbol": "M"}
    )
    simulation: SimulationSpec = Field(
        default_factory=SimulationSpec, description="Monte Carlo check of the contracts"
    )

    @model_validator(mode="after")
    def _check(self) -> Config:
        m = len(self.buyers)
        comp = np.asarray(self.competition, dtype=float)
        if comp.ndim == 2 and comp.shape != (m, m):
            raise ValueError(f"competition: must be a scalar or a {m} x {m} matrix")
        thetas = [b.theta for b in self.buyers]
        if any(t is not None for t in thetas):
            if any(t is None for t in thetas) or abs(sum(t or 0.0 for t in thetas) - 1.0) > 1e-9:
                raise ValueError("buyers.theta: give every buyer a share, summing to 1")
        return self

    def market(self) -> CompetingMarket:
        """The library market this config describes (raises ``InvalidMarketError`` on bad markets)."""
        return CompetingMarket(
            locations=np.array([s.location for s in self.sources]),
            effort_alpha=np.array([s.effort_alpha for s in self.sources]),
            estimators=tuple(b.estimator.build() for b in self.buyers),
            evaluations=tuple(b.evaluation.build() for b in self.buyers),
            competition=np.asarray(self.competition, dtype=float),
            eta=np.array([b.eta for b in self.buyers]),
            source_names=tuple(s.name or f"source{i + 1}" for i, s in enumerate(self.sources)),
            buyer_names=tuple(b.name or f"buyer{j + 1}" for j, b in enumerate(self.buyers)),
        )

    def theta(self) -> np.ndarray | None:
        if self.buyers[0].theta is None:
            return None
        return np.array([b.theta for b in self.buyers], dtype=float)


class Fields(ResultFields):
    """The kind's JSON fields (public interface; arrays are indexed source first, buyer last)."""

    gamma: list[Any] = Field(description="gamma[i][k]")
    xi: list[Any] = Field(description="xi[i][l][k]")
    spectral_radius: float | None = Field(description="rho(A)")
    gne_exists: bool = Field(description="a generalized Nash equilibrium exists")
    d: list[Any] | None = Field(description="d[i][k], null when no solution")
    effort_equilibrium: list[Any] | None = Field(description="e* per source")
    effort_social: list[Any] = Field(
        description="social-optimum effort per source (unconstrained: may be negative)"
    )
    loss_equilibrium: float | None = Field(description="L(e*)")
    loss_social: float | None = Field(description="L(e_social)")
    price_of_anarchy: float | None = Field(description="null when undefined")
    contracts: dict[str, Any] | None = Field(description="c, d; null when no GNE")
    total_gamma: list[Any] = Field(default_factory=list, description="Gamma_i per source")
    total_d: list[Any] | None = Field(default=None, description="D_i per source")
    feasible_sources: list[Any] = Field(default_factory=list, description="2 alpha_i D_i >= 1 per source")
    effort_social_unconstrained: bool = Field(
        default=False, description="some social-optimum effort is negative"
    )
    equilibrium_status: str = Field(default="", description="one line explaining the equilibrium verdict")
    best_responses: list[Any] = Field(
        default_factory=list,
        description="per buyer: equilibrium_cost, best_response_cost, improvement, max_abs_d_gap",
    )


def default_config() -> Config:
    """Two sources, a global and a local linear buyer with competition 0.25 (runs in about 1 s)."""
    return Config.model_validate(
        {
            "kind": "competing_buyers",
            "name": "two sources, a global and a local linear buyer",
            "sources": [
                {"name": "s1", "location": -0.5, "effort_alpha": 1.0},
                {"name": "s2", "location": 0.8, "effort_alpha": 2.0},
            ],
            "buyers": [
                {"name": "global", "estimator": {"type": "polynomial", "degree": 1}},
                {
                    "name": "local",
                    "estimator": {"type": "polynomial", "degree": 1},
                    "evaluation": {"type": "points", "points": [0.0, 0.5, 1.0], "weights": [1, 2, 1]},
                },
            ],
            "competition": 0.25,
            "simulation": {"rounds": 20000},
        }
    )


def _f(coefs: list[float]) -> Any:
    if not coefs:
        return None
    c = np.array(coefs, dtype=float)
    return lambda x: np.polynomial.polynomial.polyval(np.asarray(x), c)


def _list(a: np.ndarray | None) -> Any:
    return None if a is None else np.asarray(a).tolist()


_BEST_RESPONSES = "best responses (L-BFGS-B)"


def _tables(
    config: Config, an: CompetingAnalysis, brs: list[BestResponse]
) -> dict[str, list[dict[str, Any]]]:
    """The equilibrium and sources tables; with a GNE also the contracts checked by Monte Carlo, the
    sources' simulated utilities and the buyers' best responses."""
    g = an.gne
    tables: dict[str, list[dict[str, Any]]] = {
        "equilibrium": _equilibrium_rows(an),
        "sources": _source_rows(an),
    }
    if not g.gne_exists or g.c is None or g.d is None or g.expected_payments is None:
        return tables
    sim = simulate_payments(an, config.simulation.rounds, config.seed, truth=_f(config.simulation.truth))
    tables["contracts"] = [
        {
            "source": sname,
            "buyer": bname,
            "gamma": float(an.gamma[i, k]),
            "d": float(g.d[i, k]),
            "c": float(g.c[i, k]),
            "E[p] (f unbiased)": float(g.expected_payments[i, k]),
            "E[p] (with bias)": float(sim.expected[i, k]),
            "MC mean": float(sim.mean[i, k]),
            f"bound (z={Z_BOUND:g})": float(sim.bound[i, k]),
            "within": bool(abs(sim.mean[i, k] - sim.expected[i, k]) <= sim.bound[i, k]),
        }
        for i, sname in enumerate(an.market.source_names)
        for k, bname in enumerate(an.market.buyer_names)
    ]
    tables["monte carlo source utility"] = [
        {
            "source": sname,
            "rounds": sim.rounds,
            "MC utility": float(sim.utility[i]),
            "exact utility": float(sim.utility_expected[i]),
            f"bound (z={Z_BOUND:g})": float(sim.utility_bound[i]),
        }
        for i, sname in enumerate(an.market.source_names)
    ]
    tables[_BEST_RESPONSES] = _best_response_rows(an, brs)
    return tables


def _equilibrium_rows(an: CompetingAnalysis) -> list[dict[str, Any]]:
    g = an.gne
    return [
        {"quantity": "status", "value": g.status},
        {"quantity": "spectral radius rho(A)", "value": g.spectral_radius},
        {"quantity": "Jacobi iterations", "value": g.jacobi_iterations},
        {"quantity": "max |d_jacobi - d_solve|", "value": g.jacobi_gap},
        {"quantity": "loss at equilibrium L(e*)", "value": g.loss_equilibrium},
        {"quantity": "social loss L(e_social)", "value": g.loss_social},
        {"quantity": "price of anarchy", "value": g.price_of_anarchy},
    ]


def _source_rows(an: CompetingAnalysis) -> list[dict[str, Any]]:
    g, mk = an.gne, an.market
    e_star, var = g.effort_equilibrium, an.variances
    return [
        {
            "source": name,
            "location": float(np.asarray(mk.locations)[i]),
            "effort_alpha": float(np.asarray(mk.effort_alpha)[i]),
            "Gamma": float(g.total_gamma[i]),
            "D": None if g.total_d is None else float(g.total_d[i]),
            "2 alpha D >= 1": g.feasible_sources[i],
            "effort e*": None if e_star is None else float(e_star[i]),
            "effort social": float(g.effort_social[i]),
            "variance": None if var is None else float(var[i]),
        }
        for i, name in enumerate(mk.source_names)
    ]


def _best_response_rows(an: CompetingAnalysis, brs: list[BestResponse]) -> list[dict[str, Any]]:
    d = an.gne.d
    assert d is not None
    rows = []
    for br, bname in zip(brs, an.market.buyer_names, strict=True):
        k = br.buyer
        rows.append(
            {
                "buyer": bname,
                "cost at GNE": br.equilibrium_cost,
                "best response cost": br.cost,
                "improvement": br.improvement,
                "max |d_br - d_gne|": float(np.max(np.abs(br.d - d[:, k]))),
            }
        )
    return rows


def run(config: Config) -> ScenarioResult:
    """Weights, GNE, social optimum, PoA, best-response check and Monte Carlo of ``config``."""
    market = config.market()
    an = analyse_market(market, config.theta())
    g = an.gne
    fields: dict[str, Any] = {
        "gamma": _list(an.gamma),
        "xi": _list(an.xi),
        "spectral_radius": g.spectral_radius,
        "gne_exists": g.gne_exists,
        "d": _list(g.d),
        "effort_equilibrium": _list(g.effort_equilibrium),
        "effort_social": _list(g.effort_social),
        "loss_equilibrium": g.loss_equilibrium,
        "loss_social": g.loss_social,
        "price_of_anarchy": g.price_of_anarchy,
        "contracts": {"c": _list(g.c), "d": _list(g.d)} if g.gne_exists else None,
        "total_gamma": _list(g.total_gamma),
        "total_d": _list(g.total_d),
        "feasible_sources": list(g.feasible_sources),
        "effort_social_unconstrained": bool(np.any(np.asarray(g.effort_social) < 0)),
        "equilibrium_status": g.status,
    }
    brs = [best_response(k, g) for k in range(market.n_buyers)] if g.gne_exists else []
    tables = _tables(config, an, brs)
    fields["best_responses"] = [
        {
            "buyer": r["buyer"],
            "equilibrium_cost": r["cost at GNE"],
            "best_response_cost": r["best response cost"],
            "improvement": r["improvement"],
            "max_abs_d_gap": r["max |d_br - d_gne|"],
        }
        for r in tables.get(_BEST_RESPONSES, [])
    ]
    outcome = None
    audits = {}
    if g.gne_exists:
        outcome = market_outcome(an)
        audits = {
            k: v for k, v in audit_outcome(outcome, tol=1e-9).items() if k != "ir_buyer"
        }  # buyers have no money value in Westenbroek et al.: IR of buyers is not a property here
        ic = audit_incentive_compatibility(ic_probes(an), tol=1e-9)
        audits[ic.property.value] = ic
    return ScenarioResult(
        kind="competing_buyers",
        seed=config.seed,
        fields=fields,
        outcome=outcome,
        audits=audits,
        tables=tables,
        status="ok" if g.gne_exists else "no_equilibrium",
        reason=None if g.gne_exists else g.status,
        certificate=certify_gne(g, best_responses=brs or None),
    )
