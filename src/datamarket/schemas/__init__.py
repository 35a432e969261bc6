"""JSON Schemas of the package's public JSON outputs (data files; see docs/results.md).

``result.schema.json`` describes ``datamarket run FILE --json`` (``ScenarioResult.to_json()``). It is
**generated**, never edited by hand: :func:`build_result_schema` assembles the envelope every kind
shares (from :class:`~datamarket.scenarios.ScenarioResult`'s vocabulary: statuses, audit properties,
scopes) and, for each scenario kind of the family registry (:mod:`datamarket.families`), the kind's
documented fields, read from its scenario module's ``Fields`` model
(:class:`~datamarket.scenarios.ResultFields`). Regenerate the committed file after changing a kind's
fields with ``python -m datamarket.schemas`` (a test checks that it is up to date).

>>> result_schema()["properties"]["schema_version"]
{'const': 2}
>>> build_result_schema()["properties"]["kind"]["enum"][:2]
['balanced_market', 'broker']
"""

from __future__ import annotations

import importlib
import json
import types
import typing
from collections.abc import Iterable
from importlib.resources import files
from pathlib import Path
from typing import Any

__all__ = [
    "RESULT_SCHEMA_FILE",
    "build_result_schema",
    "kind_schema",
    "result_schema",
    "schema_text",
    "write_result_schema",
]

RESULT_SCHEMA_FILE = "result.schema.json"


def result_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the scenario-result JSON, as shipped (built-in kinds)."""
    data: dict[str, Any] = json.loads(files(__name__).joinpath(RESULT_SCHEMA_FILE).read_text())
    return data


def _json_type(annotation: Any) -> list[str] | None:
    """The JSON types of a field annotation (``None``: any)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _json_type(typing.get_args(annotation)[0])
    if origin is typing.Union or isinstance(annotation, types.UnionType):
        out: list[str] = []
        for arg in typing.get_args(annotation):
            t = ["null"] if arg is type(None) else _json_type(arg)
            if t is None:
                return None
            out += [x for x in t if x not in out]
        return out
    base = origin or annotation
    names = {int: "integer", float: "number", bool: "boolean", str: "string", list: "array", dict: "object"}
    if base in names:
        return [names[base]]
    if isinstance(base, type) and hasattr(base, "model_fields"):
        return ["object"]
    return None


def kind_schema(fields_model: Any) -> dict[str, Any]:
    """The ``then`` part of one kind: its documented fields (a ``ResultFields`` model) as properties,
    those without a default required."""
    props: dict[str, Any] = {}
    for name, info in fields_model.model_fields.items():
        prop: dict[str, Any] = {}
        t = _json_type(info.annotation)
        if t is not None:
            prop["type"] = t[0] if len(t) == 1 else t
        prop["description"] = info.description or ""
        props[name] = prop
    required = [name for name, info in fields_model.model_fields.items() if info.is_required()]
    return {"properties": props, "required": required}


def _envelope(kinds: list[str]) -> dict[str, Any]:
    """The fields every result has (``ScenarioResult.to_json()``), with the kinds' names."""
    from datamarket.core.certificates import Status
    from datamarket.scenarios import RESULT_SCHEMA, SCHEMA_VERSION

    names = {"type": "object", "propertyNames": {"pattern": "^[a-z0-9_]+$"}}
    return {
        "schema": {"const": RESULT_SCHEMA},
        "schema_version": {"const": SCHEMA_VERSION},
        "kind": {"enum": kinds},
        "seed": {"type": "integer", "minimum": 0},
        "status": {
            "enum": list(typing.get_args(Status)),
            "description": "ok: every check of the certificate passed; unverified: a check failed; "
            "no_equilibrium: the market has none; no_equilibrium_found: the search found none that "
            "passes its check",
        },
        "reason": {"type": ["string", "null"]},
        "outcome": {"type": ["object", "null"], "description": "datamarket.outcome/1"},
        "audits": {"type": "object", "additionalProperties": {"$ref": "#/$defs/audit"}},
        "certificate": {"$ref": "#/$defs/certificate"},
        "deprecations": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "replacement", "removed_in_schema_version"],
                "properties": {
                    "field": {"type": "string"},
                    "replacement": {"type": "string"},
                    "removed_in_schema_version": {"type": "integer"},
                },
                "additionalProperties": False,
            },
        },
        "tables": {**names, "additionalProperties": {"type": "array", "items": names}},
    }


def _audit() -> dict[str, Any]:
    """One audit (``AuditResult.to_dict()``)."""
    from datamarket.core.audits import AuditStatus, Property, Scope

    return {
        "type": "object",
        "required": [
            *("property", "holds", "violation", "detail"),
            *("scope", "mechanism", "expected_to_hold", "status"),
        ],
        "properties": {
            "property": {"enum": [p.value for p in Property]},
            "holds": {"type": "boolean"},
            "violation": {"type": ["number", "null"]},
            "detail": {"type": "string"},
            "scope": {"enum": [s.value for s in Scope]},
            "mechanism": {"type": "string"},
            "expected_to_hold": {
                "type": ["boolean", "null"],
                "description": "true guaranteed in this scope, false the paper shows it can fail, "
                "null no claim",
            },
            "status": {"enum": [s.value for s in AuditStatus]},
            "deprecated": {"type": "string", "description": "present on a deprecated alias key"},
        },
        "additionalProperties": False,
    }


def _certificate() -> dict[str, dict[str, Any]]:
    """A certificate and one check (``Certificate.to_dict()``)."""
    return {
        "certificate": {
            "type": "object",
            "required": ["passed", "checks"],
            "description": "the check behind every claim of the result (datamarket.core.certificates)",
            "properties": {
                "passed": {"type": "boolean"},
                "checks": {"type": "object", "additionalProperties": {"$ref": "#/$defs/check"}},
            },
            "additionalProperties": False,
        },
        "check": {
            "type": "object",
            "required": ["claim", "method", "residual", "tolerance", "passed", "detail"],
            "properties": {
                "claim": {"type": "string"},
                "method": {"type": "string"},
                "residual": {
                    "type": ["number", "null"],
                    "description": "largest violation found; null when infinite or NaN (the check fails)",
                },
                "tolerance": {"type": "number", "minimum": 0},
                "passed": {"type": "boolean"},
                "detail": {"type": "object"},
            },
            "additionalProperties": False,
        },
    }


def build_result_schema(families: Iterable[Any] | None = None) -> dict[str, Any]:
    """The result JSON Schema for the scenario kinds of ``families`` (default: every registered
    family, plug-ins included; the committed file is built from :data:`datamarket.families.BUILTIN`).

    Each kind adds an ``if kind == ... then`` clause with its fields (:func:`kind_schema`); no other
    top-level field is allowed (``unevaluatedProperties: false``).
    """
    from datamarket import families as registry

    fams = registry.families() if families is None else tuple(families)
    modules = dict(sorted((f.kind, f.scenario) for f in fams if f.scenario is not None))
    properties = _envelope(list(modules))
    clauses = [
        {
            "if": {"properties": {"kind": {"const": kind}}},
            "then": kind_schema(importlib.import_module(path).Fields),
        }
        for kind, path in modules.items()
    ]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://datamarket.invalid/schemas/result.schema.json",
        "title": "datamarket scenario result",
        "description": "Output of `datamarket run FILE --json` (ScenarioResult.to_json()), schema version 2. "
        "See docs/results.md. Generated by datamarket.schemas.build_result_schema(); do not edit.",
        "type": "object",
        "required": list(properties),
        "properties": properties,
        "allOf": clauses,
        "unevaluatedProperties": False,
        "$defs": {"audit": _audit(), **_certificate()},
    }


def schema_text(schema: dict[str, Any]) -> str:
    """The committed file's text of ``schema`` (one-space indent, trailing newline)."""
    return json.dumps(schema, indent=1, ensure_ascii=False) + "\n"


def write_result_schema(path: Path | None = None) -> Path:
    """Write the built-in kinds' schema to ``path`` (default: this package's ``result.schema.json``)."""
    from datamarket.families import BUILTIN

    target = path or Path(__file__).with_name(RESULT_SCHEMA_FILE)
    target.write_text(schema_text(build_result_schema(BUILTIN)))
    return target
