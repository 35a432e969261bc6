"""Engines and sessions for SQLite (default) and PostgreSQL.

SQLite connections get foreign keys on, WAL journaling (readers do not block the writer) and a 30 s
busy timeout, so concurrent requests of the service wait for the write lock instead of failing.
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from datamarket.core.errors import ConfigurationError

DEFAULT_URL = "sqlite:///datamarket.db"
ENV_VAR = "DATAMARKET_DATABASE_URL"


def database_url(url: str | None = None) -> str:
    """``url``, else ``$DATAMARKET_DATABASE_URL``, else a SQLite file in the working directory."""
    return url or os.environ.get(ENV_VAR) or DEFAULT_URL


def normalise_url(url: str) -> str:
    """Use psycopg 3 for ``postgresql://`` URLs (SQLAlchemy's default driver is psycopg2)."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with the SQLite settings above; raises on an unsupported scheme.

    >>> make_engine("sqlite://").dialect.name
    'sqlite'
    >>> make_engine("mysql://x")
    Traceback (most recent call last):
    ...
    datamarket.core.errors.ConfigurationError: database_url: unsupported database 'mysql' ...
    """
    url = normalise_url(url)
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if scheme not in ("sqlite", "postgresql"):
        raise ConfigurationError(
            "database_url", f"unsupported database {scheme!r} (use sqlite:///FILE or postgresql://...)"
        )
    kwargs: dict[str, Any] = {}
    if scheme == "sqlite":
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(url, **kwargs)
    if scheme == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    try:
        cur.execute("PRAGMA journal_mode=WAL")
    except Exception:  # in-memory databases have no WAL; the default journal is fine there
        pass
    cur.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded attributes after commit (responses are built after committing)."""
    return sessionmaker(engine, expire_on_commit=False)
