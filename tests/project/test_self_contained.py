"""The project's text stands on its own: no pointer outside the repository, no internal codes.

Users of the package have neither the working notes the implementation was written from nor the
project's issue tracker, so no file may point at them. Papers are cited by authors, title, venue or
arXiv id and their own equation numbers; each deviation from a paper is stated in words (and listed on
``docs/errata.md``). The second test checks that every test the documentation cites exists.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("src", "docs", "examples", "tests", "benchmarks", "README.md", "Makefile", "pyproject.toml")
SUFFIXES = {".py", ".md", ".toml", ".json", ".txt", ".cfg", ".ini", ".yml", ".yaml", ".html", ""}

# Each pattern: what it catches. Written so that this file does not match itself (see THIS_FILE).
FORBIDDEN = {
    r"\.\./shared|shared/(spec|papers)\b": "a path outside the repository",
    r"\[(FIX|AMBIG|AMB)\b": "an internal correction tag",
    r"\b(FIX|AMB)-\d": "an internal correction code",
    r"\bS[0-4]-(\.\.\.|[A-Z]{0,2}\d)|\(cited as \"?spec": "a section code of the working notes",
    r"\bspec\s*(§|S\d|section|\d+\.\d)|\bspec's\b|§\s*\d": "a section of the working notes",
    r"\bseed[0-4]_\w+\.md|\bref\d?_\w+\.py": "a file of the working notes",
    r"\b[Ii]ssue\s*#?\s*\d+|#\d+\s+targets": "an issue-tracker number",
    r"\b[Rr]eview (fix|regressions?)\b": "review-note language",
}

THIS_FILE = "tests/project/test_self_contained.py"


def _files() -> list[Path]:
    out: list[Path] = []
    for name in SCANNED:
        path = ROOT / name
        if path.is_file():
            out.append(path)
        elif path.is_dir():
            out += [p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES]
    return sorted(p for p in out if "__pycache__" not in p.parts)


def test_no_reference_outside_the_repository_or_to_internal_codes() -> None:
    hits = []
    for path in _files():
        rel = path.relative_to(ROOT).as_posix()
        if rel == THIS_FILE:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for lineno, line in enumerate(text.splitlines(), 1):
            for pattern, what in FORBIDDEN.items():
                m = re.search(pattern, line)
                if m:
                    hits.append(f"{rel}:{lineno}: {what}: {m.group(0)!r}")
    assert not hits, "self-contained text violated:\n" + "\n".join(hits)


def test_the_patterns_catch_what_they_should() -> None:
    """The scanner is not vacuous: each pattern fires on an example and not on ordinary prose."""
    bad = [
        "see ../" + "shared/papers/001.txt",
        "[" + "FIX] the sign",
        "FIX" + "-2.6 says",
        "S0" + "-A3 enumerates",
        "spec " + "§2.8",
        "seed3" + "_broker.md",
        "(" + "issue 3)",
        "Review " + "fix: the rule",
    ]
    fine = ["eq. (15) of the paper", "Section 4.2", "Theorem 5.3 as corrected", "the S-shaped curve"]
    for text in bad:
        assert any(re.search(p, text) for p in FORBIDDEN), text
    for text in fine:
        assert not any(re.search(p, text) for p in FORBIDDEN), text


def test_tests_cited_by_the_documentation_exist() -> None:
    """Every ``tests/FILE.py::NAME`` in docs/ names a test function that exists."""
    missing = []
    for doc in sorted((ROOT / "docs").rglob("*.md")):
        for file, name in re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", doc.read_text(encoding="utf-8")):
            target = ROOT / file
            if not target.is_file() or not re.search(rf"def {name}\b", target.read_text(encoding="utf-8")):
                missing.append(f"{doc.relative_to(ROOT)}: {file}::{name}")
    assert not missing, "documentation cites missing tests:\n" + "\n".join(missing)
