"""Command-line interface: parse, call one library function, print or write files.

Bad input (a malformed scenario, an unknown kind, NaN or negative costs...) prints one line
``error: FIELD: message`` on standard error and exits with code 2, never a traceback. So does a command
that needs an optional extra which is not installed (``serve`` and ``ledger`` need ``[service]``, a Dask
scheduler needs ``[dask]``): the line names the extra to install.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from datamarket import __version__
from datamarket.core.errors import DatamarketError

app = typer.Typer(
    name="datamarket",
    help="Data markets: truthful payments, Shapley revenue division, envy-free pricing, exact ledger.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
from datamarket.service.commands import register as _register_service  # noqa: E402

_register_service(app)
console = Console()
err_console = Console(stderr=True)

Verbose = Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logging (-vv).")]
SeedOpt = Annotated[
    int | None, typer.Option("--seed", min=0, help="Override the seed of every random stream.")
]


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
        raise fail(str(exc)) from None


def _print_result(result: Any) -> None:
    """Rich tables: the scenario's tables and its audits."""
    console.print(f"[bold]{result.kind}[/bold] (seed {result.seed})")
    for title, rows in result.tables.items():
        console.print(_rich_table(title, rows))
    if result.audits:
        rows = [{"audit": k, **a.to_dict()} for k, a in result.audits.items()]
        console.print(_rich_table("audits", rows))


def _rich_table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title, show_lines=False)
    from datamarket.experiments import columns

    cols = columns(rows)
    for c in cols:
        table.add_column(c)
    for r in rows:
        table.add_row(*(f"{v:.6g}" if isinstance(v, float) else str(v) for v in (r.get(c, "") for c in cols)))
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
    for line in path.read_text().splitlines():
        text = line.lstrip("# ").strip()
        if line.startswith("#") and text and not text.startswith("datamarket "):
            return text
    return ""


@app.command(name="example")
def example_cmd(
    kind: Annotated[
        str | None, typer.Argument(metavar="KIND", help="Example name; omit to list them.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write to this file (default: stdout).")] = None,
) -> None:
    """List the example scenarios, or print (or write with --out) one of them."""
    found = available_examples()
    if kind is None:
        rows = [{"example": name, "about": _describe(path)} for name, path in found.items()]
        console.print(_rich_table("examples (datamarket example KIND --out FILE)", rows))
        return
    if kind not in found:
        raise fail(f"example: unknown example {kind!r}; one of {', '.join(found)}")
    text = found[kind].read_text()
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
    scenario: Annotated[Path, typer.Argument(help="Scenario file (.toml or .json).")],
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Write a report directory.")] = None,
    seed: SeedOpt = None,
    verbose: Verbose = 0,
) -> None:
    """Run a scenario file and print its outcome and audits."""
    from datamarket.experiments import write_scenario_report
    from datamarket.scenarios import run_scenario

    _setup_logging(verbose)
    config = _read_scenario(scenario, seed)
    try:
        result = run_scenario(config)
    except DatamarketError as exc:
        raise fail(str(exc)) from None
    if out is not None:
        write_scenario_report(result, out, scenario.stem)
    if json_out:
        sys.stdout.write(json.dumps(result.to_json()) + "\n")
    else:
        _print_result(result)


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Report directory.")] = Path("demo-report"),
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of every random stream.")] = 0,
    verbose: Verbose = 0,
) -> None:
    """The main job: run a small complete market of each family and write a report directory."""
    from datamarket.experiments import available_experiments, markdown_table, reproduce, write_scenario_report
    from datamarket.scenarios import available_kinds, default_config, run_scenario

    _setup_logging(verbose)
    t0 = time.perf_counter()
    summary: list[dict[str, Any]] = []
    for kind in available_kinds():
        t = time.perf_counter()
        console.print(f"[bold]== {kind}[/bold]")
        result = run_scenario(default_config(kind, seed=seed))
        write_scenario_report(result, out, kind)
        _print_result(result)
        figs: list[Path] = []
        if kind in available_experiments():
            from datamarket.experiments import figures

            names = [f.name for f in figures(kind) if f.in_demo]
            if names:
                figs = [
                    p
                    for p in reproduce(kind, out / "figures", quick=True, seed=seed, only=names)
                    if p.suffix == ".png"
                ]
        failed = [k for k, a in result.audits.items() if not a.holds]
        summary.append(
            {
                "kind": kind,
                "audits_not_holding": ", ".join(failed) or "none",
                "figures": len(figs),
                "seconds": round(time.perf_counter() - t, 2),
            }
        )
    (out / "README.md").write_text("# datamarket demo report\n\n" + markdown_table(summary) + "\n")
    console.print(_rich_table("demo summary", summary))
    console.print(f"report written to {out}/ in {time.perf_counter() - t0:.1f} s")
    if missing_extra("service") is not None:
        console.print(f"service demo skipped: {missing_extra('service')}")
        return
    from datamarket.service.demo import report_service_demo

    report_service_demo(console, out, seed=seed)


@app.command(name="reproduce")
def reproduce_cmd(
    kind: Annotated[str, typer.Argument(help="Paper family (e.g. broker, collaborative).")],
    out: Annotated[Path, typer.Option("--out", help="Output directory.")] = Path("reproduce-out"),
    quick: Annotated[bool, typer.Option("--quick", help="Small sizes (for tests).")] = False,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of every random stream.")] = 0,
    verbose: Verbose = 0,
) -> None:
    """Regenerate a paper's figures (PNG) with the data behind them (CSV, JSON)."""
    from datamarket.experiments import reproduce

    _setup_logging(verbose)
    try:
        paths = reproduce(
            kind, out, quick=quick, seed=seed, progress=lambda s: console.print(f"computing {s}")
        )
    except DatamarketError as exc:
        raise fail(str(exc)) from None
    for p in paths:
        console.print(str(p))


@app.command(name="value")
def value_cmd(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG", help="Valuation config (.toml or .json).")],
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    scheduler: Annotated[
        str | None, typer.Option("--scheduler", help="Dask scheduler address, e.g. tcp://host:8786.")
    ] = None,
    cache: Annotated[
        Path | None, typer.Option("--cache", help="Persistent coalition cache directory (resume, no refits).")
    ] = None,
    seed: SeedOpt = None,
    verbose: Verbose = 0,
) -> None:
    """Value each seller's data (exact/Monte Carlo Shapley, LOO, Banzhaf) with a progress bar."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from datamarket import scenarios as vc  # the valuation-config functions of its public face
    from datamarket.valuation import ProcessBackend, ProgressInfo, resolve_backend
    from datamarket.valuation.cache import PersistentCache

    _setup_logging(verbose)
    if not config_path.is_file():
        raise fail(f"config: no such file {str(config_path)!r}")
    try:
        config = vc.parse_valuation_config(
            config_path.read_text(), "json" if config_path.suffix.lower() == ".json" else "toml", seed=seed
        )
        if scheduler is not None:
            config = config.model_copy(update={"backend": vc.BackendSpec(name="dask", scheduler=scheduler)})
        ds = config.dataset
        if ds.csv is not None:
            csv_path = (config_path.parent / ds.csv).resolve()
            if not csv_path.is_file():
                raise fail(f"dataset.csv: no such file {str(csv_path)!r}")
            x, y = vc.dataset_from_csv_text(csv_path.read_text(), ds.target)
        else:
            x, y = vc.bundled_dataset(ds.name or "breast_cancer")
        game = vc.build_game(config, x, y)
        cache_dir = (
            cache if cache is not None else (config_path.parent / config.cache if config.cache else None)
        )
        if cache_dir is not None:
            game.cache = PersistentCache(cache_dir, game.fingerprint())
        be = config.backend
        backend: Any = (
            ProcessBackend(be.n_workers)
            if be.name == "processes"
            else resolve_backend(be.scheduler if be.name == "dask" else None)
        )
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[evals]} evaluations"),
            TextColumn("max stderr {task.fields[stderr]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=err_console,
            transient=json_out,
            disable=not err_console.is_terminal,
        ) as bar:
            task = bar.add_task(config.method.name, total=1.0, evals=0, stderr="-")

            def report(p: ProgressInfo) -> None:
                se = "-" if p.max_stderr is None else f"{p.max_stderr:.4f}"
                bar.update(task, completed=p.fraction, evals=p.evaluations, stderr=se)

            try:
                result = vc.run_valuation(config, game, backend, progress=report)
            finally:
                backend.close()
                if isinstance(game.cache, PersistentCache):
                    game.cache.close()
    except DatamarketError as exc:
        raise fail(str(exc)) from None
    sizes = [d.n_samples for d in game.datasets]
    if json_out:
        data: dict[str, Any] = {
            "schema": "datamarket.valuation-result/1",
            "config": config.model_dump(mode="json"),
        }
        data.update(result.to_dict())
        data["rows"] = sizes
        data["model_fits"] = game.n_fits
        sys.stdout.write(json.dumps(data) + "\n")
        return
    rows = [
        {"seller": n, "rows": k, "value": float(v), "stderr": float(e)}
        for n, k, v, e in zip(result.names, sizes, result.values, result.stderr, strict=True)
    ]
    console.print(_rich_table(f"{result.method} ({config.dataset.name or config.dataset.csv})", rows))
    console.print(
        f"{result.evaluations} evaluations, {result.cache_hits} cache hits, stop: {result.stop_reason}, "
        f"converged: {result.converged}, {result.elapsed:.2f} s"
    )


# Top-level module of each optional dependency -> the extra that installs it (pyproject.toml).
EXTRAS = {
    "fastapi": "service",
    "starlette": "service",
    "uvicorn": "service",
    "sqlalchemy": "service",
    "alembic": "service",
    "httpx": "service",
    "multipart": "service",
    "python_multipart": "service",
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
