"""Every command and output that Getting Started and the README's "Running a scenario" show is run.

The shell blocks' ``datamarket`` commands are run as written (``.venv/bin/datamarket`` is this
interpreter's ``datamarket``), in a scratch directory that sees the repository's ``examples/``; each
must exit 0, and the tables and audit keys the page names must be in the output. The scenario file
the page shows is printed from the package when the site is built.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "getting-started.md"
EXE = Path(sys.executable).with_name("datamarket")


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, flags=re.M | re.S)


def commands(text: str) -> list[str]:
    """The runnable ``.venv/bin/datamarket`` lines of the shell blocks (comments dropped)."""
    out = []
    for block in blocks(text, "sh"):
        for line in block.splitlines():
            cmd = line.split("  #")[0].strip()
            if cmd.startswith(".venv/bin/datamarket") and "..." not in cmd:
                out.append(cmd)
    return out


def readme_section(name: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"## {name}")
    end = text.find("\n## ", start + 3)
    return text[start:end]


SHOWN = sorted(set(commands(GUIDE.read_text())) | set(commands(readme_section("Running a scenario"))))


def test_the_pages_show_commands() -> None:
    assert len(SHOWN) >= 5 and any(c.endswith("--json") for c in SHOWN)


@pytest.mark.parametrize("cmd", SHOWN)
def test_shown_command_runs(cmd: str, tmp_path: Path) -> None:
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    argv = [str(EXE), *shlex.split(cmd)[1:]]
    res = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    if argv[1:3] == ["run", "examples/broker.toml"] and len(argv) == 3:
        # the tables and audit keys Getting Started names
        for word in ("pricing", "collection", "deviations", "profit", "certificate", "audits"):
            assert re.search(rf"^\s+{word}\s*$", res.stdout, flags=re.M), word
        for key in ("ir_buyer", "envy_free", "incentive_compatible", "budget_balance_strong", "ex_post."):
            assert key in res.stdout, key
        for check in ("pricing.envy_free", "pricing.optimality_gap", "mstar.budget_balance"):
            assert check in res.stdout, check


def test_shown_scenario_file_is_read_from_the_package() -> None:
    """The first scenario is printed from examples/broker.toml when the site is built, never copied."""
    text = GUIDE.read_text()
    assert 'Path("examples/broker.toml").read_text()' in text and blocks(text, "toml") == []
