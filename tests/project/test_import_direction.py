from pathlib import Path

import datamarket
from tests.import_rules import import_cycles, private_violations, service_role_violations, violations

SRC = Path(datamarket.__file__).parent


def test_package_follows_import_direction() -> None:
    assert violations(SRC) == []


def test_rule_catches_core_importing_service(tmp_path: Path) -> None:
    pkg = tmp_path / "datamarket"
    (pkg / "core").mkdir(parents=True)
    (pkg / "service").mkdir()
    (pkg / "core" / "bad.py").write_text("from datamarket.service import app\n")
    (pkg / "core" / "worse.py").write_text("import datamarket.cli\n")
    (pkg / "service" / "ok.py").write_text("from datamarket.core import Outcome\n")
    found = violations(pkg)
    assert found == [
        "core/bad.py imports datamarket.service",
        "core/worse.py imports datamarket.cli",
    ]


def test_no_private_imports_across_packages() -> None:
    assert private_violations(SRC) == []


def test_no_import_cycles() -> None:
    assert import_cycles(SRC) == []


def test_rules_catch_private_imports_and_cycles(tmp_path: Path) -> None:
    pkg = tmp_path / "datamarket"
    fam = pkg / "mechanisms" / "fam"
    fam.mkdir(parents=True)
    (pkg / "scenarios").mkdir()
    for d in (pkg, pkg / "mechanisms", fam, pkg / "scenarios"):
        (d / "__init__.py").write_text("")
    (fam / "__init__.py").write_text("from datamarket.mechanisms.fam._impl import run\n")
    (fam / "_impl.py").write_text("from datamarket.mechanisms.fam._sim import simulate\n\ndef run(): ...\n")
    # a deferred import still closes the cycle _impl -> _sim -> _impl
    (fam / "_sim.py").write_text("def simulate():\n    from datamarket.mechanisms.fam._impl import run\n")
    (pkg / "scenarios" / "ok.py").write_text("from datamarket.mechanisms.fam import run\n")
    (pkg / "scenarios" / "bad.py").write_text(
        "from datamarket.mechanisms.fam._impl import run\nfrom datamarket.mechanisms.fam import _sim\n"
        "from datamarket.mechanisms import fam\nfrom datamarket.mechanisms.fam import _hidden\n"
    )
    assert private_violations(pkg) == [
        "scenarios/bad.py imports private datamarket.mechanisms.fam._impl.run",
        "scenarios/bad.py imports private datamarket.mechanisms.fam._sim",
        "scenarios/bad.py imports private datamarket.mechanisms.fam._hidden",
    ]
    assert import_cycles(pkg) == [["datamarket.mechanisms.fam._impl", "datamarket.mechanisms.fam._sim"]]


def test_store_and_clearing_never_import_the_http_layer() -> None:
    assert service_role_violations(SRC) == []
    # and the rule has something to check: the layers exist, and the HTTP layer does use them
    service = SRC / "service"
    assert (service / "store").is_dir() and (service / "clearing").is_dir()
    routes = (service / "api" / "routes" / "rounds.py").read_text()
    assert "datamarket.service.store" in routes and "datamarket.service.clearing" in routes


def test_service_role_rule_catches_upward_imports(tmp_path: Path) -> None:
    service = tmp_path / "datamarket" / "service"
    for d in ("store", "clearing", "api", "portal"):
        (service / d).mkdir(parents=True)
    (service / "store" / "bad.py").write_text("from datamarket.service.api.deps import Who\n")
    (service / "store" / "web.py").write_text("def f():\n    from fastapi import HTTPException\n")
    (service / "clearing" / "bad.py").write_text("import datamarket.service.portal.views\n")
    (service / "clearing" / "ok.py").write_text(
        "from fastapi import FastAPI\nfrom datamarket.service.store import db\n"
    )
    (service / "api" / "ok.py").write_text(
        "from datamarket.service.store import db\nfrom fastapi import APIRouter\n"
    )
    (service / "portal" / "ok.py").write_text("from datamarket.service.clearing import runner\n")
    assert service_role_violations(tmp_path / "datamarket") == [
        "service/clearing/bad.py imports datamarket.service.portal.views",
        "service/store/bad.py imports datamarket.service.api.deps",
        "service/store/web.py imports fastapi",
    ]
