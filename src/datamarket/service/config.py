"""The service's settings: one frozen :class:`ServiceSettings`, built by :meth:`ServiceSettings.from_env`
or directly. Environment variables are read here only (by ``from_env``, and by :func:`database_url`
for the ``ledger`` commands, which need nothing else).

Environment
-----------
``DATAMARKET_DATABASE_URL``  the database (default ``sqlite:///datamarket.db`` in the working directory)
``DATAMARKET_ADMIN_KEY``     the operator's key (``datamarket serve`` makes one up when none is given)
``FORWARDED_ALLOW_IPS``      uvicorn's variable: the proxies whose ``X-Forwarded-For`` is trusted
                             (``forwarded_allow_ips``; default: none, not even loopback)
``DATAMARKET_COOKIE_SECURE`` ``1``/``true`` or ``0``/``false``: force the portal cookies' ``Secure`` flag
                             (default: from the request's scheme; ``sessions.cookie_secure``)
``DATAMARKET_LOCALE``        how the portal writes amounts: a CLDR locale (``en_US``, the default;
                             ``de_DE``...) for the decimal mark, grouping and sign (``display.locale``)
``DATAMARKET_LOG_FORMAT``    ``json``, ``human`` or ``auto`` (``log_format``)
``DATAMARKET_LOG_LEVEL``     ``debug``, ``info``, ``warning`` or ``error`` (``log_level``)

Every other setting comes from its keyword (the CLI's options) or the defaults below. Invalid
settings raise :class:`~datamarket.core.errors.ConfigurationError` (lease timings:
:class:`~datamarket.core.errors.LeaseSettingsError`) naming the setting.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from datamarket.core.display import Formatter
from datamarket.core.errors import ConfigurationError
from datamarket.ledger.db import DEFAULT_URL
from datamarket.ledger.db import ENV_VAR as DATABASE_ENV
from datamarket.service.adapters import builtin_adapters
from datamarket.service.clearing.leases import Leases
from datamarket.service.clearing.worker import check_executor
from datamarket.service.observability.logs import check as check_logging
from datamarket.service.portal.session import SessionSettings
from datamarket.service.throttle import ThrottleSettings, forwarded_allow_ips
from datamarket.service.uploads import UploadLimits

ADMIN_ENV = "DATAMARKET_ADMIN_KEY"
FORWARDED_ENV = "FORWARDED_ALLOW_IPS"  # uvicorn's name for it
COOKIE_SECURE_ENV = "DATAMARKET_COOKIE_SECURE"
LOCALE_ENV = "DATAMARKET_LOCALE"
LOG_FORMAT_ENV = "DATAMARKET_LOG_FORMAT"
LOG_LEVEL_ENV = "DATAMARKET_LOG_LEVEL"


@dataclass(frozen=True)
class ServiceSettings:
    """Everything one service process is configured with.

    Attributes
    ----------
    database_url : ``sqlite:///FILE`` or ``postgresql://USER@HOST:PORT/DB`` (migrated to the newest
        schema when the app is built).
    admin_key : the operator's key (required by :func:`~datamarket.service.app.create_app`).
    host, port : where ``datamarket serve`` listens.
    executor : ``process`` (default), ``dask`` (with ``dask_address``) or ``thread``.
    max_workers : clearing workers (rounds cleared at the same time by this process).
    dask_address : the Dask scheduler (``executor="dask"``).
    limits : upload size limits (413 beyond ``max_bytes``).
    leases : how rounds are claimed, heartbeated and released; several processes may serve one
        database.
    throttle : failed-authentication limit per client address (default 20 unknown keys a minute).
    forwarded_allow_ips : the reverse proxies trusted to name the client (``X-Forwarded-For``) and
        the scheme (``X-Forwarded-Proto``): comma-separated IPs or networks, ``*`` for every peer,
        empty (default) for none, loopback included (uvicorn's semantics, not its default).
    sessions : portal sessions: lifetime (8 h), the operator's idle limit (30 min), the cookies'
        ``Secure`` flag (:class:`~datamarket.service.portal.session.SessionSettings`).
    adapters : market kind -> ``module:attribute`` of its adapter; default every built-in kind whose
        mechanism is importable (:func:`~datamarket.service.adapters.builtin_adapters`).
    display : how the portal writes amounts and quantities (locale, currency code or symbol;
        :class:`~datamarket.core.display.Formatter`). The JSON API is not affected: it carries
        ``amount_minor`` integers and exact strings.
    log_format, log_level : how ``datamarket serve`` logs: ``auto`` (human on a terminal, JSON
        otherwise), ``json`` or ``human``; ``debug``, ``info``, ``warning`` or ``error``
        (:mod:`datamarket.service.observability.logs`). ``access_log``: one line per request (off by
        default: it costs several times the metrics' work per request).
    metrics_port, metrics_host : when a port is given, ``/metrics`` is also served there without a
        key (a separate bind, default host 127.0.0.1, for Prometheus on a private network); the
        service's own ``GET /metrics`` asks for the admin key.
    drain_s : on SIGTERM, seconds to keep serving while ``/ready`` answers 503 (load balancers
        drain the process), before stopping (:mod:`datamarket.service.observability.readiness`).
    reuse_port : ``datamarket serve`` listens with ``SO_REUSEPORT`` (Linux, BSD), so that several
        processes on one host share ``host:port`` and the kernel spreads the connections over them
        (two processes use both cores of a 2-core host; ``benchmarks/service_load.py``).
    """

    database_url: str = DEFAULT_URL
    admin_key: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    executor: str = "process"
    max_workers: int = 2
    dask_address: str | None = None
    limits: UploadLimits = field(default_factory=UploadLimits)
    leases: Leases = field(default_factory=Leases)
    throttle: ThrottleSettings = field(default_factory=ThrottleSettings)
    forwarded_allow_ips: str = ""
    sessions: SessionSettings = field(default_factory=SessionSettings)
    adapters: Mapping[str, str] = field(default_factory=builtin_adapters)
    display: Formatter = field(default_factory=Formatter)
    log_format: str = "auto"
    log_level: str = "info"
    access_log: bool = False
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    drain_s: float = 5.0
    reuse_port: bool = False

    def __post_init__(self) -> None:
        check_executor(self.executor, self.max_workers, self.dask_address)
        check_logging(self.log_format, self.log_level)
        if self.metrics_port is not None and not 1 <= self.metrics_port <= 65535:
            raise ConfigurationError("metrics_port", f"must be in 1..65535, got {self.metrics_port}")
        if not self.drain_s >= 0:
            raise ConfigurationError("drain_s", f"must be non-negative, got {self.drain_s}")
        if not 1 <= self.port <= 65535:
            raise ConfigurationError("port", f"must be in 1..65535, got {self.port}")
        if self.admin_key is not None and not self.admin_key:
            raise ConfigurationError("admin_key", "must not be empty")
        for kind, ref in self.adapters.items():
            if not kind or ":" not in ref:
                raise ConfigurationError(
                    "adapters", f"expected KIND -> module:attribute, got {kind!r} -> {ref!r}"
                )
        object.__setattr__(self, "adapters", dict(self.adapters))
        object.__setattr__(self, "forwarded_allow_ips", forwarded_allow_ips(self.forwarded_allow_ips))

    @classmethod
    def from_env(cls, **overrides: Any) -> ServiceSettings:
        """The settings from ``$DATAMARKET_DATABASE_URL`` and ``$DATAMARKET_ADMIN_KEY``, then
        ``overrides`` (a keyword per attribute; ``None`` keeps the environment's value or the default);
        ``$DATAMARKET_COOKIE_SECURE`` fills ``sessions.cookie_secure`` where that is ``None``, and
        ``$DATAMARKET_LOCALE`` the locale of ``display`` where ``display`` is not given.

        >>> ServiceSettings.from_env(admin_key="k", executor="thread", port=None).port
        8000
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ConfigurationError(unknown[0], f"unknown setting (known: {', '.join(sorted(names))})")
        values: dict[str, Any] = _environment()
        secure = _cookie_secure()
        locale = os.environ.get(LOCALE_ENV, "")
        if locale:
            values["display"] = Formatter(locale)
        values.update({k: v for k, v in overrides.items() if v is not None})
        sessions = values.get("sessions", SessionSettings())
        if secure is not None and sessions.cookie_secure is None:
            values["sessions"] = dataclasses.replace(sessions, cookie_secure=secure)
        return cls(**values)

    def operator_key(self) -> str:
        """The admin key; :class:`~datamarket.core.errors.ConfigurationError` when there is none."""
        if not self.admin_key:
            raise ConfigurationError("admin_key", f"pass admin_key or set ${ADMIN_ENV}")
        return self.admin_key

    def with_adapters(self, extra: Mapping[str, str]) -> ServiceSettings:
        """These settings with ``extra`` market kinds added (or replaced)."""
        return dataclasses.replace(self, adapters={**self.adapters, **extra})


def _environment() -> dict[str, str]:
    """The settings the environment sets (the one place that reads it)."""
    found = {
        name: os.environ.get(var, "")
        for name, var in (
            ("database_url", DATABASE_ENV),
            ("admin_key", ADMIN_ENV),
            ("forwarded_allow_ips", FORWARDED_ENV),
            ("log_format", LOG_FORMAT_ENV),
            ("log_level", LOG_LEVEL_ENV),
        )
    }
    return {name: value for name, value in found.items() if value}


def _cookie_secure() -> bool | None:
    """``$DATAMARKET_COOKIE_SECURE`` as a flag (``None`` when unset or empty)."""
    raw = os.environ.get(COOKIE_SECURE_ENV, "").strip().lower()
    if not raw:
        return None
    if raw not in ("1", "true", "yes", "0", "false", "no"):
        raise ConfigurationError("cookie_secure", f"${COOKIE_SECURE_ENV} must be 1/true/yes or 0/false/no")
    return raw in ("1", "true", "yes")


def database_url(url: str | None = None) -> str:
    """``url``, else ``$DATAMARKET_DATABASE_URL``, else the default SQLite file (what the ``ledger``
    commands open, without the rest of the settings)."""
    return url or _environment().get("database_url") or DEFAULT_URL


def parse_adapter(item: str) -> tuple[str, str]:
    """``KIND=module:attribute`` (the CLI's ``--adapter``) -> ``(kind, reference)``.

    >>> parse_adapter("mine=pkg.mod:ADAPTER")
    ('mine', 'pkg.mod:ADAPTER')
    """
    kind, sep, ref = item.partition("=")
    if not sep or not kind or ":" not in ref:
        raise ConfigurationError("adapter", f"expected KIND=module:attribute, got {item!r}")
    return kind, ref
