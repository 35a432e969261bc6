"""Sessions and the write discipline: :class:`Database` (``write()`` and ``read()``), and what a
process remembers of rows that never change (:class:`Memo`)."""

from __future__ import annotations

import contextvars
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from datamarket.ledger.db import make_sessionmaker

try:
    import fcntl
except ImportError:  # not POSIX: SQLite's own lock alone serialises the processes
    fcntl = None  # type: ignore[assignment]

V = TypeVar("V")


class Memo:
    """A process's memory of rows that the service never changes once written: a market's kind and
    parameters, the participant an API key's hash names. It spares a request the read transaction
    that would fetch them again (one of the three each submission used to open).

    At most ``size`` entries (least recently used dropped first), each trusted for ``ttl_s`` seconds
    and then read again: nothing the service writes changes them, and a row changed behind its back
    (a key revoked by hand in the database) is seen within ``ttl_s``. A lookup that finds nothing is
    not remembered. Thread-safe; per process.

    >>> memo, reads = Memo(size=2, ttl_s=60.0), []
    >>> memo.get("a", lambda: reads.append("a") or 1), memo.get("a", lambda: reads.append("a") or 1)
    (1, 1)
    >>> memo.get("b", lambda: None), memo.get("c", lambda: 3), reads
    (None, 3, ['a'])
    >>> memo.known("c"), memo.known("b")
    (True, False)
    >>> memo.forget("c"); len(memo)
    1
    """

    def __init__(self, size: int = 20_000, ttl_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.size, self.ttl_s, self.clock = size, ttl_s, clock
        self._rows: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, load: Callable[[], V | None]) -> V | None:
        """The value remembered under ``key``, else ``load()`` (remembered unless None)."""
        now = self.clock()
        with self._lock:
            hit = self._rows.get(key)
            if hit is not None and now - hit[0] < self.ttl_s:
                self._rows.move_to_end(key)
                return hit[1]  # type: ignore[no-any-return]
        value = load()
        if value is not None:
            with self._lock:
                self._rows[key] = (now, value)
                self._rows.move_to_end(key)
                while len(self._rows) > self.size:
                    self._rows.popitem(last=False)
        return value

    def known(self, key: Hashable) -> bool:
        """Whether ``key`` is remembered (and not older than ``ttl_s``): :meth:`get` would not load."""
        with self._lock:
            hit = self._rows.get(key)
            return hit is not None and self.clock() - hit[0] < self.ttl_s

    def forget(self, key: Hashable) -> None:
        """Drop ``key`` (read again next time)."""
        with self._lock:
            self._rows.pop(key, None)

    def __len__(self) -> int:
        return len(self._rows)


class Database:
    """Sessions plus the write discipline: one write transaction at a time on SQLite.

    On SQLite (``serialise_writes``) a write transaction starts with ``BEGIN IMMEDIATE``: it takes
    the database's write lock before its first read, so that what it reads stays true until it
    commits, also against other service processes on the same file (which wait for the lock, up to
    the busy timeout, instead of failing). The threads of a process queue on a lock first, and the
    processes on one file then on an exclusive ``flock`` of ``FILE-lock`` beside it
    (``process_lock``; POSIX only): SQLite's own wait for its lock polls, sleeping up to 100 ms
    between tries, which left the lock idle while writers slept; ``flock`` hands it on at once.
    SQLite's lock still decides (another program writing the file is waited for as before). On
    PostgreSQL (``postgres``) claims of rounds use ``FOR UPDATE SKIP LOCKED``."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        serialise_writes: bool,
        *,
        postgres: bool = False,
        process_lock: str | None = None,
    ):
        self.sessions = sessions
        self._lock = threading.RLock() if serialise_writes else None
        self._depth = 0  # write() calls the lock's holder is in (only it changes this)
        self._file = _FileLock(process_lock) if serialise_writes and process_lock and fcntl else None
        self.postgres = postgres
        self.memo = Memo()
        self._group = _GroupCommit(self) if serialise_writes else None

    @classmethod
    def on(cls, engine: Engine) -> Database:
        """The database behind ``engine``, with the discipline its dialect needs."""
        sqlite = engine.dialect.name == "sqlite"
        path = engine.url.database if sqlite else None
        lock = f"{path}-lock" if path and path != ":memory:" and not path.startswith("file:") else None
        return cls(make_sessionmaker(engine), serialise_writes=sqlite, postgres=not sqlite, process_lock=lock)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session in a transaction that commits on success and rolls back on any error."""
        if self._lock is None:
            with self.sessions() as s, s.begin():
                yield s
            return
        with self._lock:
            self._depth += 1
            try:
                if self._file is not None and self._depth == 1:
                    self._file.acquire()
                with self.sessions() as s, s.begin():
                    s.connection().exec_driver_sql("BEGIN IMMEDIATE")
                    yield s
            finally:
                if self._file is not None and self._depth == 1:
                    self._file.release()
                self._depth -= 1

    def batched(self, work: Callable[[Session], V]) -> V:
        """``work(session)`` in a write transaction that commits before this returns (what
        :meth:`write` does), possibly shared with other threads' work: a group commit.

        On SQLite, whose writes are serialised and whose every commit waits for the disk (``fsync``,
        1.7 ms here, more than the rest of a submission), the threads waiting for the write lock
        hand their work to the one holding it, which runs each in a ``SAVEPOINT`` of one
        transaction and commits them together: each work is all or nothing (one that raises rolls
        back only its own savepoint and gets its exception), and none returns before the commit
        that stores it (a failed commit is every one's exception). A lone work runs without a
        savepoint, exactly as in :meth:`write`. On PostgreSQL, which commits concurrent
        transactions in parallel, it is :meth:`write`."""
        if self._group is None:
            with self.write() as s:
                return work(s)
        return self._group.run(work)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading (loaded rows stay usable after it closes)."""
        with self.sessions() as s:
            yield s


class _FileLock:
    """An exclusive ``flock`` of the file ``path`` (created if absent), held by one process at a time;
    the wait releases the GIL and ends as soon as the holder lets go. The file is opened for each
    hold and closed after it (which releases the lock, also when a process dies holding it). A
    process that may not open it (another user's file) goes without: SQLite's lock still decides."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    def release(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)


class _Job:
    """One thread's work in a group commit; ``wake`` is set when it is done or is to lead."""

    __slots__ = ("context", "done", "error", "value", "wake", "work")

    def __init__(self, work: Callable[[Session], Any]) -> None:
        self.work, self.context = work, contextvars.copy_context()  # its request's context (request id)
        self.wake = threading.Event()
        self.done = False
        self.value: Any = None
        self.error: BaseException | None = None

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


class _GroupCommit:
    """:meth:`Database.batched` on SQLite: a queue of works; one thread at a time, the leader, takes
    every work queued, runs them in one transaction under the write lock, then hands the lead to the
    first work queued meanwhile (or leaves it free). A work waits only while a leader runs."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.queue: list[_Job] = []
        self.leading = False
        self.mutex = threading.Lock()

    def run(self, work: Callable[[Session], V]) -> V:
        job = _Job(work)
        with self.mutex:
            self.queue.append(job)
            lead = not self.leading
            self.leading = True
        if not lead:
            job.wake.wait()
        if not job.done:
            self._lead()
        return job.result()  # type: ignore[no-any-return]

    def _lead(self) -> None:
        with self.mutex:
            jobs, self.queue = self.queue, []
        try:
            self._commit(jobs)
        finally:
            for job in jobs:
                job.done = True
                job.wake.set()
            with self.mutex:
                if self.queue:
                    self.queue[0].wake.set()  # the next leader (its work is not done)
                else:
                    self.leading = False

    def _commit(self, jobs: list[_Job]) -> None:
        """Every work of ``jobs`` in one write transaction (each in a savepoint when there are several)."""
        try:
            with self.db.write() as s:
                for job in jobs:
                    if len(jobs) == 1:
                        job.value = job.context.run(job.work, s)
                        continue
                    try:
                        with s.begin_nested():
                            job.value = job.context.run(job.work, s)
                    except Exception as exc:  # this work only: its savepoint is rolled back
                        job.error = exc
        except BaseException as exc:  # nothing of the batch is stored (a lone work's own error too)
            for job in jobs:
                job.error = job.error or exc
            if not isinstance(exc, Exception):
                raise


def rowcount(result: Any) -> int:
    """Rows an ``UPDATE`` matched (the compare-and-set check)."""
    return int(getattr(result, "rowcount", 0) or 0)
