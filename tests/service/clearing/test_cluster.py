"""Two live ``datamarket serve`` processes on one database (loopback ports), as behind a load balancer.

Requests go to either process; rounds are cleared by whichever process claims them. One process is
killed with SIGKILL while it holds a round and restarted while the other keeps working; another is
stopped with SIGTERM while it holds one. Every round ends cleared exactly once, none is failed, and
the ledger verifies.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from datamarket.ledger import make_engine, upgrade
from tests.service_support import (
    BACKENDS,
    GATE_ENV,
    Serve,
    alive,
    audit,
    children_of,
    fresh_database,
    setup_broker,
    wait_round,
)

ROOT = Path(__file__).resolve().parents[3]
LEASE_S = 2.0  # short, so that a takeover happens within the test; several heartbeats long
SERVE_ARGS = ["--workers", "1", "--lease", str(LEASE_S), "--poll", "0.1", "--grace", "0.5"]
SERVE_ARGS += ["--adapter", "gated_broker=tests.service_support:GATED"]


def _open(srv: Serve, market: int) -> int:
    r = srv.admin.post(f"/markets/{market}/rounds")
    assert r.status_code == 202, r.text
    return int(r.json()["id"])


def _running(srv: Serve, rid: int, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (body := srv.admin.get(f"/rounds/{rid}").json())["status"] != "running":
        assert time.monotonic() < deadline, body
        time.sleep(0.05)
    return body


def _markets(via: list[Serve], n: int, seed: int) -> list[int]:
    """``n`` gated broker markets, the k-th set up (participants, submissions) through ``via[k % 2]``."""
    return [
        setup_broker(via[k % len(via)], via[k % len(via)].admin, kind="gated_broker", seed=seed + k)["market"]
        for k in range(n)
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_processes_clear_every_round_once_through_kill_restart_and_sigterm(
    backend: str, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    env = {**os.environ, GATE_ENV: str(gate), "PYTHONPATH": str(ROOT)}
    procs: list[Serve] = []
    with fresh_database(backend, tmp_path) as url:
        try:
            if backend == "sqlite":  # PostgreSQL: the two processes migrate the empty database together
                engine = make_engine(url)
                upgrade(engine)  # as `datamarket ledger migrate` would, before the first start
                engine.dispose()
            a, b = (
                Serve(url, tmp_path / "a.log", SERVE_ARGS, env),
                Serve(url, tmp_path / "b.log", SERVE_ARGS, env),
            )
            procs += [a, b]
            a.up(), b.up()
            assert a.instance != b.instance
            m1, m2, m3 = _markets([a, b], 3, seed=0)

            # 1. both processes hold a round: one worker each, the gate keeps the workers busy
            (gate / "hold").touch()
            r1, r2 = _open(a, m1), _open(b, m2)
            held = {rid: _running(a, rid) for rid in (r1, r2)}
            assert {h["claimed_by"] for h in held.values()} == {a.instance, b.instance}
            for h in held.values():
                assert h["attempts"] == 1 and h["lease_expires_at"] is not None and 0 < h["progress"] < 1
            victim = a if held[r1]["claimed_by"] == a.instance else b
            survivor = b if victim is a else a

            # 2. kill -9 the process holding r1; the survivor keeps accepting and clearing rounds
            os.killpg(victim.proc.pid, signal.SIGKILL)
            victim.proc.wait(timeout=30)
            victim.admin.close()
            procs.remove(victim)
            assert survivor.admin.get(f"/rounds/{r1}").json()["status"] == "running"  # not failed
            r3 = _open(survivor, m3)
            (gate / "hold").unlink()
            done = {rid: wait_round(survivor.admin, rid) for rid in (r1, r2, r3)}
            assert all(d["status"] == "cleared" for d in done.values()), done
            assert done[r1]["attempts"] == 2 and done[r1]["lease_expiries"] == 1  # taken over once
            assert done[r1]["claimed_by"] == survivor.instance
            assert done[r2]["attempts"] == 1 and done[r3]["attempts"] == 1

            # 3. restart the killed process while the survivor works; each holds one of two rounds
            restarted = Serve(url, tmp_path / "restarted.log", SERVE_ARGS, env)
            procs.append(restarted.up())
            m4, m5 = _markets([restarted, survivor], 2, seed=10)
            (gate / "hold").touch()
            r4, r5 = _open(restarted, m4), _open(survivor, m5)
            holder = {rid: _running(survivor, rid)["claimed_by"] for rid in (r4, r5)}
            assert set(holder.values()) == {restarted.instance, survivor.instance}
            mine = r4 if holder[r4] == survivor.instance else r5

            # 4. SIGTERM of the survivor while it holds a round: it releases the round and exits,
            # leaving no worker behind; the restarted process clears both rounds, the released one
            # without waiting for a lease to expire
            children = children_of(survivor.proc.pid)
            assert children  # its clearing worker
            survivor.admin.close()
            survivor.proc.send_signal(signal.SIGTERM)
            # uvicorn exits by re-raising the signal it handled, after the application's shutdown
            assert survivor.proc.wait(timeout=30) in (0, -signal.SIGTERM), survivor.log_path.read_text()
            assert "Application shutdown complete" in survivor.log_path.read_text()
            procs.remove(survivor)
            deadline = time.monotonic() + 15
            while any(alive(c) for c in children) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert [c for c in children if alive(c)] == []
            released = restarted.admin.get(f"/rounds/{mine}").json()
            assert released["status"] == "pending" and released["claimed_by"] is None, released
            (gate / "hold").unlink()
            for rid in (r4, r5):
                assert wait_round(restarted.admin, rid)["status"] == "cleared"
            after = restarted.admin.get(f"/rounds/{mine}").json()
            assert after["claimed_by"] == restarted.instance and after["attempts"] == 2
            assert after["lease_expiries"] == 0  # released, not expired

            # every round cleared exactly once, none failed, the ledger verifies
            rounds = [restarted.admin.get(f"/rounds/{rid}").json() for rid in (r1, r2, r3, r4, r5)]
            assert [r["status"] for r in rounds] == ["cleared"] * 5
            assert restarted.admin.get("/ledger/verify").json()["ok"]
            assert audit(url) == {
                "double_booked": [],
                "booked_not_cleared": [],
                "cleared_not_booked": [],
                "consumed_mismatch": [],
            }
        finally:
            for p in procs:
                p.stop()
