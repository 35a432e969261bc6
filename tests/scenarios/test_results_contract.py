"""The result contract (docs/results.md): one audit vocabulary with scopes and declared expectations,
deprecated aliases, no-equilibrium results, exit codes, tables in the JSON, CSV files and DataFrames."""

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from datamarket.core.audits import AuditResult, AuditStatus, Property, Scope, judge
from datamarket.core.types import Outcome, Role
from datamarket.experiments import write_scenario_report
from datamarket.mechanisms import registered_mechanisms
from datamarket.scenarios import ScenarioResult, default_config, parse_scenario, run_scenario

ROOT = Path(__file__).resolve().parents[2]
INFOS = {m.name: m for m in registered_mechanisms()}
KEY = re.compile(r"^(?:[a-z_]+\.)?(" + "|".join(p.value for p in Property) + r")$")


@pytest.fixture(scope="module")
def broker_result() -> ScenarioResult:
    return run_scenario(default_config("broker").model_copy(update={"reps": 2000}))


@pytest.fixture(scope="module")
def truthful_result() -> ScenarioResult:
    return run_scenario(default_config("truthful_payments"))


def _check_vocabulary(result: ScenarioResult) -> None:
    for key, audit in result.audits.items():
        m = KEY.match(key)
        assert m and m.group(1) == audit.property.value, key
        assert audit.mechanism in INFOS, (key, audit.mechanism)
        assert audit.expected_to_hold == INFOS[audit.mechanism].expects(audit.property, audit.scope)


def test_broker_audits_use_the_vocabulary_with_scopes(broker_result: ScenarioResult) -> None:
    res = broker_result
    _check_vocabulary(res)
    a = res.audits
    assert a["ir_buyer"].scope == Scope.EXPECTED and a["ir_buyer"].expected_to_hold is True
    assert a["envy_free"].scope == Scope.EX_ANTE
    # The settled outcome is one realisation: ex post IR is not guaranteed by M* (IR in expectation).
    assert a["ex_post.ir_buyer"].scope == Scope.EX_POST and a["ex_post.ir_buyer"].expected_to_hold is False
    assert not res.failures(AuditStatus.FAILS_GUARANTEED), res.failures()


def test_broker_old_audit_keys_are_deprecated_aliases(broker_result: ScenarioResult) -> None:
    data = broker_result.to_json()
    old_new = {"irb": "ir_buyer", "efb": "envy_free", "irc": "ir_seller", "icc": "incentive_compatible"}
    old_new["bb"] = "budget_balance_strong"
    fields = {d["field"]: d for d in data["deprecations"]}
    for old, new in old_new.items():
        alias = data["audits"][old]
        assert alias["deprecated"] == f"use audits.{new}"
        assert {k: v for k, v in alias.items() if k != "deprecated"} == data["audits"][new]
        assert fields[f"audits.{old}"]["replacement"] == f"audits.{new}"


def test_truthful_loo_and_shapley_ic_fail_as_the_paper_predicts(truthful_result: ScenarioResult) -> None:
    res = truthful_result
    _check_vocabulary(res)
    for rule in ("loo", "shapley"):
        assert res.audits[f"{rule}.incentive_compatible"].status == AuditStatus.FAILS_AS_PREDICTED
    for rule in ("myerson", "vcg"):
        assert res.audits[f"{rule}.incentive_compatible"].status == AuditStatus.HOLDS
    assert res.failures(AuditStatus.FAILS_GUARANTEED) == []


def test_expects_follows_the_declared_scope() -> None:
    mstar = INFOS["broker_mstar"]
    assert mstar.expects(Property.IR_BUYER, Scope.EXPECTED) is True
    assert mstar.expects(Property.IR_BUYER, Scope.EX_POST) is False
    assert INFOS["truthful_payments.loo"].expects(Property.INCENTIVE_COMPATIBLE) is False
    assert INFOS["truthful_payments.myerson"].expects(Property.INCENTIVE_COMPATIBLE) is True
    assert INFOS["collaborative-v"].expects(Property.ENVY_FREE) is None
    broken = judge(AuditResult(Property.IR_SELLER, False, 0.5), INFOS["truthful_payments.myerson"])
    assert broken.status == AuditStatus.FAILS_GUARANTEED and broken.mechanism == "truthful_payments.myerson"


def test_no_equilibrium_is_a_result_with_a_reason() -> None:
    cfg = parse_scenario((ROOT / "examples" / "competing_buyers-no-gne.toml").read_text())
    res = run_scenario(cfg)
    assert res.status == "no_equilibrium" and res.reason and "spectral radius" in res.reason
    data = res.to_json()
    assert data["status"] == "no_equilibrium" and data["reason"] == res.reason and data["outcome"] is None


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "datamarket.cli", *args], capture_output=True, text=True, cwd=ROOT, timeout=300
    )


def test_exit_codes_for_audits_and_no_equilibrium() -> None:
    from datamarket.cli import EXIT_AUDIT_FAILED, _exit_code

    # LOO and Shapley are not IC, as the paper predicts: --fail-on-audit does not trip on them.
    res = _cli("run", "examples/truthful_payments.toml", "--fail-on-audit")
    assert res.returncode == 0, res.stderr
    assert "fails, as the paper predicts" in res.stdout
    res = _cli("run", "examples/competing_buyers-no-gne.toml")
    assert res.returncode == 4 and "no_equilibrium" in res.stdout
    broken = ScenarioResult(
        "truthful_payments",
        0,
        {},
        audits={
            "myerson.ir_seller": judge(
                AuditResult(Property.IR_SELLER, False, 1.0), INFOS["truthful_payments.myerson"]
            )
        },
    )
    assert _exit_code(broken, fail_on_audit=True) == EXIT_AUDIT_FAILED
    assert _exit_code(broken, fail_on_audit=False) == 0


def test_tables_are_in_the_json_at_full_precision(truthful_result: ScenarioResult) -> None:
    data = json.loads(json.dumps(truthful_result.to_json()))
    assert set(data["tables"]) == {"sellers", "buyers", "misreport", "certificate"}
    assert data["certificate"]["passed"] and data["status"] == "ok"
    assert [r["check"] for r in data["tables"]["certificate"]] == list(data["certificate"]["checks"])
    f = data["tables"]["sellers"][0]["f_j"]
    assert f == float(truthful_result.tables["sellers"][0]["f_j"])  # JSON round-trips floats exactly
    sweep = data["sweep"]
    assert sweep["true_cost"] == 5.0 and set(sweep["gain"]) == {"loo", "shapley", "myerson", "vcg"}
    assert data["shares"] == [r["f_j"] for r in data["tables"]["sellers"]]


def test_csv_report_names_headers_and_precision(tmp_path: Path, broker_result: ScenarioResult) -> None:
    paths = write_scenario_report(broker_result, tmp_path, "broker")
    csvs = [p for p in paths if p.suffix == ".csv"]
    assert {p.name for p in csvs} == {
        f"broker-{t}.csv" for t in ("pricing", "collection", "deviations", "profit", "certificate")
    }
    for p in csvs:
        assert "--" not in p.name and " " not in p.name
        header = p.read_text().splitlines()[0].split(",")
        assert all(re.fullmatch(r"[a-z0-9_]+", h) for h in header), header
    row = broker_result.tables["pricing"][0]
    text = (tmp_path / "broker-pricing.csv").read_text()
    assert repr(row["q_plus"]) in text  # full precision, not 6 significant digits
    # Parquet exactly when pyarrow is installed (an optional dependency)
    import importlib.util

    assert any(p.suffix == ".parquet" for p in paths) == (importlib.util.find_spec("pyarrow") is not None)


def test_report_of_a_mixed_type_table(tmp_path: Path) -> None:
    """The summary table mixes booleans, numbers and text in one column: CSV and Parquet both write."""
    res = run_scenario(default_config("balanced_market"))
    paths = write_scenario_report(res, tmp_path, "bm")
    assert (tmp_path / "bm-summary.csv").is_file() and len(paths) >= 3


def test_to_dataframe(broker_result: ScenarioResult) -> None:
    frames = broker_result.to_dataframe()
    assert list(frames) == ["pricing", "collection", "deviations", "profit", "certificate"]
    assert broker_result.to_dataframe("certificate")["passed"].all()
    pricing = broker_result.to_dataframe("pricing")
    assert list(pricing["buyer"]) == ["lab", "startup", "agency"]
    assert pricing["q_plus"].tolist() == [r["q_plus"] for r in broker_result.tables["pricing"]]
    with pytest.raises(KeyError, match="no table"):
        broker_result.to_dataframe("nope")
    o = Outcome("t", ("b", "s"), (Role.BUYER, Role.SELLER), prices=[2.0, 0.0], payments=[0.0, 2.0])
    df = o.to_dataframe()
    assert df["utility"].tolist() == [-2.0, 2.0] and df["role"].tolist() == ["buyer", "seller"]


def test_valuation_result_to_dataframe() -> None:
    from datamarket.valuation.result import ValuationResult

    r = ValuationResult(
        "exact_shapley", ("a", "b"), np.array([0.25, 0.75]), np.zeros(2), np.zeros(2, dtype=np.int64)
    )
    df = r.to_dataframe()
    assert df["name"].tolist() == ["a", "b"] and df["value"].tolist() == [0.25, 0.75]


def test_format_csv_prints_every_table() -> None:
    res = _cli("run", "examples/truthful_payments.toml", "--format", "csv")
    assert res.returncode == 0, res.stderr
    names = re.findall(r"^# table: (\S+)$", res.stdout, flags=re.M)
    assert names == ["sellers", "buyers", "misreport", "certificate"]


def test_piped_tables_are_not_truncated() -> None:
    res = _cli("run", "examples/broker.toml")
    assert res.returncode == 0 and "…" not in res.stdout


def test_competing_buyers_new_fields() -> None:
    res = run_scenario(default_config("competing_buyers"))
    f = res.fields
    assert np.allclose(f["total_gamma"], np.sum(f["gamma"], axis=1))
    assert len(f["best_responses"]) == 2 and all(r["improvement"] <= 1e-6 for r in f["best_responses"])
    assert f["effort_social_unconstrained"] == bool(np.any(np.asarray(f["effort_social"]) < 0))


def test_balanced_market_new_fields() -> None:
    res = run_scenario(default_config("balanced_market"))
    f = res.fields
    assert f["equilibria"]["selection"] and f["equilibria"]["baseline"] >= 1
    assert math.isclose(
        sum(f["payments"]["baseline"]), f["baseline"]["utilities"]["marketplace"], rel_tol=1e-9
    )
    assert len(f["growth"]) == len(res.tables["growth"])
    assert f["summary"]["price_of_fairness"] == f["price_of_fairness"]


def test_reproduce_one_figure_with_progress_and_timings(tmp_path: Path) -> None:
    res = _cli("reproduce", "broker", "--quick", "--figure", "pricing_curve", "--out", str(tmp_path), "-v")
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in (tmp_path / "broker").iterdir()) == [
        "pricing_curve.csv",
        "pricing_curve.json",
        "pricing_curve.png",
    ]
    assert "[1/1] broker/pricing_curve" in res.stderr
    assert re.search(r"broker/pricing_curve: computed \d+ records in [0-9.]+ s", res.stderr)
    bad = _cli("reproduce", "broker", "--quick", "--figure", "nope", "--out", str(tmp_path))
    assert bad.returncode == 2 and "no figure nope" in bad.stderr and "pricing_curve" in bad.stderr


def test_run_verbose_logs_stage_timings() -> None:
    res = _cli("run", "examples/truthful_payments.toml", "--json", "-v")
    assert res.returncode == 0
    assert re.search(r"truthful_payments ran in [0-9.]+ s", res.stderr)
    json.loads(res.stdout)  # logging goes to stderr: stdout stays one JSON object


def test_committed_result_schema_is_the_generated_one() -> None:
    """``result.schema.json`` is generated from each kind's ``Fields`` model (``python -m
    datamarket.schemas`` rewrites it); the committed file must be up to date."""
    from datamarket.families import BUILTIN
    from datamarket.schemas import RESULT_SCHEMA_FILE, build_result_schema, result_schema, schema_text

    generated = build_result_schema(BUILTIN)
    assert result_schema() == generated
    committed = ROOT / "src" / "datamarket" / "schemas" / RESULT_SCHEMA_FILE
    assert committed.read_text() == schema_text(generated)
    kinds = [f.kind for f in BUILTIN if f.scenario is not None]
    assert generated["properties"]["kind"]["enum"] == sorted(kinds)


def test_every_kind_documents_its_fields_and_the_default_result_has_them() -> None:
    """Each kind's ``Fields`` lists exactly the top-level fields its result carries (the default
    market's result has every required field and no undocumented one)."""
    from datamarket.scenarios import available_kinds, scenario_module

    for kind in ["broker", "truthful_payments", "competing_buyers"]:
        fields = scenario_module(kind).Fields
        cfg = default_config(kind)
        if kind == "broker":
            cfg = cfg.model_copy(update={"reps": 500})
        got = set(run_scenario(cfg).fields)
        required = {n for n, f in fields.model_fields.items() if f.is_required()}
        assert required <= got <= set(fields.model_fields), kind
    assert all(hasattr(scenario_module(k), "Fields") for k in available_kinds())
