"""``datamarket value``: the example runs through the CLI; bad configs are one clear error line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "valuation" / "breast_cancer.toml"


def _value(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "datamarket.cli", "value", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def test_example_runs_through_cli() -> None:
    res = _value(str(EXAMPLE), "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["method"] == "monte_carlo_shapley" and data["estimator"] == "permutation_shapley"
    assert len(data["values"]) == 10
    assert data["dataset_read"] == {"source": "bundled", "name": "breast_cancer", "rows": 569, "columns": 30}
    assert data["evaluations"] <= 1000 and data["model_fits"] <= 1000
    # efficiency holds approximately: values sum to v(N) - v(empty) = test accuracy - 0 (about 0.96)
    assert 0.85 < sum(data["values"]) < 1.0
    assert max(data["stderr"]) < 0.01


def test_exact_on_csv_prints_json_and_table(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 2))
    y = (x[:, 0] > 0).astype(int)
    lines = ["a,b,label"] + [f"{r[0]},{r[1]},{t}" for r, t in zip(x, y, strict=True)]
    (tmp_path / "d.csv").write_text("\n".join(lines))
    cfg = tmp_path / "v.toml"
    cfg.write_text(
        '[dataset]\ncsv = "d.csv"\ntarget = "label"\n[sellers]\nn = 4\n[method]\nname = "exact_shapley"\n'
    )
    from typer.testing import CliRunner

    from datamarket.cli import app

    res = CliRunner().invoke(app, ["value", str(cfg), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["model_fits"] == 15 and data["evaluations"] == 16
    assert data["dataset_read"]["name"] == "d.csv" and data["dataset_read"]["rows"] == 80
    assert abs(data["extra"]["efficiency_gap"]) < 1e-9
    res = CliRunner().invoke(app, ["value", str(cfg)])
    assert res.exit_code == 0 and "seller_3" in res.stdout and "exact_shapley (d.csv: 80 rows" in res.stdout
    # the dirichlet split keeps every training row (as many as the equal split hands out)
    n_train = sum(data["rows"])
    cfg.write_text(cfg.read_text().replace("n = 4", 'n = 4\nsplit = "dirichlet"'))
    res = CliRunner().invoke(app, ["value", str(cfg), "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)["rows"]
    assert sum(rows) == n_train and min(rows) >= 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[sellers]\nn = 0\n", "bad.toml: sellers.n: Input should be greater than or equal to 1"),
        ('[method]\nname = "exact_shapley"\n[sellers]\nn = 30\n', "use at most 20 sellers"),
        ("[stopping]\nmax_evaluations = -5\n", "bad.toml: stopping.max_evaluations"),
        ('[dataset]\nname = "mnist"\n', "bad.toml: dataset.name"),
        ('[dataset]\ncsv = "missing.csv"\n', "error: dataset.csv: no such file"),
        ("[stopping]\nmax_time = nan\n", "bad.toml: stopping.max_time"),
        ("bogus = 1\n", "bad.toml: bogus: unknown key"),
        ("[stopping]\nmax_evals = 3\n", "stopping.max_evals: unknown key (did you mean 'max_evaluations'?)"),
    ],
)
def test_bad_config_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    from typer.testing import CliRunner

    from datamarket.cli import app

    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    res = CliRunner().invoke(app, ["value", str(cfg)])
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and message in lines[0], res.output


def test_missing_config_file(tmp_path: Path) -> None:
    res = _value(str(tmp_path / "nope.toml"))
    assert res.returncode == 2 and "config: no such file" in res.stderr
