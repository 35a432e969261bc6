"""The valuation suite's references and games (``benchmarks/_valuation_refs.py``, ``_valuation_games.py``).

The reference is the benchmark's truth, so it is checked against what it claims: full enumeration
equals the engine's exact Shapley values; the position-stratified estimate is exact when every
marginal contribution is the same at every interior position (an additive game plus a function of
the coalition size); on a game with random coalition values it lies within a stated number of its
own standard errors of the exact values; a stored reference is reused only when its key matches.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from datamarket.valuation import FunctionGame, exact_shapley

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str) -> ModuleType:
    """A module of ``benchmarks/``, loaded without leaving it (or what it imports from there) in
    ``sys.modules``, where other tests load their own copies (``_support``'s doctests among them)."""
    before = set(sys.modules)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the class is made
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
        for added in set(sys.modules) - before:
            if Path(getattr(sys.modules[added], "__file__", None) or "").parent == ROOT / "benchmarks":
                del sys.modules[added]


@pytest.fixture(scope="module")
def refs() -> ModuleType:
    return _load("_valuation_refs")


@pytest.fixture(scope="module")
def games() -> ModuleType:
    return _load("_valuation_games")


def _random_table(m: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    sizes = np.array([bin(s).count("1") for s in range(1 << m)])
    return np.sqrt(sizes) + 0.3 * rng.normal(size=1 << m) * (sizes > 0)


def test_enumeration_equals_the_engines_exact_values(refs: ModuleType) -> None:
    table = _random_table(7, 0)
    exact = exact_shapley(FunctionGame(lambda s: float(table[sum(1 << i for i in s)]), 7)).values
    assert np.allclose(refs.exact_reference(lambda mask: table[mask], 7), exact, atol=1e-12)


def test_sampled_reference_is_exact_when_interior_marginals_are_constant(refs: ModuleType) -> None:
    # v(S) = sum_{j in S} w_j + |S| / 2: every marginal contribution of i is w_i + 1/2 whatever the
    # prefix, so the sampled interior stratum has no variance and the reference is exact.
    m = 9
    w = np.linspace(-1.0, 2.0, m)

    def value(mask: int) -> float:
        s = refs.members(mask, m)
        return float(w[s].sum() + 0.5 * len(s))

    ref = refs.sampled_reference(value, m, max_fits=120, seed=3)
    assert np.allclose(ref["values"], w + 0.5, atol=1e-12)
    assert np.allclose(ref["stderr"], 0.0, atol=1e-12)


def test_sampled_reference_within_its_standard_errors(refs: ModuleType) -> None:
    # Random coalition values: the interior marginals vary. Each player's estimate is a mean of
    # n >= 40 i.i.d. pair means; |z| <= 4.5 for all 8 players fails with probability below
    # 8 * 2 * P(t_39 > 4.5) ~ 1e-3 (Bonferroni; Student t for the estimated standard error).
    m = 8
    table = _random_table(m, 1)
    exact = refs.exact_reference(lambda mask: table[mask], m)
    ref = refs.sampled_reference(lambda mask: table[mask], m, max_fits=250, seed=0)
    assert ref["min_pairs_per_player"] >= 40
    z = np.abs(ref["values"] - exact) / ref["stderr"]
    assert np.all(z <= 4.5), z
    assert ref["fits"] <= 255


def test_stored_reference_reused_only_for_its_key(
    refs: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(refs, "REFS", tmp_path)
    calls = []

    def compute() -> dict:
        calls.append(1)
        return {"values": np.arange(3.0) + len(calls), "stderr": np.zeros(3), "fits": 7}

    key = {"game": "g", "m": 3, "seed": 0}
    first = refs.load_or_compute(key, compute)
    again = refs.load_or_compute(dict(key), compute)
    assert len(calls) == 1 and again["reused"] and np.array_equal(again["values"], first["values"])
    other = refs.load_or_compute({**key, "seed": 1}, compute)
    assert len(calls) == 2 and not other["reused"]


@pytest.mark.parametrize("name", ["digits_logreg", "tabular_gbt", "diabetes_ridge", "points_logreg"])
def test_games_are_seeded_and_count_every_fit(games: ModuleType, name: str) -> None:
    m = 200 if name == "points_logreg" else 30
    a, b = games.build_game(name, m, 0), games.build_game(name, m, 0)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y) and np.array_equal(a.groups, b.groups)
    assert sorted(set(a.groups.tolist())) == list(range(m))
    game = a.engine_game()
    games.FITS["n"] = 0
    full = (1 << m) - 1
    v_full = game.value(full)
    assert game.value(full) == v_full and games.FITS["n"] == 1  # the memo answers the second call
    assert game.value(0) == a.empty_score and games.FITS["n"] == 1  # the empty coalition is not fitted
    for i in range(3):  # single sellers, single-class ones included, are fitted without error
        assert np.isfinite(game.value(1 << i))
    assert games.FITS["n"] == 4


def test_summary_compares_the_same_seeds_and_the_best_peer() -> None:
    # seed 1 of the default is missing (an interrupted run): every method is summarised over seed 0
    # only, and the ratio is the best peer's median max error over the default's.
    suite = _load("valuation_suite")

    def row(method: str, seed: int, max_rel: float) -> dict:
        return {
            "method": method,
            "seed": seed,
            "budget": 1000,
            "fits": 1000,
            "wall_s": 1.0,
            "cpu_s": 1.0,
            "max_rel": max_rel,
            "mean_rel": max_rel / 2,
            "spearman": 0.5,
        }

    runs = [
        row("datamarket default", 0, 0.2),
        row("pyDVL TMC", 0, 0.6),
        row("pyDVL TMC", 1, 9.0),
        row("pyDVL permutation", 0, 0.8),
        row("pyDVL permutation", 1, 0.1),
    ]
    rows = {r["method"]: r for r in suite.summarise({"runs": runs})}
    assert all(r["seeds"] == 1 for r in rows.values())
    assert rows["datamarket default"]["best_peer"] == "pyDVL TMC"
    assert rows["datamarket default"]["ratio_to_best_peer"] == pytest.approx(3.0)
    assert not rows["datamarket default"]["reference_limited"]
    # a reference whose own max error is 0.15 cannot resolve an error of 0.2 (< twice 0.15)
    limited = suite.summarise({"runs": runs, "reference": {"floor_max_rel": 0.15}})
    assert next(r for r in limited if r["method"] == "datamarket default")["reference_limited"]


def test_reference_floor_is_the_max_error_of_the_reference_alone() -> None:
    suite = _load("valuation_suite")
    # one player with standard error 1 and mean |value| 1: the median of |N(0, 1)| is 0.674
    assert suite.reference_floor(np.array([1.0]), np.array([1.0]), draws=40000) == pytest.approx(
        0.674, abs=0.02
    )
    # more players of the same error: a larger max; zero errors: zero
    assert suite.reference_floor(np.ones(30), np.ones(30)) > 1.5
    assert suite.reference_floor(np.zeros(5), np.ones(5)) == 0.0


def test_errors_are_relative_to_the_mean_absolute_value() -> None:
    suite = _load("valuation_suite")
    ref = np.array([1.0, -1.0, 2.0, 0.0])
    e = suite.errors(ref + np.array([0.0, 0.5, 0.0, -1.0]), ref)
    assert e["max_rel"] == pytest.approx(1.0 / 1.0) and e["mean_rel"] == pytest.approx(0.375)
