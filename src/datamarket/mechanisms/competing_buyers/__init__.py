r"""Competing buyers and strategic, effort-averse data sources (Westenbroek et al.).

Paper: Westenbroek, Dong, Ratliff and Sastry, "Statistical Estimation with Strategic Data Sources in
Competitive Settings". Sources exert effort :math:`e_i` for reports with noise
:math:`\sigma_i(e) = e^{-\alpha_i e}` (Assumption 2, eq. 16); buyers with separable estimators
(Assumption 3) compete and pay contracts :math:`p_i^j = c_i^j - d_i^j (y_i - \hat f^j_{-i}(x_i))^2`
(Assumption 1, eq. 8).

Key equations
-------------
* weights :math:`\beta`, leave-one-out :math:`\xi` and competition-adjusted :math:`\gamma` (after
  Assumption 3), computed from the estimator;
* the buyers' generalized Nash equilibrium (Theorem 1): the Leontief system (25)-(26),
  :math:`(I - A) d = \gamma`, unique when :math:`\rho(A) < 1`; efforts (17) and variances (18);
* social loss (27), social optimum (28) and the price of anarchy (Theorem 2).

Entry points
------------
:class:`CompetingMarket` (estimators :class:`PolynomialRegression`, :class:`FeatureOLS`,
:class:`LinearSmoother`; evaluation distributions :class:`UniformInterval`, :class:`DiscretePoints`,
:class:`EmpiricalSamples`), :func:`analyse_market` (weights + GNE), :func:`market_outcome` (an
``Outcome``), :func:`solve_gne` (the equilibrium on raw weights), :func:`best_response` (numerical
verifier), :func:`certify_gne` (the certificate of a result's claims), :func:`simulate_payments`
(Monte Carlo of the contracts), ``MECHANISMS``.

Modules: ``_models`` (estimators, distributions), ``_gne`` (equilibrium, on
:mod:`datamarket.equilibrium`'s Leontief tools), ``_mechanism`` (market, weights, analysis, declared
guarantees), ``_certificate`` (independent checks of the equilibrium), ``_simulation`` (Monte Carlo).

>>> analysis = analyse_market(section_iv_market(0.5))
>>> analysis.gne.gne_exists, analysis.gne.price_of_anarchy is not None
(True, True)
"""

from datamarket.mechanisms.competing_buyers._certificate import GAIN_ROUNDING, certify_gne
from datamarket.mechanisms.competing_buyers._gne import (
    COND_MAX,
    RHO_TOL,
    BestResponse,
    GNEResult,
    best_response,
    buyer_cost,
    canonical_contracts,
    effort_variance,
    equilibrium_loss,
    leontief_matrix,
    social_effort,
    social_loss,
    social_optimum_loss,
    solve_gne,
    source_effort,
)
from datamarket.mechanisms.competing_buyers._mechanism import (
    MECHANISM_NAME,
    MECHANISMS,
    PAPER,
    CompetingAnalysis,
    CompetingMarket,
    analyse_market,
    competition_weights,
    ic_probes,
    loo_prediction_matrices,
    loo_weights,
    market_outcome,
    sample,
    section_iv_market,
    source_expected_utility,
    variance_weights,
)
from datamarket.mechanisms.competing_buyers._models import (
    DiscretePoints,
    EmpiricalSamples,
    EvaluationDistribution,
    FeatureOLS,
    LinearSmoother,
    PolynomialRegression,
    SeparableEstimator,
    UniformInterval,
)
from datamarket.mechanisms.competing_buyers._simulation import (
    Z_BOUND,
    PaymentSimulation,
    effort_sweep,
    simulate_payments,
)

__all__ = [
    "COND_MAX",
    "GAIN_ROUNDING",
    "MECHANISMS",
    "MECHANISM_NAME",
    "PAPER",
    "RHO_TOL",
    "Z_BOUND",
    "BestResponse",
    "CompetingAnalysis",
    "CompetingMarket",
    "DiscretePoints",
    "EmpiricalSamples",
    "EvaluationDistribution",
    "FeatureOLS",
    "GNEResult",
    "LinearSmoother",
    "PaymentSimulation",
    "PolynomialRegression",
    "SeparableEstimator",
    "UniformInterval",
    "analyse_market",
    "best_response",
    "buyer_cost",
    "canonical_contracts",
    "certify_gne",
    "competition_weights",
    "effort_sweep",
    "effort_variance",
    "equilibrium_loss",
    "ic_probes",
    "leontief_matrix",
    "loo_prediction_matrices",
    "loo_weights",
    "market_outcome",
    "sample",
    "section_iv_market",
    "simulate_payments",
    "social_effort",
    "social_loss",
    "social_optimum_loss",
    "solve_gne",
    "source_effort",
    "source_expected_utility",
    "variance_weights",
]
