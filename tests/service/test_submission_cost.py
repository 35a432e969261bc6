"""What a submission costs the database, counted rather than timed, on SQLite
and PostgreSQL: the SQL statements and transactions of one submission through HTTP, counted with
SQLAlchemy's events; the group commit of SQLite writes; the lock that queues SQLite writers of several
processes; an upload waiting for the database holds no parse slot, and a small one needs none.
``benchmarks/service_load.py`` measures the throughput these buy."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import event, select, text

from datamarket.ledger import make_engine, upgrade
from datamarket.ledger.models import Market, Participant
from datamarket.service.store.db import Database
from datamarket.service.uploads import UploadLimits, parse_budget
from datamarket.service.uploads.budget import SMALL_BODY
from tests import service_support
from tests.service_support import LiveServer, blobs, csv_bytes, make_app, register

db_url = service_support.db_url  # the shared fixture: a fresh SQLite and PostgreSQL database

RUNNER_THREADS = ("round-claims", "round-leases")  # the round runner's loops, not the request's work
COLLAB = {"characteristic": "v", "c": 2.0, "model": {"kind": "logreg", "max_iter": 50}}
# Before the rework a submission took 3 transactions (the key, the market, the write) and 14 statements
# (15 with SQLite's BEGIN IMMEDIATE); a replay 12.
MAX_STATEMENTS = 7  # the key's earlier row, lock the market, the caller's waiting inputs, INSERT,
# the rounds in progress and the UPDATE of the superseded input (SQLite adds its BEGIN IMMEDIATE)


class Counter:
    """Statements and transactions (``begin`` events) on an engine, from the threads serving requests."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.transactions = 0

    def serving(self) -> bool:
        return threading.current_thread().name not in RUNNER_THREADS

    def on_statement(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if self.serving():
            self.statements.append(" ".join(statement.split()))

    def on_begin(self, conn: Any) -> None:
        if self.serving():
            self.transactions += 1

    @contextmanager
    def counting(self) -> Iterator[Counter]:
        self.statements.clear()
        self.transactions = 0
        yield self


@contextmanager
def counted(app: Any) -> Iterator[Counter]:
    engine = app.state.service.db.sessions.kw["bind"]
    counter = Counter()
    event.listen(engine, "before_cursor_execute", counter.on_statement)
    event.listen(engine, "begin", counter.on_begin)
    try:
        yield counter
    finally:
        event.remove(engine, "before_cursor_execute", counter.on_statement)
        event.remove(engine, "begin", counter.on_begin)


def post(c: httpx.Client, path: str, key: str, **kw: Any) -> httpx.Response:
    return c.post(path, headers={"Idempotency-Key": key, **kw.pop("headers", {})}, **kw)


def test_a_submission_is_one_transaction_of_at_most_seven_statements(db_url: str) -> None:
    """Each kind of submission (a JSON input that supersedes the caller's earlier one, a first JSON
    input, a CSV upload, a replay of a key) is one write transaction of at most
    :data:`MAX_STATEMENTS` statements once the process knows the caller's key and the market; before
    that, a read transaction more for each (the cold request below: three)."""
    app = make_app(db_url)
    with LiveServer(app) as srv, srv.client() as admin, counted(app) as counter:
        broker = admin.post("/markets", json={"kind": "broker", "params": {"sigma": 1.0}}).json()["id"]
        collab = admin.post("/markets", json={"kind": "collaborative", "params": COLLAB}).json()["id"]
        buyer, party = (srv.client(register(admin, name)[1]) for name in ("buyer", "party"))
        bid = {"kind": "bid", "data": {"valuation": "gaussian", "width": 0.5}}
        with counter.counting():  # cold: the key and the market are read once
            assert post(buyer, f"/markets/{broker}/submissions", "b1", json=bid).status_code == 201
        assert counter.transactions == 3, counter.statements
        x, y = blobs(np.random.default_rng(0), 12)
        cases = {
            "superseding bid": lambda: post(buyer, f"/markets/{broker}/submissions", "b2", json=bid),
            "replay": lambda: post(buyer, f"/markets/{broker}/submissions", "b2", json=bid),
            "first upload": lambda: post(
                party, f"/markets/{collab}/datasets", "u1", content=csv_bytes(x, y), params={"format": "csv"}
            ),
            "first fee scale": lambda: post(
                party,
                f"/markets/{collab}/submissions",
                "f1",
                json={"kind": "fee_scale", "data": {"fee_scale": 1}},
            ),
        }
        # the party's key and the market, remembered from a refusal (a fee scale before any data: 409)
        warm = {"kind": "fee_scale", "data": {"fee_scale": 1}}
        assert post(party, f"/markets/{collab}/submissions", "w", json=warm).status_code == 409
        for name, send in cases.items():
            with counter.counting():
                r = send()
            assert r.status_code == (200 if name == "replay" else 201), (name, r.text)
            assert counter.transactions == 1, (name, counter.statements)
            assert len(counter.statements) <= MAX_STATEMENTS, (name, counter.statements)
        superseded = admin.get(f"/markets/{broker}/submissions").json()[0]
        assert superseded["superseded_by"] == superseded["id"] + 1  # the supersession was still written
        for c in (buyer, party):
            c.close()


def test_unknown_keys_and_markets_are_not_remembered(db_url: str) -> None:
    """The process remembers only what exists: an unknown key stays a 401 and a market created after a
    404 is found at once."""
    app = make_app(db_url)
    with LiveServer(app) as srv, srv.client() as admin:
        _, key = register(admin, "alice")
        alice, nobody = srv.client(key), srv.client("dm_not-a-key")
        bid = {"kind": "bid", "data": {"valuation": "gaussian", "width": 0.5}}
        assert nobody.post("/markets/1/submissions", json=bid).status_code == 401
        assert alice.post("/markets/1/submissions", json=bid).status_code == 404
        assert admin.post("/markets", json={"kind": "broker", "params": {"sigma": 1.0}}).json()["id"] == 1
        assert alice.post("/markets/1/submissions", json=bid).status_code == 201
        assert nobody.post("/markets/1/submissions", json=bid).status_code == 401
        for c in (alice, nobody):
            c.close()


# -- the group commit (SQLite) ---------------------------------------------------------------------
@pytest.fixture
def sqlite_db(tmp_path: Any) -> Iterator[Database]:
    engine = make_engine(f"sqlite:///{tmp_path}/ledger.db")
    upgrade(engine)
    yield Database.on(engine)
    engine.dispose()


REQUEST = contextvars.ContextVar("request", default="none")


def test_waiting_writes_commit_together_each_all_or_nothing(sqlite_db: Database) -> None:
    """While one write runs, the writes that queue behind it are committed together in one transaction
    (one commit, where each used to wait for its own); each runs in its request's context, one that
    fails leaves nothing and gets its own exception, the others are stored."""
    db, engine = sqlite_db, sqlite_db.sessions.kw["bind"]
    commits: list[int] = []
    event.listen(engine, "commit", lambda conn: commits.append(1))
    inside, hold, n = threading.Event(), threading.Event(), 8

    def work(k: int) -> Any:
        REQUEST.set(f"request {k}")

        def insert(s: Any) -> str:
            s.add(Participant(name=f"p{k}", api_key_hash=f"{k:064d}"))
            s.flush()
            if k == 0:
                inside.set()
                hold.wait(10)
            if k == 5:
                raise ValueError("refused")
            return REQUEST.get()

        return db.batched(insert)

    with ThreadPoolExecutor(n) as pool:
        first = pool.submit(work, 0)
        assert inside.wait(10)  # the first write runs, holding the lock
        rest = [pool.submit(work, k) for k in range(1, n)]
        deadline = time.monotonic() + 10
        while len(queued(db)) < n - 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        hold.set()
        assert first.result() == "request 0"
        for k, f in enumerate(rest, start=1):
            if k == 5:
                with pytest.raises(ValueError, match="refused"):
                    f.result()
            else:
                assert f.result() == f"request {k}"
    assert len(commits) == 2  # the first write alone, then the seven that waited behind it
    with db.read() as s:
        names = set(s.execute(select(Participant.name)).scalars())
    assert names == {f"p{k}" for k in range(n) if k != 5}


def queued(db: Database) -> list[Any]:
    """The writes waiting for the group commit's leader."""
    return db._group.queue if db._group is not None else []


def test_a_lone_write_that_fails_rolls_back(sqlite_db: Database) -> None:
    def insert(s: Any) -> None:
        s.add(Market(kind="broker", params={}))
        s.flush()
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        sqlite_db.batched(insert)
    with sqlite_db.read() as s:
        assert s.execute(select(Market.id)).first() is None
    assert sqlite_db.batched(lambda s: s.execute(text("SELECT 1")).scalar()) == 1


def test_writers_of_two_processes_queue_on_one_lock(sqlite_db: Database, tmp_path: Any) -> None:
    """A second ``Database`` on the same file (another process's, as far as the lock is concerned)
    waits for the first's write transaction and enters as soon as it ends."""
    other_engine = make_engine(f"sqlite:///{tmp_path}/ledger.db")
    other = Database.on(other_engine)
    entered = threading.Event()

    def second() -> None:
        with other.write() as s:
            entered.set()
            s.add(Market(kind="second", params={}))

    try:
        with sqlite_db.write() as s:
            s.add(Market(kind="first", params={}))
            t = threading.Thread(target=second)
            t.start()
            assert not entered.wait(0.3)  # queued behind the first, not failing
        assert entered.wait(10)
        t.join(10)
        with other.read() as s:
            assert list(s.execute(select(Market.kind).order_by(Market.id)).scalars()) == ["first", "second"]
    finally:
        other_engine.dispose()


# -- uploads ------------------------------------------------------------------------------------------
def test_an_upload_waiting_for_the_database_holds_its_bytes_not_a_parse_slot(db_url: str) -> None:
    """While the market is locked by another write, an upload (larger than ``SMALL_BODY``: it takes
    a slot to parse) waits for the database with its bytes still counted against the parse budget
    but its parse slot given back."""
    limits = UploadLimits(max_bytes=400_000, max_parallel_parses=1)
    app = make_app(db_url, limits=limits)
    budget, db = parse_budget(limits), app.state.service.db
    x, y = blobs(np.random.default_rng(1), 3000)
    body = csv_bytes(x, y)
    assert SMALL_BODY < len(body) <= limits.max_bytes
    with LiveServer(app) as srv, srv.client() as admin:
        mid = admin.post("/markets", json={"kind": "collaborative", "params": COLLAB}).json()["id"]
        party = srv.client(register(admin, "party")[1])
        with ThreadPoolExecutor(1) as pool, db.write() as s:
            s.execute(select(Market.id).where(Market.id == mid).with_for_update())
            sent = pool.submit(party.post, f"/markets/{mid}/datasets?format=csv", content=body)
            deadline = time.monotonic() + 20
            while not (budget.reserved > 0 and budget.running == 0) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert (budget.running, budget.reserved > 0) == (0, True)
        assert sent.result().status_code == 201
        assert (budget.running, budget.reserved) == (0, 0)
        party.close()


def test_a_small_upload_needs_no_parse_slot(tmp_path: Any) -> None:
    """With every parse slot taken (by a large upload parsing), a 1 kB upload is still stored, where
    it used to be answered 503; a large one is still refused."""
    limits = UploadLimits(max_bytes=400_000, max_parallel_parses=1)
    app = make_app(f"sqlite:///{tmp_path}/ledger.db", limits=limits)
    budget = parse_budget(limits)
    small, large = (csv_bytes(*blobs(np.random.default_rng(2), n)) for n in (20, 3000))
    with LiveServer(app) as srv, srv.client() as admin:
        mid = admin.post("/markets", json={"kind": "collaborative", "params": COLLAB}).json()["id"]
        party = srv.client(register(admin, "party")[1])
        url = f"/markets/{mid}/datasets?format=csv"
        held = budget.admit(lambda: 1000)  # the one slot, as a large upload's parse holds it
        assert held is not None
        with held:
            assert party.post(url, content=large).status_code == 503
            assert party.post(url, content=small).status_code == 201
        assert party.post(url, content=large).status_code == 201
        assert (budget.running, budget.reserved) == (0, 0)
        party.close()
