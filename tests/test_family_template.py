"""How to add a sixth family (docs/architecture.md), checked: write a toy family from a template into a
copy of the package and check it registers, passes the mechanism contract and runs as a scenario kind.

The toy is a posted-price sale: the buyer pays ``price``, the seller receives ``price - fee``. It declares
strong budget balance, which holds only when ``fee == 0``; the broken variant (fee 0.1) must fail the
contract test, so the check can fail.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import datamarket

SRC = Path(datamarket.__file__).parent
REPO = Path(__file__).resolve().parent.parent

FAMILY_INIT = '''"""Toy posted-price family (template for a sixth paper family).

>>> outcome = sale(1.0).outcome
>>> outcome.platform_take == {fee}
True
"""

from datamarket.mechanisms.toy_market._sale import MECHANISMS, PAPER, sale

__all__ = ["MECHANISMS", "PAPER", "sale"]
'''

FAMILY_SALE = '''"""The sale and the declared guarantees."""

from __future__ import annotations

from datamarket.core.audits import MechanismInfo, Property, Sample
from datamarket.core.random import make_rng
from datamarket.core.types import Outcome, Role

PAPER = "toy: a posted-price sale"
FEE = {fee}


def sale(price: float) -> Sample:
    """One buyer pays ``price``; the seller receives ``price - FEE``."""
    outcome = Outcome(
        mechanism="toy_sale",
        participants=("buyer", "seller"),
        roles=(Role.BUYER, Role.SELLER),
        allocated=[1.0, 0.0],
        prices=[price, 0.0],
        payments=[0.0, price - FEE],
        values=[2.0 * price, 0.0],
        costs=[0.0, 0.0],
    )
    return Sample(outcome)


def _sample(seed: int) -> Sample:
    return sale(float(make_rng(seed).uniform(0.5, 1.0)))


MECHANISMS: tuple[MechanismInfo, ...] = (
    MechanismInfo(
        name="toy_sale",
        paper=PAPER,
        guarantees=frozenset({{Property.BUDGET_BALANCE_STRONG}}),
        sample=_sample,
    ),
)
'''

SCENARIO = '''"""Toy scenario kind: one posted-price sale."""

from __future__ import annotations

from typing import Literal

from pydantic import PositiveFloat

from datamarket.core.audits import audit_outcome
from datamarket.mechanisms.toy_market import sale
from datamarket.scenarios._base import ScenarioConfig, ScenarioResult


class Config(ScenarioConfig):
    kind: Literal["toy_market"] = "toy_market"
    price: PositiveFloat = 1.0


def default_config() -> Config:
    return Config()


def run(config: ScenarioConfig) -> ScenarioResult:
    assert isinstance(config, Config)
    outcome = sale(config.price).outcome
    return ScenarioResult(
        kind="toy_market",
        seed=config.seed,
        fields={{"price": config.price}},
        outcome=outcome,
        audits=audit_outcome(outcome),
    )
'''

CHECK = """
import datamarket
from pathlib import Path
from datamarket.mechanisms import registered_mechanisms
from datamarket.scenarios import available_kinds, parse_scenario, run_scenario
from tests.contract import check_contract
from tests.import_rules import import_cycles, private_violations, violations

root = Path(datamarket.__file__).parent
assert str(root).startswith(r"{tmp}"), root
assert violations(root) == private_violations(root) == import_cycles(root) == []
infos = {{m.name: m for m in registered_mechanisms()}}
print("failures", check_contract(infos["toy_sale"]))
assert "toy_market" in available_kinds()
result = run_scenario(parse_scenario('kind = "toy_market"\\nprice = 0.75'))
print("json", result.to_json()["price"], result.to_json()["outcome"]["mechanism"])
"""


def write_family(package: Path, fee: float) -> None:
    """The files of steps 1-3 of "Adding a sixth family", for the toy family, into ``package``."""
    family = package / "mechanisms" / "toy_market"
    family.mkdir()
    (family / "__init__.py").write_text(FAMILY_INIT.format(fee=fee))
    (family / "_sale.py").write_text(FAMILY_SALE.format(fee=fee))
    (package / "scenarios" / "toy_market.py").write_text(SCENARIO.format())


def run_toy(tmp_path: Path, fee: float) -> str:
    shutil.copytree(SRC, tmp_path / "datamarket", ignore=shutil.ignore_patterns("__pycache__"))
    write_family(tmp_path / "datamarket", fee)
    code = textwrap.dedent(CHECK.format(tmp=tmp_path))
    env_path = f"{tmp_path}:{REPO}"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_toy_family_registers_passes_contract_and_runs(tmp_path: Path) -> None:
    out = run_toy(tmp_path, fee=0.0)
    assert "failures []" in out
    assert "json 0.75 toy_sale" in out


def test_toy_family_with_false_declaration_fails_contract(tmp_path: Path) -> None:
    out = run_toy(tmp_path, fee=0.1)
    assert "failures ['toy_sale seed 0: budget_balance_strong fails" in out
