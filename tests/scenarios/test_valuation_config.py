"""Valuation config: any scikit-learn estimator by import path, and the sampled methods."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from datamarket.cli import app
from datamarket.core.errors import InvalidMarketError
from datamarket.scenarios import _valuation_config as vc
from datamarket.scenarios._loader import ScenarioError


def _csv(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 2))
    lines = ["a,b,y"] + [f"{r[0]},{r[1]},{int(r[0] + 0.3 * r[1] > 0)}" for r in x]
    (tmp_path / "d.csv").write_text("\n".join(lines))


def _run(tmp_path: Path, body: str) -> dict:
    _csv(tmp_path)
    cfg = tmp_path / "v.toml"
    cfg.write_text("seed = 3\n" + body + '\n[dataset]\ncsv = "d.csv"\n')
    res = CliRunner().invoke(app, ["value", str(cfg), "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_estimator_by_import_path_shorthand_and_table(tmp_path: Path) -> None:
    data = _run(
        tmp_path,
        'model = "sklearn.ensemble:RandomForestClassifier"\nmodel_params = { n_estimators = 4 }\n'
        '[sellers]\nn = 3\n[method]\nname = "exact_shapley"',
    )
    assert data["config"]["model"] == {
        "name": "sklearn.ensemble:RandomForestClassifier",
        "params": {"n_estimators": 4},
        "standardize": True,
    }
    assert data["model_fits"] == 7 and len(data["values"]) == 3
    cfg = vc.parse_valuation_config('[model]\nname = "sklearn.tree:DecisionTreeClassifier"', seed=5)
    est = vc.build_game(cfg, *vc.bundled_dataset("iris")).estimator
    assert type(est).__name__ == "DecisionTreeClassifier" and est.random_state == 5  # seeded


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('model = "RandomForest"', "unknown model 'RandomForest'"),
        ("model_params = { a = 1 }", "model_params goes with model"),
        ('[model]\nname = "os.path:nope;rm"', "unknown model"),
    ],
)
def test_bad_model_names_are_one_clear_line(text: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        vc.parse_valuation_config(text)


def test_bad_import_targets_are_clear_errors() -> None:
    x, y = vc.bundled_dataset("iris")
    for name, params, message in [
        ("sklearn.nosuchmodule:Thing", {}, "model.name: cannot import module 'sklearn.nosuchmodule'"),
        ("sklearn.ensemble:Nope", {}, "model.name: module 'sklearn.ensemble' has no 'Nope'"),
        ("sklearn.base:clone", {}, "not an estimator class"),
        ("sklearn.ensemble:RandomForestClassifier", {"n_trees": 3}, "model.params: sklearn.ensemble:Random"),
    ]:
        cfg = vc.parse_valuation_config("")
        cfg = cfg.model_copy(update={"model": vc.ModelSpec(name=name, params=params)})
        with pytest.raises(InvalidMarketError, match=message):
            vc.build_game(cfg, x, y)


@pytest.mark.parametrize(
    "method",
    ["control_variate_shapley", "regression_shapley", "stratified_shapley", "beta_shapley", "msr_banzhaf"],
)
def test_sampled_methods_through_the_cli(tmp_path: Path, method: str) -> None:
    data = _run(
        tmp_path, f'[sellers]\nn = 12\n[method]\nname = "{method}"\n[stopping]\nmax_evaluations = 120'
    )
    assert data["evaluations"] <= 120 and len(data["values"]) == 12
    assert data["method"] != "exact_shapley" and data["extra"]["switched_to_exact"] is False


def test_sampled_methods_need_a_budget() -> None:
    with pytest.raises(ScenarioError, match=r"needs stopping\.max_evaluations"):
        vc.parse_valuation_config(
            '{"method": {"name": "msr_banzhaf"}, "stopping": {"max_evaluations": null}}', "json"
        )
    with pytest.raises(ScenarioError, match="regression_shapley samplers"):
        vc.parse_valuation_config('[method]\nname = "regression_shapley"\nsampler = "cyclic"')


def test_model_game_quantities_are_rows_per_class() -> None:
    cfg = vc.parse_valuation_config("[sellers]\nn = 4")
    game = vc.build_game(cfg, *vc.bundled_dataset("iris"))
    q = game.quantities
    assert q.shape == (4, 3) and q.sum() == sum(d.n_samples for d in game.datasets)
