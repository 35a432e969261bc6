"""Scenario files: load, validate and run a market described in TOML or JSON.

>>> "kind" in ScenarioConfig.model_fields
True
"""

from datamarket.scenarios._base import ScenarioConfig, ScenarioResult, StrictModel
from datamarket.scenarios._loader import (
    ScenarioError,
    available_kinds,
    default_config,
    parse_scenario,
    run_scenario,
)

__all__ = [
    "ScenarioConfig",
    "ScenarioError",
    "ScenarioResult",
    "StrictModel",
    "available_kinds",
    "default_config",
    "parse_scenario",
    "run_scenario",
]
