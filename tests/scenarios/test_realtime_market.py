"""Scenario kind ``realtime_market`` (Agarwal, Dahleh, Sarkar): the examples' JSON, validation, audits."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest

from datamarket.core.audits import AuditStatus
from datamarket.scenarios import ScenarioError, default_config, parse_scenario, run_scenario
from datamarket.schemas import result_schema

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TOL = 64 * 2.220446049250313e-16  # two sums over 2^5 table entries of magnitude <= 1


def _run(name: str) -> dict:
    result = run_scenario(parse_scenario((EXAMPLES / name).read_text()))
    data = result.to_json()
    jsonschema.Draft202012Validator(result_schema()).validate(data)
    assert data["status"] == "ok", data["reason"]
    return data


def test_replication_example_reports_the_sweep_of_theorem_5_4() -> None:
    data = _run("realtime_market-replication.toml")
    rows = data["tables"]["replication"]
    assert {"copies", "rule", "seller", "share"} <= set(rows[0])
    for c in range(4):
        a = sum(r["share"] for r in rows if r["copies"] == c and r["rule"] == "pd_b" and r["owner"] == "A")
        b = next(r["share"] for r in rows if r["copies"] == c and r["rule"] == "pd_b" and r["seller"] == "B")
        a_shapley = sum(
            r["share"] for r in rows if r["copies"] == c and r["rule"] == "pd_a" and r["owner"] == "A"
        )
        assert a == pytest.approx((c + 1) / (c + 2) * 2 ** -(c + 1), abs=TOL)
        assert b == pytest.approx(2 ** -(c + 1) / (c + 2), abs=TOL)
        assert a_shapley == pytest.approx((c + 1) / (c + 2), abs=TOL)
    assert data["certificate"]["checks"]["division.replication"]["passed"]
    assert data["replication"]["seller"] == "A" == data["replication"]["copier"]


def test_closed_form_example_learns_three_quarters() -> None:
    data = _run("realtime_market-closed-form.toml")
    assert data["market"] == "closed_form" and data["outcome"] is None and data["buyers"] == 10_000
    net_spacing = 0.04  # eps = 1/(L sqrt N) = 0.02: centres 0.02, 0.06, ...
    assert abs(data["learned_price"] - 0.75) <= net_spacing
    assert abs(data["best_fixed_price"] - 0.75) <= net_spacing
    bound = data["certificate"]["checks"]["pricing.regret"]["detail"]["epochs"][0]["bound"] / 10_000
    assert 0 < data["average_regret"] <= bound + 0.5 * 0.02
    path = data["price_path"]
    assert 2 <= len(path) <= 200 and path[0]["buyer"] == 1 and path[-1]["buyer"] == 10_000
    assert all(0 < p["posted"] < 1 for p in path)
    assert data["audits"]["incentive_compatible"]["status"] == AuditStatus.HOLDS


def test_default_market_pd_b_loses_balance_as_predicted() -> None:
    result = run_scenario(default_config("realtime_market").model_copy(update={"buyers": _few(4)}))
    assert result.status == "ok", result.reason
    audits = result.audits
    assert audits["budget_balance_strong"].status == AuditStatus.FAILS_AS_PREDICTED
    assert audits["incentive_compatible"].status == AuditStatus.HOLDS
    assert audits["ir_buyer"].status == AuditStatus.HOLDS
    data = result.to_json()
    assert data["unassigned"] > 0 and len(data["sellers"]) == 10
    paid = sum(s["payment"] for s in data["sellers"])
    assert paid + data["unassigned"] == pytest.approx(data["revenue"], abs=1e-12)


def _few(n: int) -> object:
    cfg = default_config("realtime_market")
    return cfg.buyers.model_copy(update={"count": n})  # type: ignore[attr-defined]


def test_pd_a_on_a_classification_data_set_is_balanced() -> None:
    text = """
kind = "realtime_market"
rule = "pd_a"
max_bid = 1.0
[learner]
name = "sklearn.linear_model:LogisticRegression"
params = {max_iter = 300}
[data]
source = "sklearn"
name = "iris"
[buyers]
count = 3
value_low = 0.2
"""
    result = run_scenario(parse_scenario(text))
    assert result.status == "ok", result.reason
    assert result.audits["budget_balance_strong"].status == AuditStatus.HOLDS
    assert result.certificate["division.balance"].passed


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("[buyers]\nvalue_high = 3.0\n", "value_low <= value_high <= max_bid"),
        ('[data]\nsource = "sklearn"\nfeatures = ["bmi", "height"]\n', "not features of diabetes"),
        ('[replication]\nseller = "nobody"\n', "no seller 'nobody'"),
        (
            '[data]\nsource = "closed_form"\n[replication]\nseller = "bmi"\n',
            "closed-form market has no sellers",
        ),
        ('rule = "pd_c"\n', "rule"),
    ],
)
def test_invalid_scenarios_are_one_clear_error(extra: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario('kind = "realtime_market"\n' + extra)
