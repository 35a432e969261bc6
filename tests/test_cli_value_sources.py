"""``datamarket value`` on the user's own data: a source column, Parquet, point values, ``--out``.

Every run goes through the real CLI (typer's runner, in process). The expected values are computed
here from the library's public functions on explicitly built inputs, with the split that the valuation
guide documents (scikit-learn's ``train_test_split(rows, test_size, random_state=seed, stratify=labels)``).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from typer.testing import CliRunner

from datamarket.cli import app
from datamarket.core.types import Dataset
from datamarket.valuation import ModelGame, exact_shapley
from datamarket.valuation.methods import data_oob, knn_shapley

SEED = 3


def _table(n: int = 90, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    y = (x[:, 0] + 0.4 * x[:, 1] + 0.3 * rng.normal(size=n) > 0).astype(int)
    origin = np.array(["west", "north", "east"])[rng.integers(0, 3, n)]
    return x, y, origin


def _write_csv(path: Path, x: np.ndarray, y: np.ndarray, origin: np.ndarray | None = None) -> None:
    """The source column (none when ``origin`` is None) sits between the features: it must be dropped
    and the features kept in order. Floats are written by ``repr``, which reads back exactly."""
    lines = ["a,origin,b,label" if origin is not None else "a,b,label"]
    for i in range(y.size):
        cells = [repr(float(x[i, 0])), repr(float(x[i, 1])), str(y[i])]
        if origin is not None:
            cells.insert(1, str(origin[i]))
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")


def _write_parquet(path: Path, x: np.ndarray, y: np.ndarray, origin: np.ndarray) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.table({"a": x[:, 0], "origin": origin.tolist(), "b": x[:, 1], "label": y}), path)


def _config(tmp_path: Path, body: str, data: str = 'csv = "d.csv"') -> Path:
    cfg = tmp_path / "v.toml"
    cfg.write_text(f'seed = {SEED}\n{body}\n[dataset]\n{data}\ntarget = "label"\n')
    return cfg


def _value(*args: str) -> Any:
    return CliRunner().invoke(app, ["value", *args])


def _json(*args: str) -> dict[str, Any]:
    res = _value(*args, "--json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def _split(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Training rows (in table order) and test rows, as the guide documents the split."""
    tr, te = train_test_split(np.arange(y.size), test_size=0.3, random_state=SEED, stratify=y)
    return np.sort(tr), te


def _read_csv(path: Path) -> dict[str, list[str]]:
    with path.open() as f:
        rows = list(csv.DictReader(f))
    return {k: [r[k] for r in rows] for k in rows[0]}


def test_source_column_equals_explicit_per_seller_datasets(tmp_path: Path) -> None:
    x, y, origin = _table()
    _write_csv(tmp_path / "d.csv", x, y, origin)
    body = (
        '[model]\nname = "logistic_regression"\nstandardize = false\n'
        '[sellers]\ncolumn = "origin"\n[method]\nname = "exact_shapley"'
    )
    cfg = _config(tmp_path, body)
    data = _json(str(cfg), "--out", str(tmp_path / "sellers.csv"))
    # the same valuation, built in the library from one explicit dataset per source
    tr, te = _split(y)
    names = list(dict.fromkeys(origin.tolist()))  # order of first appearance in the file
    sellers = [Dataset(x[tr[origin[tr] == s]], y[tr[origin[tr] == s]]) for s in names]
    game = ModelGame(LogisticRegression(), sellers, Dataset(x[te], y[te]), names=names)
    expected = exact_shapley(game)
    assert data["names"] == names and names != sorted(names)
    np.testing.assert_allclose(data["values"], expected.values, rtol=0, atol=1e-12)
    assert data["rows"] == [d.n_samples for d in sellers]
    assert data["dataset_read"]["columns"] == 2  # a and b; the source column is not a feature
    written = _read_csv(tmp_path / "sellers.csv")
    assert written["seller"] == names and [int(r) for r in written["rows"]] == data["rows"]
    assert [float(v) for v in written["value"]] == data["values"]  # repr round trip: exact
    assert list(written) == ["seller", "value", "stderr", "rows"]


def test_parquet_and_csv_inputs_give_identical_results(tmp_path: Path) -> None:
    x, y, origin = _table(seed=1)
    _write_csv(tmp_path / "d.csv", x, y, origin)
    _write_parquet(tmp_path / "d.parquet", x, y, origin)
    body = (
        '[sellers]\ncolumn = "origin"\n[method]\nname = "monte_carlo_shapley"\n'
        "[stopping]\nmax_evaluations = 40"
    )
    from_csv = _json(str(_config(tmp_path, body)), "--out", str(tmp_path / "a.parquet"))
    from_pq = _json(str(_config(tmp_path, body, 'parquet = "d.parquet"')), "--out", str(tmp_path / "b.csv"))
    for key in ("names", "values", "stderr", "rows", "evaluations"):
        assert from_csv[key] == from_pq[key], key
    assert from_csv["dataset_read"]["source"] == "csv" and from_pq["dataset_read"]["source"] == "parquet"
    import pyarrow.parquet as pq

    a = pq.read_table(tmp_path / "a.parquet").to_pydict()
    b = _read_csv(tmp_path / "b.csv")
    assert a["seller"] == b["seller"] and a["value"] == [float(v) for v in b["value"]]
    assert a["rows"] == [int(r) for r in b["rows"]] == from_csv["rows"]


def test_knn_shapley_points_equal_the_library(tmp_path: Path) -> None:
    x, y, origin = _table(seed=2)
    _write_csv(tmp_path / "d.csv", x, y, origin)
    body = '[model]\nstandardize = false\n[sellers]\ncolumn = "origin"\n[method]\nname = "knn_shapley"\nk = 3'
    cfg = _config(tmp_path, body)
    data = _json(str(cfg), "--out", str(tmp_path / "points.csv"))
    tr, te = _split(y)
    expected = knn_shapley(x[tr], y[tr], x[te], y[te], k=3)
    np.testing.assert_array_equal(data["values"], expected.values)
    assert data["names"] == [f"row_{i}" for i in tr]
    assert data["points"] == {
        "row": tr.tolist(),
        "label": y[tr].astype(float).tolist(),
        "source": origin[tr].tolist(),
    }
    assert data["evaluations"] == 0 and "model_fits" not in data  # no model is fitted
    written = _read_csv(tmp_path / "points.csv")
    assert list(written) == ["row", "value", "stderr", "label", "source"]
    assert [int(r) for r in written["row"]] == tr.tolist() and written["source"] == origin[tr].tolist()
    assert [float(v) for v in written["value"]] == expected.values.tolist()
    # the table shows the 10 lowest and 10 highest of the 63 training points
    res = _value(str(cfg))
    shown = " ".join(res.stdout.split())
    assert res.exit_code == 0 and f"{tr.size} points, the 10 lowest and 10 highest values" in shown


def test_data_oob_values_every_row(tmp_path: Path) -> None:
    x, y, _ = _table(n=60, seed=4)
    _write_csv(tmp_path / "d.csv", x, y)
    body = '[model]\nstandardize = false\n[method]\nname = "data_oob"\nn_estimators = 30'
    data = _json(str(_config(tmp_path, body)))
    expected = data_oob(np.asarray(x), y, seed=SEED, n_estimators=30)
    np.testing.assert_array_equal(data["values"], expected.values)
    np.testing.assert_array_equal(data["stderr"], expected.stderr)
    assert data["points"]["row"] == list(range(60)) and "source" not in data["points"]
    assert data["evaluations"] == 30 and data["estimator"] == "data_oob"
    # a model named in the config is the bagged learner (else the paper's decision tree)
    body = body.replace("[model]\n", '[model]\nname = "logistic_regression"\n')
    data = _json(str(_config(tmp_path, body)))
    expected = data_oob(x, y, seed=SEED, n_estimators=30, estimator=LogisticRegression())
    np.testing.assert_array_equal(data["values"], expected.values)


def test_seller_counts_above_the_old_cap(tmp_path: Path) -> None:
    x, y, _ = _table(n=200, seed=5)
    _write_csv(tmp_path / "d.csv", x, y)
    body = (
        '[model]\nname = "decision_tree"\n[sellers]\nn = 80\n'
        '[method]\nname = "monte_carlo_shapley"\n[stopping]\nmax_evaluations = 400'
    )
    data = _json(str(_config(tmp_path, body)))
    assert len(data["values"]) == 80 and sum(data["rows"]) == 140
    assert 0 < data["evaluations"] <= 400 and np.all(np.isfinite(data["stderr"]))


def _csv_with_rare_source(tmp_path: Path) -> None:
    """A source 'rare' whose one row the seeded split sends to the test set."""
    x, y, origin = _table()
    _, te = _split(y)
    origin = origin.astype(object)
    origin[te[0]] = "rare"
    _write_csv(tmp_path / "d.csv", x, y, origin)


@pytest.mark.parametrize(
    ("body", "data", "message"),
    [
        (
            '[sellers]\ncolumn = "origin"\nn = 3',
            'csv = "d.csv"',
            "v.toml: sellers: sellers.column makes one seller per source: drop sellers.n",
        ),
        (
            '[sellers]\ncolumn = "orign"',
            'csv = "d.csv"',
            "error: sellers.column: no column 'orign' in the CSV header (did you mean 'origin'?)",
        ),
        ('[sellers]\ncolumn = "label"', 'csv = "d.csv"', "sellers.column: 'label' is the label column"),
        (
            '[sellers]\ncolumn = "origin"',
            'name = "iris"',
            "sellers.column needs a dataset.csv or dataset.parquet",
        ),
        ('[method]\nname = "knn_shapley"\n[sellers]\nn = 4', 'csv = "d.csv"', "drop sellers.n"),
        (
            '[method]\nname = "knn_shapley"\n[stopping]\nmax_evaluations = 10',
            'csv = "d.csv"',
            "knn_shapley values every data point (no sellers, coalitions or test split to configure): "
            "drop stopping.max_evaluations",
        ),
        ('[method]\nname = "data_oob"', 'csv = "d.csv"\ntest_size = 0.2', "drop dataset.test_size"),
        (
            "[method]\nk = 3",
            'csv = "d.csv"',
            "method.k is a parameter of knn_shapley, not of regression_adjusted_shapley",
        ),
        (
            "[sellers]\nn = 100\n[stopping]\nmax_evaluations = 150",
            'csv = "d.csv"',
            "regression_adjusted_shapley needs at least 2M + 4 = 204 evaluations for 100 sellers",
        ),
        (
            '[sellers]\nn = 100\n[method]\nname = "monte_carlo_shapley"\n[stopping]\nmax_evaluations = 150',
            'csv = "d.csv"',
            "monte_carlo_shapley needs at least 200 evaluations to sample a permutation and its reverse "
            "of 100 sellers (got 150)",
        ),
        (
            "[stopping]\nmax_time = 5",
            'csv = "d.csv"',
            "regression_adjusted_shapley runs to its budget (stopping.max_evaluations) and does not take "
            "stopping.max_time",
        ),
        (
            "",
            'csv = "d.csv"\nparquet = "d.parquet"',
            "give one of a bundled dataset name, a csv path or a parquet",
        ),
        ("", 'csv = "d.parquet"', "'d.parquet' is a Parquet file: give it as dataset.parquet"),
        ("", 'parquet = "nope.parquet"', "error: dataset.parquet: no such file"),
    ],
)
def test_bad_configs_are_one_line(tmp_path: Path, body: str, data: str, message: str) -> None:
    _write_csv(tmp_path / "d.csv", *_table())
    res = _value(str(_config(tmp_path, body, data)))
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and message in lines[0], res.output


def test_source_errors_found_in_the_data(tmp_path: Path) -> None:
    _csv_with_rare_source(tmp_path)
    res = _value(str(_config(tmp_path, '[sellers]\ncolumn = "origin"')))
    assert res.exit_code == 2
    assert (
        "sellers.column: source 'rare' has no training row: its 1 row(s) went to the test set" in res.stderr
    )
    x, y, origin = _table()
    origin = origin.astype(object)
    origin[6] = " "
    _write_csv(tmp_path / "d.csv", x, y, origin)
    res = _value(str(_config(tmp_path, '[sellers]\ncolumn = "origin"')))
    assert res.exit_code == 2 and "sellers.column: data row 7 has no source (an empty cell)" in res.stderr
    # 25 sources are too many for exact Shapley (2^25 fits); the reason is in the message
    x, y, _ = _table(n=300)
    _write_csv(tmp_path / "d.csv", x, y, np.array([f"s{i % 25}" for i in range(y.size)]))
    res = _value(str(_config(tmp_path, '[sellers]\ncolumn = "origin"\n[method]\nname = "exact_shapley"')))
    assert res.exit_code == 2
    assert (
        "exact_shapley fits a model on each of the 2^M coalitions: use at most 20 sellers (got 25)"
        in res.stderr
    )


def test_out_and_cache_options(tmp_path: Path) -> None:
    _write_csv(tmp_path / "d.csv", *_table()[:2])
    cfg = _config(tmp_path, '[method]\nname = "knn_shapley"')
    res = _value(str(cfg), "--out", str(tmp_path / "values.xlsx"))
    assert (
        res.exit_code == 2 and "error: --out: must end in .csv or .parquet, got 'values.xlsx'" in res.stderr
    )
    res = _value(str(cfg), "--cache", str(tmp_path / "cache"))
    assert res.exit_code == 2 and "--cache: knn_shapley values data points" in res.stderr
    res = _value(str(cfg), "--scheduler", "tcp://127.0.0.1:9")
    assert res.exit_code == 2 and "backend: knn_shapley runs in this process" in res.stderr
    res = _value(str(cfg), "--out", str(tmp_path / "no-such-dir" / "v.csv"))
    assert res.exit_code == 2 and "error: --out: cannot write" in res.stderr


def test_parquet_without_its_extra_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x, y, origin = _table()
    _write_csv(tmp_path / "d.csv", x, y, origin)
    _write_parquet(tmp_path / "d.parquet", x, y, origin)
    for name in [m for m in sys.modules if m == "pyarrow" or m.startswith("pyarrow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now raises ImportError
    extra = "this command needs the 'parquet' extra: pip install 'datamarket[parquet]'"
    res = _value(str(_config(tmp_path, "", 'parquet = "d.parquet"')))
    assert res.exit_code == 2 and f"error: dataset.parquet: {extra}" in res.stderr
    res = _value(str(_config(tmp_path, "")), "--out", str(tmp_path / "v.parquet"))
    assert res.exit_code == 2 and f"error: --out: {extra}" in res.stderr
