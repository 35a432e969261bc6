"""The plan on a market's page, on SQLite and PostgreSQL, read on the HTML: a participant sees its
own row, "What to do next" and the aggregates, and no other participant's name or value; the
operator sees one row per participant; an upload of another size than the plan asks is refused and
an upload that replaces a waiting one is stated as "superseded by #N, ignored" on both pages."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from datamarket.core.display import exact
from tests.service.portal.test_views import BID, app, broker_market, register, sign_in  # noqa: F401
from tests.service_support import ADMIN, csv_bytes, db_url, wait_round  # noqa: F401  (fixture)

BUYERS = {"buyer_a": BID, "buyer_b": {"valuation": "threshold", "width": "0.4", "scale": "0.9"}}
SELLERS = {"seller_x": "0.05", "seller_y": "0.06", "seller_z": "0.08"}
NAMES = (*BUYERS, *SELLERS, "outsider")


def market(app: Any) -> dict[str, Any]:  # noqa: F811
    """A broker market and its participants (signed in), nothing submitted yet."""
    op, csrf = sign_in(app, ADMIN)
    mid = broker_market(op, csrf)
    users = {name: sign_in(app, register(app, op, csrf, name)) for name in NAMES}
    api = TestClient(app, base_url="http://127.0.0.1", headers={"X-API-Key": ADMIN})
    return {"op": op, "csrf": csrf, "mid": mid, "users": users, "api": api}


def submit(w: dict[str, Any], name: str, kind: str, data: dict[str, str]) -> None:
    c, t = w["users"][name]
    r = c.post(f"/portal/markets/{w['mid']}/submit/{kind}", data=data | {"csrf": t})
    assert r.status_code == 303, r.text


def upload(w: dict[str, Any], name: str, rows: int) -> Any:
    c, t = w["users"][name]
    body = csv_bytes(np.random.default_rng(rows).normal(2.0, 1.0, (rows, 1)))
    return c.post(
        f"/portal/markets/{w['mid']}/datasets",
        data={"csrf": t, "kind": "dataset"},
        files={"file": (f"{rows}.csv", body, "text/csv")},
        headers={"Accept": "application/json"},
    )


def page(w: dict[str, Any], name: str | None = None) -> str:
    c = w["op"] if name is None else w["users"][name][0]
    r = c.get(f"/portal/markets/{w['mid']}")
    assert r.status_code == 200, r.text
    return str(r.text)


def steps(html: str) -> list[str]:
    box = re.search(r'<section class="card" id="next-steps".*?</section>', html, re.S)
    assert box, html[:2000]
    return [re.sub(r"<[^>]+>", "", s) for s in re.findall(r"<li>(.*?)</li>", box.group(0), re.S)]


def private(html: str, me: str) -> None:
    """No other participant's name on ``me``'s page."""
    assert not [n for n in NAMES if n != me and n in html], me


def everyone_ready(w: dict[str, Any]) -> dict[str, Any]:
    for name, bid in BUYERS.items():
        submit(w, name, "bid", bid)
    for name, cost in SELLERS.items():
        submit(w, name, "cost", {"cost": cost})
    full = w["api"].get(f"/markets/{w['mid']}/plan").json()
    return dict(full)


def test_a_participant_sees_its_row_its_steps_and_aggregates_only(app: Any) -> None:  # noqa: F811
    w = market(app)
    html = page(w, "seller_x")
    assert 'id="plan-problem"' in html and 'id="plan-table"' not in html
    assert any("report a cost before uploading data" in s for s in steps(html))
    full = everyone_ready(w)
    for name in NAMES:
        private(page(w, name), name)
    buyer = page(w, "buyer_a")
    assert steps(buyer) == ["Your bid is stored; wait for the operator to clear the round."]
    mine = re.search(r'<dl class="kv" id="plan-mine">.*?</dl>', buyer, re.S)
    assert mine and "Posted expected price, q_j+" in mine.group(0) and "USD" in mine.group(0)
    assert f'title="{exact(full["prices"][0])}"' in mine.group(0)  # its own price, exact on hover
    agg = re.search(r'<dl class="kv" id="plan-aggregates">.*?</dl>', buyer, re.S)
    assert agg and "count 2, total" in agg.group(0) and "Points to collect, N*_i" in agg.group(0)
    plan = buyer[buyer.index('<div id="plan">') : buyer.index('id="plan-privacy"')]
    assert "n_star" not in plan and "&#34;" not in plan  # labels, not raw keys; no JSON dump
    n_star = full["n_star"]
    assert len(set(n_star.values())) == 3  # three contributors asked for different numbers of points
    for name, n in n_star.items():  # each sees its own N*_i, no other's
        dds = re.findall(r"<dd>([^<]*)</dd>", page(w, name))
        assert f"{n}" in dds and not {f"{k}" for o, k in n_star.items() if o != name} & set(dds), name
    zero = next(name for name, n in n_star.items() if n == 0)
    assert steps(page(w, zero)) == [
        "The plan asks you for no points: upload nothing.",
        "Wait for the operator to clear the round.",
    ]
    n = n_star["seller_x"]
    seller = page(w, "seller_x")
    want = f"Upload exactly {n} data points (submission kind dataset, one numeric column)."
    assert steps(seller) == [want]
    assert f'id="my-n">The plan asks you for <strong>{n}</strong>' in seller
    assert upload(w, "seller_x", n).status_code == 200
    assert steps(page(w, "seller_x"))[-1] == "Wait for the operator to clear the round."
    outsider = page(w, "outsider")
    private(outsider, "outsider")
    assert "The plan has no row of yours" in outsider


def test_the_operator_sees_the_plan_as_a_table(app: Any) -> None:  # noqa: F811
    w = market(app)
    full = everyone_ready(w)
    html = page(w)
    table = re.search(r'<table id="plan-table">.*?</table>', html, re.S)
    assert table
    rows = re.findall(r'<tr><th scope="row">([^<]+)</th>(.*?)</tr>', table.group(0), re.S)
    assert [r[0] for r in rows] == [*BUYERS, *SELLERS]  # the outsider submitted nothing
    heads = re.findall(r'<th scope="col">([^<]+)</th>', table.group(0))
    labels = ["Points delivered to the buyer, m_j+", "Posted expected price, q_j+", "Points to collect, N*_i"]
    assert heads == ["Participant", "Role", *labels]
    cells = dict(rows)
    assert f'title="{exact(full["prices"][1])}"' in cells["buyer_b"]
    assert f"<td>{full['n_star']['seller_z']}</td>" in cells["seller_z"]
    other = re.search(r'<dl class="kv" id="plan-other">.*?</dl>', html, re.S)
    assert other and "Expected surplus of M*, W" in other.group(0) and "USD" in other.group(0)


def test_uploads_against_the_plan_three_then_the_planned_number(app: Any) -> None:  # noqa: F811
    w = market(app)
    submit(w, "seller_x", "cost", {"cost": SELLERS["seller_x"]})
    early = upload(w, "seller_x", 3)  # the plan is not determined yet: stored
    assert early.status_code == 200, early.text
    full = everyone_ready(w)
    n = full["n_star"]["seller_x"]
    assert n != 3
    refused = upload(w, "seller_x", 3)
    assert refused.status_code == 409
    assert refused.json()["errors"]["file"] == f"the plan asks you for {n} points; this file has 3"
    assert upload(w, "seller_x", n).status_code == 200
    for name in ("seller_y", "seller_z"):  # a contributor asked for no points uploads nothing
        assert full["n_star"][name] == 0 or upload(w, name, full["n_star"][name]).status_code == 200
    subs = {x["filename"]: x for x in w["api"].get(f"/markets/{w['mid']}/submissions").json()}
    old, new = subs["3.csv"], subs[f"{n}.csv"]
    assert old["superseded_by"] == new["id"]
    stated = f'superseded by <a href="#sub-{new["id"]}">#{new["id"]}</a>, ignored'
    for html in (page(w, "seller_x"), page(w)):
        row = re.search(rf'<tr id="sub-{old["id"]}">.*?</tr>', html, re.S)
        assert row and stated in row.group(0) and "3 rows" in row.group(0)
    r = w["op"].post(f"/portal/markets/{w['mid']}/rounds", data={"csrf": w["csrf"], "seed": "1"})
    assert r.status_code == 303, r.text
    rid = int(r.headers["location"].rsplit("/", 1)[1])
    done = wait_round(w["api"], rid)
    assert (
        done["status"] == "cleared" and new["id"] in done["input_ids"] and old["id"] not in done["input_ids"]
    )
    after = {x["id"]: x for x in w["api"].get(f"/markets/{w['mid']}/submissions").json()}
    assert after[new["id"]]["consumed_round_id"] == rid and after[old["id"]]["consumed_round_id"] is None
