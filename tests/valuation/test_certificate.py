"""Certificates of valuation results: efficiency against brute force, standard errors, tampering, CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from itertools import permutations
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datamarket.core.certificates import status_for
from datamarket.valuation import (
    FunctionGame,
    StderrTarget,
    TableGame,
    exact_banzhaf,
    exact_shapley,
    knn_shapley,
    leave_one_out,
    monte_carlo_shapley,
)
from datamarket.valuation.certificate import certify


def _brute_shapley_by_orders(table: np.ndarray) -> np.ndarray:
    """Shapley value as the mean marginal contribution over all M! orders (independent of the library)."""
    n = int(table.size).bit_length() - 1
    phi = np.zeros(n)
    orders = list(permutations(range(n)))
    for order in orders:
        mask = 0
        for i in order:
            phi[i] += table[mask | (1 << i)] - table[mask]
            mask |= 1 << i
    return phi / len(orders)


games = st.integers(2, 5).flatmap(
    lambda n: st.lists(
        st.floats(-100.0, 100.0, allow_nan=False, allow_infinity=False), min_size=1 << n, max_size=1 << n
    )
)


@settings(deadline=None, max_examples=60)
@given(games)
def test_exact_shapley_efficiency_check_against_brute_force(values: list[float]) -> None:
    table = np.array(values)
    game = TableGame(table)
    res = certify(exact_shapley(game), game)
    brute = _brute_shapley_by_orders(table)
    # sums of M! <= 120 marginals of magnitude <= 200: agreement well within 1e-9
    np.testing.assert_allclose(res.values, brute, rtol=0, atol=1e-9)
    check = res.certificate["efficiency"]
    assert check.passed and res.certificate.passed
    # the check's target is the game's v(N) - v(empty), which the brute force's sum also equals
    assert res.utility_full == table[-1] and res.utility_empty == table[0]
    assert abs(brute.sum() - (table[-1] - table[0])) <= check.tolerance + 1e-9
    # tolerance: 2 (2^M + M) eps scale, scale >= 1
    scale = max(1.0, abs(table[-1]), abs(table[0]), float(np.abs(res.values).sum()))
    m = table.size.bit_length() - 1
    assert check.tolerance == pytest.approx(2 * ((1 << m) + m) * np.finfo(float).eps * scale)


@settings(deadline=None, max_examples=30)
@given(games, st.integers(0, 4), st.floats(1e-6, 1.0))
def test_tampered_values_fail_the_efficiency_check(values: list[float], who: int, delta: float) -> None:
    table = np.array(values)
    game = TableGame(table)
    res = certify(exact_shapley(game), game)
    bad = res.values.copy()
    bad[who % bad.size] += delta
    tampered = replace(res, values=bad)
    assert not tampered.certificate["efficiency"].passed
    assert tampered.certificate.failures() == ["efficiency"]
    assert status_for(tampered.certificate) == "unverified"


def test_uncertified_exact_result_checks_its_recorded_gap() -> None:
    game = FunctionGame(lambda s: float(len(s)) ** 2, 4)
    res = exact_shapley(game)  # no v(N), v(empty) attached: the table's own gap is checked
    assert res.utility_full is None and res.certificate.passed
    assert "recorded" in res.certificate["efficiency"].method


def test_monte_carlo_stderr_check_present_and_finite() -> None:
    game = FunctionGame(lambda s: float(np.sqrt(sum(1.0 + i for i in s))), 10)
    res = monte_carlo_shapley(game, seed=0, max_evaluations=300)
    # the estimator records v(N) and v(empty) on return (certified), so efficiency is checked
    assert res.utility_full is not None and res.certificate["efficiency"].passed
    stripped = replace(res, utility_full=None, utility_empty=None)
    # without v(N), v(empty) efficiency cannot be checked: a claim not checked does not pass
    assert np.isnan(stripped.certificate["efficiency"].residual) and not stripped.certificate.passed
    res = certify(stripped, game)
    se = res.certificate["stderr"]
    assert np.isfinite(se.residual) and se.residual == pytest.approx(float(res.stderr.max()))
    assert se.passed and "finite" in se.claim and se.detail["stderr"]["player_0"] == res.stderr[0]
    eff = res.certificate["efficiency"]
    assert eff.passed and eff.detail["statistical_allowance"] == pytest.approx(4 * res.stderr.sum())
    assert res.certificate.passed
    json.dumps(res.to_dict(), allow_nan=False)  # JSON-safe, certificate included


def test_monte_carlo_stderr_target() -> None:
    game = FunctionGame(lambda s: float(np.sqrt(sum(1.0 + i for i in s))), 10)
    ok = certify(monte_carlo_shapley(game, seed=1, stopping=StderrTarget(0.05)), game, stderr_target=0.05)
    assert ok.certificate["stderr"].passed and ok.certificate["stderr"].tolerance == 0.05
    # a budget too small for the target: the SE check fails, the result is not "ok"
    short = monte_carlo_shapley(game, seed=1, max_evaluations=30)
    short = certify(short, game, stderr_target=1e-6)
    assert not short.certificate["stderr"].passed and status_for(short.certificate) == "unverified"


def test_banzhaf_and_loo_have_no_efficiency_check() -> None:
    game = FunctionGame(lambda s: float(len(s) >= 2), 4)
    for res in (certify(exact_banzhaf(game), game), certify(leave_one_out(game), game)):
        names = [c.name for c in res.certificate.checks]
        assert names == ["values_finite"] and res.certificate.passed
        assert "not applicable" in res.certificate["values_finite"].detail["efficiency"]


def test_knn_shapley_certificate_and_tampering() -> None:
    rng = np.random.default_rng(3)
    xtr, ytr = rng.normal(size=(40, 2)), rng.integers(0, 2, size=40)
    xte, yte = rng.normal(size=(9, 2)), rng.integers(0, 2, size=9)
    res = knn_shapley(xtr, ytr, xte, yte, k=3)
    assert res.certificate.passed and res.certificate["efficiency"].residual < 1e-14
    bad = replace(res, values=res.values + 1e-9)
    assert bad.certificate.failures() == ["efficiency"]


def test_merge_keeps_recorded_utilities() -> None:
    game = FunctionGame(lambda s: float(np.sqrt(sum(1.0 + i for i in s))), 8)
    a = certify(monte_carlo_shapley(game, seed=0, max_evaluations=100), game)
    b = certify(monte_carlo_shapley(game, seed=1, max_evaluations=100), game)
    merged = a.merge(b)
    assert merged.utility_full == a.utility_full and merged.certificate["efficiency"].passed


@pytest.mark.parametrize(
    ("method", "checks"),
    [("exact_shapley", {"values_finite", "efficiency"}), ("monte_carlo_shapley", None)],
)
def test_value_command_writes_the_certificate(tmp_path: Path, method: str, checks: set[str] | None) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2))
    y = (x[:, 0] > 0).astype(int)
    lines = ["a,b,label"] + [f"{r[0]},{r[1]},{t}" for r, t in zip(x, y, strict=True)]
    (tmp_path / "d.csv").write_text("\n".join(lines))
    cfg = tmp_path / "v.toml"
    cfg.write_text(
        '[dataset]\ncsv = "d.csv"\ntarget = "label"\n[sellers]\nn = 6\n'
        f'[method]\nname = "{method}"\n[stopping]\nmax_evaluations = 40\n'
    )
    from typer.testing import CliRunner

    from datamarket.cli import app

    res = CliRunner().invoke(app, ["value", str(cfg), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    cert = data["certificate"]
    assert data["status"] == ("ok" if cert["passed"] else "unverified")
    assert "values" in data and "stderr" in data  # existing fields kept
    if checks is not None:
        assert set(cert["checks"]) == checks and cert["passed"]
    else:
        assert {"values_finite", "efficiency", "stderr"} <= set(cert["checks"])
        assert cert["checks"]["stderr"]["residual"] == pytest.approx(max(data["stderr"]))
    assert cert["checks"]["efficiency"]["detail"]["v_full"] == data["utility_full"]
    table = CliRunner().invoke(app, ["value", str(cfg)])
    assert table.exit_code == 0 and "certificate" in table.stdout and "status:" in table.stdout
