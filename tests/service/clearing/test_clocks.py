"""Lease times come from the database's clock: a service process whose own clock
is an hour ahead neither blocks a round it abandons for an hour nor takes over a live lease early.

The skewed process is a :class:`RoundRunner` in this test process with every clock Python offers
moved by an hour (``time.time``, ``datetime``-based ``utcnow`` and any ``utcnow`` the clearing
modules hold): if lease code still read a local clock, the expiry it writes would be an hour late.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from datamarket.ledger import models
from datamarket.ledger.models import LedgerEntry
from datamarket.service.clearing import leases
from datamarket.service.clearing import runner as runner_module
from datamarket.service.clearing.leases import Leases, db_clock
from datamarket.service.store.db import Database
from tests.service.clearing.test_leases import row, runner, world  # noqa: F401  (fixture)
from tests.service_support import db_url  # noqa: F401  (fixture)

HOUR = 3600.0
SHORT = Leases(lease_s=1.0, max_attempts=3, grace_s=0.0)


def skew(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Move this process's clocks by ``seconds`` (the monotonic clock paces heartbeats only)."""
    real_time, real_utcnow = time.time, models.utcnow
    monkeypatch.setattr(time, "time", lambda: real_time() + seconds)
    ahead = lambda: real_utcnow() + timedelta(seconds=seconds)  # noqa: E731
    monkeypatch.setattr(models, "utcnow", ahead)
    for module in (leases, runner_module):  # the names the lease code once imported
        monkeypatch.setattr(module, "utcnow", ahead, raising=False)


def db_now(db: Database) -> datetime:
    with db.read() as s:
        now: datetime = s.execute(select(db_clock(db))).scalar_one()
        return now


def test_a_process_an_hour_ahead_that_dies_holding_a_round_blocks_it_only_for_the_lease(
    world: tuple[Database, int],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db, rid = world
    skew(monkeypatch, HOUR)
    ahead = runner(db, "ahead", leases=SHORT)
    held = ahead._claim_one()
    assert held is not None and held.attempt == 1
    ahead._held[rid] = held
    ahead.heartbeat(force=True)  # its last renewal before it dies (kill -9: nothing else happens)
    expiry = row(db, rid).lease_expires_at
    assert expiry is not None and abs((expiry - db_now(db)).total_seconds()) <= SHORT.lease_s + 1.0
    monkeypatch.undo()
    other = runner(db, "other", leases=SHORT)
    assert other._claim_one() is None  # the lease is live: not taken over early
    # taken over once lease_s has passed on the database's clock; the bound is generous for a loaded
    # machine (SQLite's clock has millisecond resolution) and an hour below what a local clock gave
    start = time.monotonic()
    while (taken := other._claim_one()) is None:
        assert time.monotonic() - start < 30.0, "a dead holder's lease outlived lease_s"
        time.sleep(0.05)
    assert taken.attempt == 2
    other._held[rid] = taken
    other._process(taken)
    r = row(db, rid)
    assert (r.status, r.claimed_by, r.attempts) == ("cleared", "other", 2)
    with db.read() as s:
        assert {e.round_id for e in s.execute(select(LedgerEntry)).scalars()} == {rid}


def test_a_process_an_hour_ahead_does_not_take_over_a_live_lease(
    world: tuple[Database, int],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db, rid = world
    holder = runner(db, "holder")  # lease_s = 30
    assert holder._claim_one() is not None
    skew(monkeypatch, HOUR)
    assert runner(db, "ahead")._claim_one() is None  # its clock says the lease expired an hour ago
    r = row(db, rid)
    assert (r.status, r.claimed_by, r.attempts, r.lease_expiries) == ("running", "holder", 1, 0)


def test_lease_writes_read_no_local_clock(
    world: tuple[Database, int],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Claim and heartbeat with every Python clock an hour behind: the expiries written are
    ``lease_s`` from the database's now."""
    db, rid = world
    skew(monkeypatch, -HOUR)
    a = runner(db, "a")
    held = a._claim_one()
    assert held is not None
    for step in ("claim", "heartbeat"):
        if step == "heartbeat":
            a._held[rid] = held
            a.heartbeat(force=True)
        expiry = row(db, rid).lease_expires_at
        assert expiry is not None
        ahead_by = (expiry - db_now(db)).total_seconds()
        assert 0.0 < ahead_by <= 30.0 + 1.0, (step, ahead_by)
