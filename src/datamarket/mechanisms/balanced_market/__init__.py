r"""Online data market with Shapley revenue division and a demographic-balance intervention
(Chaintreau et al.).

Paper: "The Cost of Balanced Training-Data Production in an Online Data Market". :math:`M` sellers with
unit costs :math:`\kappa_g` produce samples of demographic groups :math:`g`; buyers with values of
accuracy :math:`\mu_{i,g}` and learning curves :math:`\mathcal G(n) = (Z - \alpha n^{-\beta})_+` (eq. 2)
bid truthfully (Fact 4.1); an intervention requires the demographics :math:`\gamma`.

Key equations
-------------
* reserve prices maximise the potential value :math:`\rho_g(p) = p\,\#\{i: \mu_{i,g} \ge p\}`
  (eqs. 14-15); allocation (4)-(5); revenue (6); Shapley payment division (7)/(9); utilities (8)-(10);
* the paper model: closed forms of Lemma 4.1/4.2, Claim 4.1/4.2, Thm 4.1/4.2, Cor 4.1 and the bound of
  Thm 5.4 (namespace :mod:`paper <datamarket.mechanisms.balanced_market._paper>`); the exact
  Shapley-Nash game for heterogeneous markets (Prop. 4.1): best responses and all equilibria.

Entry points
------------
:class:`BalancedMarket`, :func:`solve_baseline` and :func:`solve_intervention` (equilibria, model
``"paper"`` or ``"shapley_nash"``), :func:`analyse` (both scenarios, utility ratios, backfire),
:func:`round_outcome` (an ``Outcome``), :func:`run_empirical_round` (a round with scikit-learn gains),
:func:`find_equilibria` / :func:`best_response` (the sellers' Shapley game), ``MECHANISMS``.

Modules: ``_core`` (market type, reserve prices, settlement), ``_paper`` (closed forms), ``_shapley``
(the exact Shapley game), ``_classes`` (its class engine), ``_search`` (the iterated best response and
candidate check both engines share), ``_equilibrium`` (both equilibrium models, thresholds, growth),
``_mechanism`` (round mechanics, outcomes, empirical rounds, declared guarantees).

>>> m = BalancedMarket.quasi_symmetric([[1.0, 1.0]], [0.25, 0.25], (1, 1, 1), n_sellers=1, gamma=[0.6, 0.4])
>>> solve_baseline(m).forms, solve_intervention(m).forms   # Thm 5.3's example: the intervention backfires
(True, False)
"""

from datamarket.mechanisms.balanced_market import _paper as paper
from datamarket.mechanisms.balanced_market._certificate import (
    best_response_regrets,
    certify_empirical_round,
    certify_solutions,
)
from datamarket.mechanisms.balanced_market._classes import class_equilibria, seller_classes, seller_equilibria
from datamarket.mechanisms.balanced_market._core import (
    SIMPLEX_TOL,
    BalancedMarket,
    MarketSolution,
    Model,
    Tie,
    Utilities,
    group_terms,
    intervention_terms,
    marketplace_best_response,
    reserve_prices,
    settle,
    validate_gamma,
)
from datamarket.mechanisms.balanced_market._equilibrium import (
    MAX_PRICE_ROUNDS,
    backfire_market,
    backfires,
    default_growth_sizes,
    fully_forming,
    growth_sequence,
    intervention_threshold,
    potential_value,
    price_of_fairness,
    solve_baseline,
    solve_intervention,
    thresholds,
    utility_ratios,
)
from datamarket.mechanisms.balanced_market._mechanism import (
    MECHANISMS,
    PAPER,
    EmpiricalRound,
    MarketAnalysis,
    allocation,
    analyse,
    digits_market,
    payment_division,
    revenue_game,
    round_outcome,
    run_empirical_round,
)
from datamarket.mechanisms.balanced_market._paper import (
    optimal_gamma,
    symmetric_shapley_quantity,
    tau_h,
    thm54_bound,
)
from datamarket.mechanisms.balanced_market._shapley import (
    BestResponse,
    Coalitions,
    SellerEquilibria,
    Terms,
    best_response,
    coalitions_of,
    find_equilibria,
    payoff,
    regrets,
    shapley_payment,
    shapley_size_weights,
)

__all__ = [
    "MAX_PRICE_ROUNDS",
    "MECHANISMS",
    "PAPER",
    "SIMPLEX_TOL",
    "BalancedMarket",
    "BestResponse",
    "Coalitions",
    "EmpiricalRound",
    "MarketAnalysis",
    "MarketSolution",
    "Model",
    "SellerEquilibria",
    "Terms",
    "Tie",
    "Utilities",
    "allocation",
    "analyse",
    "backfire_market",
    "backfires",
    "best_response",
    "best_response_regrets",
    "certify_empirical_round",
    "certify_solutions",
    "class_equilibria",
    "coalitions_of",
    "default_growth_sizes",
    "digits_market",
    "find_equilibria",
    "fully_forming",
    "group_terms",
    "growth_sequence",
    "intervention_terms",
    "intervention_threshold",
    "marketplace_best_response",
    "optimal_gamma",
    "paper",
    "payment_division",
    "payoff",
    "potential_value",
    "price_of_fairness",
    "regrets",
    "reserve_prices",
    "revenue_game",
    "round_outcome",
    "run_empirical_round",
    "seller_classes",
    "seller_equilibria",
    "settle",
    "shapley_payment",
    "shapley_size_weights",
    "solve_baseline",
    "solve_intervention",
    "symmetric_shapley_quantity",
    "tau_h",
    "thm54_bound",
    "thresholds",
    "utility_ratios",
    "validate_gamma",
]
