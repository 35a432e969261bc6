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


def _help(path: list[str], columns: int) -> str:
    res = runner.invoke(app, [*path, "--help"], env={"COLUMNS": str(columns)}, terminal_width=columns)
    assert res.exit_code == 0, res.output
    return res.output


@pytest.mark.parametrize("columns", [80, 60])
def test_no_bool_metavar_in_any_help(columns: int) -> None:
    """A flag takes no value: no ``<bool>`` beside it, in any command's help, at any width."""
    for path, _ in [([], None), *_commands(app)]:
        assert "<bool>" not in _help(path, columns), path


def test_reproduce_help_names_every_kind_and_figure() -> None:
    from datamarket.experiments import available_experiments, figures
    from datamarket.families import families

    text = " ".join(_help(["reproduce"], 200).split())
    assert "``" not in text and "Prints" not in text
    kinds = [f.kind for f in families() if f.experiments is not None]
    assert kinds and sorted(kinds) == sorted(available_experiments())
    for kind in kinds:
        names = ", ".join(f.name for f in figures(kind))
        assert f"{kind}: {names}" in text, kind


def test_every_choice_lists_its_choices() -> None:
    """Each option that takes one of a fixed set of values names them in its help."""
    from datamarket.cli import available_examples

    expected = {
        ("run",): ["table", "json", "csv"],
        ("value",): ["table", "json"],
        ("example",): list(available_examples()),
    }
    for path, choices in expected.items():
        text = " ".join(_help(list(path), 200).split())
        assert all(c in text for c in choices), (path, [c for c in choices if c not in text])
    for path, cmd in [([], None), *_commands(app)]:
        for param in getattr(cmd, "params", []):
            for choice in getattr(getattr(param, "type", None), "choices", None) or ():
                assert str(choice) in " ".join(_help(path, 200).split()), (path, param.name, choice)


def _scenario_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "market.toml"
    path.write_text(text)
    res = runner.invoke(app, ["run", str(path)])
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(lines) == 1, res.output
    assert lines[0].startswith(f"error: {path}: "), lines[0]
    return lines[0]


def test_misspelt_key_and_kind_get_a_suggestion(tmp_path: Path) -> None:
    src = (ROOT / "examples" / "broker.toml").read_text()
    assert "sigma = " in src
    line = _scenario_error(tmp_path, src.replace("sigma = ", "sigam = ", 1))
    assert "sigam: unknown key (did you mean 'sigma'?)" in line
    line = _scenario_error(tmp_path, src.replace('kind = "broker"', 'kind = "brokr"', 1))
    assert "unknown scenario kind 'brokr' (did you mean 'broker'?)" in line
    nested = 'kind = "broker"\n[[contributors]]\nname = "a"\ncots = 1.0\n'
    assert "contributors[1].cots: unknown key (did you mean 'cost'?)" in _scenario_error(tmp_path, nested)


def test_locations_count_from_one(tmp_path: Path) -> None:
    """An error in the first contributor is reported as the first, not the zeroth."""
    src = (ROOT / "examples" / "broker.toml").read_text()
    assert src.count("cost = ") >= 2
    line = _scenario_error(tmp_path, src.replace("cost = ", "cost = -", 1))
    assert "contributors[1].cost: " in line and "[0]" not in line and ".0." not in line
    line = _scenario_error(tmp_path, "kind = \n")
    assert "malformed TOML at line 1, column 8" in line


def test_audit_table_has_no_none_and_fits_a_narrow_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.console import Console

    import datamarket.cli as cli

    res = _run("run", "examples/broker.toml")
    assert res.returncode == 0, res.stderr
    assert "None" not in res.stdout and "audits" in res.stdout
    buf = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=buf, width=60, force_terminal=True, color_system=None))
    res2 = runner.invoke(app, ["run", str(ROOT / "examples" / "broker.toml")])
    assert res2.exit_code == 0, res2.output
    out = buf.getvalue()
    assert max(len(ln) for ln in out.splitlines()) <= 60 and "…" not in out and "None" not in out
    assert "expected_to_hold" in out and "broker_mstar" in out  # whole words, not folded to columns


def test_example_table_does_not_truncate(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.console import Console

    import datamarket.cli as cli

    buf = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=buf, width=60, force_terminal=True, color_system=None))
    assert runner.invoke(app, ["example"]).exit_code == 0
    out = buf.getvalue()
    assert "…" not in out and max(len(ln) for ln in out.splitlines()) <= 60
    assert "truthful_payments-mixture-buyers " in out  # the name is whole, the description wraps
