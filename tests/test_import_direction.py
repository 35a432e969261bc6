from pathlib import Path

import datamarket
from tests.import_rules import violations

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
