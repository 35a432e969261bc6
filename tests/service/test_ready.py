"""Readiness (``/ready``) against liveness (``/health``), on SQLite and PostgreSQL.

* In process: ready on a migrated database; 503 when its schema is not this version's head (set back
  by hand), when the database does not answer, and from the start of the app's shutdown.
* The drain: a live ``datamarket serve --drain 3`` holding a round receives SIGTERM; new connections
  still get answers (``/health`` 200, the round's status), ``/ready`` answers 503 at once, the process
  exits only after the drain, releasing the round it held.
* :class:`~datamarket.service.observability.readiness.DrainingServer`: the first SIGTERM drains, a
  second one, SIGINT or a drain of 0 stop at once.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from datamarket.ledger import make_engine, make_sessionmaker
from datamarket.ledger.models import Round
from datamarket.service.observability.readiness import DrainingServer, Readiness
from tests.service_support import GATE_ENV, Serve, db_url, make_app, setup_broker  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


def test_ready_checks_the_database_and_its_schema(
    db_url: str,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(db_url)
    with TestClient(app) as c:
        caplog.clear()  # the app's start-up (migrations) logged
        with caplog.at_level(logging.INFO):
            assert (c.get("/ready").status_code, c.get("/ready").json()) == (200, {"status": "ready"})
        served = [r.getMessage() for r in caplog.records if not r.name.startswith("httpx")]  # (the client's)
        assert served == []  # probes every second log nothing
        engine = make_engine(db_url)
        try:
            with engine.begin() as conn:
                head = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
                conn.execute(text("UPDATE alembic_version SET version_num = '0008'"))
            behind = c.get("/ready")
            assert behind.status_code == 503 and "0008" in behind.json()["detail"], behind.text
            assert c.get("/health").status_code == 200  # alive all the same
            with engine.begin() as conn:
                conn.execute(text("UPDATE alembic_version SET version_num = :h"), {"h": head})
        finally:
            engine.dispose()
        assert c.get("/ready").status_code == 200
    readiness = app.state.service.readiness
    assert readiness.stopping and readiness.problems() == ["shutting down"]  # the lifespan's shutdown


def test_a_database_that_does_not_answer_or_was_never_migrated_is_not_ready(tmp_path: Path) -> None:
    gone = make_engine(f"sqlite:///{tmp_path}/no/such/dir/x.db")
    empty = make_engine(f"sqlite:///{tmp_path}/empty.db")
    try:
        assert Readiness(gone, head="0009").problems() == ["the database does not answer"]
        assert Readiness(empty, head="0009").problems() == [
            "the database schema is at revision None, not this version's 0009"
        ]
    finally:
        gone.dispose()
        empty.dispose()


def test_sigterm_drains_ready_503_while_serving_then_stops(db_url: str, tmp_path: Path) -> None:  # noqa: F811
    gate = tmp_path / "gate"
    gate.mkdir()
    env = {**os.environ, GATE_ENV: str(gate), "PYTHONPATH": str(ROOT)}
    args = ["--executor", "thread", "--workers", "1", "--poll", "0.1", "--grace", "0.5", "--drain", "3"]
    args += ["--adapter", "gated_broker=tests.service_support:GATED"]
    srv = Serve(db_url, tmp_path / "serve.log", args, env).up()
    try:
        mid = setup_broker(srv, srv.admin, kind="gated_broker")["market"]
        (gate / "hold").touch()  # the round holds the process's worker until the gate opens
        rid = srv.admin.post(f"/markets/{mid}/rounds").json()["id"]
        deadline = time.monotonic() + 30
        while srv.admin.get(f"/rounds/{rid}").json()["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert httpx.get(f"{srv.url}/ready").status_code == 200
        srv.admin.close()
        srv.proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        ready = _poll_ready(srv.url)
        assert ready == 503, ready
        with httpx.Client(base_url=srv.url, headers={"X-API-Key": "admin-test-key"}) as fresh:
            assert fresh.get("/health").status_code == 200  # alive, and still serving
            assert fresh.get(f"/rounds/{rid}").json()["status"] == "running"
        assert srv.proc.wait(timeout=60) in (0, -signal.SIGTERM), srv.log_path.read_text()
        assert time.monotonic() - sent >= 2.5  # it served through the drain (3 s)
        log = srv.log_path.read_text()
        assert "draining for 3.0 s" in log and "Application shutdown complete" in log
    finally:
        (gate / "hold").unlink(missing_ok=True)
        srv.stop()
    engine = make_engine(db_url)
    try:
        with make_sessionmaker(engine)() as s:
            held = s.execute(select(Round.status, Round.claimed_by).where(Round.id == rid)).one()
    finally:
        engine.dispose()
    assert tuple(held) == ("pending", None)  # released on the way out, for another process


def _poll_ready(url: str, timeout: float = 10.0) -> int:
    """``/ready``'s status on a new connection each time, until it is not 200."""
    deadline = time.monotonic() + timeout
    while True:
        status = httpx.get(f"{url}/ready").status_code
        if status != 200 or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def test_draining_server_drains_on_the_first_sigterm_only() -> None:
    def server(drain_s: float) -> DrainingServer:
        readiness = Readiness(make_engine("sqlite://"), head="head")  # never connects
        return DrainingServer(uvicorn.Config(app=lambda *a: None), readiness, drain_s)

    s = server(0.3)
    s.handle_exit(signal.SIGTERM, None)
    assert s.readiness.stopping and not s.should_exit  # draining: still serving
    time.sleep(0.6)
    assert s.should_exit  # the drain is over
    for first, second in ((signal.SIGTERM, signal.SIGTERM), (signal.SIGTERM, signal.SIGINT)):
        s = server(30.0)
        s.handle_exit(first, None)
        s.handle_exit(second, None)
        assert s.should_exit and s.readiness.stopping  # a second signal stops at once
    for sig, drain in ((signal.SIGINT, 30.0), (signal.SIGTERM, 0.0)):
        s = server(drain)
        s.handle_exit(sig, None)
        assert s.should_exit and s.readiness.stopping, (sig, drain)
