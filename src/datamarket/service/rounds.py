"""Round lifecycle: ``pending -> running -> cleared | failed``, cleared in the background, exactly once,
by any of several service processes sharing the database.

1. The request that opens a round reads the market's unconsumed, non-excluded inputs and checks them
   with the adapter in a read-only session (no computation holds a write lock); a short write
   transaction then locks the market row, checks that the inputs did not change meanwhile and inserts
   the round ``pending`` with its seed commitment. The partial unique index ``uq_round_active``
   (migration 0002) lets at most one ``pending``/``running`` round per market exist: a concurrent
   open or retry fails in the database (409), not in a Python check.
2. Rounds are claimed, not assumed. Every process runs a claim loop (:class:`RoundRunner`) that,
   while it has a free worker, takes the oldest claimable round: ``pending``, or ``running`` with an
   expired lease. The candidate is selected ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (concurrent
   claimers skip each other's rows instead of queueing) and taken by ONE conditional ``UPDATE``
   (``WHERE id = ... AND attempts = <seen> AND <still claimable>``, row count checked) that sets the
   lease: ``claimed_by`` (this process's instance id), ``lease_expires_at`` and ``attempts + 1``. On
   SQLite the write transaction is ``BEGIN IMMEDIATE``, so the same update is the compare-and-set.
   A process claims only rounds of market kinds it has an adapter for, and never one it holds.
   A ``running`` round is taken over only once its lease has expired (its holder died or hangs); the
   computation starts again from scratch, which is safe because nothing is booked before step 4.
   After :attr:`Leases.max_attempts` expired leases the round is failed with the reason instead.
3. While it clears, the holder renews the lease by heartbeat: one ``UPDATE`` guarded by
   ``claimed_by`` and ``attempts`` writes the new expiry together with the progress the worker
   reported (stage and fraction, :mod:`datamarket.core.progress`). A process that lost its lease
   matches no row and writes nothing.
4. With the result, and the postings computed, ONE transaction locks the market row (as opening and
   retrying do: none of them can act on a snapshot that the booking makes stale), moves the round
   ``running -> cleared`` by compare-and-set on ``(status, attempts, claimed_by)`` (so a process
   whose lease was taken over cannot book, even when it comes back late), marks its inputs consumed
   with ``UPDATE ... WHERE consumed_round_id IS NULL AND excluded_at IS NULL`` and checks that every
   input was taken, appends the postings to the hash chain and stores the deliverables. Any failure
   rolls the whole transaction back: the ledger is unchanged and the round is marked ``failed``
   (again by compare-and-set on the lease, so a round that another transition moved is never
   overwritten).
5. A worker crash (:class:`BrokenProcessPool`) fails the round the same way. A killed service
   process fails nothing: its leases expire and another process (or the same one, restarted) takes
   its rounds over. A graceful stop (:meth:`RoundRunner.shutdown`, on SIGTERM) stops claiming, waits
   :attr:`Leases.grace_s` for the rounds it holds to finish, and releases the others (``running ->
   pending``, guarded by the lease) so that another process claims them at once. A failed round
   can be retried (``POST /rounds/{id}/retry``: compare-and-set ``failed -> pending``); a cleared
   one cannot (409).
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from datamarket.core.errors import DatamarketError, InvalidMarketError
from datamarket.core.progress import scaled
from datamarket.core.types import Outcome
from datamarket.ledger.chain import append_round
from datamarket.ledger.models import Deliverable, Market, Participant, Round, Submission, utcnow
from datamarket.ledger.money import outcome_postings
from datamarket.service.adapters import Input
from datamarket.service.uploads import UploadLimits, parse_dataset, unpack_dataset
from datamarket.service.worker import WorkerPool

log = logging.getLogger(__name__)


class Database:
    """Sessions plus the write discipline: one write transaction at a time on SQLite.

    On SQLite (``serialise_writes``) a write transaction starts with ``BEGIN IMMEDIATE``: it takes
    the database's write lock before its first read, so that what it reads stays true until it
    commits, also against other service processes on the same file (which wait for the lock, up to
    the busy timeout, instead of failing)."""

    def __init__(self, sessions: sessionmaker[Session], serialise_writes: bool, *, postgres: bool = False):
        self.sessions = sessions
        self._lock = threading.RLock() if serialise_writes else None
        self.postgres = postgres  # claims use FOR UPDATE SKIP LOCKED

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session in a transaction that commits on success and rolls back on any error."""
        if self._lock is not None:
            self._lock.acquire()
        try:
            with self.sessions() as s, s.begin():
                if self._lock is not None:
                    s.connection().exec_driver_sql("BEGIN IMMEDIATE")
                yield s
        finally:
            if self._lock is not None:
                self._lock.release()

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self.sessions() as s:
            yield s


def unconsumed_ids(s: Session, market_id: int) -> list[int]:
    """Ids of the market's submissions that no round consumed and nobody excluded, in order."""
    return list(
        s.execute(
            select(Submission.id)
            .where(
                Submission.market_id == market_id,
                Submission.consumed_round_id.is_(None),
                Submission.excluded_at.is_(None),
            )
            .order_by(Submission.id)
        ).scalars()
    )


def load_inputs(s: Session, ids: list[int], limits: UploadLimits, *, datasets: bool = True) -> list[Input]:
    """The adapter's view of submissions ``ids``: payloads and the datasets stored parsed at upload.

    Rows from before migration 0002 have no parsed form; their bytes are parsed here (once per call).
    With ``datasets=False`` only kinds and payloads are read.
    """
    cols: list[Any] = [Submission.id, Submission.kind, Submission.payload, Participant.name]
    cols.append(Submission.blob.is_not(None).label("is_upload"))
    if datasets:
        cols += [Submission.parsed, Submission.blob]
    rows = s.execute(
        select(*cols)
        .join(Participant, Submission.participant_id == Participant.id)
        .where(Submission.id.in_(ids))
        .order_by(Submission.id)
    ).all()
    out = []
    for row in rows:
        meta = dict(row.payload or {})
        ds = None
        if datasets and row.parsed is not None:
            ds = unpack_dataset(row.parsed)
        elif datasets and row.blob is not None:
            ds = parse_dataset(
                row.blob,
                str(meta.get("format", "csv")),
                label_column=str(meta.get("label_column", "label")),
                group_column=str(meta.get("group_column", "group")),
                limits=limits,
            )
        out.append(Input(row.name, row.kind, meta if row.is_upload else meta.get("data", {}), ds))
    return out


def seed_commitment(seed: int, salt: str) -> str:
    """The commitment published when a round opens: ``sha256(salt ":" seed)`` (hex).

    The seed is revealed with the salt in the receipts; anyone can recompute the hash.

    >>> seed_commitment(7, "ab")[:16]
    'b7e1dfec11fd191b'
    """
    return hashlib.sha256(f"{salt}:{seed}".encode()).hexdigest()


def rowcount(result: Any) -> int:
    """Rows an ``UPDATE`` matched (the compare-and-set check)."""
    return int(getattr(result, "rowcount", 0) or 0)


class LostRound(Exception):
    """The round was moved by another transition; this coordinator must leave it alone."""


@dataclass(frozen=True)
class Leases:
    """How rounds are claimed and held (module docstring, steps 2, 3 and 5).

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
    """

    lease_s: float = 30.0
    heartbeat_s: float | None = None
    poll_s: float = 1.0
    max_attempts: int = 3
    grace_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.lease_s > 0:
            raise InvalidMarketError("lease_s", "must be positive")
        if self.heartbeat_s is not None and not 0 < self.heartbeat_s < self.lease_s:
            raise InvalidMarketError("heartbeat_s", "must be positive and shorter than the lease")
        if not self.poll_s > 0:
            raise InvalidMarketError("poll_s", "must be positive")
        if self.max_attempts < 1:
            raise InvalidMarketError("max_attempts", "must be at least 1")
        if not self.grace_s >= 0:
            raise InvalidMarketError("grace_s", "must be non-negative")

    @property
    def heartbeat(self) -> float:
        return self.heartbeat_s if self.heartbeat_s is not None else self.lease_s / 3


def instance_id() -> str:
    """This process's id in ``claimed_by``: random, so that it names no host to anonymous callers of
    ``/health`` (identifies, grants nothing); the service logs which host and pid carry it."""
    return f"dm-{secrets.token_hex(6)}"


@dataclass
class Held:
    """A round this process holds: its attempt and the last progress the worker reported."""

    round_id: int
    attempt: int
    stage: str = "claimed"
    progress: float = 0.05
    written: float = 0.0  # monotonic time of the last heartbeat write
    dirty: bool = True


# the slice of the round's progress the worker's own reports cover (loading before, booking after)
WORK_LO, WORK_HI = 0.2, 0.95


class RoundRunner:
    """Claims, clears, heartbeats and books rounds in the background (module docstring, steps 2-5).

    :meth:`start` launches the claim loop and the heartbeat thread (the app's start-up does it);
    :meth:`submit` wakes the claim loop; :meth:`shutdown` stops gracefully.
    """

    def __init__(
        self,
        db: Database,
        pool: WorkerPool,
        refs: dict[str, str],
        limits: UploadLimits,
        leases: Leases | None = None,
        instance: str | None = None,
    ):
        self.db = db
        self.pool = pool
        self.refs = refs
        self.limits = limits
        self.leases = leases or Leases()
        self.instance = instance or instance_id()
        log.info("instance %s: host %s, pid %s", self.instance, socket.gethostname(), os.getpid())
        self.capacity = max(1, pool.max_workers)
        self._threads = ThreadPoolExecutor(self.capacity, thread_name_prefix="round")
        self._held: dict[int, Held] = {}
        self._held_lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()  # stop claiming
        self._stopped = threading.Event()  # stop heartbeats (after the release)
        self._loops: list[threading.Thread] = []

    # -- the two background loops ------------------------------------------------------------------
    def start(self) -> None:
        """Start the claim loop and the heartbeat thread (idempotent)."""
        if self._loops:
            return
        for target, name in ((self._claim_loop, "round-claims"), (self._heartbeat_loop, "round-leases")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._loops.append(t)

    def submit(self, round_id: int) -> None:
        """A round was opened or retried here: look for work now (any process may claim it)."""
        self._wake.set()

    def held(self) -> list[int]:
        with self._held_lock:
            return sorted(self._held)

    def _claim_loop(self) -> None:
        while not self._closing.is_set():
            self._wake.clear()
            try:
                self.claim_available()
            except Exception:  # the database is unreachable for a moment: try again at the next poll
                log.exception("claiming rounds failed")
            self._wake.wait(self.leases.poll_s)

    def claim_available(self) -> list[int]:
        """Claim rounds while a worker is free; the ids claimed (each handed to a coordinator)."""
        got: list[int] = []
        for _ in range(4 * self.capacity + 16):  # bounded: each pass claims, fails or finds nothing
            if self._closing.is_set():
                break
            with self._held_lock:
                if len(self._held) >= self.capacity:
                    break
            claim = self._claim_one()
            if claim is None:
                break
            if claim.attempt == 0:  # not claimed (failed for good, or another process won)
                continue
            with self._held_lock:
                self._held[claim.round_id] = claim
            got.append(claim.round_id)
            self._threads.submit(self._process, claim)
        return got

    def _claim_one(self) -> Held | None:
        """One claim transaction: the oldest claimable round, taken by one conditional ``UPDATE``.

        Returns the round held, a ``Held`` with ``attempt == 0`` when the candidate was failed (too
        many expired leases) or taken by another process first, or None when nothing is claimable."""
        now = utcnow()
        expires = now + timedelta(seconds=self.leases.lease_s)
        claimable = or_(
            Round.status == "pending",
            and_(
                Round.status == "running",
                or_(Round.lease_expires_at.is_(None), Round.lease_expires_at < now),
            ),
        )
        with self.db.write() as s:
            # only markets of a kind this process can clear (processes may be configured differently)
            known = select(Market.id).where(Market.kind.in_(sorted(self.refs)))
            mine = self.held()  # a lease of ours that a late heartbeat let lapse is renewed, not retaken
            q = (
                select(Round.id, Round.status, Round.attempts, Round.lease_expiries, Round.claimed_by)
                .where(claimable, Round.market_id.in_(known), Round.id.not_in(mine))
                .order_by(Round.id)
                .limit(1)
            )
            if self.db.postgres:
                q = q.with_for_update(skip_locked=True, of=Round)
            row = s.execute(q).first()
            if row is None:
                return None
            cas = update(Round).where(Round.id == row.id, Round.attempts == row.attempts, claimable)
            values: dict[str, Any] = {
                "status": "running",
                "attempts": row.attempts + 1,
                "claimed_by": self.instance,
                "lease_expires_at": expires,
                "progress": 0.05,
                "stage": "claimed",
                "error": None,
                "updated_at": now,
            }
            if row.status == "running":
                expiries = int(row.lease_expiries or 0) + 1
                if expiries >= self.leases.max_attempts:
                    msg = (
                        f"lease expired {expiries} time(s) (last holder {row.claimed_by}): the processes "
                        "clearing it stopped or hung; retry it when the cause is fixed"
                    )
                    s.execute(
                        cas.values(
                            status="failed",
                            stage="failed",
                            error=msg,
                            lease_expiries=expiries,
                            lease_expires_at=None,
                            updated_at=now,
                        )
                    )
                    log.warning("round %s failed: %s", row.id, msg)
                    return Held(row.id, 0)
                values.update(
                    lease_expiries=expiries, stage=f"taken over (lease of {row.claimed_by} expired)"
                )
            if rowcount(s.execute(cas.values(**values))) != 1:
                return Held(row.id, 0)
            log.info("claimed round %s (attempt %s)", row.id, row.attempts + 1)
            return Held(
                row.id, row.attempts + 1, stage=str(values["stage"]), written=time.monotonic(), dirty=False
            )

    def _heartbeat_loop(self) -> None:
        tick = min(self.leases.heartbeat, 1.0)
        while not self._stopped.wait(tick):
            try:
                self.heartbeat()
            except Exception:
                log.exception("lease heartbeat failed")

    def heartbeat(self, force: bool = False) -> None:
        """Renew the leases due (or with new progress): one guarded ``UPDATE`` per round."""
        now_m = time.monotonic()
        with self._held_lock:
            due = [
                (h.round_id, h.attempt, h.stage, h.progress)
                for h in self._held.values()
                if force or h.dirty or now_m - h.written >= self.leases.heartbeat
            ]
            for h in self._held.values():
                h.dirty = False
        for rid, attempt, stage, progress in due:
            now = utcnow()
            n = self._cas(
                rid,
                attempt,
                stage=stage[:100],
                progress=progress,
                lease_expires_at=now + timedelta(seconds=self.leases.lease_s),
            )
            with self._held_lock:
                mine = self._held.get(rid)
                if mine is not None:
                    mine.written = now_m
            if n != 1 and mine is not None:  # (a round booked meanwhile is no longer held)
                log.warning("round %s attempt %s: lease lost (taken over or moved)", rid, attempt)

    def _report(self, h: Held, stage: str, progress: float) -> None:
        with self._held_lock:
            h.stage, h.progress, h.dirty = stage, progress, True

    # -- shutdown --------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop claiming, wait up to ``grace_s`` for the rounds held to finish, release the others
        (``running -> pending``, guarded by the lease), then stop the workers."""
        self._closing.set()
        self._wake.set()
        if self._loops:  # a claim in flight completes first (its round is then held, or released)
            self._loops[0].join(timeout=60)
        deadline = time.monotonic() + self.leases.grace_s
        while self.held() and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._held_lock:
            left = list(self._held.values())
            self._held.clear()
        self._stopped.set()
        for h in left:
            try:
                with self.db.write() as s:
                    n = rowcount(
                        s.execute(
                            self._guard(update(Round), h.round_id, h.attempt).values(
                                status="pending",
                                claimed_by=None,
                                lease_expires_at=None,
                                progress=0.0,
                                stage="released (a service process stopped)",
                                updated_at=utcnow(),
                            )
                        )
                    )
                if n == 1:
                    log.info("released round %s", h.round_id)
            except Exception:  # its lease expires and another process takes it over
                log.exception("could not release round %s", h.round_id)
        self.pool.shutdown()
        self._threads.shutdown(wait=False, cancel_futures=True)
        for t in self._loops[1:]:
            t.join(timeout=5)

    # -- one round -------------------------------------------------------------------------------
    def _guard(self, stmt: Any, round_id: int, attempt: int) -> Any:
        """``stmt`` restricted to the round while this process holds it in attempt ``attempt``."""
        return stmt.where(
            Round.id == round_id,
            Round.status == "running",
            Round.attempts == attempt,
            Round.claimed_by == self.instance,
        )

    def _cas(self, round_id: int, attempt: int, **values: Any) -> int:
        """Update the round if this process still holds it in attempt ``attempt``; rows matched."""
        with self.db.write() as s:
            return rowcount(
                s.execute(self._guard(update(Round), round_id, attempt).values(updated_at=utcnow(), **values))
            )

    def _process(self, h: Held) -> None:
        round_id, attempt = h.round_id, h.attempt
        try:
            self._clear(h)
        except LostRound:
            log.warning("round %s attempt %s was moved by another transition", round_id, attempt)
        except Exception as exc:  # the worker's or the database's error: fail the round, keep going
            if self._stopped.is_set():  # shutting down: the round was released (or its lease expires)
                return
            log.warning("round %s failed: %s", round_id, exc)
            msg = str(exc) or type(exc).__name__
            if not isinstance(exc, DatamarketError):
                msg = f"{type(exc).__name__}: {msg}"
            try:
                self._cas(
                    round_id,
                    attempt,
                    status="failed",
                    stage="failed",
                    error=msg[:2000],
                    lease_expires_at=None,
                )
            except Exception:  # database gone: the lease expires and another process takes it over
                log.exception("could not mark round %s failed", round_id)
        finally:
            with self._held_lock:
                if self._held.get(round_id) is h:
                    del self._held[round_id]
            self._wake.set()

    def _unverified(
        self, round_id: int, attempt: int, result: dict[str, Any], certificate: dict[str, Any]
    ) -> None:
        """The certificate failed: record the round ``unverified`` with the outcome and the failing
        checks, book nothing and leave its inputs unconsumed (one compare-and-set)."""
        failed = sorted(k for k, c in certificate.get("checks", {}).items() if not c.get("passed"))
        why = ", ".join(failed) if failed else "the mechanism made no check"
        moved = self._cas(
            round_id,
            attempt,
            status="unverified",
            stage="unverified",
            progress=1.0,
            outcome=result["outcome"],
            certificate=certificate,
            error=f"certificate failed ({why}); nothing was booked"[:2000],
            lease_expires_at=None,
        )
        if moved != 1:
            raise LostRound(round_id)
        log.warning("round %s unverified: %s", round_id, why)

    def _clear(self, h: Held) -> None:
        round_id, attempt = h.round_id, h.attempt
        with self.db.read() as s:
            rnd = s.get(Round, round_id)
            market = s.get(Market, rnd.market_id) if rnd is not None else None
            assert rnd is not None and market is not None
            kind, params, scale, market_id = market.kind, dict(market.params), market.scale, market.id
            currency = market.currency
            ids, seed = list(rnd.input_ids), int(rnd.seed)
            inputs = load_inputs(s, ids, self.limits)
        if self._cas(round_id, attempt, progress=WORK_LO, stage=f"clearing ({self.pool.kind} worker)") != 1:
            raise LostRound(round_id)
        self._report(h, f"clearing ({self.pool.kind} worker)", WORK_LO)
        work = scaled(lambda stage, f: self._report(h, stage, f), WORK_LO, WORK_HI)
        result = self.pool.run(self.refs[kind], params, inputs, seed, progress=work)
        outcome = Outcome.from_dict(result["outcome"])
        certificate = result.get("certificate") or {"passed": False, "checks": {}}
        if not certificate.get("passed"):
            self._unverified(round_id, attempt, result, certificate)
            return
        postings = outcome_postings(outcome, scale)
        with self.db.write() as s:  # step 4: one short transaction, nothing computed inside
            # the market row first: opening and retrying rounds take it too, so each of them sees the
            # inputs either all unconsumed with this round active, or consumed with it cleared
            s.execute(select(Market.id).where(Market.id == market_id).with_for_update())
            moved = s.execute(
                self._guard(update(Round), round_id, attempt).values(
                    status="cleared",
                    progress=1.0,
                    stage="cleared",
                    outcome=result["outcome"],
                    certificate=certificate,
                    lease_expires_at=None,
                    updated_at=utcnow(),
                )
            )
            if rowcount(moved) != 1:
                raise LostRound(round_id)
            wanted = {*outcome.participants, *result["deliverables"]}
            names = {
                n: i
                for n, i in s.execute(
                    select(Participant.name, Participant.id).where(Participant.name.in_(wanted))
                )
            }
            unknown = [p for p in outcome.participants if p not in names]
            if unknown:
                raise DatamarketError(f"outcome: unknown participants {unknown}")
            taken = s.execute(
                update(Submission)
                .where(
                    Submission.id.in_(ids),
                    Submission.consumed_round_id.is_(None),
                    Submission.excluded_at.is_(None),
                )
                .values(consumed_round_id=round_id)
            )
            if rowcount(taken) != len(ids):
                raise DatamarketError(
                    f"inputs: {len(ids) - rowcount(taken)} of the round's {len(ids)} submissions were "
                    "consumed by another round or excluded meanwhile; nothing was booked"
                )
            append_round(s, round_id, postings, names, currency=currency)
            for name, payload in result["deliverables"].items():
                if name in names:
                    s.add(Deliverable(round_id=round_id, participant_id=names[name], payload=payload))
