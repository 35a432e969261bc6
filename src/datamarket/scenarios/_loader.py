"""Parse, validate and dispatch scenarios to the module of their ``kind``."""

from __future__ import annotations

import importlib
import json
import re
import tomllib
from types import ModuleType
from typing import Any

import pydantic

from datamarket.core.audits import judge
from datamarket.core.errors import DatamarketError
from datamarket.families import families
from datamarket.mechanisms import registered_mechanisms
from datamarket.scenarios._base import ScenarioConfig, ScenarioResult
from datamarket.scenarios._errors import format_validation_error, suggest


class ScenarioError(DatamarketError):
    """A scenario that cannot be parsed, validated or run; the message is one line."""


def scenario_modules() -> dict[str, str]:
    """Kind -> scenario module path, for every registered family with a scenario
    (:mod:`datamarket.families`), in kind order."""
    return dict(sorted((f.kind, f.scenario) for f in families() if f.scenario is not None))


def available_kinds() -> list[str]:
    """Scenario kinds of the registered families (:mod:`datamarket.families`)."""
    return list(scenario_modules())


def scenario_module(kind: Any) -> ModuleType:
    """The scenario module of ``kind``: ``Config``, ``default_config()``, ``run(config)``."""
    modules = scenario_modules()
    if not isinstance(kind, str) or not re.fullmatch(r"[a-z0-9_]+", kind) or kind not in modules:
        hint = suggest(kind, modules) if isinstance(kind, str) else ""
        available = ", ".join(modules)
        raise ScenarioError(f"kind: unknown scenario kind {kind!r}{hint} (available: {available})")
    return importlib.import_module(modules[kind])


def validate_scenario(data: Any) -> ScenarioConfig:
    """Validate a parsed mapping against the ``Config`` of its kind."""
    if not isinstance(data, dict):
        raise ScenarioError("scenario: top level must be a table/object")
    if "kind" not in data:
        raise ScenarioError("kind: missing (one of: " + ", ".join(available_kinds()) + ")")
    module = scenario_module(data["kind"])
    try:
        config: ScenarioConfig = module.Config.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ScenarioError(format_validation_error(exc, module.Config)) from None
    return config


def _decode_error(exc: tomllib.TOMLDecodeError | json.JSONDecodeError) -> str:
    """``at line L, column C: message`` from either parser (TOML's position is in its message)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"at line {exc.lineno}, column {exc.colno}: {exc.msg}"
    text = str(exc)
    found = re.search(r"\s*\(at (line \d+, column \d+|end of document)\)$", text)
    if found is None:
        return text
    return f"at {found.group(1)}: {text[: found.start()]}"


def load_mapping(text: str, fmt: str, what: str, *, require_table: bool = True) -> Any:
    """Parse TOML or JSON text; one-line :class:`ScenarioError` naming ``what`` (and the line) when
    malformed, e.g. ``scenario: malformed TOML at line 3, column 8: Invalid value``."""
    try:
        data = tomllib.loads(text) if fmt == "toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ScenarioError(f"{what}: malformed {fmt.upper()} {_decode_error(exc)}") from None
    if require_table and not isinstance(data, dict):
        raise ScenarioError(f"{what}: top level must be a table/object")
    return data


def parse_scenario(text: str, fmt: str = "toml", *, seed: int | None = None) -> ScenarioConfig:
    """Parse TOML or JSON text into a validated config; ``seed`` overrides the file's seed.

    >>> cfg = parse_scenario('kind = "nope"')
    Traceback (most recent call last):
    ...
    datamarket.scenarios._loader.ScenarioError: kind: unknown scenario kind 'nope' ...
    """
    data = load_mapping(text, fmt, "scenario", require_table=False)
    if seed is not None and isinstance(data, dict):
        data["seed"] = seed
    return validate_scenario(data)


def default_config(kind: str, *, seed: int = 0) -> ScenarioConfig:
    """The embedded default market of ``kind`` (what ``datamarket demo`` runs)."""
    config: ScenarioConfig = scenario_module(kind).default_config()
    return config.model_copy(update={"seed": seed})


def run_scenario(config: ScenarioConfig) -> ScenarioResult:
    """Run a validated scenario with the module of its kind; audits are judged against declarations.

    Each audit's ``mechanism`` (or else the outcome's) is looked up among the registered mechanisms and
    its ``expected_to_hold`` set from that mechanism's declared guarantees (:func:`judge`).
    """
    result: ScenarioResult = scenario_module(config.kind).run(config)
    infos = {m.name: m for m in registered_mechanisms()}
    default = result.outcome.mechanism if result.outcome is not None else ""
    result.audits = {k: judge(a, infos.get(a.mechanism or default)) for k, a in result.audits.items()}
    return result
