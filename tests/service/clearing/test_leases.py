"""Round leases without HTTP: claims, takeover of expired leases, bounded attempts, heartbeats guarded
by the lease, release on shutdown, and booking refused to a process whose lease was taken over.

Two :class:`RoundRunner` objects on one database stand for two service processes; their background
loops are not started, each step is called directly, and an expired lease is made by moving its
expiry into the past (no sleeping, no timed assertion).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select, update

from datamarket.core.certificates import Certificate, Check
from datamarket.core.types import Dataset, Outcome, Role
from datamarket.ledger import current_revision, head_revision, make_engine, make_sessionmaker, upgrade
from datamarket.ledger.models import LedgerEntry, Market, Participant, Round, utcnow
from datamarket.service.adapters import Input
from datamarket.service.clearing.leases import Held, Leases
from datamarket.service.clearing.runner import RoundRunner
from datamarket.service.clearing.worker import WorkerPool
from datamarket.service.store.db import Database
from datamarket.service.uploads import UploadLimits
from tests.service_support import PG_ENV, blobs, db_url, fresh_database  # noqa: F401  (fixture)

LEASES = Leases(lease_s=30.0, max_attempts=3, grace_s=0.0)


class StubPool:
    """A worker pool whose ``run`` reports progress, calls ``during`` (a test's intervention while
    the round is being cleared) and returns a fixed two-participant outcome, with its certificate
    (the prices paid equal the payments made)."""

    kind = "stub"
    max_workers = 1

    def __init__(self) -> None:
        self.during: Callable[[], None] = lambda: None

    def run(self, ref: str, params: Any, inputs: Any, seed: int, progress: Any = None) -> dict[str, Any]:
        if progress is not None:
            progress("fits", 0.5)
        self.during()
        o = Outcome(
            "stub",
            ("buyer", "seller"),
            (Role.BUYER, Role.SELLER),
            prices=[2.0, 0.0],
            payments=[0.0, 2.0],
            values=[3.0, 0.0],
            costs=[0.0, 1.0],
        )
        gap = abs(sum(o.prices) - sum(o.payments))
        cert = Certificate.of(Check("balance", "prices equal payments", "sums of the outcome", gap, 1e-12))
        return {"outcome": o.to_dict(), "deliverables": {}, "certificate": cert.to_dict()}

    def shutdown(self) -> None:
        pass


@pytest.fixture
def world(db_url: str) -> Iterator[tuple[Database, int]]:  # noqa: F811
    """A migrated database with one market, its two participants and one pending round."""
    engine = make_engine(db_url)
    upgrade(engine)
    sqlite = engine.dialect.name == "sqlite"
    db = Database(make_sessionmaker(engine), serialise_writes=sqlite, postgres=not sqlite)
    with db.write() as s:
        m = Market(kind="stub", params={}, scale=100, currency="USD")
        s.add_all(
            [
                m,
                Participant(name="buyer", api_key_hash="a" * 64),
                Participant(name="seller", api_key_hash="b" * 64),
            ]
        )
        s.flush()
        r = Round(market_id=m.id, seed=1, input_ids=[], seed_source="operator")
        s.add(r)
        s.flush()
        rid = r.id
    yield db, rid
    engine.dispose()


def runner(
    db: Database, name: str, pool: Any = None, leases: Leases = LEASES, kinds: tuple[str, ...] = ("stub",)
) -> RoundRunner:
    refs = {k: "unused:ADAPTER" for k in kinds}
    return RoundRunner(db, pool or StubPool(), refs, UploadLimits(), leases, instance=name)


def row(db: Database, rid: int) -> Round:
    with db.read() as s:
        r = s.get(Round, rid)
        assert r is not None
        return r


def expire(db: Database, rid: int) -> None:
    with db.write() as s:
        s.execute(
            update(Round).where(Round.id == rid).values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )


def test_a_live_lease_is_claimed_by_one_process_only(world: tuple[Database, int]) -> None:
    db, rid = world
    a, b = runner(db, "a"), runner(db, "b")
    assert runner(db, "c", kinds=("broker",))._claim_one() is None  # it cannot clear a stub market
    held = a._claim_one()
    assert held is not None and (held.round_id, held.attempt) == (rid, 1)
    assert b._claim_one() is None  # running, lease not expired: nothing to claim
    r = row(db, rid)
    assert (r.status, r.claimed_by, r.attempts, r.lease_expiries) == ("running", "a", 1, 0)
    assert r.lease_expires_at is not None and r.lease_expires_at > utcnow()


def test_expired_leases_are_taken_over_then_the_round_fails_after_max_attempts(
    world: tuple[Database, int],
) -> None:
    db, rid = world
    a, b = runner(db, "a"), runner(db, "b")
    assert a._claim_one() is not None
    expire(db, rid)
    taken = b._claim_one()
    assert taken is not None and taken.attempt == 2
    r = row(db, rid)
    assert (r.status, r.claimed_by, r.attempts, r.lease_expiries) == ("running", "b", 2, 1)
    assert "lease of a expired" in r.stage
    # the old holder can no longer write progress, renew, fail or book the round
    assert a._cas(rid, 1, progress=0.9) == 0
    expire(db, rid)
    assert a._claim_one() is not None  # third attempt
    expire(db, rid)
    gone = b._claim_one()
    assert gone is not None and gone.attempt == 0  # failed, not taken over
    r = row(db, rid)
    assert (r.status, r.attempts, r.lease_expiries) == ("failed", 3, 3)
    assert r.error is not None and "lease expired 3 time(s)" in r.error
    assert b._claim_one() is None


def test_heartbeat_writes_progress_and_lease_only_while_held(world: tuple[Database, int]) -> None:
    db, rid = world
    a, b = runner(db, "a"), runner(db, "b")
    held = a._claim_one()
    assert held is not None
    a._held[rid] = held
    before = row(db, rid).lease_expires_at
    a._report(held, "shapley", 0.5)
    a.heartbeat()
    r = row(db, rid)
    assert (r.stage, r.progress) == ("shapley", 0.5)
    assert r.lease_expires_at is not None and before is not None and r.lease_expires_at >= before
    expire(db, rid)
    assert b._claim_one() is not None
    a._report(held, "shapley", 0.9)
    a.heartbeat(force=True)
    r = row(db, rid)
    assert r.claimed_by == "b" and r.progress != 0.9  # exact: a's write matched no row


def test_shutdown_releases_held_rounds_for_another_process(world: tuple[Database, int]) -> None:
    db, rid = world
    a, b = runner(db, "a"), runner(db, "b")
    held = a._claim_one()
    assert held is not None
    a._held[rid] = held
    a.shutdown()  # grace 0: the round is still held, so it is released
    r = row(db, rid)
    assert (r.status, r.claimed_by, r.lease_expires_at) == ("pending", None, None)
    again = b._claim_one()
    assert again is not None and again.attempt == 2 and row(db, rid).lease_expiries == 0


def test_a_process_whose_lease_was_taken_over_cannot_book(world: tuple[Database, int]) -> None:
    db, rid = world
    pool_a = StubPool()
    a, b = runner(db, "a", pool_a), runner(db, "b")
    held = a._claim_one()
    assert held is not None
    taken: list[Held] = []

    def takeover() -> None:  # a is presumed dead while its worker computes
        expire(db, rid)
        got = b._claim_one()
        assert got is not None
        taken.append(got)

    pool_a.during = takeover
    a._held[rid] = held
    a._process(held)  # LostRound: logged, nothing written
    with db.read() as s:
        assert s.execute(select(LedgerEntry)).first() is None
    r = row(db, rid)
    assert (r.status, r.claimed_by, r.attempts) == ("running", "b", 2)
    b._held[rid] = taken[0]
    b._process(taken[0])
    r = row(db, rid)
    assert (r.status, r.claimed_by, r.attempts, r.progress) == ("cleared", "b", 2, 1.0)
    with db.read() as s:
        assert {e.round_id for e in s.execute(select(LedgerEntry)).scalars()} == {rid}


def test_leases_are_validated() -> None:
    with pytest.raises(ValueError, match="heartbeat_s"):
        Leases(lease_s=1.0, heartbeat_s=2.0)
    with pytest.raises(ValueError, match="max_attempts"):
        Leases(max_attempts=0)


# -- progress from inside the mechanism, through the worker pool ---------------------------------
def collaborative_inputs() -> list[Input]:
    rng = np.random.default_rng(3)
    out = []
    for k in range(3):
        x, y = blobs(rng, 10 + 4 * k)
        out.append(Input(f"p{k}", "dataset", {}, Dataset(x, y)))
    x, y = blobs(rng, 30)
    out.append(Input("p0", "task", {}, Dataset(x, y)))
    return out


PARAMS = {"characteristic": "v", "c": 2.0, "model": {"kind": "logreg", "max_iter": 50}}
REF = "datamarket.service.adapters.collaborative:ADAPTER"


def test_worker_relays_the_mechanisms_progress_without_changing_the_result() -> None:
    seen: dict[str, list[tuple[str, float]]] = {"thread": [], "process": []}
    pools = {kind: WorkerPool(kind, max_workers=1) for kind in seen}
    try:
        plain = pools["thread"].run(REF, PARAMS, collaborative_inputs(), 5)
        relayed = {
            kind: pool.run(
                REF, PARAMS, collaborative_inputs(), 5, progress=lambda s, f, k=kind: seen[k].append((s, f))
            )
            for kind, pool in pools.items()
        }
    finally:
        for pool in pools.values():
            pool.shutdown()
    for kind, reports in seen.items():
        assert relayed[kind] == plain  # exact: the same seeded computation; progress is only observed
        stages = [s for s, _ in reports]
        assert stages[0] == "own models" and "delivered models" in stages and stages[-1] == "shapley", kind
        fractions = [f for _, f in reports]
        assert all(0.0 <= f <= 1.0 for f in fractions)
        assert fractions == sorted(fractions) and fractions[-1] == 1.0  # exact: the last batch reports 1


@pytest.mark.postgres
@pytest.mark.skipif(not os.environ.get(PG_ENV), reason=f"{PG_ENV} not set")
def test_processes_starting_together_migrate_a_fresh_postgres_database_once(tmp_path: Any) -> None:
    with fresh_database("postgres", tmp_path) as url:
        engines = [make_engine(url) for _ in range(4)]
        try:
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(upgrade, engines))  # the advisory lock serialises them
            assert current_revision(engines[0]) == head_revision()
        finally:
            for e in engines:
                e.dispose()


def test_competing_buyers_report_their_stages_without_changing_the_equilibrium() -> None:
    from datamarket.mechanisms.competing_buyers import analyse_market, section_iv_market

    seen: list[tuple[str, float]] = []
    market = section_iv_market(0.0)
    a = analyse_market(market, progress=lambda s, f: seen.append((s, f)))
    b = analyse_market(market)
    assert np.array_equal(np.asarray(a.gne.d), np.asarray(b.gne.d))  # exact: the same closed form
    assert [s for s, _ in seen] == ["variance weights", "leave-one-out fits", "equilibrium", "equilibrium"]
    assert [f for _, f in seen] == sorted(f for _, f in seen) and seen[-1][1] == 1.0  # exact: reported 1


def test_a_process_does_not_take_over_a_round_it_is_still_clearing(world: tuple[Database, int]) -> None:
    db, rid = world
    a = runner(db, "a")
    held = a._claim_one()
    assert held is not None
    a._held[rid] = held
    expire(db, rid)  # a heartbeat came late
    assert a._claim_one() is None
    a.heartbeat(force=True)  # renewed by the holder, same attempt
    r = row(db, rid)
    assert (r.claimed_by, r.attempts) == ("a", 1) and r.lease_expires_at is not None
    assert r.lease_expires_at > utcnow()
