"""Sessions and the write discipline: :class:`Database` (``write()`` and ``read()``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from datamarket.ledger.db import make_sessionmaker


class Database:
    """Sessions plus the write discipline: one write transaction at a time on SQLite.

    On SQLite (``serialise_writes``) a write transaction starts with ``BEGIN IMMEDIATE``: it takes
    the database's write lock before its first read, so that what it reads stays true until it
    commits, also against other service processes on the same file (which wait for the lock, up to
    the busy timeout, instead of failing). On PostgreSQL (``postgres``) claims of rounds use
    ``FOR UPDATE SKIP LOCKED``."""

    def __init__(self, sessions: sessionmaker[Session], serialise_writes: bool, *, postgres: bool = False):
        self.sessions = sessions
        self._lock = threading.RLock() if serialise_writes else None
        self.postgres = postgres

    @classmethod
    def on(cls, engine: Engine) -> Database:
        """The database behind ``engine``, with the discipline its dialect needs."""
        sqlite = engine.dialect.name == "sqlite"
        return cls(make_sessionmaker(engine), serialise_writes=sqlite, postgres=not sqlite)

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
        """A session for reading (loaded rows stay usable after it closes)."""
        with self.sessions() as s:
            yield s


def rowcount(result: Any) -> int:
    """Rows an ``UPDATE`` matched (the compare-and-set check)."""
    return int(getattr(result, "rowcount", 0) or 0)
