"""Scenario kind ``collaborative`` and its figures (``datamarket reproduce collaborative --quick``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datamarket.experiments import reproduce
from datamarket.experiments.collaborative import FIGURES
from datamarket.scenarios import ScenarioError, default_config, parse_scenario, run_scenario

PARTY_FIELDS = {"name", "fee", "gain", "payout", "net", "share"}
TWO = '[[parties]]\nname = "A"\ndigits = [0]\n[[parties]]\nname = "B"\ndigits = [1]\n'


def test_default_scenario_fields_are_the_public_interface() -> None:
    result = run_scenario(default_config("collaborative", seed=0))
    assert set(result.fields) == {"parties", "characteristic", "balance_residual", "replication", "selected"}
    assert all(set(p) == PARTY_FIELDS for p in result.fields["parties"])
    assert set(result.fields["replication"]) == {"replicas", "combined_net", "condition_1"}
    assert result.fields["balance_residual"] < 1e-9
    assert all(set(s) == {"task", "parties"} for s in result.fields["selected"])
    data = json.loads(json.dumps(result.to_json()))
    assert data["kind"] == "collaborative" and data["outcome"]["mechanism"] == "collaborative-v"
    assert all(a["holds"] for a in data["audits"].values())
    fees = {p["name"]: p["fee"] for p in data["parties"]}
    assert {p["name"]: p["prices"] for p in data["outcome"]["participants"]} == fees


def test_scenario_without_replication_omits_the_field() -> None:
    text = """
kind = "collaborative"
characteristic = "w"
train_count = 10
[[parties]]
name = "A"
digits = [0, 1]
task = [0, 1]
[[parties]]
name = "B"
digits = [1, 2]
task = [1, 2]
"""
    result = run_scenario(parse_scenario(text))
    assert set(result.fields) == {"parties", "characteristic", "balance_residual", "selected"}
    assert [s["task"] for s in result.fields["selected"]] == ["A", "B"]


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (
            'characteristic = "w"\n' + TWO,
            "multi-task market",
        ),
        (
            'task = [0]\n[[parties]]\nname = "A"\ndigits = [0]\n[[parties]]\nname = "A"\ndigits = [1]\n',
            "names must be unique",
        ),
        (
            'task = [0]\n[replication]\nparty = "Z"\n' + TWO,
            "replication.party",
        ),
        (
            "task = [0]\nfee = nan\n" + TWO,
            "fee",
        ),
    ],
)
def test_bad_scenarios_name_the_field(text: str, field: str) -> None:
    with pytest.raises(ScenarioError, match=field):
        parse_scenario('kind = "collaborative"\n' + text)


def test_quick_reproduce_writes_every_figure(tmp_path: Path) -> None:
    paths = reproduce("collaborative", tmp_path, quick=True, seed=0)
    for spec in FIGURES:
        for suffix in (".png", ".csv", ".json"):
            path = tmp_path / "collaborative" / f"{spec.name}{suffix}"
            assert path in paths and path.stat().st_size > 0
    assert sum(spec.in_demo for spec in FIGURES) == 1
