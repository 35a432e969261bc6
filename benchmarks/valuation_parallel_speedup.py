"""A real Dask cluster, two workers vs one (and processes, and serial), on a game of millisecond fits.

Setting: scikit-learn's breast-cancer data (569 rows, 30 features), seeded stratified 70/30 split,
features standardised on the training rows, 20 equal sellers from a seeded permutation of the
training rows, ``LogisticRegression(max_iter=500)``, test accuracy, v(empty) = 0: one fit takes a few
milliseconds. Method: ``monte_carlo_shapley`` (cyclic antithetic blocks, seed 0) with a budget of
``--fits`` model fits; the same call on every backend.

Backends, each run labelled with what ran:

* ``serial``: ``SerialBackend`` in this process (the reference: every other run must give bit-identical
  values);
* ``processes-1``, ``processes-2``: ``ProcessBackend(n)``, a local process pool (not Dask);
* ``dask-1``, ``dask-2``: ``DaskBackend`` on a Dask cluster this script starts for the run: a
  ``python -m dask scheduler`` program and n ``python -m dask worker --nworkers 1 --nthreads 1``
  programs (separate OS processes on 127.0.0.1, each worker under its nanny), the client in this
  process.

BLAS and OpenMP are pinned to one thread here and in every process started (environment variables,
and threadpoolctl in the workers). Pools and clusters are started and warmed (imports, one small
valuation) before the clock starts; their start-up is reported apart (``startup_s``). The timed part is
the valuation call end to end as the caller sees it: shipping the game, scheduling, the fits, gathering
and the parent's arithmetic. Per run: wall seconds; CPU seconds of every process involved (this
process's ``time.process_time`` plus the user and system CPU of each process the run started -- the
scheduler, nannies and workers, or the pool's forkserver and workers -- read with psutil); the CPU
that **other** programs used on the machine meanwhile, as a mean number of cores (the system's busy
time less ours, over the wall time: ``others_cores``), which says whether the run had the cores to
itself; and the 1-minute load average before the run. Each repeat runs the five backends on freshly
started workers, in the order above on even repeats and in reverse on odd ones. The speed-ups are
ratios of wall times within a repeat; the target is judged by their median over at least 3 repeats.

Run: ``.bench-venv/bin/python benchmarks/valuation_parallel_speedup.py`` (``make bench``). Writes
``benchmarks/results/valuation_parallel_speedup.json`` (``_support.Recorder``): one row per run
(section "runs"), then the speed-ups, median and range over the repeats (section "speed-ups").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from _support import Recorder
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from datamarket.core.types import Dataset
from datamarket.valuation import DaskBackend, ModelGame, ProcessBackend, SerialBackend, monte_carlo_shapley

TARGET = 1.7  # median speed-up of a 2-worker Dask cluster over a 1-worker one, end to end
SELLERS, FITS = 20, 4000  # the target's setting
PINNED = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
BACKENDS = ("serial", "processes-1", "processes-2", "dask-1", "dask-2")
RATIOS = (  # (label, numerator, denominator): the speed-up is numerator's wall / denominator's wall
    ("dask: 2 workers over 1", "dask-1", "dask-2"),
    ("processes: 2 over 1", "processes-1", "processes-2"),
    ("dask 2 workers over serial", "serial", "dask-2"),
    ("processes 2 over serial", "serial", "processes-2"),
)
TIMEOUT = 120.0  # seconds for a cluster to come up


def game(m: int) -> ModelGame:
    """The breast-cancer model game of ``m`` equal sellers (module docstring)."""
    x, y = load_breast_cancer(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    mu, sd = xtr.mean(axis=0), xtr.std(axis=0)
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    parts = np.array_split(np.random.default_rng(0).permutation(len(ytr)), m)
    sellers = [Dataset(xtr[p], ytr[p]) for p in parts]
    return ModelGame(LogisticRegression(max_iter=500), sellers, Dataset(xte, yte), empty_score=0.0)


# -- CPU accounting ----------------------------------------------------------------------------------
def _tree_cpu(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each live process in ``pids``."""
    out = {}
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            out[pid] = t.user + t.system
        except psutil.NoSuchProcess:  # pragma: no cover - a process that ended during the run
            pass
    return out


def _busy_cpu() -> float:
    """CPU seconds the whole machine has spent busy (all cores; not idle, not waiting on I/O)."""
    t = psutil.cpu_times()
    idle = t.idle + getattr(t, "iowait", 0.0)
    return float(sum(t)) - idle - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)  # guest: in user


def _started() -> list[int]:
    """The processes this script started (pools, schedulers, nannies, workers), recursively."""
    return [p.pid for p in psutil.Process().children(recursive=True)]


def timed(call: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    """Run ``call`` once; its wall time, the CPU of this process and of every process it started, and
    the CPU other programs used meanwhile."""
    pids = _started()
    load = os.getloadavg()[0]
    before, busy0 = _tree_cpu(pids), _busy_cpu()
    w0, c0 = time.perf_counter(), time.process_time()
    out = call()
    wall, own = time.perf_counter() - w0, time.process_time() - c0
    after, busy = _tree_cpu(pids), _busy_cpu() - busy0
    helpers = sum(after[p] - before[p] for p in after if p in before)
    return out, {
        "wall_s": wall,
        "cpu_s": own + helpers,
        "client_cpu_s": own,
        "other_cpu_s": max(0.0, busy - own - helpers),
        "load": load,
    }


# -- backends ----------------------------------------------------------------------------------------
@contextmanager
def dask_cluster(n_workers: int, folder: Path) -> Iterator[Any]:
    """A scheduler and ``n_workers`` single-threaded worker programs on 127.0.0.1, and a client."""
    from distributed import Client

    env = dict(os.environ, **PINNED)
    sched = folder / f"scheduler-{n_workers}.json"
    sched.unlink(missing_ok=True)
    procs: list[subprocess.Popen[bytes]] = []

    def start(args: list[str], log: str) -> None:
        with (folder / log).open("w") as fh:
            cmd = [sys.executable, "-m", "dask", *args, "--no-dashboard"]
            procs.append(subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env))

    try:
        start(
            ["scheduler", "--host", "127.0.0.1", "--port", "0", "--scheduler-file", str(sched)],
            "scheduler.log",
        )
        deadline = time.monotonic() + TIMEOUT
        while not sched.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if not sched.exists():
            raise RuntimeError((folder / "scheduler.log").read_text()[-2000:])
        worker = ["worker", "--scheduler-file", str(sched), "--nworkers", "1", "--nthreads", "1"]
        for k in range(n_workers):
            start([*worker, "--host", "127.0.0.1", "--name", f"w{k}"], f"worker{k}.log")
        address = json.loads(sched.read_text())["address"]
        with Client(address, timeout=f"{TIMEOUT}s") as client:
            client.wait_for_workers(n_workers, timeout=TIMEOUT)
            yield client
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:  # pragma: no cover - a stuck process
                p.kill()
                p.wait(timeout=10)


@contextmanager
def backend(label: str, folder: Path) -> Iterator[Any]:
    """The backend ``label`` names, started (a process pool also has its workers import sklearn)."""
    kind, _, n = label.partition("-")
    if kind == "serial":
        yield SerialBackend()
    elif kind == "processes":
        with ProcessBackend(int(n)) as procs:
            procs.warm_up()
            yield procs
    else:
        with dask_cluster(int(n), folder) as client, DaskBackend(client) as dask:
            yield dask


def run_one(label: str, sellers: int, fits: int, folder: Path) -> tuple[Any, dict[str, Any]]:
    """Start ``label``'s backend, warm it, then time the valuation on it."""
    t0 = time.perf_counter()
    with backend(label, folder) as be:
        monte_carlo_shapley(game(sellers), seed=1, max_evaluations=100, backend=be)  # imports, first fits
        startup = time.perf_counter() - t0
        g = game(sellers)
        result, stats = timed(lambda: monte_carlo_shapley(g, seed=0, max_evaluations=fits, backend=be))
    return result, {**stats, "startup_s": startup}


# -- the table ---------------------------------------------------------------------------------------
def _spread(xs: list[float]) -> dict[str, float]:
    return {"median": round(float(np.median(xs)), 2), "min": round(min(xs), 2), "max": round(max(xs), 2)}


def speedups(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per comparison: the speed-up (wall ratio) of each repeat, its median and range, and the most
    cores other programs took during the runs compared."""
    by = {(r["repeat"], r["backend"]): r for r in rows}
    repeats = sorted({r["repeat"] for r in rows})
    out = []
    for name, slow, fast in RATIOS:
        pairs = [(by[k, slow], by[k, fast]) for k in repeats if (k, slow) in by and (k, fast) in by]
        if pairs:
            xs = [a["wall_s"] / b["wall_s"] for a, b in pairs]
            others = max(max(a["others_cores"], b["others_cores"]) for a, b in pairs)
            row = {"section": "speed-ups", "comparison": name, **_spread(xs)}
            out.append({**row, "per_repeat": [round(x, 2) for x in xs], "others_cores_max": others})
    return out


def measure(args: argparse.Namespace, folder: Path) -> list[dict[str, Any]]:
    """The runs: each repeat runs every backend (in reverse order on odd repeats, so that a drift in
    the machine's load does not favour one side); values compared with the first serial run's."""
    rows, values = [], []
    for k in range(args.repeats):
        for label in args.backends if k % 2 == 0 else args.backends[::-1]:
            res, st = run_one(label, args.sellers, args.fits, folder)
            others = st.pop("other_cpu_s") / st["wall_s"]
            print(
                f"repeat {k} {label:12s} wall {st['wall_s']:6.2f} s, CPU {st['cpu_s']:6.2f} s "
                f"(client {st['client_cpu_s']:5.2f} s); other programs {others:4.2f} cores, "
                f"load {st['load']:.2f}; start-up {st['startup_s']:4.1f} s; {res.evaluations} fits",
                flush=True,
            )
            row = {"section": "runs", "repeat": k, "backend": label, "fits": res.evaluations}
            rows.append(
                {**row, **{key: round(v, 2) for key, v in st.items()}, "others_cores": round(others, 2)}
            )
            values.append((label, res.values))
    ref = next((v for label, v in values if label == "serial"), values[0][1])
    for row, (_, v) in zip(rows, values, strict=True):
        row["identical_to_serial"] = bool(np.array_equal(v, ref))  # exact: same coalitions, same code
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sellers", type=int, default=SELLERS)
    ap.add_argument("--fits", type=int, default=FITS)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    args = ap.parse_args()
    rec = Recorder(__file__)
    print(f"== {args.sellers} sellers, monte_carlo_shapley, {args.fits} fits; {os.cpu_count()} cores")
    with threadpool_limits(1), tempfile.TemporaryDirectory() as tmp:
        rows = measure(args, Path(tmp))
    summary = speedups(rows)
    for s in summary:
        print(
            f"{s['comparison']}: median {s['median']:.2f}x [{s['min']:.2f}, {s['max']:.2f}]; "
            f"other programs took up to {s['others_cores_max']:.2f} cores"
        )
    identical = all(r["identical_to_serial"] for r in rows)
    print(f"values bit-identical to serial on every run: {identical}")
    dask = next((s for s in summary if s["comparison"] == RATIOS[0][0]), None)
    judged = (args.sellers, args.fits, set(args.backends)) == (
        SELLERS,
        FITS,
        set(BACKENDS),
    ) and args.repeats >= 3
    rec.write(
        rows + summary,
        claim=(
            "A Dask cluster of two single-threaded worker processes (scheduler and workers started by "
            f"the benchmark) values {args.sellers} sellers with {args.fits} logistic-regression fits "
            "faster than the same cluster with one worker, end to end; every backend gives values "
            "bit-identical to serial."
        ),
        target=f"median speed-up of dask-2 over dask-1 >= {TARGET}x; values bit-identical",
        met=bool(dask["median"] >= TARGET and identical) if judged and dask is not None else None,
        notes=(
            "2 cores run the client, the scheduler and the workers, so a speed-up near 2 needs both "
            "cores free: others_cores is the mean number of cores other programs used during the run "
            "(the machine's busy time less this benchmark's own CPU, over the wall time); processes-N "
            "is a local process pool, not Dask; cpu_s counts every process of the run (client, "
            "scheduler, nannies and workers, or the pool)"
        ),
    )


if __name__ == "__main__":
    main()
