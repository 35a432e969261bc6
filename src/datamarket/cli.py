"""Command-line interface: parse, call one library function, print or write files.

Exit codes: 0 success; 2 bad input (a malformed scenario, an unknown kind, NaN or negative costs...:
one line ``error: FILE: FIELD: message`` on standard error, never a traceback; FIELD counts list
positions from 1, ``sellers[1].cost``, and an unknown key or kind gets a "did you mean"), and also a
command that needs an optional extra which is not installed (``serve`` and ``ledger`` need
``[service]``, a Dask scheduler needs ``[dask]``: the line names the extra to install); 3 with
``--fail-on-audit`` when a property the mechanism guarantees fails; 4 when the market has no
equilibrium (the result, with its ``reason``, is still printed), and with ``--fail-on-audit`` also when
the result's certificate fails (status ``unverified`` or ``no_equilibrium_found``: an answer whose
claim the engine could not check).
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import json
import logging
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from datamarket import __version__
from datamarket.core.errors import DatamarketError

EXIT_BAD_INPUT = 2
EXIT_AUDIT_FAILED = 3
EXIT_NO_EQUILIBRIUM = 4


class _Group(typer.core.TyperGroup):
    """The root command: once the command tree is built, no flag shows a ``<bool>`` type in any help."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        _plain_flags(self)


def _plain_flags(cmd: Any) -> None:
    """Give every flag (``--json``, ``--help``...) of ``cmd`` and its subcommands an empty metavar.

    Typer prints each option's type beside it, ``<bool>`` for a flag, which takes no value. The help
    option is made on first use and then cached on the command (click's ``_help_option``), so making
    it here, with a plain context, is the one every later help uses.
    """
    params = [*cmd.params, cmd.get_help_option(typer.Context(cmd))]
    for param in params:
        if isinstance(param, typer.core.TyperOption) and param.is_flag and not param.count:
            param.metavar = ""
    for sub in getattr(cmd, "commands", {}).values():
        _plain_flags(sub)


app = typer.Typer(
    name="datamarket",
    cls=_Group,
    help="Data markets: truthful payments, Shapley revenue division, envy-free pricing, exact ledger.\n\n"
    "Exit codes: 0 success, 2 bad input, 3 a guaranteed property fails (run --fail-on-audit), "
    "4 no equilibrium.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
from datamarket.service.commands import register as _register_service  # noqa: E402

_register_service(app)
# Piped output is not cut to 80 columns: tables keep their full width when stdout is not a terminal.
console = Console(width=None if sys.stdout.isatty() else 10_000)
err_console = Console(stderr=True)

Verbose = Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logging (-vv).")]
SeedOpt = Annotated[
    int | None, typer.Option("--seed", min=0, help="Override the seed of every random stream.")
]


log = logging.getLogger("datamarket.cli")


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` on stderr and return the exit-2 exception to raise."""
    err_console.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


def _read_scenario(path: Path, seed: int | None) -> Any:
    from datamarket.scenarios import parse_scenario

    if not path.is_file():
        raise fail(f"scenario: no such file {str(path)!r}")
    fmt = "json" if path.suffix.lower() == ".json" else "toml"
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"scenario: cannot read {str(path)!r}: {exc}") from None
    try:
        return parse_scenario(text, fmt, seed=seed)
    except DatamarketError as exc:
        raise fail(f"{path}: {exc}") from None


def _print_result(result: Any) -> None:
    """Rich tables: the scenario's tables and its audits (with whether the paper predicts a failure)."""
    console.print(f"[bold]{result.kind}[/bold] (seed {result.seed})")
    if result.status != "ok":
        console.print(f"[bold]{result.status}[/bold]: {result.reason}", highlight=False)
    for title, rows in result.tables.items():
        console.print(_rich_table(title, rows))
    if not result.certificate.empty:
        console.print(_rich_table("certificate", result.certificate.rows()))
    if result.audits:
        rows = [
            {"audit": k, **{c: v for c, v in a.to_dict().items() if c != "property"}}
            for k, a in result.audits.items()
        ]
        console.print(_rich_table("audits", rows))
        for line in _audit_notes(result):
            console.print(line, highlight=False, markup=False)


def _audit_notes(result: Any) -> list[str]:
    """One line per failing audit saying whether the mechanism guarantees it or the paper predicts it."""
    from datamarket.core.audits import AuditStatus

    words = {
        AuditStatus.FAILS_GUARANTEED: "FAILS although the mechanism guarantees it",
        AuditStatus.FAILS_AS_PREDICTED: "fails, as the paper predicts (not guaranteed in this scope)",
        AuditStatus.FAILS_UNCLAIMED: "fails; the paper makes no claim about it",
    }
    return [f"{k} ({a.scope}): {words[a.status]}" for k, a in result.audits.items() if not a.holds]


def _print_csv(result: Any) -> None:
    """Every table as CSV (snake_case headers, full precision), each after a ``# table: NAME`` line."""
    from datamarket.experiments import csv_text

    for name, rows in result.json_tables().items():
        sys.stdout.write(f"# table: {name}\n{csv_text(rows)}\n")


def _exit_code(result: Any, fail_on_audit: bool) -> int:
    from datamarket.core.audits import AuditStatus

    if result.status == "no_equilibrium":
        return EXIT_NO_EQUILIBRIUM
    if result.status != "ok":  # unverified, no_equilibrium_found: the certificate failed
        err_console.print(f"warning: {result.status}: {result.reason}", highlight=False, markup=False)
    if fail_on_audit and result.failures(AuditStatus.FAILS_GUARANTEED):
        return EXIT_AUDIT_FAILED
    if fail_on_audit and result.status != "ok":
        return EXIT_NO_EQUILIBRIUM
    return 0


def _cell(value: Any) -> str:
    """A table cell: numbers by the one formatter (:class:`~datamarket.core.display.Formatter`, 6
    significant digits, the locale's grouping), ``None`` (no claim, no value) as ``-``; the JSON and
    CSV exports keep full precision."""
    if value is None:
        return "-"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _numbers().quantity(value)
    return str(value)


@functools.cache
def _numbers() -> Any:
    """The formatter of the CLI's tables (made on first use: babel stays out of ``--help``)."""
    from datamarket.core.display import Formatter

    return Formatter(digits=6)


def _rich_table(title: str, rows: list[dict[str, Any]]) -> Table:
    """A table of records; long cells wrap or fold, never ``...``. On a terminal too narrow for its
    columns' longest words it is printed as one block of ``column  value`` lines per record."""
    from datamarket.experiments import columns

    cols = columns(rows)
    cells = [[_cell(r.get(c, "")) for c in cols] for r in rows]
    if console.is_terminal and len(cols) > 2 and _min_width(cols, cells) > console.width:
        return _record_table(title, rows, cols)
    table = Table(title=title, show_lines=False)
    for j, c in enumerate(cols):  # the first column names the row: kept whole where it fits
        table.add_column(c, overflow="fold", no_wrap=j == 0)
    for row in cells:
        table.add_row(*row)
    if not console.is_terminal:
        table.min_width = None
        for col in table.columns:
            col.no_wrap = True
    return table


def _min_width(cols: list[str], cells: list[list[str]]) -> int:
    """Width a table needs for no word of a header or cell to be cut (borders and padding included)."""
    words = [
        max((len(w) for t in (c, *(row[j] for row in cells)) for w in t.split()), default=1)
        for j, c in enumerate(cols)
    ]
    return sum(words) + 3 * len(cols) + 1


def _record_table(title: str, rows: list[dict[str, Any]], cols: list[str]) -> Table:
    """``rows`` transposed for a narrow terminal: two columns, one section per record."""
    table = Table(title=title, show_header=False)
    table.add_column("column", style="bold", overflow="fold")
    table.add_column("value", overflow="fold")
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            table.add_row(c, _cell(r.get(c, "")), end_section=j == len(cols) - 1 and i < len(rows) - 1)
    return table


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"datamarket {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Data markets: truthful payments, Shapley revenue division, envy-free pricing, exact ledger."""


@app.command()
def version() -> None:
    """Print the package version."""
    console.print(__version__)


def examples_dir() -> Path:
    """The example scenarios: shipped in the wheel as ``datamarket/examples`` (hatch force-include of the
    repository's ``examples/``, the single source), or the checkout's ``examples/`` for an editable install.
    """
    shipped = Path(__file__).parent / "examples"
    return shipped if shipped.is_dir() else Path(__file__).resolve().parents[2] / "examples"


def available_examples() -> dict[str, Path]:
    """Example name (path under ``examples/`` without ``.toml``; ``bad/`` ones excluded) -> file."""
    root = examples_dir()
    files = sorted(root.glob("*.toml")) + sorted(root.glob("valuation/*.toml"))
    return {p.relative_to(root).with_suffix("").as_posix(): p for p in files}


def _describe(path: Path) -> str:
    """The example's opening comment up to the end of a line that ends a sentence (no command line)."""
    found: list[str] = []
    for line in path.read_text().splitlines():
        text = line.lstrip("# ").strip()
        if not line.startswith("#") or (found and not text):
            break
        if text and not text.startswith("datamarket "):
            found.append(text)
            if text.endswith("."):  # its first sentence(s), up to the line that ends one
                break
    return " ".join(found)


class _EpilogCommand(typer.core.TyperCommand):
    """A command whose help ends with a list made when the help is shown (not at import)."""

    make_epilog: Any = None

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self.epilog = type(self).make_epilog()
        super().format_help(ctx, formatter)


class _ExampleCommand(_EpilogCommand):
    make_epilog = staticmethod(lambda: "Examples: " + ", ".join(available_examples()) + ".")


@app.command(name="example", cls=_ExampleCommand)
def example_cmd(
    name: Annotated[
        str | None,
        typer.Argument(metavar="NAME", help="Example name (listed below); omit to list them."),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write to this file (default: stdout).")] = None,
) -> None:
    """List the example scenarios, or print (or write with --out) one of them."""
    found = available_examples()
    if name is None:
        rows = [{"example": key, "about": _describe(path)} for key, path in found.items()]
        console.print(_rich_table("examples (datamarket example NAME --out FILE)", rows))
        return
    if name not in found:
        close = difflib.get_close_matches(name, list(found), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise fail(f"example: unknown example {name!r}{hint}; one of {', '.join(found)}")
    text = found[name].read_text()
    if out is None:
        sys.stdout.write(text)
        return
    try:
        out.write_text(text)
    except OSError as exc:
        raise fail(f"out: cannot write {str(out)!r}: {exc}") from None
    err_console.print(f"wrote {out}", highlight=False)


@app.command()
def run(
    scenario: Annotated[Path, typer.Argument(metavar="SCENARIO", help="Scenario file (.toml or .json).")],
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON object (same as --format json).")
    ] = False,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="[table|json|csv]",
            help="table (rich tables), json (one object) or csv (every table).",
        ),
    ] = "table",
    out: Annotated[Path | None, typer.Option("--out", help="Write a report directory.")] = None,
    fail_on_audit: Annotated[
        bool,
        typer.Option(
            "--fail-on-audit",
            help="Exit 3 when a property the mechanism guarantees fails, 4 when the result's certificate "
            "fails (status unverified or no_equilibrium_found).",
        ),
    ] = False,
    seed: SeedOpt = None,
    verbose: Verbose = 0,
) -> None:
    """Run a scenario file and print its outcome and audits.

    Exit codes: 0 success, 2 bad input, 3 a guaranteed property fails (with --fail-on-audit), 4 the market has no equilibrium (the result and its reason are printed), or, with --fail-on-audit, the result's certificate fails (status unverified or no_equilibrium_found).
    """  # noqa: E501 (typer's rich help keeps a docstring's line breaks: one paragraph, one line)
    from datamarket.experiments import write_scenario_report
    from datamarket.scenarios import run_scenario

    _setup_logging(verbose)
    if fmt not in ("table", "json", "csv"):
        raise fail(f"--format: must be table, json or csv, got {fmt!r}")
    fmt = "json" if json_out else fmt
    config = _read_scenario(scenario, seed)
    t0 = time.perf_counter()
    log.info("running %s scenario %s", config.kind, scenario)
    try:
        result = run_scenario(config)
    except DatamarketError as exc:
        raise fail(str(exc)) from None
    log.info("%s ran in %.2f s", config.kind, time.perf_counter() - t0)
    if out is not None:
        write_scenario_report(result, out, scenario.stem)
        log.info("report written to %s", out)
    if fmt == "json":
        sys.stdout.write(json.dumps(result.to_json()) + "\n")
    elif fmt == "csv":
        _print_csv(result)
    else:
        _print_result(result)
    code = _exit_code(result, fail_on_audit)
    if code:
        raise typer.Exit(code=code)


def _demo_kind(kind: str, out: Path, seed: int) -> dict[str, Any]:
    """Run the default scenario of ``kind``, write its report and demo figures; its summary row."""
    from datamarket.core.audits import AuditStatus
    from datamarket.experiments import available_experiments, reproduce, write_scenario_report
    from datamarket.scenarios import default_config, run_scenario

    t = time.perf_counter()
    console.print(f"[bold]== {kind}[/bold]")
    result = run_scenario(default_config(kind, seed=seed))
    log.info("%s: scenario ran in %.2f s", kind, time.perf_counter() - t)
    write_scenario_report(result, out, kind)
    _print_result(result)
    figs: list[Path] = []
    if kind in available_experiments():
        from datamarket.experiments import figures

        names = [f.name for f in figures(kind) if f.in_demo]
        if names:
            made = reproduce(kind, out / "figures", quick=True, seed=seed, only=names)
            figs = [p for p in made if p.suffix == ".png"]
    broken = result.failures(AuditStatus.FAILS_GUARANTEED, AuditStatus.FAILS_UNCLAIMED)
    predicted = result.failures(AuditStatus.FAILS_AS_PREDICTED)
    return {
        "kind": kind,
        "audits_not_holding": ", ".join(broken) or "none",
        "failing_as_paper_predicts": ", ".join(predicted) or "none",
        "figures": len(figs),
        "seconds": round(time.perf_counter() - t, 2),
    }


def _demo_service(out: Path, seed: int) -> None:
    """The service part of the demo (skipped, with the reason, without the ``service`` extra)."""
    if missing_extra("service") is not None:
        console.print(f"service demo skipped: {missing_extra('service')}")
        return
    from datamarket.service.demo import report_service_demo

    report_service_demo(console, out, seed=seed)
    console.print(
        "web portal on the demo's data: run [bold]datamarket demo --serve[/bold] "
        "(or [bold]make demo-serve[/bold]), then open http://127.0.0.1:8000/portal/ and sign in with "
        "one of the keys it prints"
    )


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Report directory.")] = Path("demo-report"),
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of every random stream.")] = 0,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="Run only the service demo, write its report into --out, then keep the service running "
            "on its data and print the sign-in keys of the portal (Ctrl-C or SIGTERM stops it and "
            "removes the data).",
        ),
    ] = False,
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port of --serve (0: a free one).")
    ] = 8000,
    verbose: Verbose = 0,
) -> None:
    """The main job: run a small complete market of each family and write a report directory."""
    from datamarket.experiments import markdown_table
    from datamarket.scenarios import available_kinds

    _setup_logging(verbose)
    if serve:
        _demo_serve(out, seed, port)
        return
    t0 = time.perf_counter()
    summary = [_demo_kind(kind, out, seed) for kind in available_kinds()]
    (out / "README.md").write_text("# datamarket demo report\n\n" + markdown_table(summary) + "\n")
    console.print(_rich_table("demo summary", summary))
    console.print(f"report written to {out}/ in {time.perf_counter() - t0:.1f} s")
    _demo_service(out, seed)


def _demo_serve(out: Path, seed: int, port: int) -> None:
    """``demo --serve``: the service demo (its report written into ``out``), then the service kept
    running until Ctrl-C or SIGTERM, which stop it and remove its temporary data (exit code 0)."""
    err = missing_extra("service")
    if err is not None:
        raise fail(err)
    from datamarket.service.demo import report_service_demo

    def hold(url: str, admin_key: str, keys: dict[str, str]) -> None:
        console.print(f"\n[bold]portal:[/bold] {url}/portal/  (JSON API: {url}/docs)")
        console.print("sign in with one of these keys (valid while this runs; Ctrl-C stops it):")
        console.print(f"  operator   {admin_key}")
        for name, key in keys.items():
            console.print(f"  {name:<10} {key}")
        while True:
            time.sleep(3600)

    try:
        with _interrupted_by_signals():
            report_service_demo(console, out, seed=seed, hold=hold, port=port)
    except KeyboardInterrupt:
        console.print("stopped; the demo's data are removed")


@contextlib.contextmanager
def _interrupted_by_signals() -> Iterator[None]:
    """Within the block, SIGTERM stops the process as Ctrl-C (SIGINT) does: :class:`KeyboardInterrupt`
    in the main thread, so every ``with`` and ``finally`` on the way out runs (the server stops, the
    temporary directory is removed). Only the first signal interrupts: later ones are ignored until
    the block is left, so that the clean-up is not cut short; the previous handlers come back then."""
    signals = (signal.SIGINT, signal.SIGTERM)

    def interrupt(signum: int, frame: Any) -> None:
        for s in signals:
            signal.signal(s, signal.SIG_IGN)
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, interrupt) for s in signals}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _reproduce_epilog() -> str:
    """The kinds ``reproduce`` takes and the figures of each, from the registry (one paragraph each)."""
    from datamarket.experiments import available_experiments, figures

    lines = ["Kinds and their figures (--figure NAME):"]
    lines += [f"{k}: {', '.join(f.name for f in figures(k))}" for k in available_experiments()]
    return "\n\n".join(lines)


class _ReproduceCommand(_EpilogCommand):
    make_epilog = staticmethod(_reproduce_epilog)


@app.command(name="reproduce", cls=_ReproduceCommand)
def reproduce_cmd(
    kind: Annotated[str, typer.Argument(metavar="KIND", help="Paper family: one of the kinds listed below.")],
    out: Annotated[Path, typer.Option("--out", help="Output directory.")] = Path("reproduce-out"),
    quick: Annotated[bool, typer.Option("--quick", help="Small sizes (for tests).")] = False,
    figure: Annotated[
        list[str] | None,
        typer.Option(
            "--figure",
            metavar="NAME",
            help="Only this figure of KIND (listed below; repeat the option for several).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of every random stream.")] = 0,
    verbose: Verbose = 0,
) -> None:
    """Regenerate a paper's figures (PNG) with the data behind them (CSV, JSON), one figure at a time.

    On standard error, each figure's number, kind and name (computing 2/5 broker/profit_vs_n) before it and its time after it; -v logs each stage.
    """  # noqa: E501 (one paragraph, one line: typer's rich help keeps line breaks)
    from datamarket.experiments import reproduce

    _setup_logging(verbose)
    t_fig = [time.perf_counter()]

    def progress(message: str) -> None:
        if message.startswith("[1/"):
            t_fig[0] = time.perf_counter()
        else:
            err_console.print(f"  done in {time.perf_counter() - t_fig[0]:.1f} s", highlight=False)
            t_fig[0] = time.perf_counter()
        err_console.print(f"computing {message}", highlight=False)

    t0 = time.perf_counter()
    try:
        paths = reproduce(kind, out, quick=quick, seed=seed, only=figure or None, progress=progress)
    except DatamarketError as exc:
        raise fail(str(exc)) from None
    if paths:
        err_console.print(f"  done in {time.perf_counter() - t_fig[0]:.1f} s", highlight=False)
    for p in paths:
        console.print(str(p))
    err_console.print(f"{kind}: {len(paths)} files in {time.perf_counter() - t0:.1f} s", highlight=False)


def _valuation_inputs(
    config_path: Path, scheduler: str | None, seed: int | None
) -> tuple[Any, Any, dict[str, Any]]:
    """The valuation config (``--scheduler`` applied), its table (``TabularData``) and what was read."""
    from datamarket import scenarios as vc  # the valuation-config functions of its public face

    if not config_path.is_file():
        raise fail(f"config: no such file {str(config_path)!r}")
    fmt = "json" if config_path.suffix.lower() == ".json" else "toml"
    try:
        config = vc.parse_valuation_config(config_path.read_text(), fmt, seed=seed)
    except DatamarketError as exc:
        raise fail(f"{config_path}: {exc}") from None
    if scheduler is not None:
        config = config.model_copy(update={"backend": vc.BackendSpec(name="dask", scheduler=scheduler)})
    data, dataset_read = _valuation_table(config, config_path)
    dataset_read.update(rows=int(data.x.shape[0]), columns=int(data.x.shape[1]))
    return config, data, dataset_read


def _valuation_table(config: Any, config_path: Path) -> tuple[Any, dict[str, Any]]:
    """The config's dataset (a bundled set, or the CSV/Parquet file beside the config), what was read."""
    from datamarket import _value_files
    from datamarket import scenarios as vc

    ds = config.dataset
    if ds.file is None:
        name = ds.name or "breast_cancer"
        return vc.TabularData(*vc.bundled_dataset(name)), {"source": "bundled", "name": name}
    kind = "csv" if ds.csv is not None else "parquet"
    path = (config_path.parent / ds.file).resolve()
    if not path.is_file():
        raise fail(f"dataset.{kind}: no such file {str(path)!r}")
    if kind == "parquet" and (missing := missing_extra("parquet")) is not None:
        raise fail(f"dataset.parquet: {missing}")
    columns = _value_files.parquet_columns(path) if kind == "parquet" else vc.csv_columns(path.read_text())
    data = vc.dataset_from_columns(columns, ds.target, config.sellers.column, fmt=kind)
    return data, {"source": kind, "path": str(path), "name": path.name}


def _valuation_game(config: Any, data: Any, cache_dir: Path | None) -> Any:
    """The config's game on the table ``data``, with its persistent coalition cache in ``cache_dir``."""
    from datamarket import scenarios as vc
    from datamarket.valuation.cache import PersistentCache

    game = vc.build_game(config, data.x, data.y, data.sources)
    if cache_dir is not None:
        game.cache = PersistentCache(cache_dir, game.fingerprint())
    return game


def _run_valuation(config: Any, game: Any, json_out: bool) -> Any:
    """Run the valuation on the config's backend with a progress bar on stderr (when a terminal)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from datamarket import scenarios as vc
    from datamarket.valuation import ProcessBackend, ProgressInfo, resolve_backend
    from datamarket.valuation.cache import PersistentCache

    be = config.backend
    backend: Any = (
        ProcessBackend(be.n_workers)
        if be.name == "processes"
        else resolve_backend(be.scheduler if be.name == "dask" else None)
    )
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[evals]} evaluations"),
        TextColumn("max stderr {task.fields[stderr]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(
        *columns, console=err_console, transient=json_out, disable=not err_console.is_terminal
    ) as bar:
        task = bar.add_task(config.method.name, total=1.0, evals=0, stderr="-")

        def report(p: ProgressInfo) -> None:
            se = "-" if p.max_stderr is None else f"{p.max_stderr:.4f}"
            bar.update(task, completed=p.fraction, evals=p.evaluations, stderr=se)

        try:
            return vc.run_valuation(config, game, backend, progress=report)
        finally:
            backend.close()
            if isinstance(game.cache, PersistentCache):
                game.cache.close()


def _print_valuation_json(
    config: Any, result: Any, dataset_read: dict[str, Any], fields: dict[str, Any]
) -> None:
    """One JSON object: the config, the result, what was read and ``fields`` (per-seller rows and model
    fits, or the points' rows, labels and sources)."""
    from datamarket.core.certificates import status_for

    data: dict[str, Any] = {
        "schema": "datamarket.valuation-result/1",
        "config": config.model_dump(mode="json"),
    }
    data.update(result.to_dict())
    # the method as the config names it; the estimator that computed it is ``estimator``
    data["method"], data["estimator"] = config.method.name, result.method
    data["dataset_read"] = dataset_read
    data.update(fields)
    # "certificate" (from result.to_dict) holds the checks; the status follows it
    data["status"] = status_for(result.certificate)
    sys.stdout.write(json.dumps(data) + "\n")


def _print_valuation_table(config: Any, game: Any, result: Any, dataset_read: dict[str, Any]) -> None:
    sizes = [d.n_samples for d in game.datasets]
    rows = [
        {"seller": n, "rows": k, "value": float(v), "stderr": float(e)}
        for n, k, v, e in zip(result.names, sizes, result.values, result.stderr, strict=True)
    ]
    title = (
        f"{config.method.name} ({dataset_read['name']}: {dataset_read['rows']} rows, "
        f"{dataset_read['columns']} columns)"
    )
    console.print(_rich_table(title, rows))
    console.print(
        f"{result.evaluations} evaluations, {result.cache_hits} cache hits, stop: {result.stop_reason}, "
        f"converged: {result.converged}, {result.elapsed:.2f} s"
    )
    _print_valuation_certificate(result)


def _print_valuation_certificate(result: Any) -> None:
    from datamarket.core.certificates import status_for

    cert = result.certificate
    console.print(_rich_table("certificate", cert.rows()))
    console.print(f"status: {status_for(cert)} ({cert.summary()})", highlight=False, markup=False)


def _print_valuation_points(config: Any, points: Any, dataset_read: dict[str, Any]) -> None:
    """The points' table: all of them up to 20, else the 10 lowest and the 10 highest values."""
    from datamarket import scenarios as vc

    table, r = vc.point_table(points), points.result
    n = len(r.names)
    order = sorted(range(n), key=lambda i: (table["value"][i], i))
    shown = order if n <= 20 else order[:10] + order[-10:]
    which = f"{n} points" + (", the 10 lowest and 10 highest values (all: --out, --json)" if n > 20 else "")
    title = (
        f"{config.method.name} ({dataset_read['name']}: {dataset_read['rows']} rows, "
        f"{dataset_read['columns']} columns): {which}"
    )
    console.print(_rich_table(title, [{k: table[k][i] for k in table} for i in shown]))
    console.print(f"{r.evaluations} model fits, stop: {r.stop_reason}, {r.elapsed:.2f} s")
    _print_valuation_certificate(r)


def _check_valuation_out(out: Path | None) -> None:
    """``--out`` must name a .csv or .parquet file (Parquet needs the 'parquet' extra)."""
    from datamarket import _value_files

    if out is None:
        return
    if out.suffix.lower() not in _value_files.OUT_SUFFIXES:
        raise fail(f"--out: must end in .csv or .parquet, got {out.name!r}")
    if out.suffix.lower() == ".parquet" and (missing := missing_extra("parquet")) is not None:
        raise fail(f"--out: {missing}")


def _write_valuation_out(table: dict[str, list[Any]], out: Path | None) -> None:
    from datamarket import _value_files

    if out is None:
        return
    try:
        _value_files.write_table(table, out)
    except OSError as exc:
        raise fail(f"--out: cannot write {str(out)!r} ({exc.strerror or exc})") from None
    n = len(next(iter(table.values()), []))
    err_console.print(f"wrote {out} ({n} rows)", highlight=False, markup=False)


def _value_points(
    config: Any, data: Any, dataset_read: dict[str, Any], json_out: bool, out: Path | None
) -> None:
    """Value every data point with the config's point-level method; print, and write ``out``."""
    from datamarket import scenarios as vc

    points = vc.value_points(config, data)
    table = vc.point_table(points)
    _write_valuation_out(table, out)
    if json_out:
        fields = {"points": {k: v for k, v in table.items() if k not in ("value", "stderr")}}
        _print_valuation_json(config, points.result, dataset_read, fields)
    else:
        _print_valuation_points(config, points, dataset_read)


@app.command(name="value")
def value_cmd(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG", help="Valuation config (.toml or .json).")],
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON object (same as --format json).")
    ] = False,
    fmt: Annotated[
        str,
        typer.Option("--format", metavar="[table|json]", help="table (rich tables) or json (one object)."),
    ] = "table",
    scheduler: Annotated[
        str | None, typer.Option("--scheduler", help="Dask scheduler address, e.g. tcp://host:8786.")
    ] = None,
    cache: Annotated[
        Path | None, typer.Option("--cache", help="Persistent coalition cache directory (resume, no refits).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Also write the values (per seller or per point) to FILE.csv or FILE.parquet."
        ),
    ] = None,
    seed: SeedOpt = None,
    verbose: Verbose = 0,
) -> None:
    """Value each seller's data (Shapley, LOO, Banzhaf...) or each data point (K-NN Shapley, Data-OOB)."""
    from datamarket import scenarios as vc

    _setup_logging(verbose)
    if fmt not in ("table", "json"):
        raise fail(f"--format: must be table or json, got {fmt!r}")
    json_out = json_out or fmt == "json"
    _check_valuation_out(out)
    try:
        config, data, dataset_read = _valuation_inputs(config_path, scheduler, seed)
        if vc.is_point_method(config.method.name):
            if cache is not None:
                raise fail(f"--cache: {config.method.name} values data points, it has no coalitions to cache")
            _value_points(config, data, dataset_read, json_out, out)
            return
        cache_dir = (
            cache if cache is not None else (config_path.parent / config.cache if config.cache else None)
        )
        game = _valuation_game(config, data, cache_dir)
        result = _run_valuation(config, game, json_out)
    except DatamarketError as exc:
        raise fail(str(exc)) from None
    sizes = [d.n_samples for d in game.datasets]
    _write_valuation_out(vc.seller_table(result, sizes), out)
    if json_out:
        _print_valuation_json(config, result, dataset_read, {"rows": sizes, "model_fits": game.n_fits})
    else:
        _print_valuation_table(config, game, result, dataset_read)


# Top-level module of each optional dependency -> the extra that installs it (pyproject.toml).
EXTRAS = {
    "fastapi": "service",
    "starlette": "service",
    "uvicorn": "service",
    "sqlalchemy": "service",
    "alembic": "service",
    "httpx": "service",
    "multipart": "service",
    "jinja2": "service",
    "python_multipart": "service",
    "tenacity": "service",
    "dask": "dask",
    "distributed": "dask",
    "pyarrow": "parquet",
    "psycopg": "postgres",
}


_ALIASES = ("starlette", "multipart", "python_multipart")  # installed under other names


def extra_message(extra: str) -> str:
    """The one line that names a missing extra."""
    return f"this command needs the {extra!r} extra: pip install 'datamarket[{extra}]'"


def missing_extra(extra: str) -> str | None:
    """:func:`extra_message` when a module of ``extra`` cannot be imported, else ``None``."""
    import importlib

    for module in (m for m, e in EXTRAS.items() if e == extra and m not in _ALIASES):
        try:
            importlib.import_module(module)
        except ImportError:
            return extra_message(extra)
    return None


def main() -> None:
    """Console-script entry point: a missing optional extra is one ``error:`` line and exit code 2."""
    try:
        app()
    except ModuleNotFoundError as exc:
        extra = EXTRAS.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        err_console.print(f"error: {extra_message(extra)}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
