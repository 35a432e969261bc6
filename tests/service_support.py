"""Helpers shared by the ledger and service tests (no tests here).

* :func:`database_urls` -- SQLite always, PostgreSQL when ``DATAMARKET_TEST_POSTGRES_URL`` is set
  (``.ci/postgres`` starts one); each test gets a fresh database (a temp file, or a new PostgreSQL
  database created and dropped around the test).
* :func:`make_app` -- the app on a database with test defaults (the :data:`ADMIN` key, thread
  executor) and any settings overridden by keyword.
* :class:`LiveServer` -- the real app under uvicorn on 127.0.0.1 (a free port) in a thread, with an
  httpx client: the tests go through real HTTP.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI

PG_ENV = "DATAMARKET_TEST_POSTGRES_URL"
ADMIN = "admin-test-key"

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgres",
        id="postgres",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not os.environ.get(PG_ENV), reason=f"{PG_ENV} not set"),
        ],
    ),
]


@contextmanager
def fresh_database(backend: str, tmp_path: Any) -> Iterator[str]:
    """A URL of an empty database of ``backend``; a PostgreSQL one is dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/ledger-{uuid.uuid4().hex[:8]}.db"
        return
    import psycopg

    base = os.environ[PG_ENV]
    name = f"dm_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A fresh database of each backend (import this fixture into a test module)."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


def make_app(database_url: str, **overrides: Any) -> FastAPI:
    """The service on ``database_url`` with test defaults (admin key :data:`ADMIN`, ``executor="thread"``)
    and ``overrides``: any :class:`~datamarket.service.config.ServiceSettings` field (``admin_key``,
    ``executor``, ``max_workers``, ``dask_address``, ``limits``, ``adapters``, ``leases``, ``throttle``;
    ``throttle`` may also be an :class:`~datamarket.service.throttle.AuthThrottle`, whose limits are used)."""
    from datamarket.service.app import create_app
    from datamarket.service.config import ServiceSettings
    from datamarket.service.throttle import AuthThrottle

    if isinstance(overrides.get("throttle"), AuthThrottle):
        overrides["throttle"] = overrides["throttle"].settings
    settings = {"admin_key": ADMIN, "executor": "thread", **overrides}
    return create_app(ServiceSettings(database_url=database_url, **settings))


@contextmanager
def served_with(
    backend: str, tmp_path: Any, adapters: dict[str, str]
) -> Iterator[tuple[str, LiveServer, httpx.Client]]:
    """A fresh database of ``backend``, the service on it with extra ``adapters`` (kind -> reference),
    thread executor, 64 kB upload limit: ``(url, server, admin client)``."""
    from datamarket.service.uploads import UploadLimits

    with fresh_database(backend, tmp_path) as url:
        app = make_app(url, limits=UploadLimits(max_bytes=64_000), adapters=adapters)
        with LiveServer(app) as srv, srv.client() as admin:
            yield url, srv, admin


@pytest.fixture
def live(db_url: str) -> Iterator[LiveServer]:
    """The service on ``db_url`` under uvicorn: thread executor, 64 kB upload limit."""
    from datamarket.service.uploads import UploadLimits

    app = make_app(db_url, limits=UploadLimits(max_bytes=64_000))
    with LiveServer(app) as srv:
        yield srv


class LiveServer:
    """uvicorn serving ``app`` on 127.0.0.1 in a background thread."""

    def __init__(self, app: Any):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = app
        # proxy_headers=False as in `datamarket serve`: the app trusts only its forwarded_allow_ips
        config = uvicorn.Config(app, log_level="warning", lifespan="on", proxy_headers=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()

    def client(self, key: str | None = ADMIN) -> httpx.Client:
        headers = {"X-API-Key": key} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


def wait_round(client: httpx.Client, rid: int, timeout: float = 60.0) -> dict[str, Any]:
    """Poll ``GET /rounds/{rid}`` until it is cleared or failed."""
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(f"/rounds/{rid}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        if body["status"] in ("cleared", "failed", "unverified"):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"round {rid} still {body['status']} after {timeout} s")
        time.sleep(0.05)


def csv_bytes(
    features: np.ndarray, labels: np.ndarray | None = None, groups: np.ndarray | None = None
) -> bytes:
    """A CSV upload with columns x0.. and optional label and group columns."""
    buf = io.StringIO()
    extra = [(n, c) for n, c in (("label", labels), ("group", groups)) if c is not None]
    buf.write(",".join([f"x{j}" for j in range(features.shape[1])] + [n for n, _ in extra]) + "\n")
    for i, row in enumerate(features):
        cells = [repr(float(v)) for v in row] + [str(int(c[i])) for _, c in extra]
        buf.write(",".join(cells) + "\n")
    return buf.getvalue().encode()


def register(admin: httpx.Client, name: str) -> tuple[int, str]:
    r = admin.post("/participants", json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["api_key"]


# -- a broker adapter whose worker can be held and killed (crash tests) ----------------------------
GATE_ENV = "DATAMARKET_TEST_GATE_DIR"


class GatedBroker:
    """The real broker adapter, except that ``clear`` first writes the worker's pid to
    ``$GATE_ENV/pid`` and waits while ``$GATE_ENV/hold`` exists (so a test can kill the worker
    mid-round, then let a retry through)."""

    kind = "gated_broker"

    def __init__(self) -> None:
        from datamarket.service.adapters.broker import ADAPTER

        self.inner = ADAPTER
        self.description = "broker (test gate)"
        self.submission_kinds = ADAPTER.submission_kinds
        self.dataset_kinds = ADAPTER.dataset_kinds

    def validate_params(self, params: Any) -> Any:
        return self.inner.validate_params(params)

    def validate_submission(self, params: Any, kind: str, payload: Any, dataset: Any) -> Any:
        return self.inner.validate_submission(params, kind, payload, dataset)

    def check_inputs(self, params: Any, inputs: Any) -> None:
        self.inner.check_inputs(params, inputs)

    def check_submission(self, params: Any, mine: Any, new: Any) -> None:
        self.inner.check_submission(params, mine, new)

    def plan(self, params: Any, inputs: Any) -> Any:
        return self.inner.plan(params, inputs)

    def clear(self, params: Any, inputs: Any, seed: int) -> Any:
        from pathlib import Path

        gate = Path(os.environ[GATE_ENV])
        (gate / "pid.tmp").write_text(str(os.getpid()))
        (gate / "pid.tmp").replace(gate / "pid")
        deadline = time.monotonic() + 60
        while (gate / "hold").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.inner.clear(params, inputs, seed)


GATED = GatedBroker()


# -- driving whole markets over HTTP -----------------------------------------------------------------
BROKER_BIDS = {
    "buyer_a": {"valuation": "gaussian", "width": 0.5},
    "buyer_b": {"valuation": "threshold", "width": 0.4, "scale": 0.9},
}
BROKER_COSTS = {"seller_x": 0.05, "seller_y": 0.06}


def setup_broker(srv: LiveServer, admin: httpx.Client, kind: str = "broker", seed: int = 0) -> dict[str, Any]:
    """A broker market with two buyers and two contributors whose data are uploaded (CSV)."""
    mid = admin.post("/markets", json={"kind": kind, "params": {"sigma": 1.0}}).json()["id"]
    ids, clients = {}, {}
    for name in [*BROKER_BIDS, *BROKER_COSTS]:
        pid, key = register(admin, f"{name}_{mid}")
        ids[name], clients[name] = pid, srv.client(key)
    for name, bid in BROKER_BIDS.items():
        r = clients[name].post(f"/markets/{mid}/submissions", json={"kind": "bid", "data": bid})
        assert r.status_code == 201, r.text
    for name, cost in BROKER_COSTS.items():
        r = clients[name].post(f"/markets/{mid}/submissions", json={"kind": "cost", "data": {"cost": cost}})
        assert r.status_code == 201, r.text
    plan = admin.get(f"/markets/{mid}/plan")  # the whole plan: a participant sees only its own row
    assert plan.status_code == 200, plan.text
    rng = np.random.default_rng(seed)
    for name in BROKER_COSTS:
        n = clients[name].get(f"/markets/{mid}/plan").json()["n_star"][f"{name}_{mid}"]
        body = csv_bytes(rng.normal(2.0, 1.0, (n, 1)))
        r = clients[name].post(f"/markets/{mid}/datasets", params={"format": "csv"}, content=body)
        assert r.status_code == 201, r.text
    return {"market": mid, "ids": ids, "clients": clients, "plan": plan.json()}


def blobs(rng: np.random.Generator, n: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian classes in two dimensions."""
    y = np.arange(n) % 2
    x = rng.normal(0.0, 0.7, (n, 2)) + y[:, None] * 1.5 + shift
    return x, y


def setup_collaborative(
    srv: LiveServer, admin: httpx.Client, n_parties: int = 3, seed: int = 0
) -> dict[str, Any]:
    """A single-task (``v``) collaborative market; the first party also uploads the task."""
    params = {"characteristic": "v", "c": 2.0, "model": {"kind": "logreg", "max_iter": 50}}
    r = admin.post("/markets", json={"kind": "collaborative", "params": params})
    assert r.status_code == 201, r.text
    mid = r.json()["id"]
    rng = np.random.default_rng(seed)
    ids, clients = {}, {}
    for k in range(n_parties):
        name = f"party{k}_{mid}"
        pid, key = register(admin, name)
        ids[name], clients[name] = pid, srv.client(key)
        x, y = blobs(rng, 8 + 6 * k)
        r = clients[name].post(f"/markets/{mid}/datasets", params={"format": "csv"}, content=csv_bytes(x, y))
        assert r.status_code == 201, r.text
    first = next(iter(clients))
    x, y = blobs(rng, 40)
    r = clients[first].post(
        f"/markets/{mid}/datasets", params={"format": "csv", "kind": "task"}, content=csv_bytes(x, y)
    )
    assert r.status_code == 201, r.text
    return {"market": mid, "ids": ids, "clients": clients}


# -- a broker adapter whose rounds fail on demand (races on failed rounds) -------------------------
class FlakyBroker(GatedBroker):
    """The real broker adapter, except that ``clear`` raises while ``fail`` is set (a round that
    failed, exactly as after a crash: status ``failed``, inputs unconsumed, nothing booked)."""

    kind = "flaky_broker"

    def __init__(self) -> None:
        super().__init__()
        self.fail = False

    def clear(self, params: Any, inputs: Any, seed: int) -> Any:
        if self.fail:
            raise RuntimeError("injected failure")
        return self.inner.clear(params, inputs, seed)


FLAKY = FlakyBroker()
FLAKY_REF = "tests.service_support:FLAKY"


class UncertifiedBroker(GatedBroker):
    """The real broker adapter, except that while ``fail`` is set ``clear`` returns the real outcome
    with a certificate whose budget-balance check fails (a mechanism whose answer does not check out)."""

    kind = "uncertified_broker"

    def __init__(self) -> None:
        super().__init__()
        self.fail = False

    def clear(self, params: Any, inputs: Any, seed: int) -> Any:
        import dataclasses

        from datamarket.core.certificates import Certificate, Check

        out = self.inner.clear(params, inputs, seed)
        if not self.fail:
            return out
        bad = Check("mstar.budget_balance", "charges equal payments", "injected", 1.0, 1e-9)
        return dataclasses.replace(out, certificate=Certificate.of(*out.certificate.checks[:1], bad))


UNCERTIFIED = UncertifiedBroker()
UNCERTIFIED_REF = "tests.service_support:UNCERTIFIED"


def failed_rounds(srv: LiveServer, admin: httpx.Client, n: int) -> list[tuple[int, int]]:
    """``n`` flaky-broker markets, each with one failed round: ``[(market, round)]``."""
    markets = [setup_broker(srv, admin, kind="flaky_broker", seed=k)["market"] for k in range(n)]
    FLAKY.fail = True
    try:
        out = []
        for mid in markets:
            r = admin.post(f"/markets/{mid}/rounds")
            assert r.status_code == 202, r.text
            assert wait_round(admin, r.json()["id"])["status"] == "failed"
            out.append((mid, r.json()["id"]))
    finally:
        FLAKY.fail = False
    return out


def race(srv: LiveServer, requests: list[tuple[str, str]]) -> list[int]:
    """Send ``requests`` (method, path) as the operator at the same instant, one client and thread
    each (a barrier releases them together); their status codes."""
    barrier = threading.Barrier(len(requests))
    clients = [srv.client() for _ in requests]

    def send(k: int) -> int:
        method, path = requests[k]
        barrier.wait()
        return clients[k].request(method, path).status_code

    try:
        with ThreadPoolExecutor(len(requests)) as pool:
            return list(pool.map(send, range(len(requests))))
    finally:
        for c in clients:
            c.close()


def settle(admin: httpx.Client, mid: int, timeout: float = 120.0) -> list[dict[str, Any]]:
    """Wait until no round of market ``mid`` is pending or running; its rounds."""
    deadline = time.monotonic() + timeout
    while True:
        rounds: list[dict[str, Any]] = admin.get(f"/markets/{mid}/rounds").json()
        if all(r["status"] in ("cleared", "failed", "unverified") for r in rounds):
            return rounds
        assert time.monotonic() < deadline, rounds
        time.sleep(0.05)


def audit(url: str) -> dict[str, list[int]]:
    """Exactly-once invariants straight from the database: rounds booked twice on one input, rounds
    booked but not ``cleared``, cleared rounds without bookings, and inputs of a cleared round not
    marked consumed by it. Every list is empty when money moved exactly once."""
    from sqlalchemy import select

    from datamarket.ledger import make_engine, make_sessionmaker
    from datamarket.ledger.models import LedgerEntry, Round, Submission

    eng = make_engine(url)
    try:
        with make_sessionmaker(eng)() as s:
            booked = set(s.execute(select(LedgerEntry.round_id).distinct()).scalars())
            rounds = list(s.execute(select(Round)).scalars())
            consumed = {i: c for i, c in s.execute(select(Submission.id, Submission.consumed_round_id))}
    finally:
        eng.dispose()
    seen: dict[int, int] = {}
    double, mismatch = [], []
    for r in rounds:
        if r.id not in booked:
            continue
        for i in r.input_ids:
            if i in seen:
                double.append(r.id)
            seen[i] = r.id
            if consumed.get(i) != r.id:
                mismatch.append(r.id)
    return {
        "double_booked": sorted(set(double)),
        "booked_not_cleared": sorted(r.id for r in rounds if r.id in booked and r.status != "cleared"),
        "cleared_not_booked": sorted(r.id for r in rounds if r.status == "cleared" and r.id not in booked),
        "consumed_mismatch": sorted(set(mismatch)),
    }


def race_retry_vs_new_round(srv: LiveServer, admin: httpx.Client, n: int) -> dict[str, Any]:
    """Race 1 of the exactly-once tests: per market, ``POST /rounds/R1/retry`` of a failed round and
    ``POST /markets/{m}/rounds`` at the same instant (``n`` markets, raced one after another)."""
    codes = []
    for mid, rid in failed_rounds(srv, admin, n):
        codes.append(tuple(race(srv, [("POST", f"/rounds/{rid}/retry"), ("POST", f"/markets/{mid}/rounds")])))
        settle(admin, mid)
    return {"codes": codes}


def race_concurrent_retries(srv: LiveServer, admin: httpx.Client, n: int, k: int = 10) -> dict[str, Any]:
    """Race 2: ``k`` simultaneous retries of one failed round, in each of ``n`` markets."""
    codes, statuses, errors = [], [], []
    for mid, rid in failed_rounds(srv, admin, n):
        codes.append(race(srv, [("POST", f"/rounds/{rid}/retry")] * k))
        done = next(r for r in settle(admin, mid) if r["id"] == rid)
        statuses.append(done["status"])
        errors.append(done["error"])
    return {"codes": codes, "statuses": statuses, "errors": errors}


# -- ``datamarket serve`` in child processes (several processes on one database) ---------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def alive(pid: int) -> bool:
    """``pid`` runs (a zombie counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def children_of(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


class Serve:
    """``datamarket serve --db URL`` on a free loopback port, in its own session, logging to
    ``log_path``; ``args`` are extra options. :meth:`up` waits for ``/health``; :meth:`client`
    makes httpx clients (``setup_broker`` and friends accept a ``Serve`` like a ``LiveServer``)."""

    def __init__(self, url: str, log_path: Path, args: list[str], env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        exe = Path(sys.executable).with_name("datamarket")
        cmd = (
            [str(exe)] if exe.exists() else [sys.executable, "-c", "from datamarket.cli import main; main()"]
        )
        cmd += ["serve", "--db", url, "--host", "127.0.0.1", "--port", str(self.port), "--admin-key", ADMIN]
        with log_path.open("a") as log:
            self.proc = subprocess.Popen(
                cmd + list(args),
                env=env,
                cwd=log_path.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.admin = self.client()
        self.instance = ""

    def up(self, timeout: float = 60.0) -> Serve:
        """Wait until the process answers ``/health``; note its instance id."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                health = self.admin.get("/health")
                if health.status_code == 200:
                    self.instance = str(health.json()["instance"])
                    return self
            except httpx.TransportError:
                pass
            assert self.proc.poll() is None and time.monotonic() < deadline, self.log_path.read_text()
            time.sleep(0.1)

    def client(self, key: str | None = ADMIN) -> httpx.Client:
        headers = {"X-API-Key": key} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def stop(self) -> None:
        """SIGKILL of its process group (the test's clean-up; graceful stops send SIGTERM)."""
        self.admin.close()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
