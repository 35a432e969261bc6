"""The documentation's formulas are typeset, offline, in a real browser.

The site is built with the project's ``mkdocs.yml`` (as ``make docs`` does) and a tutorial page is opened
in Debian's Chromium through Playwright from ``file://``: every ``arithmatex`` formula must be
rendered by KaTeX (a ``.katex`` element, no raw ``\\(`` left), and the page must load nothing but local
files (KaTeX is served from ``docs/assets/katex``, never a CDN). Skipped without Chromium or
Playwright, a failure under CI (as the portal's browser test).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.service.portal.test_browser import ARGS, CHROMIUM, _need_browser

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.xdist_group("browser")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    mkdocs = Path(sys.executable).with_name("mkdocs")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    res = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return out


def test_tutorial_formulas_are_typeset_from_local_files(site: Path) -> None:
    sync_api = _need_browser()
    page_url = (site / "tutorials" / "balanced_market" / "index.html").as_uri()
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page()
            requested: list[str] = []
            page.on("request", lambda r: requested.append(r.url))
            page.goto(page_url)
            page.wait_for_selector(".arithmatex .katex", timeout=30_000)
            formulas = page.locator(".arithmatex")
            total = formulas.count()
            typeset = page.locator(".arithmatex .katex").count()
            raw = page.evaluate(
                "() => [...document.querySelectorAll('.arithmatex')]"
                ".filter(e => !e.querySelector('.katex')).map(e => e.textContent.slice(0, 60))"
            )
        finally:
            browser.close()
    assert total >= 10 and typeset >= total, raw
    assert raw == []
    remote = [u for u in requested if not u.startswith(("file://", "data:"))]
    assert remote == [], remote
