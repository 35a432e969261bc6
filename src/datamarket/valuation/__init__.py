"""Valuation engine: cooperative games over sellers and their Shapley, Banzhaf and LOO values."""

from datamarket.valuation.exact import (
    exact_banzhaf,
    exact_shapley,
    leave_one_out,
    shapley_from_table,
    value_table,
)
from datamarket.valuation.games import CoalitionGame, FunctionGame, TableGame, members, to_mask
from datamarket.valuation.result import ValuationResult

__all__ = [
    "CoalitionGame",
    "FunctionGame",
    "TableGame",
    "ValuationResult",
    "exact_banzhaf",
    "exact_shapley",
    "leave_one_out",
    "members",
    "shapley_from_table",
    "to_mask",
    "value_table",
]
