from pathlib import Path

import datamarket
from tests.import_rules import import_cycles, private_violations, violations

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
