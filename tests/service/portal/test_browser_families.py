"""A round of every market kind walked in Chromium, as its participants and the operator see it.

For each family the operator creates the market through its form and registers the participants;
each participant, in its own browser context, submits through the forms and reads the market's
plan; the operator clears the round. Then, in the browser:

* **plan privacy**: a participant's market page names no other participant (its own row, its next
  steps and the aggregates only), the operator's names everyone;
* **formatted amounts**: every amount on a receipt and on the round's page is the formatter's
  (``-1,234.56 USD``: the currency's decimals and code), and equals the ledger's integer minor units
  kept in ``data-amount-minor``; no raw float of an outcome is printed;
* **explanations**: every price and payment line of a receipt has its explanation (the rule, linked
  to the guide's anchor, which exists), and it reconciles (no warning).

Screenshots: every page to ``test-artifacts/portal-families/`` (``$DATAMARKET_TEST_ARTIFACTS``);
with ``$DATAMARKET_PORTAL_GUIDE`` set to a folder (``make portal-screenshots`` sets
``docs/assets/portal``), the pages the portal guide shows are also written there under fixed names
(:class:`~tests.service.portal.test_browser.Shots`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from datamarket.core.display import Formatter
from tests.service.portal.test_browser import (
    ARGS,
    CHROMIUM,
    ROOT,
    Shots,
    _need_browser,
    create_market,
    register,
    server,  # noqa: F401  (fixture)
    sign_in,
    upload,
)
from tests.service_support import ADMIN, blobs, csv_bytes, db_url  # noqa: F401  (fixture)

pytestmark = [pytest.mark.xdist_group("browser"), pytest.mark.slow]
MONEY = re.compile(r"^-?[\d,]+\.\d\d USD$")
FMT = Formatter()


@dataclass
class Walk:
    """One family's round: the market's form values and what each participant submits."""

    kind: str
    params: dict[str, str]
    # participant -> steps; a step is ("submit", form kind, {field: value}) or ("upload", kind, file maker)
    steps: dict[str, list[tuple[str, str, Any]]] = field(default_factory=dict)


def _balanced(rng: np.random.Generator, n: int = 16) -> bytes:
    y, g = np.arange(n) % 2, (np.arange(n) // 2) % 2
    return csv_bytes(rng.normal(0, 1, (n, 2)) + y[:, None] * 1.5, y, g)


def _broker_points(n: int) -> Callable[[np.random.Generator], bytes]:
    return lambda rng: csv_bytes(rng.normal(2.0, 1.0, (n, 1)))


WALKS = [
    Walk(
        "broker",
        {"sigma": "1.0"},
        {
            "bk_buyer_a": [("submit", "bid", {"valuation": "gaussian", "width": "0.5"})],
            "bk_buyer_b": [("submit", "bid", {"valuation": "threshold", "width": "0.4"})],
            "bk_sensor_x": [("submit", "cost", {"cost": "0.05"}), ("upload", "dataset", "plan")],
            "bk_sensor_y": [("submit", "cost", {"cost": "0.06"}), ("upload", "dataset", "plan")],
        },
    ),
    Walk(
        "collaborative",
        {"characteristic": "v", "c": "2", "model__kind": "logreg", "model__max_iter": "50"},
        {
            "co_clinic_0": [
                ("upload", "dataset", lambda rng: csv_bytes(*blobs(rng, 8))),
                ("upload", "task", lambda rng: csv_bytes(*blobs(rng, 40))),
            ],
            "co_clinic_1": [("upload", "dataset", lambda rng: csv_bytes(*blobs(rng, 14)))],
        },
    ),
    Walk(
        "truthful_payments",
        {"rule": "myerson"},
        {
            "tp_buyer_1": [("submit", "task", {"target": "1.0, 0.5"})],
            "tp_buyer_2": [("submit", "task", {"target": "0.2, 1.0"})],
            **{
                f"tp_seller_{k}": [
                    (
                        "upload",
                        "dataset",
                        lambda rng, k=k: csv_bytes(rng.normal([1.0, 0.5], 1.0 + k, (10 + 5 * k, 2))),
                    ),
                    ("submit", "cost", {"cost": str(1.0 + k)}),
                ]
                for k in range(3)
            },
        },
    ),
    Walk(
        "balanced_market",
        {"groups": "0, 1"},
        {
            **{
                f"bm_seller_{k}": [
                    ("upload", "dataset", _balanced),
                    ("submit", "cost", {"costs": "0.1, 0.2"}),
                ]
                for k in range(2)
            },
            **{
                f"bm_buyer_{k}": [
                    ("upload", "task", _balanced),
                    ("submit", "bid", {"values": f"{1.0 + k}, 0.5"}),
                ]
                for k in range(2)
            },
        },
    ),
    Walk(
        "competing_buyers",
        {"competition": "0.0"},
        {
            "cb_source_1": [("submit", "source", {"location": "0.0", "effort_alpha": "1.0"})],
            "cb_source_2": [("submit", "source", {"location": "1.0"})],
            "cb_buyer_1": [("submit", "estimator", {"degree": "1"})],
            "cb_buyer_2": [
                ("submit", "estimator", {"degree": "1", "low": "-1.0", "high": "1.0", "eta": "1.0"})
            ],
        },
    ),
]


GUIDE = (
    *(f"{w.kind}-{page}" for w in WALKS for page in ("participant-market", "receipt")),
    "broker-operator-market",
    "balanced_market-operator-round",
    "operator-home-activity",
)
"""The pages docs/portal.md shows (``make portal-screenshots``)."""


def _submit(page: Any, mid: int, kind: str, values: dict[str, str]) -> None:
    page.goto(f"/portal/markets/{mid}")
    for name, value in values.items():
        fid = f"#{kind}-{name}"
        if page.evaluate(f"document.querySelector('{fid}').tagName") == "SELECT":
            page.select_option(fid, value)
        else:
            page.fill(fid, value)
    page.click(f"#form-{kind} button[type=submit]")
    page.wait_for_url(re.compile(r".*\?done=submitted"))


def _planned_points(base: str, key: str, mid: int, me: str) -> int:
    """How many points the broker's plan asks of ``me`` (its own row of the plan, through the API)."""
    plan = httpx.get(f"{base}/markets/{mid}/plan", headers={"X-API-Key": key}, timeout=30).json()
    return int(plan["n_star"].get(me, 0))


def _money_on(page: Any, selector: str = "span.money") -> list[tuple[int, str]]:
    """Each formatted amount on the page with the minor units it stands for."""
    out = []
    for el in page.query_selector_all(selector):
        out.append((int(el.get_attribute("data-amount-minor")), el.inner_text().strip()))
    return out


def _check_amounts(page: Any) -> None:
    for minor, text in _money_on(page):
        assert MONEY.match(text), text
        assert text == FMT.money(minor, "USD", 100), (minor, text)


def _walk_participants(
    browser: Any, base: str, op: Any, walk: Walk, tmp: Path
) -> tuple[int, dict[str, Any], dict[str, str]]:
    mid = create_market(op, walk.kind, f"{walk.kind} market", walk.params)
    keys = {n: register(op, n) for n in walk.steps}
    pages = {n: sign_in(browser, base, keys[n]) for n in walk.steps}
    rng = np.random.default_rng(0)
    for phase in (0, 1):  # every first step, then every second one (a plan may need all first steps)
        for n, steps in walk.steps.items():
            if phase >= len(steps):
                continue
            action, kind, what = steps[phase]
            if action == "submit":
                _submit(pages[n], mid, kind, what)
                continue
            if what == "plan":
                count = _planned_points(base, keys[n], mid, n)
                if count == 0:
                    continue  # the plan asks this contributor for nothing
                what = _broker_points(count)
            f = tmp / f"{walk.kind}-{n}-{kind}.csv"
            f.write_bytes(what(rng))
            upload(pages[n], mid, f, kind=kind)
    return mid, pages, keys


def _check_plan_privacy(pages: dict[str, Any], op: Any, mid: int) -> None:
    names = list(pages)
    for me, p in pages.items():
        p.goto(f"/portal/markets/{mid}")
        text = p.content()
        assert not [n for n in names if n != me and n in text], (
            me,
            [n for n in names if n != me and n in text],
        )
    op.goto(f"/portal/markets/{mid}")
    assert all(n in op.content() for n in names)


def _clear(op: Any, mid: int) -> int:
    op.goto(f"/portal/markets/{mid}")
    op.click("#form-clear button[type=submit]")
    op.wait_for_url(re.compile(r".*/portal/rounds/\d+$"))
    rid = int(op.url.rsplit("/", 1)[1])
    op.wait_for_selector("#receipts", timeout=180_000)
    op.wait_for_load_state("load")
    assert op.get_attribute("#round-state", "class") == "status-cleared", op.inner_text("main")
    _check_amounts(op)
    return rid


def _check_receipt(p: Any, me: str, others: list[str], rid: int, booked: dict[int, int]) -> None:
    p.goto(f"/portal/rounds/{rid}/receipt")
    p.wait_for_selector("#entries")
    text = p.content()
    assert not [n for n in others if n in text], me
    shown = {
        int(row.get_attribute("data-seq")): int(row.get_attribute("data-amount-minor"))
        for row in p.query_selector_all("#entries tbody tr[data-seq]")
    }
    assert shown == booked, me
    _check_amounts(p)
    memos = {
        r.inner_text().strip() for r in p.query_selector_all("#entries tbody tr[data-seq] td:nth-child(3)")
    }
    for memo in memos & {"price", "payment"}:
        section = p.query_selector(f"#charge-{memo}")
        assert section is not None, (me, memo)
        assert "does not add up" not in section.inner_text()
        link = section.query_selector(".rule-line a")
        anchor = link.get_attribute("href").split("#", 1)[1]
        p.goto(f"/portal/guide#{anchor}")
        assert p.query_selector(f"[id='{anchor}']") is not None, anchor
        p.goto(f"/portal/rounds/{rid}/receipt")


def test_a_round_of_every_family_in_chromium(server: tuple[str, Path], tmp_path: Path) -> None:  # noqa: F811
    sync_api = _need_browser()
    base, _ = server
    shots = Shots(
        Path(os.environ.get("DATAMARKET_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "portal-families",
        guide=GUIDE,
    )
    admin = httpx.Client(base_url=base, headers={"X-API-Key": ADMIN}, timeout=60)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            op = sign_in(browser, base, ADMIN)
            for walk in WALKS:
                mid, pages, _ = _walk_participants(browser, base, op, walk, tmp_path)
                _check_plan_privacy(pages, op, mid)
                first = next(iter(pages))
                pages[first].goto(f"/portal/markets/{mid}")
                shots(pages[first], f"{walk.kind}-participant-market")
                op.goto(f"/portal/markets/{mid}")
                shots(op, f"{walk.kind}-operator-market")
                rid = _clear(op, mid)
                shots(op, f"{walk.kind}-operator-round")
                who = {p["name"]: p["id"] for p in admin.get("/participants").json()}
                entries = admin.get("/ledger/entries").json()["entries"]
                for me, p in pages.items():
                    booked = {
                        e["seq"]: e["amount_minor"]
                        for e in entries
                        if e["round_id"] == rid and e["participant_id"] == who[me]
                    }
                    _check_receipt(p, me, [n for n in pages if n != me], rid, booked)
                    shots(p, f"{walk.kind}-receipt" if me == first else f"{walk.kind}-receipt-{me}")
            op.goto("/portal/")
            shots(op, "operator-home-activity")
            op.goto("/portal/guide")
            shots(op, "guide")
        finally:
            browser.close()
            admin.close()
