"""The Benchmarks page is generated from result files, and the user pages carry no machine logs.

Every script in ``benchmarks/`` writes ``benchmarks/results/<script>.json`` through
``benchmarks/_support.py``'s ``Recorder``; ``docs/hooks/benchmarks.py`` renders those files into
``benchmarks.md`` at build time. Checked here: every committed result file has the envelope's fields,
the hook renders each of them (and says "no result file yet" for each script without one), the hook and
the recorder agree on the envelope, and no page of the documentation's nav (``docs/*.md``,
``docs/tutorials/*.md``; ``docs/dev/`` is outside the nav) nor the README holds a measurement log: a
load average, "this machine", a commit hash, or a dated "measured" line.
"""

from __future__ import annotations

import doctest
import importlib.util
import json
import logging
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
RESULTS = ROOT / "benchmarks" / "results"
RESULT_FILES = sorted(RESULTS.glob("*.json"))
USER_PAGES = sorted([*DOCS.glob("*.md"), *(DOCS / "tutorials").glob("*.md"), ROOT / "README.md"])
HARDWARE = {"cpu", "logical_cores", "memory_gib", "os", "python", "numpy"}


def load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def hook() -> ModuleType:
    return load("benchmarks_hook", DOCS / "hooks" / "benchmarks.py")


@pytest.fixture(scope="module")
def support() -> ModuleType:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        return load("_support", ROOT / "benchmarks" / "_support.py")
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def section_of(text: str, anchor: str) -> str:
    """The part of the rendered text from the heading ``{#anchor}`` to the next heading."""
    start = text.index(f"{{#{anchor}}}")
    end = text.find("\n### ", start)
    return text[start : None if end < 0 else end]


# -- result files -------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", RESULT_FILES, ids=[p.name for p in RESULT_FILES])
def test_every_result_file_has_the_envelope(hook: ModuleType, path: Path) -> None:
    data = json.loads(path.read_text())
    assert not hook.missing_fields(data), hook.missing_fields(data)
    assert data["benchmark"] == path.stem
    assert f"benchmarks/{path.stem}.py" in data["command"]
    assert re.fullmatch(r"20\d\d-\d\d-\d\d", data["date"]), data["date"]
    assert HARDWARE <= set(data["hardware"]), set(data["hardware"])
    assert not {k for k in data["hardware"] if re.search("host|node|user", k)}, "a machine's name"
    assert set(data["load"]) == {"start", "end"}
    assert isinstance(data["quick"], bool)
    assert data["met"] in (True, False, None)
    assert data["results"] and all(isinstance(row, dict) for row in data["results"])
    for key in ("claim", "target"):
        assert data[key] is None or isinstance(data[key], str)


def test_the_recorder_writes_the_envelope_the_hook_reads(
    hook: ModuleType, support: ModuleType, tmp_path: Path
) -> None:
    assert tuple(support.ENVELOPE) == tuple(hook.ENVELOPE)
    run = doctest.testmod(support)  # benchmarks/ is outside pytest's doctest paths
    assert run.attempted and not run.failed
    rec = support.Recorder(ROOT / "benchmarks" / "example.py", quick=True, argv=["--quick"])
    path = rec.write(
        [{"method": "ours", "seconds": 0.5, "range": [0.4, 0.6]}, {"method": "|peer|", "seconds": None}],
        claim="fast",
        target="< 1 s",
        met=True,
        out=tmp_path / "example.json",
    )
    data = json.loads(path.read_text())
    assert not hook.missing_fields(data)
    assert data["command"].endswith("benchmarks/example.py --quick")
    assert data["quick"] is True
    text = hook.section("example", path)
    assert "| ours | 0.5 | [0.4, 0.6] |" in text
    assert "\\|peer\\|" in text  # a pipe inside a cell is escaped
    assert "**met**" in text and "benchmarks/example.py --quick" in text


# -- the hook -----------------------------------------------------------------------------------------
def test_the_hook_renders_every_result_file_and_names_the_missing_ones(hook: ModuleType) -> None:
    text = hook.render(ROOT)
    files = {p.stem for p in RESULT_FILES}
    scripts = hook.scripts(ROOT)
    assert scripts, "benchmarks/ holds scripts"
    assert not [s for s in scripts if s.startswith("_")]
    for name in sorted(set(scripts) | files):
        part = section_of(text, hook.anchor(name))
        if name in files:
            data = json.loads((RESULTS / f"{name}.json").read_text())
            assert data["command"] in part
            assert data["date"] in part
            assert data["hardware"]["cpu"] in part
            assert hook.NO_RESULT not in part
            assert part.count("\n|---") >= 1, "the result table"
        else:
            assert hook.NO_RESULT in part, name


def test_a_bare_repository_shows_the_missing_line_and_a_bad_file_warns(
    hook: ModuleType, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bench = tmp_path / "benchmarks"
    (bench / "results").mkdir(parents=True)
    for name in ("alpha.py", "beta.py", "_helper.py"):
        (bench / name).write_text("")
    (bench / "results" / "beta.json").write_text(json.dumps({"benchmark": "beta"}))
    with caplog.at_level(logging.WARNING, logger="mkdocs.hooks.benchmarks"):
        text = hook.render(tmp_path)
    assert hook.NO_RESULT in section_of(text, "alpha")
    assert "lacks" in section_of(text, "beta")
    assert "_helper" not in text
    assert any("beta.json" in r.getMessage() for r in caplog.records)


def test_the_page_holds_the_marker_and_no_hand_typed_ratios(hook: ModuleType) -> None:
    page = (DOCS / "benchmarks.md").read_text()
    assert page.count(hook.MARKER) == 1
    assert not re.search(r"\d+(\.\d+)?\s*[x×]\s+(faster|slower)", page), "a hand-typed ratio"
    assert "docs/hooks/benchmarks.py" in (ROOT / "mkdocs.yml").read_text()


def test_links_to_the_benchmarks_page_name_existing_sections(hook: ModuleType) -> None:
    anchors = {hook.anchor(s) for s in hook.scripts(ROOT)} | {"results", "running-them"}
    bad = []
    for page in USER_PAGES:
        for m in re.finditer(r"benchmarks\.md#([\w-]+)", page.read_text()):
            if m.group(1) not in anchors:
                bad.append(f"{page.relative_to(ROOT)}: #{m.group(1)}")
    assert not bad, bad


# -- no machine logs in the user pages ----------------------------------------------------------------
HEX = r"(?=[0-9a-f]{0,39}\d)[0-9a-f]{7,40}\b"  # 7-40 hex digits, at least one a digit (not a word)
MONTHS = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*"
MACHINE_LOG = {
    r"\bload averages?\b": "a load average",
    r"\bthis (?:[\w-]+ )?machine\b": "'this machine'",
    rf"\bcommit\s+`?{HEX}|\b{HEX}`?\s+commit\b": "a commit hash",
    rf"\bmeasured\b[^.\n]{{0,30}}?(?:\b20\d\d-\d\d-\d\d|\b\d{{1,2}} {MONTHS} 20\d\d)": "a dated 'measured'",
    r"\b\d\d:\d\d(?:\s*[–-]\s*\d\d:\d\d)?\s+UTC\b": "a time of day of a run",
}


def machine_logs(text: str) -> list[str]:
    hits = []
    for lineno, line in enumerate(text.splitlines(), 1):
        for pattern, what in MACHINE_LOG.items():
            m = re.search(pattern, line, flags=re.I)
            if m:
                hits.append(f"{lineno}: {what}: {m.group(0)!r}")
    return hits


def test_the_patterns_catch_machine_logs_and_spare_prose() -> None:
    bad = [
        "## Measured (this machine, 2 cores shared with other jobs, load average 3-8)",
        "this 2-core machine shared with other jobs",
        "the baseline src of commit 01f4c7f (extracted with git archive)",
        "`3b9e2a1d5c` commit",
        "Measured 2026-12-02, one run",
        "measured on 2 Dec 2026:",
        "(09:52–10:01 UTC, load 4.1 → 7.8)",
    ]
    fine = [
        "Run the command on your machine.",
        "each commit is reviewed; commit accepted",
        "measured in fits, not seconds",
        "created_at (UTC, microseconds)",
        "the machine's load shows in the result file",
        "a hash chain of SHA-256 digests, e.g. 0^64",
    ]
    for text in bad:
        assert machine_logs(text), text
    for text in fine:
        assert not machine_logs(text), text


@pytest.mark.parametrize("page", USER_PAGES, ids=[p.relative_to(ROOT).as_posix() for p in USER_PAGES])
def test_no_machine_log_in_a_user_page(page: Path) -> None:
    hits = "\n".join(machine_logs(page.read_text()))
    assert not hits, f"{page.relative_to(ROOT)} holds a measurement log (move it to docs/dev/):\n{hits}"
