"""Logs of the service: standard-library logging, one line per record, JSON or human.

Formats (``--log-format``, ``ServiceSettings.log_format``): ``human`` (time, level, logger, request
id, message), ``json`` (one object per line: ``ts``, ``level``, ``logger``, ``msg``, ``pid``,
``thread``, ``request_id`` and ``round_id`` where known, the record's extra fields, ``exc`` with a
traceback), or ``auto`` (the default): human when the stream is a terminal, JSON otherwise.

Request ids. Every request has one (:func:`request_id`): the client's ``X-Request-ID`` when it is
sane (1 to 128 characters among letters, digits and ``._:+=/-``), else a fresh random one; the
answer echoes it in ``X-Request-ID``. It lives in a context variable (:data:`REQUEST_ID`), so every
line logged while the request is handled carries it, in the event loop and in the threads FastAPI
runs handlers in. A round opened, retried or released by a request is cleared with that request's
id, in the runner's thread and in the worker (thread or process) that computes it
(:func:`context` is handed along with the job, :func:`bound` sets it there); its lines carry
``round_id`` too. A round claimed by another process than the one its request reached logs there
with its ``round_id`` only: join on ``round_id`` (the opening request logs it).

What is never logged: API keys, session tokens, uploaded data, request bodies and query strings.
The service logs none of them, third-party loggers that could (SQLAlchemy logs statements and their
parameters at INFO, python-multipart parts at DEBUG) stay at WARNING whatever the level asked, and
every line is scrubbed of anything shaped like a key (``dm_`` and 20 or more key characters) and of
the secrets given to :func:`configure_logging` (the admin key) before it is written.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

from datamarket.core.errors import ConfigurationError

FORMATS = ("auto", "json", "human")
LEVELS = ("debug", "info", "warning", "error")
REQUEST_ID: ContextVar[str | None] = ContextVar("datamarket_request_id", default=None)
ROUND_ID: ContextVar[int | None] = ContextVar("datamarket_round_id", default=None)
SANE_ID = re.compile(r"[A-Za-z0-9._:+=/-]{1,128}")
KEY_SHAPE = re.compile(r"dm_[A-Za-z0-9_-]{20,}")
REDACTED = "[redacted]"
QUIET = ("sqlalchemy", "python_multipart", "multipart", "httpx", "httpcore", "asyncio", "matplotlib", "PIL")
"""Third-party loggers held at WARNING whatever the level (they could log parameters or bodies)."""

# the LogRecord attributes every record has: the others are the caller's ``extra`` fields
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_STANDARD |= {"request_id", "round_id", "taskName", "color_message", "where"}  # ours, uvicorn's ANSI copy
_setup: dict[str, Any] | None = None


def request_id(header: str | None) -> str:
    """The client's ``X-Request-ID`` when it is sane, else a fresh random id.

    >>> request_id("abc-123")
    'abc-123'
    >>> len(request_id("bad id with spaces")), len(request_id("x" * 200))
    (32, 32)
    """
    if header and SANE_ID.fullmatch(header):
        return header
    return os.urandom(16).hex()


def context() -> tuple[str | None, int | None]:
    """The request id and round id of the current context (to hand to another thread or process)."""
    return REQUEST_ID.get(), ROUND_ID.get()


@contextmanager
def bound(request: str | None, round_id: int | None = None) -> Iterator[None]:
    """Within the block, log lines carry ``request`` and ``round_id`` (a thread or worker process
    doing a round's work)."""
    t1, t2 = REQUEST_ID.set(request), ROUND_ID.set(round_id)
    try:
        yield
    finally:
        ROUND_ID.reset(t2)
        REQUEST_ID.reset(t1)


class Redactor:
    """Replaces key-shaped strings and the given secrets in a formatted line."""

    def __init__(self, secrets: Sequence[str] = ()):
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return KEY_SHAPE.sub(REDACTED, text)


class JsonFormatter(logging.Formatter):
    """One JSON object per record (module docstring)."""

    def __init__(self, redact: Redactor):
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
            "thread": record.threadName,
        }
        for name in ("request_id", "round_id"):
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        out.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return self.redact(json.dumps(out, default=str, ensure_ascii=False))


class HumanFormatter(logging.Formatter):
    """``time level logger [request round] message`` for a terminal."""

    def __init__(self, redact: Redactor):
        super().__init__("%(asctime)s %(levelname)-7s %(name)s%(where)s %(message)s", "%H:%M:%S")
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        rid, rnd = getattr(record, "request_id", None), getattr(record, "round_id", None)
        tags = [t for t in (rid and f"req={rid}", rnd is not None and f"round={rnd}") if t]
        record.where = f" [{' '.join(tags)}]" if tags else ""
        return self.redact(super().format(record))


class ContextFilter(logging.Filter):
    """Stamps each record with the request id and round id of the context that logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        if getattr(record, "round_id", None) is None:
            record.round_id = ROUND_ID.get()
        return True


def resolve_format(fmt: str, stream: IO[str]) -> str:
    """``json`` or ``human``: ``auto`` is human on a terminal, JSON otherwise.

    >>> import io
    >>> resolve_format("auto", io.StringIO()), resolve_format("human", io.StringIO())
    ('json', 'human')
    """
    check(fmt, "info")
    if fmt != "auto":
        return fmt
    isatty = getattr(stream, "isatty", None)
    return "human" if isatty is not None and isatty() else "json"


def check(fmt: str, level: str) -> None:
    """:class:`~datamarket.core.errors.ConfigurationError` unless ``fmt`` is one of :data:`FORMATS`
    and ``level`` one of :data:`LEVELS`."""
    if fmt not in FORMATS:
        raise ConfigurationError("log_format", f"must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if level not in LEVELS:
        raise ConfigurationError("log_level", f"must be one of {', '.join(LEVELS)}, got {level!r}")


def configure_logging(
    fmt: str = "auto", level: str = "info", *, secrets: Sequence[str] = (), stream: IO[str] | None = None
) -> str:
    """Log every record of the process to ``stream`` (default stderr) in format ``fmt`` (returned,
    resolved); ``datamarket`` and uvicorn log at ``level``, other libraries at WARNING (those of
    :data:`QUIET` always). ``secrets`` are replaced by ``[redacted]`` wherever they appear."""
    global _setup
    out = stream if stream is not None else sys.stderr
    resolved = resolve_format(fmt, out)
    check(resolved, level)
    redact = Redactor(secrets)
    handler = logging.StreamHandler(out)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter(redact) if resolved == "json" else HumanFormatter(redact))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    number = getattr(logging, level.upper())
    root.setLevel(max(number, logging.WARNING))
    for name in ("datamarket", "uvicorn", "uvicorn.error", "alembic"):
        logging.getLogger(name).setLevel(number)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.captureWarnings(True)  # warnings (a library's, a mechanism's) become records in the format
    _setup = {"fmt": resolved, "level": level, "secrets": tuple(secrets)}
    return resolved


def worker_setup() -> dict[str, Any] | None:
    """The arguments :func:`configure_logging` was last called with in this process (None: never),
    for a worker process to log the same way."""
    return None if _setup is None else dict(_setup)
