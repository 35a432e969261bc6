"""Crashes mid-round: a killed worker and a killed service leave the ledger identical; a killed
worker's round fails and is retried, a killed service's round is taken over when its lease expires."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from datamarket.service.clearing.leases import Leases
from tests.service_support import (
    ADMIN,
    BACKENDS,
    GATE_ENV,
    LiveServer,
    alive,
    children_of,
    free_port,
    fresh_database,
    make_app,
    setup_broker,
    wait_round,
)

ROOT = Path(__file__).resolve().parents[3]
ADAPTERS = {
    "broker": "datamarket.service.adapters.broker:ADAPTER",
    "gated_broker": "tests.service_support:GATED",
}
LEASES = Leases(lease_s=1.5, poll_s=0.1)
SERVE = """
import sys, uvicorn
from datamarket.service.app import create_app
from datamarket.service.clearing.leases import Leases
from datamarket.service.config import ServiceSettings
settings = ServiceSettings(database_url=sys.argv[1], admin_key=sys.argv[2], executor="process", max_workers=1,
                           adapters={adapters!r}, leases=Leases(lease_s=1.5, poll_s=0.1))
app = create_app(settings)
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[3]), log_level="warning")
"""


def _wait_for(path: Path, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    return path.read_text()


def _wait_status(client: httpx.Client, rid: int, status: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while (body := client.get(f"/rounds/{rid}").json())["status"] != status:
        assert time.monotonic() < deadline, body
        time.sleep(0.05)
    return body


def _serve(url: str, port: int, env: dict[str, str], tmp_path: Path, log: Any) -> subprocess.Popen[bytes]:
    """``datamarket``'s app under uvicorn in a child process (its own session), process executor."""
    return subprocess.Popen(
        [sys.executable, "-c", SERVE.format(adapters=ADAPTERS), url, ADMIN, str(port)],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _admin_when_up(srv_url: str, proc: subprocess.Popen[bytes], tmp_path: Path) -> httpx.Client:
    admin = httpx.Client(base_url=srv_url, headers={"X-API-Key": ADMIN}, timeout=60)
    deadline = time.monotonic() + 60
    while True:
        try:
            if admin.get("/health").status_code == 200:
                return admin
        except httpx.TransportError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
        time.sleep(0.1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_workers_die_with_the_service(backend: str, tmp_path: Path) -> None:
    """kill -9 of the service alone (not its process group): its worker processes exit too."""
    gate = tmp_path / "gate"
    gate.mkdir()
    env = {**os.environ, GATE_ENV: str(gate), "PYTHONPATH": str(ROOT)}
    port = free_port()
    with fresh_database(backend, tmp_path) as url, (tmp_path / "serve.log").open("w") as log:
        proc = _serve(url, port, env, tmp_path, log)
        try:
            srv_url = f"http://127.0.0.1:{port}"
            admin = _admin_when_up(srv_url, proc, tmp_path)

            class _Srv:
                @staticmethod
                def client(key: str) -> httpx.Client:
                    return httpx.Client(base_url=srv_url, headers={"X-API-Key": key}, timeout=60)

            m = setup_broker(_Srv, admin, kind="gated_broker")
            (gate / "hold").touch()
            admin.post(f"/markets/{m['market']}/rounds")
            worker = int(_wait_for(gate / "pid"))
            children = children_of(proc.pid)
            assert worker in children
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            admin.close()
            deadline = time.monotonic() + 15
            while any(alive(c) for c in children) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert [c for c in children if alive(c)] == []
        finally:
            for c in children_of(proc.pid) if proc.poll() is None else []:
                os.kill(c, signal.SIGKILL)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


@pytest.mark.parametrize("backend", BACKENDS)
def test_worker_and_service_crashes_leave_the_ledger_identical(backend: str, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    env = {**os.environ, GATE_ENV: str(gate), "PYTHONPATH": str(ROOT)}
    port = free_port()
    with fresh_database(backend, tmp_path) as url:
        # a cleared round first (in-process, on threads), so that the ledger is not empty
        with LiveServer(make_app(url)) as srv, srv.client() as admin:
            m0 = setup_broker(srv, admin)
            r0 = admin.post(f"/markets/{m0['market']}/rounds").json()["id"]
            assert wait_round(admin, r0)["status"] == "cleared"
            before = admin.get("/ledger/entries").json()
            assert before["entries"]
        log = (tmp_path / "serve.log").open("w")
        proc = _serve(url, port, env, tmp_path, log)
        try:
            srv_url = f"http://127.0.0.1:{port}"
            admin = _admin_when_up(srv_url, proc, tmp_path)

            class _Srv:  # setup_broker needs .client(key)
                @staticmethod
                def client(key: str) -> httpx.Client:
                    return httpx.Client(base_url=srv_url, headers={"X-API-Key": key}, timeout=60)

            assert admin.get("/ledger/entries").json() == before

            # 1. kill the worker process while it clears: the round fails, the ledger is unchanged
            m = setup_broker(_Srv, admin, kind="gated_broker")
            (gate / "hold").touch()
            rid = admin.post(f"/markets/{m['market']}/rounds").json()["id"]
            pid = int(_wait_for(gate / "pid"))
            assert _wait_status(admin, rid, "running")["attempts"] == 1
            assert admin.post(f"/markets/{m['market']}/rounds").status_code == 409  # one at a time
            assert admin.post(f"/rounds/{rid}/retry").status_code == 409  # not failed
            os.kill(pid, signal.SIGKILL)
            failed = wait_round(admin, rid)
            assert failed["status"] == "failed" and "BrokenProcessPool" in failed["error"]
            assert admin.get("/ledger/entries").json() == before
            assert admin.get(f"/rounds/{rid}/receipts").status_code == 409

            # 2. retry, then kill the whole service (and its worker) mid-round
            (gate / "pid").unlink()
            assert admin.post(f"/rounds/{rid}/retry").status_code == 202
            _wait_for(gate / "pid")
            assert _wait_status(admin, rid, "running")["attempts"] == 2
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            admin.close()
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
            log.close()

        # 3. restart: the interrupted round is not failed; once the dead process's lease expires the
        # new process takes it over and clears it, booking it once
        os.environ[GATE_ENV] = str(gate)
        try:
            (gate / "hold").unlink()
            app = make_app(url, adapters=ADAPTERS, leases=LEASES)
            with LiveServer(app) as srv, srv.client() as admin:
                done = wait_round(admin, rid)
                assert done["status"] == "cleared" and done["attempts"] == 3, done
                assert done["lease_expiries"] == 1 and done["claimed_by"] == app.state.service.runner.instance
                after = admin.get("/ledger/entries").json()
                assert after["entries"][: len(before["entries"])] == before["entries"]
                assert sum(e["amount_minor"] for e in after["entries"] if e["round_id"] == rid) == 0
                assert admin.get("/ledger/verify").json()["ok"]
        finally:
            del os.environ[GATE_ENV]
