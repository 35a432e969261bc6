"""Round lifecycle: ``pending -> running -> cleared | failed``, cleared in the background, exactly once.

1. The request that opens a round reads the market's unconsumed, non-excluded inputs and checks them
   with the adapter in a read-only session (no computation holds a write lock); a short write
   transaction then locks the market row, checks that the inputs did not change meanwhile and inserts
   the round ``pending`` with its seed commitment. The partial unique index ``uq_round_active``
   (migration 0002) lets at most one ``pending``/``running`` round per market exist: a concurrent
   open or retry fails in the database (409), not in a Python check.
2. The coordinator moves the round ``pending -> running`` with a compare-and-set (``UPDATE ... WHERE
   status = 'pending'``, row count checked; attempts + 1), loads the parsed inputs and hands the pure
   computation to the worker pool (:mod:`datamarket.service.worker`).
3. With the result, and the postings computed, ONE transaction locks the market row (as opening and
   retrying do: none of them can act on a snapshot that the booking makes stale), moves the round
   ``running -> cleared`` by compare-and-set on ``(status, attempts)`` (the row lock it takes
   serialises every other transition of the round), marks its inputs consumed with ``UPDATE ...
   WHERE consumed_round_id IS NULL AND excluded_at IS NULL`` and checks that every input was taken,
   appends the postings to the hash chain and stores the deliverables. Any failure rolls the whole
   transaction back: the ledger is unchanged and the round is marked ``failed`` (again by
   compare-and-set, so a round that another transition moved is never overwritten).
4. A worker crash (:class:`BrokenProcessPool`) fails the round the same way; a service restart marks
   every round it finds ``pending`` or ``running`` as ``failed`` (:func:`fail_interrupted`). A failed
   round can be retried (``POST /rounds/{id}/retry``: compare-and-set ``failed -> pending``); a
   cleared one cannot (409).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from datamarket.core.errors import DatamarketError
from datamarket.core.types import Outcome
from datamarket.ledger.chain import append_round
from datamarket.ledger.models import Deliverable, Market, Participant, Round, Submission, utcnow
from datamarket.ledger.money import outcome_postings
from datamarket.service.adapters import Input
from datamarket.service.uploads import UploadLimits, parse_dataset, unpack_dataset
from datamarket.service.worker import WorkerPool

log = logging.getLogger(__name__)


class Database:
    """Sessions plus the write discipline: one write transaction at a time on SQLite."""

    def __init__(self, sessions: sessionmaker[Session], serialise_writes: bool):
        self.sessions = sessions
        self._lock = threading.RLock() if serialise_writes else None

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session in a transaction that commits on success and rolls back on any error."""
        if self._lock is not None:
            self._lock.acquire()
        try:
            with self.sessions() as s, s.begin():
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


def fail_interrupted(db: Database) -> int:
    """Mark rounds left ``pending``/``running`` by a previous process as failed; returns how many."""
    with db.write() as s:
        res = s.execute(
            update(Round)
            .where(Round.status.in_(("pending", "running")))
            .values(status="failed", stage="interrupted", error="interrupted: the service restarted")
        )
        return int(getattr(res, "rowcount", 0) or 0)


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


class RoundRunner:
    """Coordinates background clearing of rounds (module docstring, steps 2-4)."""

    def __init__(
        self,
        db: Database,
        pool: WorkerPool,
        refs: dict[str, str],
        limits: UploadLimits,
    ):
        self.db = db
        self.pool = pool
        self.refs = refs
        self.limits = limits
        self._threads = ThreadPoolExecutor(4, thread_name_prefix="round")
        self._closed = False

    def submit(self, round_id: int) -> None:
        if not self._closed:
            self._threads.submit(self._process, round_id)

    def shutdown(self) -> None:
        self._closed = True
        self.pool.shutdown()
        self._threads.shutdown(wait=True, cancel_futures=True)

    def _cas(self, round_id: int, attempt: int, **values: Any) -> int:
        """Update the round if it is still ``running`` in attempt ``attempt``; rows matched."""
        with self.db.write() as s:
            return rowcount(
                s.execute(
                    update(Round)
                    .where(Round.id == round_id, Round.status == "running", Round.attempts == attempt)
                    .values(updated_at=utcnow(), **values)
                )
            )

    def _start(self, round_id: int) -> int | None:
        """Compare-and-set ``pending -> running``; the attempt number, or None if another won."""
        with self.db.write() as s:
            res = s.execute(
                update(Round)
                .where(Round.id == round_id, Round.status == "pending")
                .values(
                    status="running",
                    attempts=Round.attempts + 1,
                    progress=0.1,
                    stage="loading inputs",
                    error=None,
                    updated_at=utcnow(),
                )
            )
            if rowcount(res) != 1:
                return None
            return int(s.execute(select(Round.attempts).where(Round.id == round_id)).scalar_one())

    def _process(self, round_id: int) -> None:
        try:
            attempt = self._start(round_id)
        except Exception:
            log.exception("could not start round %s", round_id)
            return
        if attempt is None:
            return
        try:
            self._clear(round_id, attempt)
        except LostRound:
            log.warning("round %s attempt %s was moved by another transition", round_id, attempt)
        except Exception as exc:  # the worker's or the database's error: fail the round, keep going
            log.warning("round %s failed: %s", round_id, exc)
            msg = str(exc) or type(exc).__name__
            if not isinstance(exc, DatamarketError):
                msg = f"{type(exc).__name__}: {msg}"
            try:
                self._cas(round_id, attempt, status="failed", stage="failed", error=msg[:2000])
            except Exception:  # database gone (shutdown): the next start marks it failed
                log.exception("could not mark round %s failed", round_id)

    def _clear(self, round_id: int, attempt: int) -> None:
        with self.db.read() as s:
            rnd = s.get(Round, round_id)
            market = s.get(Market, rnd.market_id) if rnd is not None else None
            assert rnd is not None and market is not None
            kind, params, scale, market_id = market.kind, dict(market.params), market.scale, market.id
            currency = market.currency
            ids, seed = list(rnd.input_ids), int(rnd.seed)
            inputs = load_inputs(s, ids, self.limits)
        if self._cas(round_id, attempt, progress=0.3, stage=f"clearing ({self.pool.kind} worker)") != 1:
            raise LostRound(round_id)
        result = self.pool.run(self.refs[kind], params, inputs, seed)
        outcome = Outcome.from_dict(result["outcome"])
        postings = outcome_postings(outcome, scale)
        with self.db.write() as s:  # step 3: one short transaction, nothing computed inside
            # the market row first: opening and retrying rounds take it too, so each of them sees the
            # inputs either all unconsumed with this round active, or consumed with it cleared
            s.execute(select(Market.id).where(Market.id == market_id).with_for_update())
            moved = s.execute(
                update(Round)
                .where(Round.id == round_id, Round.status == "running", Round.attempts == attempt)
                .values(
                    status="cleared",
                    progress=1.0,
                    stage="cleared",
                    outcome=result["outcome"],
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
