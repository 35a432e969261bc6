"""A real Dask cluster: `dask scheduler` and two `dask worker` programs.

The scheduler and workers are separate OS processes started from this test (127.0.0.1, random
ports, a scheduler file to find the address), then ``datamarket value --scheduler tcp://...`` runs
as a third program. Values must equal the serial run bit for bit: the backends evaluate the same
coalitions with the same code, and all randomness is drawn in the parent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("valuation_cluster")]
ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 120  # seconds for the cluster to come up and for each command


def _start(args: list[str], log: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    fh = log.open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "dask", *args], stdout=fh, stderr=subprocess.STDOUT, env=env
    )


def _value(cfg: Path, *extra: str) -> dict:
    res = subprocess.run(
        [sys.executable, "-m", "datamarket.cli", "value", str(cfg), "--json", *extra],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=TIMEOUT * 2,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout)


def test_value_on_a_real_cluster_is_bitwise_serial(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    sched_file = tmp_path / "scheduler.json"
    procs: list[subprocess.Popen] = []
    try:
        procs.append(
            _start(
                [
                    "scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--no-dashboard",
                    "--scheduler-file",
                    str(sched_file),
                ],
                tmp_path / "scheduler.log",
            )
        )
        deadline = time.monotonic() + TIMEOUT
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sched_file.exists(), (tmp_path / "scheduler.log").read_text()[-2000:]
        for k in range(2):
            procs.append(
                _start(
                    [
                        "worker",
                        "--scheduler-file",
                        str(sched_file),
                        "--nworkers",
                        "1",
                        "--nthreads",
                        "1",
                        "--host",
                        "127.0.0.1",
                        "--no-dashboard",
                        "--name",
                        f"w{k}",
                    ],
                    tmp_path / f"worker{k}.log",
                )
            )
        from distributed import Client

        address = json.loads(sched_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        with Client(address, timeout=f"{TIMEOUT}s") as client:
            client.wait_for_workers(2, timeout=TIMEOUT)
        cfg = tmp_path / "v.toml"
        cfg.write_text(
            'seed = 1\n[dataset]\nname = "breast_cancer"\n[sellers]\nn = 6\n'
            '[method]\nname = "monte_carlo_shapley"\n[stopping]\nmax_evaluations = 40\n'
        )
        remote = _value(cfg, "--scheduler", address)
        serial = _value(cfg)
        assert remote["config"]["backend"]["name"] == "dask" and remote["model_fits"] == 0  # fitted remotely
        assert remote["values"] == serial["values"] and remote["evaluations"] == serial["evaluations"]
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:  # pragma: no cover - a stuck process
                p.kill()
                p.wait(timeout=10)
