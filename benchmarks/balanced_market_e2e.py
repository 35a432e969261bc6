"""Benchmark: the balanced market end to end, at every size the documentation advertises.

For each market, two timings on the same machine, BLAS pinned to one thread:

* ``analyse``: :func:`datamarket.mechanisms.balanced_market.analyse` in this process (both equilibria,
  thresholds, ratios and the certificate), after an untimed warm-up run of a two-seller market so that
  imports and caches are not timed;
* ``run``: the command a user types, ``datamarket run FILE --json --out DIR`` (payments, the growth
  table, every table, the report files, the JSON), as a subprocess: wall time, and CPU time of the
  child (user + system, ``resource.getrusage(RUSAGE_CHILDREN)``), interpreter start and imports
  included.

The target (certified-results issue): ``run`` within 3x of ``analyse`` on the same machine at M = 100
in four classes. Markets (``benchmarks/balanced_market.py::scenario``): ``classes:100`` (four classes of
25 sellers, 100 buyers), ``identical:200`` (one class of 200 sellers, the three buyers of
``examples/balanced_market.toml``), ``identical:16`` and ``hetero:13`` (the sizes of the engine
comparison in ``benchmarks/balanced_market.py``).

Run: ``.venv/bin/python benchmarks/balanced_market_e2e.py [--cases classes:100,...] [--reps 3]``.
Writes ``benchmarks/results/balanced_market_e2e.json`` (``_support.Recorder``: median and range over
the repetitions, the command, the machine's class and load) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

from _support import Recorder  # noqa: E402
from balanced_market import scenario  # noqa: E402

CASES = ["classes:100", "identical:200", "identical:16", "hetero:13"]
OUT = ROOT / "benchmarks" / "results" / "balanced_market_e2e.json"


def time_analyse(data: dict[str, Any]) -> float:
    from datamarket.mechanisms.balanced_market import analyse
    from datamarket.scenarios import parse_scenario

    market = parse_scenario(json.dumps(data), "json").market()  # type: ignore[attr-defined]
    t = time.perf_counter()
    a = analyse(market, "shapley_nash")
    elapsed = time.perf_counter() - t
    assert a.status == "ok", a.status
    return elapsed


def time_run(path: Path, out: Path) -> tuple[float, float, str]:
    """Wall and CPU seconds of ``datamarket run`` as a subprocess, and the result's status."""
    exe = str(Path(sys.executable).with_name("datamarket"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(
        [exe, "run", str(path), "--json", "--out", str(out)], capture_output=True, text=True, check=True
    )
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, json.loads(proc.stdout)["status"]


def measure(case: str, reps: int) -> dict[str, Any]:
    kind, m = case.split(":")
    data = scenario(kind, int(m))
    rows: dict[str, list[float]] = {"analyse_s": [], "run_wall_s": [], "run_cpu_s": []}
    status = ""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{kind}-{m}.json"
        path.write_text(json.dumps(data))
        for _ in range(reps):
            rows["analyse_s"].append(time_analyse(data))
            wall, cpu, status = time_run(path, Path(tmp) / "report")
            rows["run_wall_s"].append(wall)
            rows["run_cpu_s"].append(cpu)
    med = {k: statistics.median(v) for k, v in rows.items()}
    return {
        "case": case,
        "sellers": len(data["sellers"]),
        "buyers": len(data["buyers"]),
        "command": f"datamarket run {kind}-{m}.json --json --out report",
        "status": status,
        **{k: round(v, 3) for k, v in med.items()},
        "range": {k: [round(min(v), 3), round(max(v), 3)] for k, v in rows.items()},
        "ratio_run_wall_to_analyse": round(med["run_wall_s"] / med["analyse_s"], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    rec = Recorder(__file__)
    time_analyse(scenario("identical", 2))  # warm-up: imports and caches
    results = [measure(c, args.reps) for c in args.cases.split(",")]
    print(f"{'case':<15} {'analyse s':>10} {'run wall s':>11} {'run CPU s':>10} {'ratio':>6}  status")
    for r in results:
        print(
            f"{r['case']:<15} {r['analyse_s']:>10.2f} {r['run_wall_s']:>11.2f} {r['run_cpu_s']:>10.2f} "
            f"{r['ratio_run_wall_to_analyse']:>6.2f}  {r['status']}"
        )
    target = next((r for r in results if r["case"] == "classes:100"), None)
    met = None
    if target is not None:
        met = target["ratio_run_wall_to_analyse"] <= 3.0
        print(f"target run <= 3x analyse at classes:100: {'met' if met else 'NOT met'}")
    rec.write(
        results,
        claim=(
            "The command a user types, datamarket run FILE --json --out DIR (start-up, every table and "
            "the report files included), costs little more than the analysis itself at the sizes the "
            "documentation advertises."
        ),
        target="run wall time within 3x of analyse at M = 100 in four classes (classes:100)",
        met=met,
        notes=f"median and [min, max] over {args.reps} repetitions; BLAS pinned to one thread",
        out=args.out,
    )


if __name__ == "__main__":
    main()
