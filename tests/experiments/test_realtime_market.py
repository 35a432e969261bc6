"""``datamarket reproduce realtime_market --quick`` writes every figure with its data, and the replication
sweep's records are the paper's closed forms (Agarwal, Dahleh, Sarkar, Ex. 3.1 and Thm 5.4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datamarket.experiments import figures, reproduce

TOL = 64 * 2.220446049250313e-16  # two sums over 2^5 value-table entries of magnitude <= 1


@pytest.mark.slow
def test_quick_reproduce_writes_every_figure(tmp_path: Path) -> None:
    paths = reproduce("realtime_market", tmp_path, quick=True, seed=0)
    names = [f.name for f in figures("realtime_market")]
    assert names == ["closed_form_regret", "replication_sweep", "replication_study"]
    for name in names:
        for ext in (".png", ".csv", ".json"):
            p = tmp_path / "realtime_market" / f"{name}{ext}"
            assert p in paths and p.stat().st_size > 0
    sweep = json.loads((tmp_path / "realtime_market" / "replication_sweep.json").read_text())
    exact = [r for r in sweep if r["streams"] == "identical"]
    assert len(exact) == 2 * 4 * 2
    assert all(abs(r["share"] - r["closed_form"]) <= TOL for r in exact)
    study = json.loads((tmp_path / "realtime_market" / "replication_study.json").read_text())
    rules = {r["rule"] for r in study}
    assert rules == {
        "PD*_A (Shapley)",
        "PD*_B, |cos|",
        "PD*_B, |Pearson|",
        "collaborative v",
        "collaborative w",
    }
    copycat = [r for r in study if r["party"] == "copycat"]
    assert all(r["honest_share"] == 0 and r["share"] > 0 for r in copycat)  # a copy is paid under every rule
    for rule in rules:  # every rule's shares and unpaid part add up to the charge
        for scenario in {r["scenario"] for r in study}:
            rows = [r for r in study if r["rule"] == rule and r["scenario"] == scenario]
            assert sum(r["share"] for r in rows) == pytest.approx(1.0, abs=1e-12)
