"""JSON Schemas of the package's public JSON outputs (data files; see docs/results.md).

``result.schema.json`` describes ``datamarket run FILE --json`` (``ScenarioResult.to_json()``).

>>> result_schema()["properties"]["schema_version"]
{'const': 2}
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any


def result_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the scenario-result JSON."""
    data: dict[str, Any] = json.loads(files(__name__).joinpath("result.schema.json").read_text())
    return data
