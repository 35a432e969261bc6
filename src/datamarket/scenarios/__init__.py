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
    bundled_dataset,
    dataset_from_csv_text,
    parse_valuation_config,
    run_valuation,
)

__all__ = [
    "RESULT_SCHEMA",
    "SCHEMA_VERSION",
    "BackendSpec",
    "ResultFields",
    "ScenarioConfig",
    "ScenarioError",
    "ScenarioResult",
    "StrictModel",
    "ValuationConfig",
    "available_kinds",
    "build_game",
    "bundled_dataset",
    "dataset_from_csv_text",
    "default_config",
    "parse_scenario",
    "parse_valuation_config",
    "run_scenario",
    "run_valuation",
    "scenario_module",
    "scenario_modules",
]
