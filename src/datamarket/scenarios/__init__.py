"""Scenario files: load, validate and run a market described in TOML or JSON.

>>> "kind" in ScenarioConfig.model_fields
True
"""

from datamarket.scenarios._base import (
    RESULT_SCHEMA,
    SCHEMA_VERSION,
    ResultFields,
    ScenarioConfig,
    ScenarioResult,
    StrictModel,
)
from datamarket.scenarios._loader import (
    ScenarioError,
    available_kinds,
    default_config,
    parse_scenario,
    run_scenario,
    scenario_module,
    scenario_modules,
)
from datamarket.scenarios._valuation_config import (
    BackendSpec,
    ValuationConfig,
    build_game,
    parse_valuation_config,
    run_valuation,
)
from datamarket.scenarios._valuation_data import (
    TabularData,
    bundled_dataset,
    csv_columns,
    dataset_from_columns,
    dataset_from_csv_text,
)
from datamarket.scenarios._valuation_points import (
    PointValuation,
    is_point_method,
    point_table,
    seller_table,
    value_points,
)

__all__ = [
    "RESULT_SCHEMA",
    "SCHEMA_VERSION",
    "BackendSpec",
    "PointValuation",
    "ResultFields",
    "ScenarioConfig",
    "ScenarioError",
    "ScenarioResult",
    "StrictModel",
    "TabularData",
    "ValuationConfig",
    "available_kinds",
    "build_game",
    "bundled_dataset",
    "csv_columns",
    "dataset_from_columns",
    "dataset_from_csv_text",
    "default_config",
    "is_point_method",
    "parse_scenario",
    "parse_valuation_config",
    "point_table",
    "run_scenario",
    "run_valuation",
    "scenario_module",
    "scenario_modules",
    "seller_table",
    "value_points",
]
