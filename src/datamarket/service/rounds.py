"""Round lifecycle: ``pending -> running -> cleared | failed``, cleared in the background.

1. The request that creates a round snapshots the market's unconsumed inputs (``input_ids``), checks
   them with the adapter and commits the round as ``pending``; a coordinator thread is started.
2. The coordinator marks the round ``running`` (attempts + 1), loads the inputs and hands the pure
   computation to the worker pool (:mod:`datamarket.service.worker`).
3. With the result, ONE transaction converts the outcome to balanced postings
   (:func:`~datamarket.ledger.money.outcome_postings`), appends them to the hash chain, stores the
   deliverables, marks the inputs consumed and the round ``cleared``. Any failure rolls the whole
   transaction back: the ledger is unchanged and the round is marked ``failed`` with the error.
4. A worker crash (:class:`BrokenProcessPool`) fails the round the same way; a service restart marks
   every round it finds ``pending`` or ``running`` as ``failed`` (:func:`fail_interrupted`). A failed
   round can be retried (``POST /rounds/{id}/retry``); a cleared one cannot (409).
"""

from __future__ import annotations

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
from datamarket.service.uploads import UploadLimits, parse_dataset
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


def load_inputs(s: Session, ids: list[int], limits: UploadLimits) -> list[Input]:
    """The adapter's view of submissions ``ids`` (datasets parsed again from their stored bytes)."""
    rows = s.execute(
        select(Submission, Participant.name)
        .join(Participant, Submission.participant_id == Participant.id)
        .where(Submission.id.in_(ids))
        .order_by(Submission.id)
    ).all()
    out = []
    for sub, name in rows:
        ds = None
        if sub.blob is not None:
            meta = sub.payload or {}
            ds = parse_dataset(
                sub.blob,
                str(meta.get("format", "csv")),
                label_column=str(meta.get("label_column", "label")),
                group_column=str(meta.get("group_column", "group")),
                limits=limits,
            )
        data = dict(sub.payload or {}).get("data", {}) if sub.blob is None else dict(sub.payload or {})
        out.append(Input(name, sub.kind, data, ds))
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

    def _set(self, round_id: int, **values: Any) -> None:
        with self.db.write() as s:
            s.execute(update(Round).where(Round.id == round_id).values(updated_at=utcnow(), **values))

    def _process(self, round_id: int) -> None:
        try:
            self._clear(round_id)
        except Exception as exc:  # the worker's or the database's error: fail the round, keep going
            log.warning("round %s failed: %s", round_id, exc)
            msg = str(exc) or type(exc).__name__
            if not isinstance(exc, DatamarketError):
                msg = f"{type(exc).__name__}: {msg}"
            try:
                self._set(round_id, status="failed", stage="failed", error=msg[:2000])
            except Exception:  # database gone (shutdown): the next start marks it failed
                log.exception("could not mark round %s failed", round_id)

    def _clear(self, round_id: int) -> str:
        with self.db.write() as s:
            rnd = s.get(Round, round_id)
            if rnd is None or rnd.status != "pending":
                return rnd.status if rnd is not None else "failed"
            market = s.get(Market, rnd.market_id)
            assert market is not None
            rnd.status, rnd.progress, rnd.stage = "running", 0.1, "loading inputs"
            rnd.attempts += 1
            rnd.error = None
            rnd.updated_at = utcnow()
            kind, params, scale, currency = market.kind, dict(market.params), market.scale, market.currency
            ids, seed = list(rnd.input_ids), int(rnd.seed)
        with self.db.read() as s:
            inputs = load_inputs(s, ids, self.limits)
        self._set(round_id, progress=0.3, stage=f"clearing ({self.pool.kind} worker)")
        result = self.pool.run(self.refs[kind], params, inputs, seed)
        outcome = Outcome.from_dict(result["outcome"])
        with self.db.write() as s:  # step 3: one transaction
            rnd = s.get(Round, round_id)
            if rnd is None or rnd.status != "running":
                return "failed"
            names = {n: i for n, i in s.execute(select(Participant.name, Participant.id))}
            unknown = [p for p in outcome.participants if p not in names]
            if unknown:
                raise DatamarketError(f"outcome: unknown participants {unknown}")
            taken = s.execute(
                select(Submission.id).where(Submission.id.in_(ids), Submission.consumed_round_id.is_not(None))
            ).first()
            if taken is not None:
                raise DatamarketError(f"inputs: submission {taken[0]} was already used by another round")
            append_round(s, round_id, outcome_postings(outcome, scale), names, currency=currency)
            for name, payload in result["deliverables"].items():
                if name in names:
                    s.add(Deliverable(round_id=round_id, participant_id=names[name], payload=payload))
            s.execute(update(Submission).where(Submission.id.in_(ids)).values(consumed_round_id=round_id))
            rnd.outcome = result["outcome"]
            rnd.status, rnd.progress, rnd.stage = "cleared", 1.0, "cleared"
            rnd.updated_at = utcnow()
        return "cleared"
