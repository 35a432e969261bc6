"""The package as users install it: a lean core without the extras, a complete wheel, `example`, `--version`.

The core-only tests block every optional module in a fresh interpreter (a meta-path finder that answers
``ModuleNotFoundError``, as if it were not installed), so they hold whatever this environment has installed.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datamarket import __version__
from datamarket.cli import EXTRAS, app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
runner = CliRunner()

# Runs in a fresh interpreter: block the extras, then import every core module or run the CLI.
BLOCK = f"""
import sys
class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {sorted(EXTRAS)!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, _NotInstalled())
"""


def _core_only(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCK + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )


def _cli_core_only(*args: str) -> subprocess.CompletedProcess:
    return _core_only(f"sys.argv = ['datamarket', *{list(args)!r}]\nfrom datamarket.cli import main\nmain()")


def test_core_modules_import_without_any_extra() -> None:
    res = _core_only(
        """
        import importlib, pkgutil
        import datamarket
        extras_only = ("datamarket.service", "datamarket.ledger", "datamarket.client")
        names = [m.name for m in pkgutil.walk_packages(datamarket.__path__, "datamarket.")]
        core = [n for n in names if not n.startswith(extras_only)]
        for n in core:
            importlib.import_module(n)
        print(len(core))
        """
    )
    assert res.returncode == 0, res.stderr
    assert int(res.stdout) > 20  # every core module, not an empty walk


def test_core_cli_runs_a_scenario_without_any_extra() -> None:
    res = _cli_core_only("run", "examples/broker.toml", "--json")
    assert res.returncode == 0, res.stderr
    assert '"kind": "broker"' in res.stdout


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (["serve"], "service"),
        (["ledger", "verify", "--db", "sqlite:///:memory:"], "service"),
        (["value", "examples/valuation/breast_cancer.toml", "--scheduler", "tcp://127.0.0.1:9"], "dask"),
    ],
)
def test_command_needing_a_missing_extra_names_it(args: list[str], extra: str) -> None:
    res = _cli_core_only(*args)
    assert res.returncode == 2, (res.stdout, res.stderr)
    want = f"error: this command needs the {extra!r} extra: pip install 'datamarket[{extra}]'"
    assert res.stderr.strip() == want


def test_version_option() -> None:
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"datamarket {__version__}"


def test_example_lists_writes_and_rejects(tmp_path: Path) -> None:
    listing = runner.invoke(app, ["example"], env={"COLUMNS": "200"})
    assert listing.exit_code == 0
    assert "broker-equal-costs" in listing.output and "valuation/breast_cancer" in listing.output
    assert "bad/" not in listing.output
    out = tmp_path / "b.toml"
    res = runner.invoke(app, ["example", "broker", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert out.read_bytes() == (EXAMPLES / "broker.toml").read_bytes()
    printed = runner.invoke(app, ["example", "valuation/breast_cancer"])
    assert printed.stdout == (EXAMPLES / "valuation" / "breast_cancer.toml").read_text()
    bad = runner.invoke(app, ["example", "nope"])
    assert bad.exit_code == 2 and "unknown example 'nope'" in bad.output


def test_wheel_is_complete(tmp_path: Path) -> None:
    """LICENSE, py.typed, the migrations, the portal's templates and assets and every example
    (byte-identical to examples/) are in the wheel."""
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    build = subprocess.run(
        [*pip_wheel, "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("datamarket-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert "datamarket/py.typed" in names
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), sorted(names)[-8:]
        assert "datamarket/ledger/migrations/env.py" in names
        # the web portal's templates and assets, every one of them
        portal = ROOT / "src" / "datamarket" / "service" / "portal"
        assets = sorted(
            p.relative_to(ROOT / "src") for d in ("templates", "static") for p in (portal / d).iterdir()
        )
        assert len(assets) > 10
        for rel in assets:
            assert zf.read(rel.as_posix()) == (ROOT / "src" / rel).read_bytes(), rel
        shipped = sorted(p.relative_to(ROOT) for p in EXAMPLES.rglob("*.toml"))
        assert shipped
        for rel in shipped:
            assert zf.read(f"datamarket/{rel.as_posix()}") == (ROOT / rel).read_bytes()
        meta = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    for extra in ("service", "dask", "parquet", "postgres", "all", "dev"):
        assert f"Provides-Extra: {extra}" in meta
    requires = [line for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    core = [line for line in requires if "extra ==" not in line]
    assert not any(name in line for line in core for name in ("fastapi", "sqlalchemy", "dask", "pyarrow"))


def test_parquet_upload_without_the_extra_names_it() -> None:
    res = _core_only(
        """
        from datamarket.core.errors import UploadError
        from datamarket.service.uploads import UploadLimits, parse_dataset
        try:
            parse_dataset(b"PAR1", "parquet", limits=UploadLimits())
        except UploadError as exc:
            print(exc)
        """
    )
    assert res.returncode == 0, res.stderr
    assert "pip install 'datamarket[parquet]'" in res.stdout
