"""Valuation engine: cooperative games over sellers and their Shapley, Banzhaf and LOO values.

A valuation is a game (:mod:`~datamarket.valuation.games`, :class:`ModelGame`) x a method (exact
enumeration, Monte Carlo permutations, structured dynamic programmes, and the estimators of
:mod:`~datamarket.valuation.methods`: control variates, regression, semivalues) x a stopping rule
(:mod:`~datamarket.valuation.stopping`) x an execution backend (:mod:`~datamarket.valuation.backends`).
"""

from datamarket.valuation.backends import DaskBackend, ProcessBackend, SerialBackend, resolve_backend
from datamarket.valuation.closed_form import AirportGame, GloveGame, VotingGame
from datamarket.valuation.exact import (
    exact_banzhaf,
    exact_shapley,
    leave_one_out,
    shapley_from_table,
    subset_shapley,
    value_table,
)
from datamarket.valuation.games import CoalitionGame, FunctionGame, MemoCache, TableGame, members, to_mask
from datamarket.valuation.methods import (
    beta_shapley,
    control_variate_shapley,
    data_oob,
    knn_shapley,
    msr_banzhaf,
    regression_adjusted_shapley,
    regression_shapley,
    stratified_semivalue,
)
from datamarket.valuation.model_game import ModelGame
from datamarket.valuation.montecarlo import monte_carlo_shapley
from datamarket.valuation.result import ProgressInfo, ValuationResult
from datamarket.valuation.stopping import (
    MaxEvaluations,
    MaxPermutations,
    MaxTime,
    RankStability,
    RunState,
    StderrTarget,
    StoppingRule,
)
from datamarket.valuation.structured import grouped_quantity_game_shapley, quantity_game_shapley

__all__ = [
    "AirportGame",
    "CoalitionGame",
    "DaskBackend",
    "FunctionGame",
    "GloveGame",
    "MaxEvaluations",
    "MaxPermutations",
    "MaxTime",
    "MemoCache",
    "ModelGame",
    "ProcessBackend",
    "ProgressInfo",
    "RankStability",
    "RunState",
    "SerialBackend",
    "StderrTarget",
    "StoppingRule",
    "TableGame",
    "ValuationResult",
    "VotingGame",
    "beta_shapley",
    "control_variate_shapley",
    "data_oob",
    "exact_banzhaf",
    "exact_shapley",
    "grouped_quantity_game_shapley",
    "knn_shapley",
    "leave_one_out",
    "members",
    "monte_carlo_shapley",
    "msr_banzhaf",
    "quantity_game_shapley",
    "regression_adjusted_shapley",
    "regression_shapley",
    "resolve_backend",
    "shapley_from_table",
    "stratified_semivalue",
    "subset_shapley",
    "to_mask",
    "value_table",
]
