"""Write a scenario result as a report: JSON, Markdown tables and CSV tables."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from datamarket.core.types import json_safe
from datamarket.experiments._figure import columns
from datamarket.scenarios import ScenarioResult


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Rows of dicts as a GitHub Markdown table.

    >>> print(markdown_table([{"a": 1, "b": 0.5}]))
    | a | b |
    |---|---|
    | 1 | 0.5 |
    """
    if not rows:
        return "(empty)"
    cols = columns(rows)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def write_scenario_report(result: ScenarioResult, out_dir: Path, stem: str) -> list[Path]:
    """Write ``stem.json``, ``stem.md`` and one CSV per table into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    jpath = out_dir / f"{stem}.json"
    jpath.write_text(json.dumps(result.to_json(), indent=1))
    written.append(jpath)
    md = [f"# {stem} ({result.kind}, seed {result.seed})", ""]
    for title, rows in result.tables.items():
        md += [f"## {title}", "", markdown_table(rows), ""]
        cpath = out_dir / f"{stem}-{_slug(title)}.csv"
        with cpath.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=columns(rows))
            w.writeheader()
            w.writerows(json_safe(rows))
        written.append(cpath)
    if result.audits:
        md += ["## audits", ""]
        md.append(markdown_table([{"audit": k, **a.to_dict()} for k, a in result.audits.items()]))
    mpath = out_dir / f"{stem}.md"
    mpath.write_text("\n".join(md) + "\n")
    written.append(mpath)
    return written


def _slug(title: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in title.lower()).strip("-")
