"""The portal guide's pictures are the browser tests' screenshots: every picture docs/portal.md shows is
one that ``make portal-screenshots`` takes again, and no other picture lies in docs/assets/portal."""

from __future__ import annotations

import re
from pathlib import Path

from tests.service.portal import test_browser, test_browser_families

ROOT = Path(__file__).resolve().parents[2]


def test_every_portal_picture_is_taken_by_a_browser_test() -> None:
    shown = set(re.findall(r"\]\(assets/portal/([\w-]+)\.png\)", (ROOT / "docs/portal.md").read_text()))
    taken = set(test_browser.GUIDE) | set(test_browser_families.GUIDE)
    on_disk = {p.stem for p in (ROOT / "docs/assets/portal").glob("*.png")}
    assert shown == taken, (shown - taken, taken - shown)
    assert on_disk == taken, (on_disk - taken, taken - on_disk)
