"""Leases on rounds: the settings (:class:`Leases`), this process's instance id, and the
compare-and-set statements that claim, renew, release and guard a round
(:mod:`datamarket.service.clearing.runner`, steps 2, 3 and 5).

Every transition of a ``running`` round is one ``UPDATE`` guarded by the lease (:func:`guard`:
``status = 'running' AND attempts = <attempt> AND claimed_by = <instance>``), its row count checked:
a process whose lease was taken over matches no row and writes nothing.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update

from datamarket.core.errors import LeaseSettingsError
from datamarket.ledger.models import Market, Round, utcnow
from datamarket.service.store.db import Database, rowcount

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


class LostRound(Exception):
    """The round was moved by another transition; this coordinator must leave it alone."""


@dataclass
class Held:
    """A round this process holds: its attempt and the last progress the worker reported."""

    round_id: int
    attempt: int
    stage: str = "claimed"
    progress: float = 0.05
    written: float = 0.0  # monotonic time of the last heartbeat write
    dirty: bool = True


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
        stmt = guard(update(Round), round_id, attempt, instance).values(updated_at=utcnow(), **values)
        return rowcount(s.execute(stmt))


def release(db: Database, h: Held, instance: str) -> bool:
    """``running -> pending`` for a round ``instance`` holds (a graceful stop); whether it moved."""
    with db.write() as s:
        stmt = guard(update(Round), h.round_id, h.attempt, instance).values(
            status="pending",
            claimed_by=None,
            lease_expires_at=None,
            progress=0.0,
            stage="released (a service process stopped)",
            updated_at=utcnow(),
        )
        return rowcount(s.execute(stmt)) == 1


def claim_one(
    db: Database, kinds: Sequence[str], leases: Leases, instance: str, mine: Sequence[int]
) -> Held | None:
    """One claim transaction: the oldest claimable round of a market of ``kinds`` (not one of ``mine``,
    the rounds this process holds), taken by one conditional ``UPDATE``.

    Returns the round held, a ``Held`` with ``attempt == 0`` when the candidate was failed (too many
    expired leases) or taken by another process first, or None when nothing is claimable."""
    now = utcnow()
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
            return None
        cas_ = update(Round).where(Round.id == row.id, Round.attempts == row.attempts, claimable)
        values: dict[str, Any] = {
            "status": "running",
            "attempts": row.attempts + 1,
            "claimed_by": instance,
            "lease_expires_at": now + timedelta(seconds=leases.lease_s),
            "progress": 0.05,
            "stage": "claimed",
            "error": None,
            "updated_at": now,
        }
        if row.status == "running":
            expiries = int(row.lease_expiries or 0) + 1
            if expiries >= leases.max_attempts:
                _fail_expired(s, cas_, row, expiries, now)
                return Held(row.id, 0)
            values.update(lease_expiries=expiries, stage=f"taken over (lease of {row.claimed_by} expired)")
        if rowcount(s.execute(cas_.values(**values))) != 1:
            return Held(row.id, 0)
        log.info("claimed round %s (attempt %s)", row.id, row.attempts + 1)
        return Held(
            row.id, row.attempts + 1, stage=str(values["stage"]), written=time.monotonic(), dirty=False
        )


def _fail_expired(s: Any, cas_: Any, row: Any, expiries: int, now: Any) -> None:
    msg = (
        f"lease expired {expiries} time(s) (last holder {row.claimed_by}): the processes "
        "clearing it stopped or hung; retry it when the cause is fixed"
    )
    s.execute(
        cas_.values(
            status="failed",
            stage="failed",
            error=msg,
            lease_expiries=expiries,
            lease_expires_at=None,
            updated_at=now,
        )
    )
    log.warning("round %s failed: %s", row.id, msg)
