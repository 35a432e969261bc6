"""Helpers shared by the benchmark scripts (imported as ``_support``: the scripts run from this folder).

``make bench`` runs every ``benchmarks/*.py`` except those starting with ``_``.

Result files
------------
Every script writes ``benchmarks/results/<script>.json`` (and still prints its table) through a
:class:`Recorder`, created when the script starts and written when it ends. The envelope is the same
for every script, so the documentation hook (``docs/hooks/benchmarks.py``) can render any of them:

``benchmark``  the script's name (its file name without ``.py``);
``command``    the command line that reruns it, from the repository root;
``date``       the UTC date of the run;
``hardware``   the class of machine (CPU model, logical and usable cores, memory, OS, machine
               architecture, Python and numpy versions); never a host name or a user name;
``load``       the 1-minute load average at the start and at the end (``null`` where the OS has none):
               a ratio measured beside other jobs is not one measured on an idle machine;
``quick``      whether the run used the script's smaller quick sizes;
``results``    the script's table, one dictionary per row;
``claim``      what the script checks, in words (``null`` where it only reports);
``target``     the number the claim is judged by (``null`` where none);
``met``        whether this run met the target (``null`` where the script has none, or this run's
               sizes are not the target's);
``notes``      anything a reader needs to judge the run (for example which environment ran it).
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from datamarket.valuation import RunState, StoppingRule

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
RESULTS_ENV = "DATAMARKET_BENCH_RESULTS"  # another folder for the result files (a smoke run)
ENVELOPE = ("benchmark", "command", "date", "hardware", "load", "quick", "results", "claim", "target", "met")


class TargetMet(StoppingRule):
    """Benchmark-only rule: stop once ``met(estimates)`` holds (an accuracy target against a reference)."""

    accuracy = True

    def __init__(self, met: Callable[[np.ndarray], bool], name: str = "target_met") -> None:
        self.met, self.name = met, name

    def check(self, state: RunState) -> bool:
        return state.values is not None and bool(self.met(state.values))


class ErrorBelow(TargetMet):
    """Benchmark-only rule: stop once max |estimate - exact| <= tol."""

    def __init__(self, exact: np.ndarray, tol: float) -> None:
        super().__init__(lambda v: float(np.abs(v - exact).max()) <= tol, "error_below")
        self.exact, self.tol = exact, tol


# -- result files ------------------------------------------------------------------------------------
def load_average() -> float | None:
    """The 1-minute load average, or ``None`` where the OS does not report one."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (AttributeError, ValueError, OSError):
        return None


def hardware() -> dict[str, Any]:
    """The class of this machine: what a reader compares their own machine with (no host name)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": _memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def command_line(script: str | Path, argv: Sequence[str]) -> str:
    """The command that reruns ``script`` with ``argv`` from the repository root: the interpreter by its
    path in the checkout (``.bench-venv/bin/python``) when it lives there, else ``python``."""
    exe = Path(os.path.abspath(sys.executable))  # not resolve(): a venv's python is a symlink
    interpreter = exe.relative_to(ROOT).as_posix() if exe.is_relative_to(ROOT) else "python"
    path = Path(os.path.abspath(script))
    shown = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
    return shlex.join([interpreter, shown, *argv])


def _plain(value: Any) -> Any:
    """``value`` as JSON data: numpy scalars and arrays, tuples and paths converted."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, Path):
        return value.as_posix()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)  # "inf", "-inf", "nan": JSON has no such numbers
    return value


class Recorder:
    """The result file of one run of a benchmark script: start it first thing, write it last.

    >>> rec = Recorder("example.py", quick=True, argv=["--quick"])
    >>> rec.name, rec.command.endswith("example.py --quick"), rec.quick
    ('example', True, True)
    >>> sorted(rec.envelope([{"rule": "total", "speedup": 66.0}], met=True)) == sorted([*ENVELOPE, "notes"])
    True
    """

    def __init__(self, script: str | Path, *, quick: bool = False, argv: Sequence[str] | None = None) -> None:
        self.name = Path(script).stem
        self.command = command_line(script, sys.argv[1:] if argv is None else argv)
        self.quick = bool(quick)
        self.date = datetime.now(UTC).date().isoformat()
        self.load_start = load_average()

    def envelope(
        self,
        results: Sequence[Mapping[str, Any]],
        *,
        claim: str | None = None,
        target: str | None = None,
        met: bool | None = None,
        notes: str | None = None,
    ) -> dict[str, Any]:
        """The result file's content (module docstring)."""
        return {
            "benchmark": self.name,
            "command": self.command,
            "date": self.date,
            "hardware": hardware(),
            "load": {"start": self.load_start, "end": load_average()},
            "quick": self.quick,
            "results": _plain(list(results)),
            "claim": claim,
            "target": target,
            "met": None if met is None else bool(met),
            "notes": notes,
        }

    def write(
        self,
        results: Sequence[Mapping[str, Any]],
        *,
        claim: str | None = None,
        target: str | None = None,
        met: bool | None = None,
        notes: str | None = None,
        out: Path | None = None,
    ) -> Path:
        """Write the envelope to ``out`` (default ``benchmarks/results/<script>.json``, or that file in
        the folder ``$DATAMARKET_BENCH_RESULTS`` names); print where."""
        folder = Path(os.environ.get(RESULTS_ENV) or RESULTS)
        path = folder / f"{self.name}.json" if out is None else Path(out)
        body = self.envelope(results, claim=claim, target=target, met=met, notes=notes)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(body, indent=1, allow_nan=False) + "\n")
        full = path.resolve()
        shown = full.relative_to(ROOT) if full.is_relative_to(ROOT) else path
        print(f"wrote {shown}")
        return path
