"""Write a scenario result as a report: JSON, Markdown tables and CSV tables."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from datamarket.core.display import Formatter
from datamarket.core.types import json_safe
from datamarket.experiments._figure import columns
from datamarket.scenarios import ScenarioResult

_NUMBERS = Formatter(digits=6)  # how the Markdown tables write numbers (en_US)


def _cell(v: Any) -> str:
    """A Markdown cell: numbers by the one formatter (6 significant digits, the locale's grouping),
    ``None`` as ``-``."""
    if v is None:
        return "-"
    if isinstance(v, int | float) and not isinstance(v, bool):
        return _NUMBERS.quantity(v)
    return str(v)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """Rows of dicts as a GitHub Markdown table, numbers written for people by
    :class:`~datamarket.core.display.Formatter` (6 significant digits; the CSV and JSON exports keep
    full precision), ``None`` (no value, no claim) as ``-``.

    >>> print(markdown_table([{"a": 1234, "b": 0.1 + 0.2, "c": None}]))
    | a | b | c |
    |---|---|---|
    | 1,234 | 0.3 | - |
    """
    if not rows:
        return "(empty)"
    cols = columns(rows)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def csv_text(rows: list[dict[str, Any]]) -> str:
    """Rows as CSV text: full precision (``repr`` of floats), NaN and infinities as empty cells.

    >>> print(csv_text([{"a": 0.1 + 0.2, "b": float("nan")}]), end="")
    a,b
    0.30000000000000004,
    """
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns(rows), lineterminator="\n")
    w.writeheader()
    w.writerows(
        {k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in r.items()} for r in json_safe(rows)
    )
    return buf.getvalue()


def write_scenario_report(result: ScenarioResult, out_dir: Path, stem: str) -> list[Path]:
    """Write ``stem.json``, ``stem.md`` and one CSV per table (``stem-TABLE.csv``) into ``out_dir``.

    CSV names and headers are the snake_case names of the JSON ``tables`` (stable, no spaces); floats
    keep full precision. With pyarrow installed each table is also written as ``stem-TABLE.parquet``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    jpath = out_dir / f"{stem}.json"
    jpath.write_text(json.dumps(result.to_json(), indent=1))
    written.append(jpath)
    md = [f"# {stem} ({result.kind}, seed {result.seed})", ""]
    if result.status != "ok":
        md += [f"**{result.status}**: {result.reason}", ""]
    titled = {**result.tables}
    if "certificate" not in titled:  # json_tables() adds the certificate's rows under this name
        titled["certificate"] = result.certificate.rows()
    named = zip(titled.items(), result.json_tables().items(), strict=True)
    for (title, rows), (name, snake_rows) in named:
        md += [f"## {title}", "", markdown_table(rows), ""]
        cpath = out_dir / f"{stem}-{name}.csv"
        cpath.write_text(csv_text(snake_rows))
        written.append(cpath)
        written.extend(_parquet(snake_rows, cpath.with_suffix(".parquet")))
    if result.audits:
        md += ["## audits", ""]
        md.append(markdown_table([{"audit": k, **a.to_dict()} for k, a in result.audits.items()]))
    mpath = out_dir / f"{stem}.md"
    mpath.write_text("\n".join(md) + "\n")
    written.append(mpath)
    return written


def _parquet(rows: list[dict[str, Any]], path: Path) -> list[Path]:
    """Write ``rows`` as Parquet when pyarrow is installed (an optional dependency); else nothing."""
    import importlib.util

    if importlib.util.find_spec("pyarrow") is None or not rows:
        return []
    import pandas as pd

    frame = pd.DataFrame(
        [{k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in r.items()} for r in rows]
    )
    for col in frame.columns:  # a column mixing types (a "quantity, value" table) is stored as text
        kinds = {type(v) for v in frame[col] if v is not None}
        if frame[col].dtype == object and len(kinds) > 1:
            frame[col] = [None if v is None else str(v) for v in frame[col]]
    frame.to_parquet(path, index=False)
    return [path]
