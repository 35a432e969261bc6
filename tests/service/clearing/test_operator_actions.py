"""The operator ends a stuck round at once: ``POST /rounds/{id}/release`` (back to
``pending``, any process claims it again) and ``POST /rounds/{id}/fail`` (nothing booked, inputs
unconsumed). Each is a compare-and-set on the lease, idempotent, and a holder that is still alive and
tries to book afterwards books nothing: every round is booked once.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from datamarket.ledger.models import LedgerEntry, LedgerRound
from datamarket.service.clearing.leases import Leases, operator_fail, operator_release
from datamarket.service.observability.metrics import REGISTRY
from datamarket.service.store.db import Database
from datamarket.service.store.errors import Conflict, NotFound
from tests.service.clearing.test_leases import StubPool, row, runner, world  # noqa: F401  (fixture)
from tests.service_support import (
    GATE_ENV,
    LiveServer,
    audit,
    db_url,  # noqa: F401  (fixture)
    make_app,
    setup_broker,
    wait_round,
)


def booked(db: Database, rid: int) -> tuple[int, int]:
    """(ledger entries of the round, ledger_rounds rows of the round)."""
    with db.read() as s:
        entries = s.execute(select(func.count()).where(LedgerEntry.round_id == rid)).scalar_one()
        rounds = s.execute(select(func.count()).where(LedgerRound.round_id == rid)).scalar_one()
        return int(entries), int(rounds)


def test_release_while_the_holder_lives_books_the_round_once(world: tuple[Database, int]) -> None:  # noqa: F811
    db, rid = world
    pool_a = StubPool()
    a, b = runner(db, "a", pool_a), runner(db, "b")
    held = a._claim_one()
    assert held is not None
    a._held[rid] = held
    taken: list[Any] = []

    def operator_releases_and_b_clears() -> None:  # while a's worker computes, a looks hung
        r = operator_release(db, rid, attempt=1)
        assert (r.status, r.claimed_by, r.lease_expires_at, r.attempts) == ("pending", None, None, 1)
        assert operator_release(db, rid).status == "pending"  # idempotent
        assert operator_release(db, rid, attempt=1).status == "pending"
        got = b._claim_one()
        assert got is not None and got.attempt == 2
        b._held[rid] = got
        b._process(got)  # b books the round
        taken.append(got)

    pool_a.during = operator_releases_and_b_clears
    a._process(held)  # a wakes up with its result: LostRound, nothing written
    r = row(db, rid)
    assert (r.status, r.claimed_by, r.attempts, r.lease_expiries) == ("cleared", "b", 2, 0)
    entries, rounds = booked(db, rid)
    assert rounds == 1 and entries == 2  # the stub's two postings, once
    a.heartbeat(force=True)  # a's renewals match no row either
    assert row(db, rid).claimed_by == "b"
    with pytest.raises(Conflict, match="cleared"):
        operator_release(db, rid)
    with pytest.raises(Conflict, match="cleared"):
        operator_fail(db, rid)


def test_fail_while_the_holder_lives_books_nothing_then_retry_books_once(
    world: tuple[Database, int],  # noqa: F811
) -> None:
    from datamarket.service.auth import Principal
    from datamarket.service.store.rounds import retry

    db, rid = world
    pool_a = StubPool()
    a, b = runner(db, "a", pool_a), runner(db, "b")
    held = a._claim_one()
    assert held is not None
    a._held[rid] = held
    with pytest.raises(Conflict, match="attempt 1, not 2"):  # compare-and-set on what the operator saw
        operator_fail(db, rid, attempt=2)
    pool_a.during = lambda: operator_fail(db, rid, attempt=1, reason="worker hangs")
    a._process(held)
    r = row(db, rid)
    assert (r.status, r.attempts) == ("failed", 1)
    assert r.error == "failed by the operator: worker hangs; nothing was booked"
    assert booked(db, rid) == (0, 0)
    assert operator_fail(db, rid).error == r.error  # idempotent, the first reason kept
    with pytest.raises(Conflict, match="only a running round"):
        operator_release(db, rid)
    with pytest.raises(NotFound):
        operator_release(db, rid + 1000)
    retry(db, Principal(True), rid)
    again = b._claim_one()
    assert again is not None
    b._held[rid] = again
    b._process(again)
    assert row(db, rid).status == "cleared" and booked(db, rid) == (2, 1)


def test_a_pending_round_can_be_failed_and_is_not_claimed(world: tuple[Database, int]) -> None:  # noqa: F811
    db, rid = world
    assert operator_release(db, rid).status == "pending"  # nothing to release
    assert operator_fail(db, rid).status == "failed"
    assert runner(db, "a")._claim_one() is None


# -- over HTTP, with a worker held in the middle of a round ------------------------------------------
def _running(admin: httpx.Client, rid: int, gate: Path, timeout: float = 60.0) -> dict[str, Any]:
    """Wait until the worker is inside the mechanism (it wrote its pid) and the round is running."""
    deadline = time.monotonic() + timeout
    while not (gate / "pid").exists() or admin.get(f"/rounds/{rid}").json()["status"] != "running":
        assert time.monotonic() < deadline, admin.get(f"/rounds/{rid}").json()
        time.sleep(0.02)
    (gate / "pid").unlink()
    body: dict[str, Any] = admin.get(f"/rounds/{rid}").json()
    return body


def _entries(url: str, rid: int) -> int:
    """Ledger entries of round ``rid``, straight from the database (ledger_rounds rows checked too)."""
    from datamarket.ledger import make_engine

    engine = make_engine(url)
    try:
        entries, rounds = booked(Database.on(engine), rid)
    finally:
        engine.dispose()
    assert rounds == (1 if entries else 0)
    return entries


def test_release_and_fail_over_http_book_each_round_once(
    db_url: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker hangs inside the mechanism (a gate); the operator releases its round, the old worker
    then finishes and tries to book: refused; the same process claims the round again and books it
    once. A second hung round is failed: nothing booked, inputs unconsumed, a retry books it once."""
    monkeypatch.setenv(GATE_ENV, str(tmp_path))
    hold = tmp_path / "hold"
    hold.touch()
    app = make_app(
        db_url,
        adapters={"gated_broker": "tests.service_support:GATED"},
        leases=Leases(lease_s=60.0, poll_s=0.1, grace_s=0.0),
    )
    with LiveServer(app) as srv, srv.client() as admin:
        schema = admin.get("/openapi.json").json()["paths"]
        assert {"/rounds/{rid}/release", "/rounds/{rid}/fail"} <= set(schema)
        m1, m2 = (setup_broker(srv, admin, kind="gated_broker", seed=k) for k in range(2))
        buyer = m1["clients"]["buyer_a"]
        r1 = admin.post(f"/markets/{m1['market']}/rounds").json()["id"]
        assert _running(admin, r1, tmp_path)["attempts"] == 1
        assert buyer.post(f"/rounds/{r1}/release").status_code == 403
        assert admin.post(f"/rounds/{r1}/release", json={"attempt": 2}).status_code == 409
        for _ in range(2):  # idempotent
            r = admin.post(f"/rounds/{r1}/release", json={"attempt": 1})
            assert r.status_code == 200 and r.json()["status"] == "pending", r.text
        hold.unlink()  # the old worker finishes; its booking is refused, the round is claimed again
        done = wait_round(admin, r1)
        assert (done["status"], done["attempts"]) == ("cleared", 2)
        n1 = _entries(db_url, r1)
        assert n1 > 0
        assert admin.post(f"/rounds/{r1}/release").status_code == 409
        assert admin.post(f"/rounds/{r1}/fail").status_code == 409

        hold.touch()
        r2 = admin.post(f"/markets/{m2['market']}/rounds").json()["id"]
        _running(admin, r2, tmp_path)
        failed = {"kind": "gated_broker", "status": "failed"}
        counted = REGISTRY.get_sample_value("datamarket_rounds_total", failed) or 0.0
        for _ in range(2):
            r = admin.post(f"/rounds/{r2}/fail", json={"reason": "the worker hangs"})
            assert r.status_code == 200 and r.json()["status"] == "failed", r.text
        # the metrics count the operator's fail once (this process served it)
        assert REGISTRY.get_sample_value("datamarket_rounds_total", failed) == counted + 1
        hold.unlink()  # the old worker returns and tries to book
        runner = srv.app.state.service.runner
        deadline = time.monotonic() + 60
        while r2 in runner.held():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert admin.get(f"/rounds/{r2}").json()["status"] == "failed" and _entries(db_url, r2) == 0
        subs = admin.get(f"/markets/{m2['market']}/submissions").json()
        assert subs and all(s["consumed_round_id"] is None for s in subs)
        assert admin.post(f"/rounds/{r2}/retry").status_code == 202
        assert wait_round(admin, r2)["status"] == "cleared" and _entries(db_url, r2) > 0
        assert _entries(db_url, r1) == n1
        assert admin.get("/ledger/verify").json()["ok"]
    assert audit(db_url) == {
        "double_booked": [],
        "booked_not_cleared": [],
        "cleared_not_booked": [],
        "consumed_mismatch": [],
    }
