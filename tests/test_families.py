"""How to add a family (docs/architecture.md), checked end to end: a toy family is written into a copy
of the package -- its own folders and files plus ONE line in the family registry
(``datamarket/families.py``), no other file edited -- and must then be

* discovered by the mechanism contract (``registered_mechanisms()``) and pass it;
* runnable as a scenario kind, with a result valid against the generated result schema;
* served: a market of the toy kind is created, receives submissions and clears a round through the
  HTTP API (FastAPI's TestClient on the app of ``tests.service_support.make_app``);
* rendered: the portal's new-market page shows the toy's parameter fields, from its input model;
* documented: the docs hook (``docs/hooks/families.py``) puts its page in the nav.

The toy is a posted-price sale: the buyer pays ``price``, the seller receives ``price - fee``. It declares
strong budget balance, which holds only when ``fee == 0``; the broken variant (fee 0.1) must fail the
contract test, so the check can fail.
"""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import datamarket

SRC = Path(datamarket.__file__).parent
REPO = Path(__file__).resolve().parent.parent

FAMILY_LINE = (
    '    Family("toy_market", "Toy, Template", "A toy posted-price sale, the template of a new family.", '
    '"Toy market", experiments=None, tutorial=None),  # noqa: E501\n'
)

FAMILY_INIT = '''"""Toy posted-price family (template for a new paper family).

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


def sale(price: float, buyer: str = "buyer", seller: str = "seller") -> Sample:
    """One buyer pays ``price``; the seller receives ``price - FEE``."""
    outcome = Outcome(
        mechanism="toy_sale",
        participants=(buyer, seller),
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

SCENARIO = '''"""Toy scenario kind: one posted-price sale. Its input models are shared with its adapter."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat

from datamarket.core.audits import audit_outcome
from datamarket.mechanisms.toy_market import sale
from datamarket.scenarios._base import ResultFields, ScenarioConfig, ScenarioResult, StrictModel


class Params(StrictModel):
    price: PositiveFloat = Field(
        default=1.0,
        title="posted price",
        description="the price of the item",
        json_schema_extra={"unit": "money", "symbol": "p"},
    )


class Order(StrictModel):
    max_price: PositiveFloat = Field(title="highest price", description="the most the buyer pays")


class Listing(StrictModel):
    reserve: NonNegativeFloat = Field(title="reserve", description="the least the seller takes")


class Config(Params, ScenarioConfig):
    kind: Literal["toy_market"] = "toy_market"


class Fields(ResultFields):
    price: float = Field(description="the posted price")


def default_config() -> Config:
    return Config()


def run(config: Config) -> ScenarioResult:
    outcome = sale(config.price).outcome
    return ScenarioResult(
        kind="toy_market",
        seed=config.seed,
        fields={"price": config.price},
        outcome=outcome,
        audits=audit_outcome(outcome),
    )
'''

ADAPTER = '''"""Toy adapter: a buyer's order and a seller's listing clear at the posted price."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from datamarket.core.certificates import Certificate, Check
from datamarket.core.errors import InvalidMarketError
from datamarket.core.types import Dataset
from datamarket.scenarios.toy_market import Listing, Order, Params
from datamarket.service.adapters import Clearing, Input, latest_by, validate_input


class ToyAdapter:
    kind = "toy_market"
    description = "Toy posted-price sale"
    submission_kinds = {"order": "buyer: {max_price}", "listing": "seller: {reserve}"}
    dataset_kinds = frozenset[str]()
    params_model = Params
    submission_models = {"order": Order, "listing": Listing}

    def validate_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return validate_input(Params, params, "params").model_dump()

    def validate_submission(
        self, params: Mapping[str, Any], kind: str, payload: Mapping[str, Any], dataset: Dataset | None
    ) -> dict[str, Any]:
        return validate_input(self.submission_models[kind], payload, "data").model_dump()

    def _pair(self, params: Mapping[str, Any], inputs: Sequence[Input]) -> tuple[str, str]:
        orders, listings = latest_by(inputs, "order"), latest_by(inputs, "listing")
        if len(orders) != 1 or len(listings) != 1:
            raise InvalidMarketError("inputs", "need one order and one listing")
        (buyer, order), (seller, listing) = next(iter(orders.items())), next(iter(listings.items()))
        if not listing.payload["reserve"] <= params["price"] <= order.payload["max_price"]:
            raise InvalidMarketError("inputs", "no sale at the posted price")
        return buyer, seller

    def check_inputs(self, params: Mapping[str, Any], inputs: Sequence[Input]) -> None:
        self._pair(params, inputs)

    def plan(self, params: Mapping[str, Any], inputs: Sequence[Input]) -> dict[str, Any]:
        return {"price": params["price"]}

    def clear(self, params: Mapping[str, Any], inputs: Sequence[Input], seed: int) -> Clearing:
        from datamarket.mechanisms.toy_market import sale

        buyer, seller = self._pair(params, inputs)
        outcome = sale(float(params["price"]), buyer, seller).outcome
        take = abs(outcome.platform_take)
        check = Check("sale.balance", "the platform keeps nothing", "sum of transfers", take, 1e-12)
        deliverables = {buyer: {"kind": "item"}, seller: {"kind": "sale"}}
        return Clearing(outcome, deliverables, Certificate.of(check))


ADAPTER = ToyAdapter()
'''

GUIDE = "# Toy market\n\nA posted-price sale: the template of a new family.\n"

CHECK = """
import datamarket, jsonschema, yaml, importlib.util, time
from pathlib import Path
from datamarket.mechanisms import registered_mechanisms
from datamarket.scenarios import available_kinds, parse_scenario, run_scenario
from datamarket.schemas import build_result_schema
from tests.contract import check_contract
from tests.import_rules import import_cycles, private_violations, violations

root = Path(datamarket.__file__).parent
assert str(root).startswith(r"{tmp}"), root
assert violations(root) == private_violations(root) == import_cycles(root) == []
infos = {{m.name: m for m in registered_mechanisms()}}
print("failures", check_contract(infos["toy_sale"]))
assert "toy_market" in available_kinds()
result = run_scenario(parse_scenario('kind = "toy_market"\\nprice = 0.75'))
data = result.to_json()
jsonschema.Draft202012Validator(build_result_schema()).validate(data)
print("json", data["price"], data["outcome"]["mechanism"])

# documented: the docs hook puts the toy's guide in the nav
spec = importlib.util.spec_from_file_location("families_hook", r"{repo}/docs/hooks/families.py")
hook = importlib.util.module_from_spec(spec)
spec.loader.exec_module(hook)
nav = yaml.safe_load(Path(r"{repo}/mkdocs.yml").read_text())["nav"]
config = hook.on_config({{"nav": nav, "docs_dir": r"{tmp}/docs"}})
guides = next(item["User guides"] for item in config["nav"] if "User guides" in item)
print("nav", {{"Toy market": "toy_market.md"}} in guides)
"""

SERVE = """
import time
from fastapi.testclient import TestClient
from tests.service_support import ADMIN, make_app

app = make_app(r"sqlite:///{tmp}/toy.db")
admin = {{"X-API-Key": ADMIN}}
with TestClient(app, base_url="http://127.0.0.1") as c:
    assert "toy_market" in [k["kind"] for k in c.get("/kinds").json()]
    bad = c.post("/markets", json={{"kind": "toy_market", "params": {{"price": -1}}}}, headers=admin)
    assert bad.status_code == 422 and bad.json()["field"] == "params.price", bad.text
    made = c.post("/markets", json={{"kind": "toy_market", "params": {{"price": 2.0}}}}, headers=admin)
    mid = made.json()["id"]
    keys = {{}}
    for name in ("ann", "bob"):
        keys[name] = c.post("/participants", json={{"name": name}}, headers=admin).json()["api_key"]
    for name, kind, data in (("ann", "order", {{"max_price": 3.0}}), ("bob", "listing", {{"reserve": 1.0}})):
        key = {{"X-API-Key": keys[name]}}
        r = c.post(f"/markets/{{mid}}/submissions", json={{"kind": kind, "data": data}}, headers=key)
        assert r.status_code == 201, r.text
    rid = c.post(f"/markets/{{mid}}/rounds", headers=admin).json()["id"]
    for _ in range(600):
        rnd = c.get(f"/rounds/{{rid}}", headers=admin).json()
        if rnd["status"] not in ("pending", "running"):
            break
        time.sleep(0.05)
    print("round", rnd["status"], rnd["outcome"]["mechanism"])

    # rendered: the portal's new-market page shows the toy's parameter field
    import re
    csrf = lambda html: re.search(r'name="csrf" value="([^"]+)"', html).group(1)
    c.post("/portal/login", data={{"api_key": ADMIN, "csrf": csrf(c.get("/portal/login").text)}})
    page = c.get("/portal/markets/new?kind=toy_market")
    print("portal", page.status_code, '<label for="price">' in page.text, "posted price" in page.text)
"""


def write_family(tmp: Path, fee: float) -> None:
    """The toy family's own files, and its one line in the registry."""
    package = tmp / "datamarket"
    family = package / "mechanisms" / "toy_market"
    family.mkdir()
    (family / "__init__.py").write_text(FAMILY_INIT.format(fee=fee))
    (family / "_sale.py").write_text(FAMILY_SALE.format(fee=fee))
    (package / "scenarios" / "toy_market.py").write_text(SCENARIO)
    (package / "service" / "adapters" / "toy_market.py").write_text(ADAPTER)
    (tmp / "docs").mkdir()
    (tmp / "docs" / "toy_market.md").write_text(GUIDE)
    registry = package / "families.py"
    text = registry.read_text()
    assert text.count("\n)\n# fmt: on\n") == 1, "the registry's BUILTIN tuple ends the fmt: off block"
    registry.write_text(text.replace("\n)\n# fmt: on\n", "\n" + FAMILY_LINE + ")\n# fmt: on\n"))


def edited(tmp: Path) -> list[str]:
    """Files of the package copy that differ from the installed package (new files are not edits)."""
    out = []
    for path in sorted(SRC.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            rel = path.relative_to(SRC)
            if not filecmp.cmp(path, tmp / "datamarket" / rel, shallow=False):
                out.append(rel.as_posix())
    return out


def run_toy(tmp_path: Path, fee: float, code: str) -> str:
    shutil.copytree(SRC, tmp_path / "datamarket", ignore=shutil.ignore_patterns("__pycache__"))
    write_family(tmp_path, fee)
    assert edited(tmp_path) == ["families.py"]
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code.format(tmp=tmp_path, repo=REPO))],
        env={"PYTHONPATH": f"{tmp_path}:{REPO}", "PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_toy_family_registers_passes_contract_runs_and_is_documented(tmp_path: Path) -> None:
    out = run_toy(tmp_path, 0.0, CHECK)
    assert "failures []" in out
    assert "json 0.75 toy_sale" in out
    assert "nav True" in out


def test_toy_family_is_served_and_rendered(tmp_path: Path) -> None:
    out = run_toy(tmp_path, 0.0, SERVE)
    assert "round cleared toy_sale" in out, out
    assert "portal 200 True True" in out, out


def test_toy_family_with_false_declaration_fails_contract(tmp_path: Path) -> None:
    out = run_toy(tmp_path, 0.1, CHECK)
    assert "failures ['toy_sale seed 0: budget_balance_strong fails" in out
