"""MkDocs hook (registered in mkdocs.yml ``hooks:``): the results on ``benchmarks.md``, from result files.

Every script ``benchmarks/<name>.py`` (those not starting with ``_``, as ``make bench`` runs them)
writes ``benchmarks/results/<name>.json`` through ``benchmarks/_support.py``'s ``Recorder``: an
envelope of the same fields for every script (:data:`ENVELOPE`; the claim, the target and whether it
was met, the table's rows, the command that reruns it, the hardware class, the UTC date and the load
figures, which stay in the file). At build time :func:`on_page_markdown` replaces :data:`MARKER` on
``benchmarks.md`` with one section per script (:func:`render`): the claim and target, the result
table, the command, the hardware class and the date, or a line saying that no result file exists yet
and how to make one. A result file may also list ``figures`` (PNG paths relative to ``docs/``, written
by the same run), shown under its table. No number on that page is typed by hand: a number changes when
a result file is rerun and committed.

A result file that is not valid JSON or lacks a field of the envelope is logged as a warning, which
fails the strict build (``make docs``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.hooks.benchmarks")

PAGE = "benchmarks.md"
MARKER = "<!-- benchmark results -->"
ENVELOPE = ("benchmark", "command", "date", "hardware", "load", "quick", "results", "claim", "target", "met")
NO_RESULT = "no result file yet: run `make bench`"


def scripts(root: Path) -> list[str]:
    """The benchmark scripts' names (``benchmarks/*.py`` not starting with ``_``), sorted."""
    return sorted(p.stem for p in (root / "benchmarks").glob("[!_]*.py"))


def result_files(root: Path) -> dict[str, Path]:
    """Each result file by its benchmark's name."""
    return {p.stem: p for p in sorted((root / "benchmarks" / "results").glob("*.json"))}


def missing_fields(data: Any) -> list[str]:
    """The envelope's fields that ``data`` lacks (all of them when it is not an object)."""
    if not isinstance(data, Mapping):
        return list(ENVELOPE)
    return [k for k in ENVELOPE if k not in data]


def anchor(name: str) -> str:
    """The heading id of a benchmark's section (``truthful_payments`` -> ``truthful-payments``)."""
    return name.replace("_", "-")


def cell(value: Any) -> str:
    """One table cell: numbers to four significant digits, lists in brackets, ``|`` escaped."""
    if value is None:
        text = "–"
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, list | tuple):
        text = "[" + ", ".join(cell(v) for v in value) + "]"
    elif isinstance(value, Mapping):
        text = "; ".join(f"{k} {cell(v)}" for k, v in value.items())
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _columns(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    out: list[str] = []
    for row in rows:
        out += [k for k in row if k not in out and k != "section"]
    return out


def table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as Markdown tables: one per ``section`` (in order of appearance), else one."""
    if not rows:
        return "*(the result file holds no rows)*"
    groups: dict[Any, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row.get("section"), []).append(row)
    parts = []
    for section, group in groups.items():
        cols = _columns(group)
        lines = [
            "| " + " | ".join(c.replace("_", " ") for c in cols) + " |",
            "|" + "---|" * len(cols),
            *("| " + " | ".join(cell(row.get(c)) for c in cols) + " |" for row in group),
        ]
        head = [] if section is None else [f"**{cell(section)}**", ""]
        parts.append("\n".join([*head, *lines]))
    return "\n\n".join(parts)


def hardware_class(hw: Mapping[str, Any]) -> str:
    """The hardware in one line: CPU, cores, memory, OS, Python and numpy."""
    cores = f"{hw.get('logical_cores')} logical cores"
    if hw.get("usable_cores") not in (None, hw.get("logical_cores")):
        cores += f" ({hw['usable_cores']} usable)"
    memory = f"{cell(hw.get('memory_gib'))} GiB memory"
    system = f"{hw.get('os')} {hw.get('machine', '')}".strip()
    return f"{hw.get('cpu')}, {cores}, {memory}; {system}; Python {hw.get('python')}, numpy {hw.get('numpy')}"


def _verdict(data: Mapping[str, Any]) -> str:
    met = data.get("met")
    if met is None:
        return "not judged by this run" + (" (quick sizes)" if data.get("quick") else "")
    return "**met**" if met else "**not met**"


def _shared_note(load: Mapping[str, Any], hw: Mapping[str, Any]) -> list[str]:
    """One line when the run shared its cores with other work (its times are then upper bounds); the
    load figures themselves stay in the result file, not on the page."""
    cores = hw.get("logical_cores") or 0
    busy = [v for v in (load.get("start"), load.get("end")) if isinstance(v, int | float)]
    if cores and busy and max(busy) > cores:
        return ["* The cores were shared with other work during the run: its times are upper bounds"]
    return []


def figure_lines(figures: Sequence[Any]) -> list[str]:
    """The figures a result file lists (``figures``: paths under ``docs/``, optional), as images."""
    return [f"![{Path(str(f)).stem}]({Path(str(f)).as_posix()})" for f in figures]


def result_text(name: str, data: Mapping[str, Any]) -> str:
    """The body of one benchmark's section, from its result file."""
    load = data.get("load") or {}
    hw = data.get("hardware") or {}
    lines = []
    if data.get("claim"):
        lines.append(f"**Claim.** {data['claim']}")
    if data.get("target"):
        target = str(data["target"])
        lines.append(f"**Target.** {target[:1].upper()}{target[1:]}: {_verdict(data)}.")
    lines += [
        table(data.get("results") or []),
        *figure_lines(data.get("figures") or []),
        f"**Command** (from the repository root):\n\n```sh\n{data['command']}\n```",
        "\n".join(
            [
                f"* **Date:** {data['date']} (UTC); {'quick' if data.get('quick') else 'full'} sizes",
                f"* **Hardware:** {hardware_class(hw)}",
                *_shared_note(load, hw),
            ]
        ),
    ]
    if data.get("notes"):
        lines.append(f"*Notes:* {data['notes']}.")
    return "\n\n".join(lines)


def section(name: str, path: Path | None, known: bool = True) -> str:
    """One benchmark's section: heading, then its result or the line saying there is none (``known``:
    the script still exists)."""
    head = f"### `{name}.py` {{#{anchor(name)}}}"
    if path is None:
        return f"{head}\n\n*{NO_RESULT}, or `.bench-venv/bin/python benchmarks/{name}.py` alone.*"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        log.warning("benchmarks/results/%s: not a result file (%s)", path.name, exc)
        return f"{head}\n\n*The result file `benchmarks/results/{path.name}` could not be read.*"
    missing = missing_fields(data)
    if missing:
        log.warning("benchmarks/results/%s lacks the envelope's fields %s", path.name, missing)
        return f"{head}\n\n*The result file `benchmarks/results/{path.name}` lacks {', '.join(missing)}.*"
    if not known:
        head += f"\n\n*(`benchmarks/{name}.py` no longer exists: this result is from an older version.)*"
    return f"{head}\n\n{result_text(name, data)}"


def render(root: Path) -> str:
    """The generated results part of ``benchmarks.md``: one section per script or result file."""
    files = result_files(root)
    known = set(scripts(root))
    return "\n\n".join(section(n, files.get(n), n in known) for n in sorted(known | set(files))) + "\n"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace :data:`MARKER` on ``benchmarks.md`` with :func:`render` (mkdocs event)."""
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        log.warning("%s has no %r: the benchmark results are not shown", PAGE, MARKER)
        return markdown
    root = Path(config["config_file_path"]).resolve().parent
    return markdown.replace(MARKER, render(root))
