"""Leases on rounds: the settings (:class:`Leases`), this process's instance id, the database's
clock (:func:`db_clock`), the compare-and-set statements that claim, renew, release and guard a round
(:mod:`datamarket.service.clearing.runner`, steps 2, 3 and 5), and the operator's actions on a stuck
round (:func:`operator_release`, :func:`operator_fail`).

Every transition of a ``running`` round is one ``UPDATE`` guarded by the lease (:func:`guard`:
``status = 'running' AND attempts = <attempt> AND claimed_by = <instance>``), its row count checked:
a process whose lease was taken over, or whose round the operator released or failed, matches no
row and writes nothing (no heartbeat, no booking).

Clocks. Lease times are read from one clock, the database's, inside the ``UPDATE`` that claims or
renews a lease and in the claim's comparison (:func:`db_clock`); no process's own clock
(``time.time``, ``datetime.now``) enters a lease, so a process whose clock is ahead or behind cannot
write an expiry that blocks a round beyond ``lease_s``, nor take over a live lease early.

* PostgreSQL: the server's ``statement_timestamp()``: one clock for every service host.
* SQLite has no server: every process opens the same file on one host, and ``strftime(..., 'now')``
  is evaluated by SQLite in the ``UPDATE`` itself from that host's system clock (UTC, millisecond
  resolution), not from the Python process. Every process thus compares against the same clock, but
  it is a wall clock, not a monotonic one: if the host's clock is stepped by ``d`` (an NTP step, a
  manual change), every lease moves by ``d`` at once. Stepped forward, live leases expire early and
  another process takes the round over (wasted work, never a double booking: the old holder's
  guarded writes match no row); stepped back, an abandoned round waits up to ``lease_s + d``, and
  the operator can release it at once (``POST /rounds/{id}/release``).

``Held.written`` uses this process's monotonic clock, only to pace its own heartbeats.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Interval, and_, func, literal, or_, select, type_coerce, update

from datamarket.core.errors import LeaseSettingsError
from datamarket.ledger.models import Market, Round, UTCDateTime
from datamarket.service.observability import metrics
from datamarket.service.store.db import Database, rowcount
from datamarket.service.store.errors import Conflict
from datamarket.service.store.rows import get_or_404

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Leases:
    """How rounds are claimed and held (:mod:`datamarket.service.clearing.runner`, steps 2, 3 and 5).

    Attributes
    ----------
    lease_s : how long a claim is valid without a heartbeat; another process takes the round over
        once it has passed. Clocks of the hosts sharing a database must agree to well within it.
    heartbeat_s : how often the holder renews its leases (default a third of ``lease_s``); progress
        reported by the worker is written at most every ``min(heartbeat_s, 1)`` seconds.
    poll_s : how often the claim loop looks for claimable rounds (it also wakes when this process
        opens or retries a round, or a worker frees up).
    max_attempts : a round whose lease expired this many times is failed instead of taken over.
    grace_s : on shutdown, how long to wait for the rounds held to finish before releasing them.

    Invalid timings raise :class:`~datamarket.core.errors.LeaseSettingsError` naming the field.
    """

    lease_s: float = 30.0
    heartbeat_s: float | None = None
    poll_s: float = 1.0
    max_attempts: int = 3
    grace_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.lease_s > 0:
            raise LeaseSettingsError("lease_s", "must be positive")
        if self.heartbeat_s is not None and not 0 < self.heartbeat_s < self.lease_s:
            raise LeaseSettingsError("heartbeat_s", "must be positive and shorter than the lease")
        if not self.poll_s > 0:
            raise LeaseSettingsError("poll_s", "must be positive")
        if self.max_attempts < 1:
            raise LeaseSettingsError("max_attempts", "must be at least 1")
        if not self.grace_s >= 0:
            raise LeaseSettingsError("grace_s", "must be non-negative")

    @property
    def heartbeat(self) -> float:
        """Seconds between renewals."""
        return self.heartbeat_s if self.heartbeat_s is not None else self.lease_s / 3


def instance_id() -> str:
    """This process's id in ``claimed_by``: random, so that it names no host to anonymous callers of
    ``/health`` (identifies, grants nothing); the service logs which host and pid carry it."""
    return f"dm-{secrets.token_hex(6)}"


SQLITE_NOW = "%Y-%m-%d %H:%M:%f000"  # how SQLAlchemy stores a DateTime on SQLite (microseconds)


def db_clock(db: Database, seconds: float = 0.0) -> ColumnElement[datetime]:
    """The database's current time plus ``seconds``, as an SQL expression evaluated by the database
    in the statement that uses it (module docstring, "Clocks")."""
    if db.postgres:
        expr: Any = func.statement_timestamp()
        if seconds:
            expr = expr + literal(timedelta(seconds=seconds), Interval())
        return type_coerce(expr, UTCDateTime())
    return type_coerce(func.strftime(SQLITE_NOW, "now", f"{seconds:+.3f} seconds"), UTCDateTime())


class LostRound(Exception):
    """The round was moved by another transition; this coordinator must leave it alone."""


@dataclass
class Held:
    """A round this process holds: its attempt, the last progress the worker reported, its market's
    kind (once the coordinator read it) and when it was claimed (monotonic)."""

    round_id: int
    attempt: int
    stage: str = "claimed"
    progress: float = 0.05
    written: float = 0.0  # monotonic time of the last heartbeat write
    dirty: bool = True
    kind: str = ""
    claimed: float = field(default_factory=time.monotonic)
    follows: bool = False  # the market opens its rounds by itself: look for the next once booked


def guard(stmt: Any, round_id: int, attempt: int, instance: str) -> Any:
    """``stmt`` restricted to the round while ``instance`` holds it in attempt ``attempt``."""
    return stmt.where(
        Round.id == round_id,
        Round.status == "running",
        Round.attempts == attempt,
        Round.claimed_by == instance,
    )


def cas(db: Database, round_id: int, attempt: int, instance: str, **values: Any) -> int:
    """Update the round if ``instance`` still holds it in attempt ``attempt``; rows matched."""
    with db.write() as s:
        stmt = guard(update(Round), round_id, attempt, instance).values(updated_at=db_clock(db), **values)
        return rowcount(s.execute(stmt))


def renew(db: Database, h: Held, instance: str, leases: Leases, **values: Any) -> int:
    """Extend the lease ``instance`` holds on ``h`` to ``lease_s`` from now on the database's clock,
    writing ``values`` (progress) with it; rows matched (0: the lease was lost)."""
    return cas(db, h.round_id, h.attempt, instance, lease_expires_at=db_clock(db, leases.lease_s), **values)


def release(db: Database, h: Held, instance: str) -> bool:
    """``running -> pending`` for a round ``instance`` holds (a graceful stop); whether it moved."""
    with db.write() as s:
        stmt = guard(update(Round), h.round_id, h.attempt, instance).values(
            status="pending",
            claimed_by=None,
            lease_expires_at=None,
            progress=0.0,
            stage="released (a service process stopped)",
            updated_at=db_clock(db),
        )
        return rowcount(s.execute(stmt)) == 1


def claim_one(
    db: Database, kinds: Sequence[str], leases: Leases, instance: str, mine: Sequence[int]
) -> Held | None:
    """One claim transaction: the oldest claimable round of a market of ``kinds`` (not one of ``mine``,
    the rounds this process holds), taken by one conditional ``UPDATE``.

    Returns the round held, a ``Held`` with ``attempt == 0`` when the candidate was failed (too many
    expired leases) or taken by another process first, or None when nothing is claimable. An expired
    lease found, a takeover and a round failed for its expiries are counted once committed
    (:mod:`datamarket.service.observability.metrics`)."""
    held, expired = _claim(db, kinds, leases, instance, mine)
    if expired is not None:
        taken_over, failed_kind = expired
        metrics.lease_expired(taken_over)
        if failed_kind is not None:
            metrics.round_finished(failed_kind, "failed", None)
    return held


def _claim(
    db: Database, kinds: Sequence[str], leases: Leases, instance: str, mine: Sequence[int]
) -> tuple[Held | None, tuple[bool, str | None] | None]:
    """:func:`claim_one`'s transaction: the round held (as there) and, when the candidate's lease had
    expired, ``(taken over, kind of its market if it was failed instead)``."""
    now = db_clock(db)
    claimable = or_(
        Round.status == "pending",
        and_(Round.status == "running", or_(Round.lease_expires_at.is_(None), Round.lease_expires_at < now)),
    )
    with db.write() as s:
        # only markets of a kind this process can clear (processes may be configured differently)
        known = select(Market.id).where(Market.kind.in_(sorted(kinds)))
        q = (
            select(Round.id, Round.status, Round.attempts, Round.lease_expiries, Round.claimed_by)
            .where(claimable, Round.market_id.in_(known), Round.id.not_in(list(mine)))
            .order_by(Round.id)
            .limit(1)
        )
        if db.postgres:
            q = q.with_for_update(skip_locked=True, of=Round)
        row = s.execute(q).first()
        if row is None:
            return None, None
        cas_ = update(Round).where(Round.id == row.id, Round.attempts == row.attempts, claimable)
        values: dict[str, Any] = {
            "status": "running",
            "attempts": row.attempts + 1,
            "claimed_by": instance,
            "lease_expires_at": db_clock(db, leases.lease_s),
            "progress": 0.05,
            "stage": "claimed",
            "error": None,
            "updated_at": now,
        }
        if row.status == "running":
            expiries = int(row.lease_expiries or 0) + 1
            if expiries >= leases.max_attempts:
                kind = _fail_expired(s, cas_, row, expiries, now)
                return Held(row.id, 0), (None if kind is None else (False, kind))
            values.update(lease_expiries=expiries, stage=f"taken over (lease of {row.claimed_by} expired)")
        if rowcount(s.execute(cas_.values(**values))) != 1:
            return Held(row.id, 0), None
        log.info("claimed round %s (attempt %s)", row.id, row.attempts + 1, extra={"round_id": row.id})
        held = Held(
            row.id, row.attempts + 1, stage=str(values["stage"]), written=time.monotonic(), dirty=False
        )
        return held, ((True, None) if row.status == "running" else None)


def _fail_expired(s: Any, cas_: Any, row: Any, expiries: int, now: Any) -> str | None:
    """Fail the round ``row`` for its expired leases; the kind of its market when it moved."""
    msg = (
        f"lease expired {expiries} time(s) (last holder {row.claimed_by}): the processes "
        "clearing it stopped or hung; retry it when the cause is fixed"
    )
    moved = s.execute(
        cas_.values(
            status="failed",
            stage="failed",
            error=msg,
            lease_expiries=expiries,
            lease_expires_at=None,
            updated_at=now,
        )
    )
    if rowcount(moved) != 1:
        return None
    log.warning("round %s failed: %s", row.id, msg, extra={"round_id": row.id})
    return str(
        s.scalar(select(Market.kind).join(Round, Round.market_id == Market.id).where(Round.id == row.id))
    )


# -- the operator's actions on a stuck round -----------------------------------------------------------
def _locked_round(db: Database, s: Any, rid: int, attempt: int | None, action: str) -> Round:
    """The round, its row locked (PostgreSQL; SQLite's write transaction holds the database), after
    the operator's compare-and-set: :class:`Conflict` when ``attempt`` is given and the round is in
    another attempt (it was claimed again since the operator looked)."""
    q = select(Round).where(Round.id == rid)
    if db.postgres:
        q = q.with_for_update()
    r = s.execute(q).scalar_one_or_none()
    if r is None:
        get_or_404(s, Round, rid, "round")  # raises NotFound
    assert r is not None
    if attempt is not None and r.attempts != attempt:
        raise Conflict(
            f"round {rid} is in attempt {r.attempts}, not {attempt}: look again before you {action}"
        )
    return r


def _moved(db: Database, s: Any, r: Round, **values: Any) -> Round:
    """One compare-and-set on the lease as the operator saw it; the round as it is now."""
    if r.status == "running":
        stmt = guard(update(Round), r.id, r.attempts, str(r.claimed_by))
    else:  # pending: nobody holds it
        stmt = update(Round).where(Round.id == r.id, Round.status == "pending", Round.attempts == r.attempts)
    if rowcount(s.execute(stmt.values(updated_at=db_clock(db), **values))) != 1:
        raise Conflict(f"round {r.id} moved meanwhile; look again")
    s.refresh(r)
    return r


def operator_release(db: Database, rid: int, attempt: int | None = None) -> Round:
    """``running -> pending`` for a round whose holder hangs or died: its lease ends now and any
    process claims it again (a new attempt, which does not count as an expired lease). The old
    holder, if it still runs, matches no row from then on: it renews nothing and books nothing.

    Idempotent: a ``pending`` round is returned as it is. :class:`Conflict` for a round that is no
    longer in progress, or that is not in ``attempt`` (when given: the attempt the operator saw)."""
    with db.write() as s:
        r = _locked_round(db, s, rid, attempt, "release it")
        if r.status == "pending":
            return r
        if r.status != "running":
            raise Conflict(f"round {rid} is {r.status}; only a running round can be released")
        log.warning("round %s: the operator released attempt %s of %s", rid, r.attempts, r.claimed_by)
        stage = f"released by the operator (attempt {r.attempts} of {r.claimed_by})"
        return _moved(
            db,
            s,
            r,
            status="pending",
            claimed_by=None,
            lease_expires_at=None,
            progress=0.0,
            stage=stage[:100],
        )


def operator_fail(db: Database, rid: int, attempt: int | None = None, reason: str | None = None) -> Round:
    """``pending``/``running`` -> ``failed`` by the operator: nothing is booked and the round's inputs
    stay unconsumed (they are consumed only by the booking, which the old holder can no longer do); it
    can be retried (``failed -> pending``) or another round opened.

    Idempotent: a ``failed`` round is returned as it is. :class:`Conflict` for a cleared or
    unverified round, or one that is not in ``attempt`` (when given)."""
    with db.write() as s:
        r = _locked_round(db, s, rid, attempt, "fail it")
        if r.status == "failed":
            return r
        if r.status not in ("pending", "running"):
            raise Conflict(f"round {rid} is {r.status}; only a pending or running round can be failed")
        log.warning("round %s: the operator failed attempt %s (%s)", rid, r.attempts, reason or "no reason")
        error = "failed by the operator" + (f": {reason}" if reason else "") + "; nothing was booked"
        return _moved(db, s, r, status="failed", stage="failed", error=error[:2000], lease_expires_at=None)
