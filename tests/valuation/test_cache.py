"""Persistent coalition cache: repeated runs refit nothing, interrupted runs resume exactly."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from datamarket.core.errors import ConfigurationError
from datamarket.core.types import Dataset
from datamarket.valuation import ModelGame, exact_shapley, monte_carlo_shapley
from datamarket.valuation.cache import FILE_NAME, PersistentCache


def _game(cache=None, c: float = 1.0) -> ModelGame:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(2)
    x = rng.normal(size=(120, 3))
    y = (x @ np.array([1.0, -1.0, 0.5]) + 0.3 * rng.normal(size=120) > 0).astype(int)
    parts = [Dataset(x[i:80:6], y[i:80:6]) for i in range(6)]
    return ModelGame(LogisticRegression(C=c), parts, Dataset(x[80:], y[80:]), empty_score=0.5, cache=cache)


def test_repeated_run_refits_nothing(tmp_path: Path) -> None:
    first = _game(tmp_path)
    ref = exact_shapley(first)
    first.cache.close()
    assert first.n_fits == 63
    again = _game(tmp_path)
    res = exact_shapley(again)
    assert again.n_fits == 0 and again.cache.restored == 64
    np.testing.assert_array_equal(res.values, ref.values)  # the stored doubles themselves: bitwise
    other = _game(tmp_path, c=0.5)  # another estimator parameter: another fingerprint
    assert other.fingerprint() != again.fingerprint() and other.cache.stored == 0
    with sqlite3.connect(tmp_path / FILE_NAME) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_interrupted_run_resumes_to_identical_values(tmp_path: Path) -> None:
    fresh = monte_carlo_shapley(_game(), seed=4, max_evaluations=40)
    part = _game(tmp_path)
    done = monte_carlo_shapley(part, seed=4, max_evaluations=15).evaluations  # "killed" early
    part.cache.close()
    resumed_game = _game(tmp_path)
    resumed = monte_carlo_shapley(resumed_game, seed=4, max_evaluations=40)
    # same seed, same path: restored values stand in for the first fits exactly
    np.testing.assert_array_equal(resumed.values, fresh.values)
    assert resumed.evaluations == fresh.evaluations
    assert resumed_game.cache.restored == done and 0 < done <= 15
    assert resumed_game.n_fits == fresh.evaluations - done  # only what the first attempt had not


def test_two_writers_share_a_directory(tmp_path: Path) -> None:
    a, b = PersistentCache(tmp_path, "g"), PersistentCache(tmp_path, "g")
    a.put(1, 0.5)
    b.put(1, 0.5)  # the same deterministic value from another run: INSERT OR IGNORE
    b.put(2, 0.75)
    a.flush()
    b.flush()
    c = PersistentCache(tmp_path, "g")
    assert c.stored == 2 and c.restore([1, 2, 3]) == [3]
    for x in (a, b, c):
        x.close()
    with pytest.raises(ConfigurationError, match="cache"):
        PersistentCache(tmp_path / FILE_NAME / "sub", "g")  # a file where a directory should be


def test_cli_cache_option(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from datamarket.cli import app

    cfg = tmp_path / "v.toml"
    cfg.write_text('[dataset]\nname = "iris"\n[sellers]\nn = 4\n[method]\nname = "exact_shapley"\n')
    runs = [
        CliRunner().invoke(app, ["value", str(cfg), "--json", "--cache", str(tmp_path / "c")])
        for _ in range(2)
    ]
    data = [json.loads(r.stdout) for r in runs]
    assert data[0]["model_fits"] == 15 and data[1]["model_fits"] == 0
    assert data[0]["values"] == data[1]["values"]
