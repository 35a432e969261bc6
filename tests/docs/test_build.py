"""The documentation build fails when a code block executed at build time raises.

markdown-exec renders the traceback into the page and logs a warning; strict mode turns warnings into
an error, but only if they are emitted: ``--quiet`` dropped them (the balanced-market tutorial once
published a ``ModuleNotFoundError`` while ``make test``'s docs build passed). This runs the Makefile's
own build command on a one-page site whose block raises, and on the same page fixed.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = '# Page\n\n```python exec="on"\n{code}\n```\n'
CONFIG = "\n".join(
    [
        "site_name: t",
        "strict: true",
        "markdown_extensions:",
        "  - pymdownx.superfences",
        "plugins:",
        "  - markdown-exec",
        "",
    ]
)


def makefile_build_command() -> list[str]:
    """``MKDOCS_BUILD`` of the Makefile, with ``$(BIN)`` this interpreter's bin directory."""
    text = (ROOT / "Makefile").read_text()
    line = re.search(r"^MKDOCS_BUILD = (.+)$", text, flags=re.M)
    assert line, "the Makefile defines MKDOCS_BUILD"
    words = shlex.split(line.group(1).replace("$(BIN)", str(Path(sys.executable).parent)))
    return [w for w in words if "=" not in w or w.startswith("-")]


def build(tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "docs").mkdir(exist_ok=True)
    (tmp_path / "docs" / "index.md").write_text(PAGE.format(code=code))
    (tmp_path / "mkdocs.yml").write_text(CONFIG)
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    cmd = [*makefile_build_command(), "--site-dir", str(tmp_path / "site")]
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize(
    ("code", "fails"), [("import datamarket.no_such_module", True), ("print('fine')", False)]
)
def test_a_raising_code_block_fails_the_build(tmp_path: Path, code: str, fails: bool) -> None:
    res = build(tmp_path, code)
    assert (res.returncode != 0) == fails, res.stdout + res.stderr
    if fails:
        assert "Execution of python code block exited with errors" in res.stdout + res.stderr
