"""Scenario configuration base class and result container.

A scenario file (TOML or JSON) names a mechanism family in ``kind``; the module
``datamarket.scenarios.<kind>`` defines its pydantic ``Config`` (a subclass of
:class:`ScenarioConfig`), a ``default_config()`` (the embedded default market the demo runs) and
``run(config) -> ScenarioResult``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from datamarket.core.audits import AuditResult
from datamarket.core.types import Outcome, json_safe

RESULT_SCHEMA = "datamarket.scenario-result/1"


class StrictModel(BaseModel):
    """Pydantic base for every config: unknown keys, NaN and infinities are errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class ScenarioConfig(StrictModel):
    """Fields shared by every scenario kind."""

    kind: str
    name: str = ""
    description: str = ""
    seed: int = Field(default=0, ge=0, description="seed of every random stream of the run")


@dataclass
class ScenarioResult:
    """What a scenario run returns: the kind's public JSON fields, an outcome and audits.

    ``fields`` holds the kind's documented top-level JSON fields (a public interface: keep names
    stable). ``tables`` maps a title to rows (dicts) for the terminal and Markdown/CSV reports.
    """

    kind: str
    seed: int
    fields: dict[str, Any]
    outcome: Outcome | None = None
    audits: dict[str, AuditResult] = field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """One JSON-safe object: schema, kind, seed, the kind's fields, outcome and audits."""
        data: dict[str, Any] = {"schema": RESULT_SCHEMA, "kind": self.kind, "seed": self.seed}
        data.update(json_safe(self.fields))
        data["outcome"] = None if self.outcome is None else self.outcome.to_dict()
        data["audits"] = {k: v.to_dict() for k, v in self.audits.items()}
        return data
