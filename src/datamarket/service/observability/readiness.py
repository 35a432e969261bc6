"""Readiness: whether a load balancer should send this process requests (``GET /ready``).

``/health`` is liveness: the process answers. ``/ready`` answers 200 only while the process can do
its work: its database answers, and the database's schema is at the head revision of this
version's migrations (a database migrated by a newer version, or never migrated, is not one this
code may write to). It answers 503 from the moment the process begins to stop.

Draining. On SIGTERM (what orchestrators and ``systemctl stop`` send) ``datamarket serve`` first
drains (:class:`DrainingServer`): for ``--drain`` seconds (``ServiceSettings.drain_s``, default 5)
it keeps serving every request, and clearing rounds, while ``/ready`` answers 503, so that load
balancers polling it stop sending new requests; then it stops as before (no new connections,
in-flight requests finish, held rounds get ``--grace`` seconds, the rest are released). Set the
drain to at least the balancer's check interval times its failure threshold. A second SIGTERM,
or SIGINT (Ctrl-C at a terminal), stops at once without draining.
"""

from __future__ import annotations

import functools
import logging
import signal
import threading
from types import FrameType
from typing import Any

import uvicorn
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from datamarket.ledger.migrations import head_revision

log = logging.getLogger(__name__)


@functools.cache
def shipped_head() -> str:
    """The head revision of the migrations shipped with this version (read once per process)."""
    return head_revision()


class Readiness:
    """The readiness of one app: its database, its schema and whether it is stopping."""

    def __init__(self, engine: Engine, head: str | None = None):
        self.engine = engine
        self.head = head or shipped_head()
        self._stopping = threading.Event()

    def stop(self) -> None:
        """The process begins to stop: answer not ready from now on."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def problems(self) -> list[str]:
        """Why the process is not ready (empty: ready). Names no URL, host or error text, which
        could carry credentials: ``/ready`` is anonymous."""
        if self.stopping:
            return ["shutting down"]
        try:
            revision = schema_revision(self.engine)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("readiness: the database does not answer (%s)", type(exc).__name__)
            return ["the database does not answer"]
        if revision != self.head:
            return [f"the database schema is at revision {revision}, not this version's {self.head}"]
        return []


def schema_revision(engine: Engine) -> str | None:
    """The database's Alembic revision (None: never migrated), read with plain SQL: Alembic's own
    reader logs two INFO lines per call, which a load balancer's probes would repeat every second."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


class DrainingServer(uvicorn.Server):
    """uvicorn's server, except that the first SIGTERM drains (module docstring): ``readiness``
    answers 503 at once and the server stops ``drain_s`` seconds later."""

    def __init__(self, config: uvicorn.Config, readiness: Readiness, drain_s: float):
        super().__init__(config)
        self.readiness = readiness
        self.drain_s = drain_s
        self._timer: threading.Timer | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.readiness.stop()
        if sig == signal.SIGTERM and self.drain_s > 0 and self._timer is None and not self.should_exit:
            log.info("SIGTERM: draining for %.1f s (/ready answers 503), then stopping", self.drain_s)
            self._timer = threading.Timer(self.drain_s, super().handle_exit, (sig, None))
            self._timer.daemon = True
            self._timer.start()
            return
        if self._timer is not None:
            self._timer.cancel()
        super().handle_exit(sig, frame)


def ready_body(problems: list[str]) -> dict[str, Any]:
    """The JSON of ``GET /ready``: ``{"status": "ready"}``, or the problems (``ErrorOut``)."""
    if not problems:
        return {"status": "ready"}
    return {"detail": "not ready: " + "; ".join(problems), "field": None}
