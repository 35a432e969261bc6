"""Scenario configuration base class and result container.

A scenario file (TOML or JSON) names a mechanism family in ``kind``; the family's scenario module
(``datamarket.scenarios.<kind>`` by convention, see :mod:`datamarket.families`) defines its pydantic
``Config`` (a subclass of :class:`ScenarioConfig`), a ``default_config()`` (the embedded default market
the demo runs), ``run(config) -> ScenarioResult`` and ``Fields`` (a :class:`ResultFields`: the kind's
documented JSON fields, from which the result's JSON Schema is generated).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from datamarket.core.audits import AuditResult, AuditStatus
from datamarket.core.certificates import Certificate, Status, status_for
from datamarket.core.types import Outcome, json_safe

SCHEMA_VERSION = 2
"""Version of the scenario-result JSON (``schema_version``); ``schema`` is its string form.

Version 2 adds ``schema_version``, ``status``, ``reason``, ``tables``, ``deprecations`` and the audit
fields ``scope``, ``mechanism``, ``expected_to_hold``, ``status``; nothing of version 1 is removed.
Within version 2, ``certificate`` (the checks behind the result's claims, and the ``certificate``
table) and the statuses ``unverified`` and ``no_equilibrium_found`` were added; no field was removed.
"""
RESULT_SCHEMA = f"datamarket.scenario-result/{SCHEMA_VERSION}"

__all__ = [
    "RESULT_SCHEMA",
    "SCHEMA_VERSION",
    "ResultFields",
    "ScenarioConfig",
    "ScenarioResult",
    "Status",
    "StrictModel",
]


def snake_case(text: str) -> str:
    """A stable snake_case name for a table title or column header.

    >>> snake_case("deviations (worst case over mu)"), snake_case("E pi* (MC)"), snake_case("m+")
    ('deviations_worst_case_over_mu', 'e_pi_mc', 'm_plus')
    >>> snake_case("max |d_br - d_gne|"), snake_case("c2 - c1"), snake_case("N*")
    ('max_d_br_d_gne', 'c2_c1', 'n_star')
    """
    t = text.replace("+", "_plus").replace("*", "_star") if re.fullmatch(r"[\w ]+[+*]", text) else text
    t = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", t) if t.isidentifier() else t
    return re.sub(r"[^0-9a-z]+", "_", t.lower()).strip("_") or "value"


class StrictModel(BaseModel):
    """Pydantic base for every config: unknown keys, NaN and infinities are errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class ScenarioConfig(StrictModel):
    """Fields shared by every scenario kind."""

    kind: str
    name: str = ""
    description: str = ""
    seed: int = Field(default=0, ge=0, description="seed of every random stream of the run")


class ResultFields(BaseModel):
    """The documented top-level JSON fields of a kind's result: a public interface (names are added or
    deprecated, never renamed).

    One field per JSON field, with its ``description``; the annotation gives the JSON type (``int``,
    ``float``, ``bool``, ``str``, ``list[...]``, ``dict[...]``; ``| None`` when it may be ``null``) and
    a field without a default is always present. :func:`datamarket.schemas.build_result_schema`
    generates the result's JSON Schema from these models.
    """

    model_config = ConfigDict(extra="forbid")


@dataclass
class ScenarioResult:
    """What a scenario run returns: the kind's public JSON fields, an outcome and audits.

    ``fields`` holds the kind's documented top-level JSON fields (a public interface: keep names
    stable). ``tables`` maps a title to rows (dicts) for the terminal and Markdown/CSV reports; the JSON
    carries them too, under snake_case names (:func:`snake_case`), and a ``certificate`` table with one
    row per check. ``certificate`` holds the check of every claim the result makes
    (:mod:`datamarket.core.certificates`); the status follows it: a result claimed ``"ok"`` whose
    certificate fails (or is empty) becomes ``"unverified"``, with the failing checks in ``reason``.
    ``status`` is ``"no_equilibrium"`` (with a ``reason``) when the market has no equilibrium: a result,
    not an error; ``"no_equilibrium_found"`` when the search found none that passes its check.
    ``audit_aliases`` maps deprecated audit keys to their current names; the JSON repeats each aliased
    entry under its old key for one schema version and lists it in ``deprecations``.
    """

    kind: str
    seed: int
    fields: dict[str, Any]
    outcome: Outcome | None = None
    audits: dict[str, AuditResult] = field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    status: Status = "ok"
    reason: str | None = None
    audit_aliases: dict[str, str] = field(default_factory=dict)
    certificate: Certificate = field(default_factory=Certificate)

    def __post_init__(self) -> None:
        status = status_for(self.certificate, self.status)
        if status != self.status:
            self.status = status
            what = self.certificate.summary() if not self.certificate.empty else "no check was made"
            self.reason = f"certificate failed: {what}" + (f"; {self.reason}" if self.reason else "")

    def failures(self, *statuses: AuditStatus) -> list[str]:
        """Keys of the audits whose status is one of ``statuses`` (default: every failure)."""
        wanted = set(statuses) or set(AuditStatus) - {AuditStatus.HOLDS}
        return [k for k, a in self.audits.items() if a.status in wanted]

    def json_tables(self) -> dict[str, list[dict[str, Any]]]:
        """The tables under snake_case names, with snake_case column names."""
        out = {
            snake_case(t): [{snake_case(c): v for c, v in row.items()} for row in rows]
            for t, rows in self.tables.items()
        }
        out.setdefault("certificate", self.certificate.rows())
        return out

    def to_dataframe(self, table: str | None = None) -> Any:
        """The tables as pandas DataFrames keyed by snake_case name, or one table by that name.

        Columns are the snake_case names of the JSON ``tables``; values keep full precision.
        """
        import pandas as pd

        frames = {name: pd.DataFrame(rows) for name, rows in self.json_tables().items()}
        if table is None:
            return frames
        if table not in frames:
            raise KeyError(f"no table {table!r} (tables: {', '.join(frames)})")
        return frames[table]

    def to_json(self) -> dict[str, Any]:
        """One JSON-safe object: schema, kind, seed, status, the kind's fields, outcome, audits, tables."""
        data: dict[str, Any] = {
            "schema": RESULT_SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "kind": self.kind,
            "seed": self.seed,
            "status": self.status,
            "reason": self.reason,
        }
        data.update(json_safe(self.fields))
        data["outcome"] = None if self.outcome is None else self.outcome.to_dict()
        audits = {k: v.to_dict() for k, v in self.audits.items()}
        deprecations = []
        for old, new in self.audit_aliases.items():
            audits[old] = {**audits[new], "deprecated": f"use audits.{new}"}
            deprecations.append(
                {
                    "field": f"audits.{old}",
                    "replacement": f"audits.{new}",
                    "removed_in_schema_version": SCHEMA_VERSION + 1,
                }
            )
        data["audits"] = audits
        data["certificate"] = self.certificate.to_dict()
        data["deprecations"] = deprecations
        data["tables"] = json_safe(self.json_tables())
        return data
