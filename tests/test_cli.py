"""CLI contract: every command has help; every example runs; bad inputs exit 2 with one line."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datamarket.cli import app

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.toml")) + sorted((ROOT / "examples").glob("*.json"))
GOOD = [p for p in EXAMPLES if "bad" not in p.parent.name]
BAD = sorted((ROOT / "examples" / "bad").glob("*"))
runner = CliRunner()


def _commands(typer_app):
    import typer.main

    group = typer.main.get_group(typer_app)
    for name, cmd in group.commands.items():
        yield [name], cmd
        for sub in getattr(cmd, "commands", {}):
            yield [name, sub], cmd.commands[sub]


def test_every_command_has_help() -> None:
    found = list(_commands(app))
    assert {"run", "demo", "reproduce", "version"} <= {c[0][0] for c in found}
    for path, cmd in found:
        assert cmd.help, f"{path} has no help text"
        res = runner.invoke(app, [*path, "--help"])
        assert res.exit_code == 0, res.output
        assert "Usage" in res.output


def test_version() -> None:
    res = runner.invoke(app, ["version"])
    assert res.exit_code == 0 and res.output.strip()


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "datamarket.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )


@pytest.mark.parametrize("path", GOOD, ids=[p.name for p in GOOD])
def test_example_runs_and_prints_json(path: Path) -> None:
    """Every example's --json output validates against the published result schema."""
    import jsonschema

    from datamarket.schemas import result_schema

    res = _run("run", str(path), "--json")
    data = json.loads(res.stdout)
    # exit 4 is the documented code of a market without equilibrium (a result, not an error)
    assert res.returncode == (4 if data["status"] == "no_equilibrium" else 0), res.stderr
    assert data["kind"] == path.stem.split("-")[0] or data["kind"] in path.stem
    jsonschema.Draft202012Validator(result_schema()).validate(data)


@pytest.mark.parametrize("path", BAD, ids=[p.name for p in BAD])
def test_bad_example_is_one_clear_error(path: Path) -> None:
    res = _run("run", str(path))
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.stderr


def test_missing_file_and_malformed_toml(tmp_path: Path) -> None:
    res = _run("run", str(tmp_path / "nope.toml"))
    assert res.returncode == 2 and "no such file" in res.stderr
    bad = tmp_path / "x.toml"
    bad.write_text("kind = [")
    res = _run("run", str(bad))
    assert res.returncode == 2 and "malformed TOML" in res.stderr
