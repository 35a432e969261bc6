"""CLI commands of the service: ``datamarket serve`` and ``datamarket ledger verify|export|dump|migrate``.

Registered on the main Typer app by :func:`register` (``datamarket.cli`` calls it); heavy imports
(FastAPI, uvicorn, SQLAlchemy) happen inside the commands, so ``datamarket --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default $DATAMARKET_DATABASE_URL or sqlite:///datamarket.db)."),
]

ledger_app = typer.Typer(help="Inspect and verify the ledger.", no_args_is_help=True)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


def _engine(db: str | None, *, migrated: bool = True):  # type: ignore[no-untyped-def]
    """An engine on an existing datamarket database; with ``migrated``, at the newest revision."""
    from sqlalchemy.exc import SQLAlchemyError

    from datamarket.core.errors import DatamarketError
    from datamarket.ledger import current_revision, database_url, head_revision, make_engine

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
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Recompute the hash chain and check it against the rest of the database (rounds, submissions,
    deliverables) and any checkpoints; exit 1 when the ledger was tampered with."""
    from datamarket.ledger import parse_checkpoints, verify_checkpoints, verify_export

    cps = []
    for path in checkpoint or []:
        try:
            cps += parse_checkpoints(_read_json(path, "checkpoint"))
        except ValueError as exc:
            raise _fail(f"checkpoint: {path}: {exc}") from None
    if file is not None:
        try:
            with file.open() as fh:
                report = verify_export(fh, cps)
        except OSError as exc:
            raise _fail(f"file: cannot read {file}: {exc.strerror}") from None
    else:
        with _session(db) as s:
            report = verify_checkpoints(s, cps)
    if json_out:
        sys.stdout.write(json.dumps(report.to_dict()) + "\n")
    else:
        state = "OK" if report.ok else "TAMPERED"
        typer.echo(
            f"ledger {state}: {report.entries} entries in {report.rounds} rounds, "
            f"head {report.head_seq} {report.head_hash}" + (f", {len(cps)} checkpoint(s)" if cps else "")
        )
        for p in report.problems:
            typer.echo(f"  {p}")
    if not report.ok:
        raise typer.Exit(code=1)


@ledger_app.command("export")
def export_cmd(
    db: DbOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write to this file (default: stdout).")] = None,
) -> None:
    """Write the ledger as JSON Lines: one entry per line with every field and its hash, then the
    round records and the head; `ledger verify --file` checks it offline."""
    from datamarket.ledger import export_lines

    with _session(db) as s:
        lines = [line + "\n" for line in export_lines(s)]
    if out is None:
        sys.stdout.writelines(lines)
    else:
        out.write_text("".join(lines))
        typer.echo(f"wrote {len(lines)} lines to {out}", err=True)


@ledger_app.command("dump")
def dump_cmd(db: DbOpt = None) -> None:
    """Print every ledger entry and the chain head as JSON."""
    from datamarket.ledger import dump

    with _session(db) as s:
        sys.stdout.write(json.dumps(dump(s), indent=1) + "\n")


def serve(
    db: DbOpt = None,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    admin_key: Annotated[
        str | None, typer.Option("--admin-key", envvar="DATAMARKET_ADMIN_KEY", help="Operator key.")
    ] = None,
    executor: Annotated[str, typer.Option("--executor", help="process, thread or dask.")] = "process",
    workers: Annotated[int, typer.Option("--workers", min=1, help="Clearing worker processes.")] = 2,
    dask_address: Annotated[
        str | None, typer.Option("--dask", help="Dask scheduler address (with --executor dask).")
    ] = None,
    lease: Annotated[
        float, typer.Option("--lease", help="Seconds a claim on a round lasts without heartbeat.")
    ] = 30.0,
    poll: Annotated[float, typer.Option("--poll", help="Seconds between looks for claimable rounds.")] = 1.0,
    max_attempts: Annotated[
        int, typer.Option("--max-attempts", min=1, help="Expired leases after which a round is failed.")
    ] = 3,
    grace: Annotated[
        float, typer.Option("--grace", help="On SIGTERM, seconds to let held rounds finish before release.")
    ] = 10.0,
    adapter: Annotated[
        list[str] | None,
        typer.Option("--adapter", help="Extra market kind KIND=module:attribute (repeatable)."),
    ] = None,
    auth_failures: Annotated[
        int,
        typer.Option(
            "--auth-failures",
            min=0,
            help="Unknown API keys per client address and window before 429 (0: off).",
        ),
    ] = 20,
    auth_window: Annotated[
        float, typer.Option("--auth-window", min=0.001, help="Seconds of that window.")
    ] = 60.0,
) -> None:
    """Run the marketplace HTTP API (OpenAPI at /docs) on the ledger database.

    Several processes may serve one database (behind a load balancer): each claims rounds with a
    lease, and SIGTERM stops claiming, lets held rounds finish for --grace seconds and releases the
    rest. A client address that presents --auth-failures unknown keys within --auth-window seconds
    is answered 429 until the oldest of them leaves the window (per process)."""
    import secrets

    import uvicorn

    from datamarket.core.errors import DatamarketError
    from datamarket.ledger import database_url
    from datamarket.service.adapters import builtin_adapters
    from datamarket.service.app import create_app
    from datamarket.service.rounds import Leases
    from datamarket.service.throttle import AuthThrottle

    if not admin_key:
        admin_key = "dm_admin_" + secrets.token_urlsafe(24)
        typer.echo(f"admin key (not stored, shown once): {admin_key}", err=True)
    refs = builtin_adapters()
    for item in adapter or []:
        kind, sep, ref = item.partition("=")
        if not sep or not kind or ":" not in ref:
            raise _fail(f"adapter: expected KIND=module:attribute, got {item!r}")
        refs[kind] = ref
    try:
        app = create_app(
            database_url(db),
            admin_key=admin_key,
            executor=executor,
            max_workers=workers,
            dask_address=dask_address,
            adapters=refs,
            leases=Leases(lease_s=lease, poll_s=poll, max_attempts=max_attempts, grace_s=grace),
            throttle=AuthThrottle(limit=auth_failures, window_s=auth_window),
        )
    except (DatamarketError, ValueError, ImportError, AttributeError, TypeError) as exc:
        raise _fail(str(exc)) from None
    uvicorn.run(app, host=host, port=port, log_level="info")


def register(app: typer.Typer) -> None:
    """Add ``serve`` and the ``ledger`` sub-app to the main CLI."""
    app.command("serve")(serve)
    app.add_typer(ledger_app, name="ledger")
