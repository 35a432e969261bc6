"""Round lifecycle: ``pending -> running -> cleared | failed``, cleared in the background, exactly once,
by any of several service processes sharing the database.

1. The request that opens a round (:func:`datamarket.service.store.rounds.open_round`) reads the
   market's unconsumed, non-excluded inputs and checks them with the adapter in a read-only session
   (no computation holds a write lock); a short write transaction then locks the market row, checks
   that the inputs did not change meanwhile and inserts the round ``pending`` with its seed
   commitment. The partial unique index ``uq_round_active`` (migration 0002) lets at most one
   ``pending``/``running`` round per market exist: a concurrent open or retry fails in the database
   (409), not in a Python check.
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
   After :attr:`~datamarket.service.clearing.leases.Leases.max_attempts` expired leases the round is
   failed with the reason instead (:func:`~datamarket.service.clearing.leases.claim_one`).
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
   overwritten). A round whose certificate fails is recorded ``unverified`` and books nothing.
5. A worker crash (:class:`BrokenProcessPool`) fails the round the same way. A killed service
   process fails nothing: its leases expire and another process (or the same one, restarted) takes
   its rounds over. A graceful stop (:meth:`RoundRunner.shutdown`, on SIGTERM) stops claiming, waits
   :attr:`~datamarket.service.clearing.leases.Leases.grace_s` for the rounds it holds to finish, and
   releases the others (``running -> pending``, guarded by the lease) so that another process
   claims them at once. A failed round can be retried (``POST /rounds/{id}/retry``: compare-and-set
   ``failed -> pending``); a cleared one cannot (409).
6. The operator can end a stuck round at once instead of waiting for its lease: ``POST
   /rounds/{id}/release`` (``running -> pending``: any process claims it again) or ``POST
   /rounds/{id}/fail`` (``pending``/``running -> failed``: nothing booked, inputs unconsumed), each
   one compare-and-set on the lease (and on the attempt the operator saw, when given), idempotent
   (:func:`~datamarket.service.clearing.leases.operator_release`,
   :func:`~datamarket.service.clearing.leases.operator_fail`). A holder that wakes up afterwards
   matches no row: it books nothing.

Lease times come from the database's clock, never a process's own
(:mod:`datamarket.service.clearing.leases`, "Clocks").

Observability: a round opened, retried or released through this process's API is cleared with the
id of that request in every log line (the runner's thread and the worker, thread or process;
:mod:`datamarket.service.observability.logs`), and the end of every attempt this process runs is
counted by kind and status with its duration, the ledger entries it booked once committed
(:mod:`datamarket.service.observability.metrics`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import select, update

from datamarket.core.errors import DatamarketError
from datamarket.core.progress import scaled
from datamarket.core.types import Outcome
from datamarket.ledger.chain import append_round
from datamarket.ledger.models import Deliverable, Market, Participant, Round, Submission
from datamarket.ledger.money import Posting, outcome_postings
from datamarket.service.adapters import Adapter
from datamarket.service.auth import Principal
from datamarket.service.clearing.leases import (
    Held,
    Leases,
    LostRound,
    cas,
    claim_one,
    db_clock,
    guard,
    instance_id,
    operator_fail,
    operator_release,
    release,
    renew,
)
from datamarket.service.clearing.worker import WorkerPool
from datamarket.service.observability import logs, metrics
from datamarket.service.store import rounds
from datamarket.service.store.db import Database, rowcount
from datamarket.service.store.errors import Conflict, NotReady
from datamarket.service.store.submissions import load_inputs
from datamarket.service.uploads import UploadLimits

log = logging.getLogger(__name__)

# the slice of the round's progress the worker's own reports cover (loading before, booking after)
WORK_LO, WORK_HI = 0.2, 0.95
MAX_ORIGINS = 1024  # request ids kept for rounds submitted here and not yet claimed here


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
        self._origins: OrderedDict[int, str] = OrderedDict()  # round -> id of the request that submitted it

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
        """A round was opened or retried here: look for work now (any process may claim it); the
        request id of the caller's context goes with the round, if this process claims it."""
        origin = logs.REQUEST_ID.get()
        if origin is not None:
            with self._held_lock:
                self._origins[round_id] = origin
                while len(self._origins) > MAX_ORIGINS:
                    self._origins.popitem(last=False)
        self._wake.set()

    def _origin(self, round_id: int) -> str | None:
        """The id of the request that last submitted ``round_id`` here (None: another process's)."""
        with self._held_lock:
            return self._origins.pop(round_id, None)

    def held(self) -> list[int]:
        """Ids of the rounds this process holds."""
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
        """One claim (:func:`~datamarket.service.clearing.leases.claim_one`); a lease of ours that a
        late heartbeat let lapse is renewed, not retaken."""
        return claim_one(self.db, sorted(self.refs), self.leases, self.instance, self.held())

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
            held = Held(rid, attempt)
            n = renew(self.db, held, self.instance, self.leases, stage=stage[:100], progress=progress)
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
                if release(self.db, h, self.instance):
                    log.info("released round %s", h.round_id)
            except Exception:  # its lease expires and another process takes it over
                log.exception("could not release round %s", h.round_id)
        self.pool.shutdown()
        self._threads.shutdown(wait=False, cancel_futures=True)
        for t in self._loops[1:]:
            t.join(timeout=5)

    # -- one round -------------------------------------------------------------------------------
    def _cas(self, round_id: int, attempt: int, **values: Any) -> int:
        """Update the round if this process still holds it in attempt ``attempt``; rows matched."""
        return cas(self.db, round_id, attempt, self.instance, **values)

    def _process(self, h: Held) -> None:
        round_id, attempt = h.round_id, h.attempt
        status: str | None = None
        with logs.bound(self._origin(round_id), round_id):
            log.info("round %s: attempt %s starts", round_id, attempt)
            try:
                status = self._clear(h)
            except LostRound:
                log.warning("round %s attempt %s was moved by another transition", round_id, attempt)
            except Exception as exc:  # the worker's or the database's error: fail the round, keep going
                if not self._stopped.is_set():  # shutting down: released (or its lease expires)
                    status = self._fail(round_id, attempt, exc)
            finally:
                with self._held_lock:
                    if self._held.get(round_id) is h:
                        del self._held[round_id]
                self._wake.set()
            if status is not None:
                metrics.round_finished(h.kind or "unknown", status, time.monotonic() - h.claimed)
            if status == "cleared" and h.follows:
                self.follow(h.kind, round_id)

    def follow(self, kind: str, round_id: int) -> None:
        """After a round of a market that answers submissions at once: open the next round if answered
        submissions arrived meanwhile (:func:`open_waiting`)."""
        from datamarket.service.adapters import load_adapter

        try:
            with self.db.read() as s:
                rnd = s.get(Round, round_id)
                mid = None if rnd is None else rnd.market_id
            if mid is not None:
                open_waiting(self, {kind: load_adapter(self.refs[kind])}, mid)
        except Exception:  # the round is booked; the next answer (or the operator) opens the next one
            log.exception("round %s: could not open the market's next round", round_id)

    def _fail(self, round_id: int, attempt: int, exc: Exception) -> str | None:
        """Mark the round failed with ``exc``'s message; ``"failed"`` when it moved, else None."""
        log.warning("round %s failed: %s", round_id, exc)
        msg = str(exc) or type(exc).__name__
        if not isinstance(exc, DatamarketError):
            msg = f"{type(exc).__name__}: {msg}"
        try:
            moved = self._cas(
                round_id, attempt, status="failed", stage="failed", error=msg[:2000], lease_expires_at=None
            )
        except Exception:  # database gone: the lease expires and another process takes it over
            log.exception("could not mark round %s failed", round_id)
            return None
        return "failed" if moved == 1 else None

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

    def _clear(self, h: Held) -> str:
        """Steps 3 and 4 for the round held: ``"cleared"`` or ``"unverified"`` (else it raises)."""
        round_id, attempt = h.round_id, h.attempt
        with self.db.read() as s:
            rnd = s.get(Round, round_id)
            market = s.get(Market, rnd.market_id) if rnd is not None else None
            assert rnd is not None and market is not None
            kind, params, scale, market_id = market.kind, dict(market.params), market.scale, market.id
            h.kind = kind
            currency = market.currency
            ids, seed = list(rnd.input_ids), int(rnd.seed)
            inputs = load_inputs(s, ids, self.limits)
        stage = f"clearing ({self.pool.kind} worker)"
        if self._cas(round_id, attempt, progress=WORK_LO, stage=stage) != 1:
            raise LostRound(round_id)
        self._report(h, stage, WORK_LO)
        work = scaled(lambda st, f: self._report(h, st, f), WORK_LO, WORK_HI)
        result = self.pool.run(self.refs[kind], params, inputs, seed, progress=work)
        outcome = Outcome.from_dict(result["outcome"])
        certificate = result.get("certificate") or {"passed": False, "checks": {}}
        if not certificate.get("passed"):
            self._unverified(round_id, attempt, result, certificate)
            return "unverified"
        postings = outcome_postings(outcome, scale)
        standing = set(result.get("standing") or ())
        consumed = [i for i, x in zip(ids, inputs, strict=True) if x.kind not in standing]
        self._book(h, (market_id, currency), consumed, outcome, result, certificate, postings)
        h.follows = bool(result.get("answers"))
        return "cleared"

    def _book(
        self,
        h: Held,
        market: tuple[int, str],
        ids: list[int],
        outcome: Outcome,
        result: dict[str, Any],
        certificate: dict[str, Any],
        postings: list[Posting],
    ) -> None:
        """Step 4: one short transaction, nothing computed inside (``market``: id and currency)."""
        round_id, (market_id, currency) = h.round_id, market
        with self.db.write() as s:
            # the market row first: opening and retrying rounds take it too, so each of them sees the
            # inputs either all unconsumed with this round active, or consumed with it cleared
            s.execute(select(Market.id).where(Market.id == market_id).with_for_update())
            moved = s.execute(
                guard(update(Round), round_id, h.attempt, self.instance).values(
                    status="cleared",
                    progress=1.0,
                    stage="cleared",
                    outcome=result["outcome"],
                    certificate=certificate,
                    lease_expires_at=None,
                    updated_at=db_clock(self.db),
                )
            )
            if rowcount(moved) != 1:
                raise LostRound(round_id)
            delivered, charges = result["deliverables"], result.get("charges") or {}
            names = _participant_ids(s, {*outcome.participants, *delivered, *charges})
            unknown = [p for p in outcome.participants if p not in names]
            if unknown:
                raise DatamarketError(f"outcome: unknown participants {unknown}")
            _consume(s, round_id, ids)
            entries = append_round(s, round_id, postings, names, currency=currency)
            for name in sorted({*delivered, *charges} & set(names)):
                s.add(
                    Deliverable(
                        round_id=round_id,
                        participant_id=names[name],
                        payload=delivered.get(name, {}),
                        charges=charges.get(name),
                    )
                )
        metrics.ledger_booked(len(entries))  # committed
        log.info("round %s cleared: %d ledger entries booked", round_id, len(entries))


def _participant_ids(s: Any, wanted: set[str]) -> dict[str, int]:
    rows = s.execute(select(Participant.name, Participant.id).where(Participant.name.in_(wanted)))
    return {n: i for n, i in rows}


def _consume(s: Any, round_id: int, ids: list[int]) -> None:
    """Mark the round's inputs consumed; every one must still be unconsumed and not excluded."""
    taken = s.execute(
        update(Submission)
        .where(
            Submission.id.in_(ids), Submission.consumed_round_id.is_(None), Submission.excluded_at.is_(None)
        )
        .values(consumed_round_id=round_id)
    )
    if rowcount(taken) != len(ids):
        raise DatamarketError(
            f"inputs: {len(ids) - rowcount(taken)} of the round's {len(ids)} submissions were "
            "consumed by another round or excluded meanwhile; nothing was booked"
        )


def open_round(
    runner: RoundRunner,
    adapters: Mapping[str, Adapter],
    who: Principal,
    mid: int,
    seed: int | None = None,
    key: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """Open a round (:func:`datamarket.service.store.rounds.open_round`: ``(round, created)``) and wake
    the claim loop for a new one."""
    view, created = rounds.open_round(runner.db, adapters, runner.limits, who, mid, seed, key)
    if created:
        log.info("round %s opened on market %s", view["id"], mid, extra={"round_id": view["id"]})
        runner.submit(int(view["id"]))
    return view, created


def open_waiting(runner: RoundRunner, adapters: Mapping[str, Adapter], mid: int) -> None:
    """Open a round of market ``mid`` for the operator, if its waiting inputs can be cleared and no
    round is in progress (then the runner opens the next one when that round clears,
    :meth:`RoundRunner.follow`): what a market that answers submissions at once does after each answer,
    so that every answered submission is booked without the operator's hand."""
    try:
        open_round(runner, adapters, Principal(True), mid)
    except (Conflict, NotReady) as exc:
        log.debug("market %s: no round opened now (%s)", mid, exc)


def after_submission(
    runner: RoundRunner, adapters: Mapping[str, Adapter], view: Mapping[str, Any], created: bool
) -> None:
    """What the API and the portal do after storing a submission: a new one that was answered at
    once gets its round (:func:`open_waiting`)."""
    if created and "answer" in view["payload"]:
        open_waiting(runner, adapters, int(view["market_id"]))


def retry_round(runner: RoundRunner, who: Principal, rid: int) -> dict[str, Any]:
    """Move a failed round back to pending (:func:`datamarket.service.store.rounds.retry`) and wake the
    claim loop."""
    view = rounds.retry(runner.db, who, rid)
    runner.submit(rid)
    return view


def release_round(
    runner: RoundRunner, who: Principal, rid: int, attempt: int | None = None
) -> dict[str, Any]:
    """The operator releases a stuck running round (:func:`~datamarket.service.clearing.leases.
    operator_release`); the claim loop wakes to take it again."""
    view = rounds.round_view(operator_release(runner.db, rid, attempt), who)
    runner.submit(rid)
    return view


def fail_round(
    runner: RoundRunner, who: Principal, rid: int, attempt: int | None = None, reason: str | None = None
) -> dict[str, Any]:
    """The operator fails a pending or running round (:func:`~datamarket.service.clearing.leases.
    operator_fail`): nothing booked, its inputs stay unconsumed; counted as a ``failed`` round of its
    kind by the process that failed it."""
    with runner.db.read() as s:
        before = s.get(Round, rid)
        was = None if before is None else before.status
    view = rounds.round_view(operator_fail(runner.db, rid, attempt, reason), who)
    if was != "failed":  # a repeated fail of a failed round is answered, not counted again
        with runner.db.read() as s:
            m = s.get(Market, view["market_id"])
        metrics.round_finished(m.kind if m is not None else "unknown", "failed", None)
    return view
