"""CLI commands of the service: ``datamarket serve`` and ``datamarket ledger verify|export|dump|migrate``.

Registered on the main Typer app by :func:`register` (``datamarket.cli`` calls it); heavy imports
(FastAPI, uvicorn, SQLAlchemy) happen inside the commands, so ``datamarket --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from datamarket.service.config import ServiceSettings

DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default $DATAMARKET_DATABASE_URL or sqlite:///datamarket.db)."),
]

UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="DATAMARKET_URL",
        help="A running service's base URL ($DATAMARKET_URL): read its ledger over the API "
        "(datamarket.client) instead of a database.",
    ),
]
KeyOpt = Annotated[
    str | None,
    typer.Option("--key", envvar="DATAMARKET_API_KEY", help="API key for --url ($DATAMARKET_API_KEY)."),
]

ledger_app = typer.Typer(help="Inspect and verify the ledger.", no_args_is_help=True)


def _remote(url: str, key: str | None, call: Any) -> Any:
    """``call(client)`` on a :class:`datamarket.client.Client` of the service at ``url``; its errors as
    the command's (exit 2, the service's problem detail)."""
    try:
        from datamarket.client import Client, ClientError
    except ImportError as exc:  # httpx or tenacity missing
        raise _fail(
            f"--url needs the client extra: pip install 'datamarket[client]' ({exc.name} missing)"
        ) from None
    if not key:
        raise _fail("--url needs an API key: --key or $DATAMARKET_API_KEY")
    try:
        with Client(url, key) as client:
            return call(client)
    except ClientError as exc:
        raise _fail(f"{url}: {exc}") from None


def _one_source(db: str | None, file: Path | None, url: str | None) -> None:
    if sum(x is not None for x in (db, file, url)) > 1:
        raise _fail("give one of --db, --file and --url")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


def _engine(db: str | None, *, migrated: bool = True):  # type: ignore[no-untyped-def]
    """An engine on an existing datamarket database; with ``migrated``, at the newest revision."""
    from sqlalchemy.exc import SQLAlchemyError

    from datamarket.core.errors import DatamarketError
    from datamarket.ledger import current_revision, head_revision, make_engine
    from datamarket.service.config import database_url

    url = database_url(db)
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        if not Path(url[len("sqlite:///") :]).is_file():
            raise _fail(f"database_url: no such SQLite file {url[len('sqlite:///') :]!r}")
    try:
        engine = make_engine(url)
        rev = current_revision(engine)
        if rev is None:
            raise _fail(f"database_url: {url} holds no datamarket ledger (never migrated)")
        if migrated and rev != head_revision():
            raise _fail(
                f"database_url: {url} is at schema revision {rev}, this datamarket needs {head_revision()}; "
                "run `datamarket ledger migrate` first"
            )
    except DatamarketError as exc:
        raise _fail(str(exc)) from None
    except SQLAlchemyError as exc:
        raise _fail(f"database_url: cannot open {url}: {exc.__class__.__name__}") from None
    return engine


def _session(db: str | None):  # type: ignore[no-untyped-def]
    from datamarket.ledger import make_sessionmaker

    return make_sessionmaker(_engine(db))()


@ledger_app.command("migrate")
def migrate_cmd(db: DbOpt = None) -> None:
    """Upgrade an existing database to this version's schema (existing entries keep their hashes)."""
    from datamarket.ledger import current_revision, upgrade

    engine = _engine(db, migrated=False)
    before = current_revision(engine)
    upgrade(engine)
    typer.echo(f"schema revision {before} -> {current_revision(engine)}")


def _read_json(path: Path, what: str) -> object:
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise _fail(f"{what}: cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise _fail(f"{what}: {path} is not JSON ({exc})") from None


@ledger_app.command("verify")
def verify_cmd(
    db: DbOpt = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", help="Check an export (JSON Lines of `ledger export`) offline, without a database."
        ),
    ] = None,
    checkpoint: Annotated[
        list[Path] | None,
        typer.Option(
            "--checkpoint",
            help="A checkpoint (or a receipt carrying one, or a JSON list of them) the ledger must extend; "
            "repeatable.",
        ),
    ] = None,
    receipt: Annotated[
        list[Path] | None,
        typer.Option(
            "--receipt",
            help="A receipt to check on its own, offline: its entries' hashes and Merkle proofs against "
            "its root; with --db or --file, also a checkpoint the ledger must extend. Repeatable.",
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """Recompute the hash chain and check it against the rest of the database (rounds, submissions,
    deliverables) and any checkpoints; exit 1 when the ledger was tampered with. With only
    --receipt, check receipts alone (what a participant can do without the ledger). With --url and
    the operator's key, the service's export is downloaded and checked here, as --file checks one;
    with a participant's key and --receipt, the service checks that its ledger still extends each
    receipt's checkpoint (POST /ledger/checkpoint)."""
    from datamarket.ledger import parse_checkpoints

    _one_source(db, file, url)

    cps = []
    for path in [*(checkpoint or []), *(receipt or [])]:
        try:
            cps += parse_checkpoints(_read_json(path, "checkpoint"))
        except ValueError as exc:
            if path in (checkpoint or []):
                raise _fail(f"checkpoint: {path}: {exc}") from None
    own = _receipt_problems(receipt or [])
    if receipt and db is None and file is None and url is None:
        _report_receipts(own, json_out)
        return
    if url is not None and _is_participant(url, key):
        _remote_receipts(url, key, receipt or [], own, json_out)
        return
    report = _ledger_report(db, file, cps, url, key)
    if json_out:
        out = report.to_dict()
        if receipt:
            out["receipts"] = {str(p): found for p, found in own.items()}
        sys.stdout.write(json.dumps(out) + "\n")
    else:
        state = "OK" if report.ok else "TAMPERED"
        typer.echo(
            f"ledger {state}: {report.entries} entries in {report.rounds} rounds, "
            f"head {report.head_seq} {report.head_hash}" + (f", {len(cps)} checkpoint(s)" if cps else "")
        )
        for p in report.problems:
            typer.echo(f"  {p}")
        _report_receipts(own, False, exit_on_failure=False)
    if not report.ok or any(own.values()):
        raise typer.Exit(code=1)


def _is_participant(url: str, key: str | None) -> bool:
    """Whether ``key`` is a participant's at ``url`` (``/participants/me`` refuses the operator's)."""
    from datamarket.client import Forbidden

    def who(client: Any) -> bool:
        try:
            client.me()
        except Forbidden:
            return False
        return True

    return bool(_remote(url, key, who))


def _remote_receipts(
    url: str, key: str | None, paths: list[Path], own: dict[Path, list[str]], json_out: bool
) -> None:
    """A participant's check at ``url``: each receipt on its own (``own``) and the service's answer
    that its ledger extends the receipt's checkpoint."""
    if not paths:
        raise _fail("--url with a participant's key checks receipts: give --receipt")
    for path in paths:
        answer = _remote(url, key, lambda c, p=path: c.verify_checkpoint(_read_json(p, "receipt")))
        own[path] = [*own[path], *(f"service: {x}" for x in answer.problems)]
    _report_receipts(own, json_out)


def _ledger_report(
    db: str | None,
    file: Path | None,
    cps: list[dict[str, Any]],
    url: str | None = None,
    key: str | None = None,
) -> Any:
    """The verification of the database at ``db``, of the export ``file``, or of the export the
    service at ``url`` gives (checked here), with ``cps``."""
    import io

    from datamarket.ledger import verify_checkpoints, verify_export

    if url is not None:
        return verify_export(io.StringIO(_remote(url, key, lambda c: c.export_ledger())), cps)
    if file is None:
        with _session(db) as s:
            return verify_checkpoints(s, cps)
    try:
        with file.open() as fh:
            return verify_export(fh, cps)
    except OSError as exc:
        raise _fail(f"file: cannot read {file}: {exc.strerror}") from None


def _receipt_problems(paths: list[Path]) -> dict[Path, list[str]]:
    """What is wrong with each receipt file on its own (:func:`datamarket.ledger.receipt_problems`)."""
    from datamarket.ledger import receipt_problems

    out = {}
    for path in paths:
        data = _read_json(path, "receipt")
        out[path] = receipt_problems(data) if isinstance(data, dict) else ["not a JSON object"]
    return out


def _report_receipts(found: dict[Path, list[str]], json_out: bool, *, exit_on_failure: bool = True) -> None:
    if json_out:
        sys.stdout.write(json.dumps({"receipts": {str(p): f for p, f in found.items()}}) + "\n")
    for path, problems in found.items() if not json_out else ():
        typer.echo(f"receipt {path}: " + ("OK (entries and proofs hold)" if not problems else "FAILED"))
        for p in problems:
            typer.echo(f"  {p}")
    if exit_on_failure and any(found.values()):
        raise typer.Exit(code=1)


@ledger_app.command("export")
def export_cmd(
    db: DbOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write to this file (default: stdout).")] = None,
    url: UrlOpt = None,
    key: KeyOpt = None,
) -> None:
    """Write the ledger as JSON Lines: one entry per line with every field and its hash, then the
    round records and the head; `ledger verify --file` checks it offline. With --url, the running
    service's (the operator's key)."""
    from datamarket.ledger import export_lines

    _one_source(db, None, url)
    if url is not None:
        lines = _remote(url, key, lambda c: c.export_ledger()).splitlines(keepends=True)
    else:
        with _session(db) as s:
            lines = [line + "\n" for line in export_lines(s)]
    if out is None:
        sys.stdout.writelines(lines)
    else:
        out.write_text("".join(lines))
        typer.echo(f"wrote {len(lines)} lines to {out}", err=True)


@ledger_app.command("dump")
def dump_cmd(db: DbOpt = None, url: UrlOpt = None, key: KeyOpt = None) -> None:
    """Print every ledger entry and the chain head as JSON (with --url, the running service's, every
    page of it; the operator's key)."""
    from datamarket.ledger import dump

    _one_source(db, None, url)
    if url is not None:
        data = _remote(url, key, lambda c: c.ledger_entries())
    else:
        with _session(db) as s:
            data = dump(s)
    sys.stdout.write(json.dumps(data, indent=1) + "\n")


# ``serve``'s options: None when not given (the settings then take the environment or their default)
HostOpt = Annotated[str | None, typer.Option("--host", help="Interface to listen on.")]
PortOpt = Annotated[int | None, typer.Option("--port", min=1, max=65535, help="TCP port.")]
AdminKeyOpt = Annotated[str | None, typer.Option("--admin-key", help="Operator key ($DATAMARKET_ADMIN_KEY).")]
ExecutorOpt = Annotated[str | None, typer.Option("--executor", help="process, thread or dask.")]
WorkersOpt = Annotated[int | None, typer.Option("--workers", min=1, help="Clearing worker processes.")]
DaskOpt = Annotated[str | None, typer.Option("--dask", help="Dask scheduler address (with --executor dask).")]
LeaseOpt = Annotated[
    float | None, typer.Option("--lease", help="Seconds a claim on a round lasts without heartbeat.")
]
PollOpt = Annotated[float | None, typer.Option("--poll", help="Seconds between looks for claimable rounds.")]
AttemptsOpt = Annotated[
    int | None, typer.Option("--max-attempts", min=1, help="Expired leases after which a round is failed.")
]
GraceOpt = Annotated[
    float | None,
    typer.Option("--grace", help="On SIGTERM, seconds to let held rounds finish before release."),
]
AdapterOpt = Annotated[
    list[str] | None, typer.Option("--adapter", help="Extra market kind KIND=module:attribute (repeatable).")
]
FailuresOpt = Annotated[
    int | None,
    typer.Option(
        "--auth-failures", min=0, help="Unknown API keys per client address and window before 429 (0: off)."
    ),
]
WindowOpt = Annotated[float | None, typer.Option("--auth-window", min=0.001, help="Seconds of that window.")]
ForwardedOpt = Annotated[
    str | None,
    typer.Option(
        "--forwarded-allow-ips",
        help="Reverse proxies (comma-separated IPs or networks, * for all) whose X-Forwarded-For and "
        "X-Forwarded-Proto name the client and scheme ($FORWARDED_ALLOW_IPS; default: none, not even "
        "127.0.0.1).",
    ),
]
LogFormatOpt = Annotated[
    str | None,
    typer.Option(
        "--log-format",
        help="auto, json or human ($DATAMARKET_LOG_FORMAT; auto: human on a terminal, JSON otherwise).",
    ),
]
LogLevelOpt = Annotated[
    str | None,
    typer.Option("--log-level", help="debug, info, warning or error ($DATAMARKET_LOG_LEVEL; default info)."),
]
AccessLogOpt = Annotated[
    bool | None,
    typer.Option(
        "--access-log/--no-access-log",
        help="One log line per request: method, route, path without the query, status, duration "
        "(default: off; the metrics count every request).",
    ),
]
MetricsPortOpt = Annotated[
    int | None,
    typer.Option(
        "--metrics-port",
        min=1,
        max=65535,
        help="Also serve /metrics without a key on this port (a separate bind; GET /metrics on the "
        "service asks for the admin key).",
    ),
]
MetricsHostOpt = Annotated[
    str | None, typer.Option("--metrics-host", help="Interface of --metrics-port (default 127.0.0.1).")
]
DrainOpt = Annotated[
    float | None,
    typer.Option(
        "--drain",
        min=0,
        help="On SIGTERM, seconds to keep serving while /ready answers 503, so load balancers drain "
        "the process, before stopping (default 5; 0: stop at once).",
    ),
]


ReusePortOpt = Annotated[
    bool | None,
    typer.Option(
        "--reuse-port",
        help="Listen with SO_REUSEPORT: several processes on this host share --host:--port and the "
        "kernel spreads connections over them (the deployment of docs/service.md, Performance).",
    ),
]


def serve(
    db: DbOpt = None,
    host: HostOpt = None,
    port: PortOpt = None,
    admin_key: AdminKeyOpt = None,
    executor: ExecutorOpt = None,
    workers: WorkersOpt = None,
    dask_address: DaskOpt = None,
    lease: LeaseOpt = None,
    poll: PollOpt = None,
    max_attempts: AttemptsOpt = None,
    grace: GraceOpt = None,
    adapter: AdapterOpt = None,
    auth_failures: FailuresOpt = None,
    auth_window: WindowOpt = None,
    forwarded_allow_ips: ForwardedOpt = None,
    log_format: LogFormatOpt = None,
    log_level: LogLevelOpt = None,
    access_log: AccessLogOpt = None,
    metrics_port: MetricsPortOpt = None,
    metrics_host: MetricsHostOpt = None,
    drain: DrainOpt = None,
    reuse_port: ReusePortOpt = None,
) -> None:
    """Run the marketplace HTTP API (OpenAPI at /docs) on the ledger database.

    Options not given take the environment's value ($DATAMARKET_DATABASE_URL, $DATAMARKET_ADMIN_KEY)
    or the default of the service's settings (datamarket.service.config.ServiceSettings); without an
    admin key one is made up and printed once. Several processes may serve one database (behind a
    load balancer): each claims rounds with a lease, and SIGTERM stops claiming, lets held rounds
    finish for --grace seconds and releases the rest. A client address that presents --auth-failures
    unknown keys within --auth-window seconds is answered 429 until the oldest of them leaves the
    window (per process). The client address is the TCP peer's unless the peer is one of
    --forwarded-allow-ips: a proxy listed there names the client in X-Forwarded-For.

    Operations: /health is liveness, /ready readiness (database, schema; 503 while draining after
    SIGTERM); /metrics is Prometheus' (admin key, or no key on --metrics-port). Logs go to stderr,
    JSON or human (--log-format), each line with its request's id (X-Request-ID)."""
    from datamarket.core.errors import DatamarketError
    from datamarket.service.app import create_app
    from datamarket.service.observability.logs import configure_logging

    options = {
        "database_url": db, "host": host, "port": port, "admin_key": admin_key, "executor": executor,
        "max_workers": workers, "dask_address": dask_address, "forwarded_allow_ips": forwarded_allow_ips,
        "log_format": log_format, "log_level": log_level, "access_log": access_log,
        "metrics_port": metrics_port, "metrics_host": metrics_host, "drain_s": drain,
        "reuse_port": reuse_port,
    }  # fmt: skip
    leases = {"lease_s": lease, "poll_s": poll, "max_attempts": max_attempts, "grace_s": grace}
    throttle = {"limit": auth_failures, "window_s": auth_window}
    try:
        settings = serve_settings(options, leases, throttle, adapter or [])
        configure_logging(settings.log_format, settings.log_level, secrets=[settings.operator_key()])
        app = create_app(settings)
    except (DatamarketError, ValueError, ImportError, AttributeError, TypeError) as exc:
        raise _fail(str(exc)) from None
    _run(app, settings)


def _run(app: Any, settings: ServiceSettings) -> None:
    """Serve ``app`` with uvicorn until stopped; the first SIGTERM drains for ``settings.drain_s``
    (:class:`~datamarket.service.observability.readiness.DrainingServer`)."""
    import uvicorn

    from datamarket.service.observability.readiness import DrainingServer

    # proxy_headers=False: uvicorn would trust X-Forwarded-For from 127.0.0.1; the app trusts only
    # settings.forwarded_allow_ips (create_app). log_config=None: the logging configured above stays;
    # access_log=False: the app writes its own access lines, without query strings
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        proxy_headers=False,
        log_config=None,
        access_log=False,
    )
    server = DrainingServer(config, app.state.service.readiness, settings.drain_s)
    server.run(sockets=[shared_socket(settings.host, settings.port)] if settings.reuse_port else None)
    if not server.started:
        raise typer.Exit(code=3)  # as uvicorn.run: the server did not start (port taken...)


def shared_socket(host: str, port: int) -> Any:
    """A socket bound to ``host:port`` with ``SO_REUSEPORT`` (and ``SO_REUSEADDR``), which other
    processes of this user may bind too (``--reuse-port``); uvicorn listens on it."""
    import socket

    if not hasattr(socket, "SO_REUSEPORT"):
        raise _fail("--reuse-port: this platform has no SO_REUSEPORT")
    family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        raise _fail(f"--reuse-port: cannot bind {host}:{port}: {exc.strerror}") from None
    return sock


def serve_settings(
    options: dict[str, Any], leases: dict[str, Any], throttle: dict[str, Any], adapters: list[str]
) -> ServiceSettings:
    """The service settings from the environment and the options given (None: not given); without an
    admin key, a random one is made up and printed once."""
    import dataclasses
    import secrets

    from datamarket.service.clearing.leases import Leases
    from datamarket.service.config import ServiceSettings, parse_adapter
    from datamarket.service.throttle import ThrottleSettings

    def given(values: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in values.items() if v is not None}

    settings = ServiceSettings.from_env(
        **options, leases=Leases(**given(leases)), throttle=ThrottleSettings(**given(throttle))
    ).with_adapters(dict(parse_adapter(item) for item in adapters))
    if settings.admin_key is None:
        settings = dataclasses.replace(settings, admin_key="dm_admin_" + secrets.token_urlsafe(24))
        typer.echo(f"admin key (not stored, shown once): {settings.admin_key}", err=True)
    return settings


def register(app: typer.Typer) -> None:
    """Add ``serve`` and the ``ledger`` sub-app to the main CLI."""
    app.command("serve")(serve)
    app.add_typer(ledger_app, name="ledger")
