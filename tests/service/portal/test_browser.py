"""The portal end to end in a real browser: Playwright driving Debian's Chromium against a live
``datamarket serve`` subprocess on 127.0.0.1.

The operator signs in, creates a broker and a collaborative market and registers the participants;
each participant signs in in its own browser context and submits and uploads through the forms; the
operator clears both rounds and watches them clear; each participant's receipt page shows exactly
the ledger's amounts and verifies. A screenshot of every page goes to ``test-artifacts/portal/``
(git-ignored; ``$DATAMARKET_TEST_ARTIFACTS`` overrides the folder).

The browser is the system's ``/usr/bin/chromium`` (``apt-get install chromium``; ``.ci/run`` does it),
never a downloaded one. Without it (or without Playwright) the test is skipped, except under CI
(``$CI`` set), where that is a failure.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.service_support import ADMIN, blobs, csv_bytes, db_url  # noqa: F401  (fixture)

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.xdist_group("browser")


def _need_browser() -> Any:
    """Playwright's sync API, or skip (fail under CI) when it or Chromium is missing."""
    why = None
    try:
        from playwright import sync_api
    except ImportError:
        why = "playwright is not installed (pip install the dev extra)"
    if why is None and not CHROMIUM.exists():
        why = f"{CHROMIUM} not found (apt-get install chromium)"
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests must run in CI: {why}")
        pytest.skip(why)
    return sync_api


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:  # noqa: F811
    """``datamarket serve`` on a free port of 127.0.0.1: its base URL and its log file."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    exe = Path(sys.executable).with_name("datamarket")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "from datamarket.cli import main; main()"]
    env = {**os.environ, "DATAMARKET_ADMIN_KEY": ADMIN}
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [
            *cmd,
            "serve",
            "--db",
            db_url,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--executor",
            "thread",
            "--access-log",  # so the test sees that requests are logged by path, keys never
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "datamarket serve did not start"
            time.sleep(0.1)
        yield base, tmp_path / "serve.log"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


class Shots:
    """Numbered full-page screenshots in the artifacts folder; with ``$DATAMARKET_PORTAL_GUIDE`` set to a
    folder (``make portal-screenshots``: ``docs/assets/portal``), the pages named in ``guide`` are also
    written there as ``NAME.png``: the portal guide's pictures come from these tests."""

    def __init__(self, folder: Path, guide: tuple[str, ...] = ()):
        self.folder = folder
        self.n = 0
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.png"):
            old.unlink()
        where = os.environ.get("DATAMARKET_PORTAL_GUIDE")
        self.guide_folder = Path(where) if where else None
        self.guide = guide
        if self.guide_folder is not None:
            self.guide_folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, page: Any, name: str) -> None:
        self.n += 1
        page.screenshot(path=str(self.folder / f"{self.n:02d}-{name}.png"), full_page=True)
        if self.guide_folder is not None and name in self.guide:
            page.screenshot(path=str(self.guide_folder / f"{name}.png"), full_page=True)


GUIDE = (
    "operator-home",
    "operator-broker-market",
    "participant-bid-stored",
    "operator-round-collaborative",
    "receipt-lab_a",
    "operator-ledger",
)
"""The pages docs/portal.md shows (``make portal-screenshots``)."""


def sign_in(browser: Any, base: str, key: str, *, keyboard: bool = False, **ctx: Any) -> Any:
    """A new browser context signed in with ``key``; its page."""
    context = browser.new_context(base_url=base, **ctx)
    page = context.new_page()
    page.goto("/portal/login")
    if keyboard:  # keyboard only: the skip link comes first, the key field takes Enter
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip"
        page.focus("#api_key")
        page.keyboard.type(key)
        page.keyboard.press("Enter")
    else:
        page.fill("#api_key", key)
        page.click("button[type=submit]")
    page.wait_for_url(f"{base}/portal/")
    assert key not in page.content() and key not in page.url
    return page


def register(op: Any, name: str) -> str:
    op.goto("/portal/participants")
    op.fill("#pname", name)
    op.click("form.card button[type=submit]")
    return str(op.inner_text("#new-key")).strip()


def create_market(op: Any, kind: str, name: str, fields: dict[str, str]) -> int:
    op.goto("/portal/")
    op.click(f"#new-{kind}")
    op.fill("#name", name)
    for field, value in fields.items():
        if (
            op.get_attribute(f"#{field}", "id")
            and op.evaluate(f"document.getElementById('{field}').tagName") == "SELECT"
        ):
            op.select_option(f"#{field}", value)
        else:
            op.fill(f"#{field}", value)
    op.click("#market-form button[type=submit]")
    op.wait_for_url(re.compile(r".*/portal/markets/\d+\?done=created"))
    return int(re.search(r"/markets/(\d+)", op.url).group(1))  # type: ignore[union-attr]


def upload(page: Any, mid: int, path: Path, kind: str = "dataset") -> None:
    page.goto(f"/portal/markets/{mid}")
    page.select_option("#upload-kind", kind)
    page.set_input_files("#upload-file", str(path))
    page.click("#form-upload button[type=submit]")
    page.wait_for_url(re.compile(rf".*/portal/markets/{mid}\?done=uploaded"))


def clear_round(op: Any, mid: int) -> int:
    op.goto(f"/portal/markets/{mid}")
    op.click("#form-clear button[type=submit]")
    op.wait_for_url(re.compile(r".*/portal/rounds/\d+$"))
    rid = int(op.url.rsplit("/", 1)[1])
    # the page polls the round's status and reloads once it is final (at once if it already was)
    op.wait_for_selector("#receipts", timeout=120_000)
    op.wait_for_load_state("load")
    assert op.get_attribute("#round-state", "class") == "status-cleared"
    assert "every check passed" in op.inner_text("#round-certificate")  # the outcome's certificate
    assert op.locator("#certificate-checks tbody tr").count() >= 1
    return rid


def test_portal_end_to_end_in_chromium(server: tuple[str, Path], tmp_path: Path) -> None:
    sync_api = _need_browser()
    base, log = server
    shots = Shots(
        Path(os.environ.get("DATAMARKET_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "portal",
        guide=GUIDE,
    )
    rng = np.random.default_rng(0)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            op = sign_in(browser, base, ADMIN)
            shots(op, "operator-home")
            broker = create_market(op, "broker", "mean estimation", {"sigma": "1.0"})
            shots(op, "operator-broker-market")
            collab = create_market(
                op,
                "collaborative",
                "hospitals",
                {"characteristic": "v", "c": "2", "model__kind": "logreg", "model__max_iter": "50"},
            )
            names = ["lab_a", "sensor_x", "sensor_y", "clinic_0", "clinic_1"]
            keys = {n: register(op, n) for n in names}
            shots(op, "operator-participant-created")
            op.goto("/portal/participants")
            shots(op, "operator-participants")

            # each participant in its own context (the first one signs in by keyboard only)
            pages = {n: sign_in(browser, base, keys[n], keyboard=(n == "lab_a")) for n in names}
            lab = pages["lab_a"]
            lab.goto(f"/portal/markets/{broker}")
            lab.select_option("#bid-valuation", "gaussian")
            lab.fill("#bid-width", "-1")  # refused by the adapter: the message shows beside the field
            lab.click("#form-bid button[type=submit]")
            assert "must be" in lab.inner_text("#bid-width-error")
            shots(lab, "participant-bid-error")
            lab.fill("#bid-width", "0.5")
            lab.click("#form-bid button[type=submit]")
            lab.wait_for_url(re.compile(r".*\?done=submitted"))
            shots(lab, "participant-bid-stored")
            for n, cost in (("sensor_x", "0.05"), ("sensor_y", "0.06")):
                p = pages[n]
                p.goto(f"/portal/markets/{broker}")
                p.fill("#cost-cost", cost)
                p.click("#form-cost button[type=submit]")
                p.wait_for_url(re.compile(r".*\?done=submitted"))
            for n in ("sensor_x", "sensor_y"):
                p = pages[n]
                p.goto(f"/portal/markets/{broker}")
                count = int(p.inner_text("#my-n strong"))
                f = tmp_path / f"{n}.csv"
                f.write_bytes(csv_bytes(rng.normal(2.0, 1.0, (count, 1))))
                upload(p, broker, f)
            shots(pages["sensor_x"], "participant-upload-done")
            for k, n in enumerate(("clinic_0", "clinic_1")):
                x, y = blobs(rng, 8 + 6 * k)
                f = tmp_path / f"{n}.csv"
                f.write_bytes(csv_bytes(x, y))
                upload(pages[n], collab, f)
            x, y = blobs(rng, 40)
            (tmp_path / "task.csv").write_bytes(csv_bytes(x, y))
            upload(pages["clinic_0"], collab, tmp_path / "task.csv", kind="task")
            # a phone-width view of a market page: nothing wider than the screen
            phone = pages["clinic_1"]
            phone.set_viewport_size({"width": 390, "height": 844})
            phone.goto(f"/portal/markets/{collab}")
            assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
            shots(phone, "participant-market-phone")

            rounds = {}
            for label, mid in (("broker", broker), ("collaborative", collab)):
                rounds[label] = clear_round(op, mid)
                op.wait_for_function(  # the figure, drawn by the server, has loaded
                    "(() => { const i = document.getElementById('round-figure');"
                    " return i && i.complete && i.naturalWidth > 0; })()",
                    timeout=90_000,
                )
                shots(op, f"operator-round-{label}")

            admin = httpx.Client(base_url=base, headers={"X-API-Key": ADMIN}, timeout=60)
            ledger = admin.get("/ledger/entries").json()["entries"]
            who = {p["name"]: p["id"] for p in admin.get("/participants").json()}
            checked = 0
            for n in names:
                rid = rounds["broker" if n in ("lab_a", "sensor_x", "sensor_y") else "collaborative"]
                p = pages[n]
                p.goto(f"/portal/rounds/{rid}")
                p.click("#receipt-link")
                p.wait_for_selector("#entries")
                shown = {
                    int(row.get_attribute("data-seq")): int(row.get_attribute("data-amount-minor"))
                    for row in p.query_selector_all("#entries tbody tr[data-seq]")
                }
                booked = {
                    e["seq"]: e["amount_minor"]
                    for e in ledger
                    if e["round_id"] == rid and e["participant_id"] == who[n]
                }
                assert shown == booked and shown, n
                assert int(p.get_attribute("#net", "data-net-minor")) == sum(booked.values())
                p.click("#form-verify button[type=submit]")
                assert p.inner_text("#verify-result").startswith("Verified")
                shots(p, f"receipt-{n}")
                checked += 1
            assert checked == len(names)
            op.goto("/portal/ledger")
            assert op.inner_text("#verify-result").startswith("Verified")
            shots(op, "operator-ledger")
            admin.close()
            # no sign-in key reached the service's log (requests are logged by path only)
            text = log.read_text()
            assert "GET /portal/" in text
            assert not any(k in text for k in [ADMIN, *keys.values()])
        finally:
            browser.close()
