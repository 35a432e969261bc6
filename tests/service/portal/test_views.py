"""The web portal through FastAPI's TestClient: sign-in and sessions, CSRF, forms and their error
messages, escaping, and that one participant cannot open another's pages.

The end-to-end flow in a real browser is tests/service/portal/test_browser.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.service_support import ADMIN, csv_bytes, db_url, make_app  # noqa: F401  (fixture)

BID = {"valuation": "gaussian", "width": "0.5"}
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def app(db_url: str) -> Iterator[Any]:  # noqa: F811
    from datamarket.service.uploads import UploadLimits

    app = make_app(db_url, limits=UploadLimits(max_bytes=64_000))
    with TestClient(app, base_url="http://127.0.0.1") as c:
        app.state.test_client = c
        yield app


def browser(app: Any) -> TestClient:
    """A fresh client (its own cookie jar) on the running app."""
    return TestClient(app, base_url="http://127.0.0.1", follow_redirects=False)


def csrf_of(html: str) -> str:
    m = CSRF.search(html)
    assert m, html[:500]
    return m.group(1)


def sign_in(app: Any, key: str) -> tuple[TestClient, str]:
    """A client signed in with ``key`` and its session's CSRF token."""
    c = browser(app)
    r = c.get("/portal/login")
    assert r.status_code == 200
    r = c.post("/portal/login", data={"api_key": key, "csrf": csrf_of(r.text)})
    assert r.status_code == 303, r.text
    home = c.get("/portal/")
    assert home.status_code == 200, home.text
    return c, csrf_of(home.text)


def register(app: Any, op: TestClient, csrf: str, name: str) -> str:
    r = op.post("/portal/participants", data={"name": name, "csrf": csrf})
    assert r.status_code == 201, r.text
    m = re.search(r'<code id="new-key">([^<]+)</code>', r.text)
    assert m
    return m.group(1)


def count(app: Any, model: Any) -> int:
    with app.state.service.db.read() as s:
        return int(s.execute(select(func.count()).select_from(model)).scalar_one())


def broker_market(op: TestClient, csrf: str, name: str = "m") -> int:
    r = op.post("/portal/markets/new", data={"csrf": csrf, "kind": "broker", "name": name, "sigma": "1.0"})
    assert r.status_code == 303, r.text
    return int(r.headers["location"].split("/")[3].split("?")[0])


def test_sign_in_session_cookie_and_logout(app: Any) -> None:
    c = browser(app)
    assert c.get("/portal/").status_code == 303  # not signed in: to the sign-in page
    page = c.get("/portal/login")
    bad = c.post("/portal/login", data={"api_key": "wrong", "csrf": csrf_of(page.text)})
    assert bad.status_code == 401 and "unknown key" in bad.text
    page = c.get("/portal/login")
    r = c.post("/portal/login", data={"api_key": ADMIN, "csrf": csrf_of(page.text)})
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/portal" in cookie
    assert "Secure" not in cookie  # loopback: plain HTTP allowed
    assert ADMIN not in cookie and ADMIN not in r.headers.get("location", "")
    home = c.get("/portal/")
    assert home.status_code == 200 and ADMIN not in home.text
    # the database holds only the token's hash
    from datamarket.ledger.models import PortalSession

    token = c.cookies.get("dm_portal")
    with app.state.service.db.read() as s:
        rows = list(s.execute(select(PortalSession)).scalars())
    assert len(rows) == 1 and rows[0].token_hash != token and rows[0].is_operator
    # logout needs the CSRF token, then invalidates the session server-side
    assert c.post("/portal/logout", data={}).status_code == 403
    out = c.post("/portal/logout", data={"csrf": csrf_of(home.text)})
    assert out.status_code == 303
    assert count(app, PortalSession) == 0
    replay = browser(app)
    replay.cookies.set("dm_portal", token or "", domain="127.0.0.1", path="/portal")
    assert replay.get("/portal/").status_code == 303


def test_an_expired_session_signs_out(app: Any) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from datamarket.ledger.models import PortalSession, utcnow

    c, _ = sign_in(app, ADMIN)
    with app.state.service.db.write() as s:
        s.execute(update(PortalSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    r = c.get("/portal/")
    assert r.status_code == 303 and r.headers["location"] == "/portal/login"


def test_cookie_is_secure_off_loopback(app: Any) -> None:
    c = TestClient(app, base_url="https://portal.example", follow_redirects=False)
    page = c.get("/portal/login")
    r = c.post("/portal/login", data={"api_key": ADMIN, "csrf": csrf_of(page.text)})
    assert r.status_code == 303 and "Secure" in r.headers["set-cookie"]


def test_login_and_forms_refuse_a_post_without_csrf(app: Any) -> None:
    from datamarket.ledger.models import Market, Participant

    c = browser(app)
    assert c.post("/portal/login", data={"api_key": ADMIN}).status_code == 403
    op, _ = sign_in(app, ADMIN)
    assert op.post("/portal/markets/new", data={"kind": "broker", "name": "x"}).status_code == 403
    assert op.post("/portal/markets/new", data={"kind": "broker", "csrf": "forged"}).status_code == 403
    assert op.post("/portal/participants", data={"name": "eve"}).status_code == 403
    assert count(app, Market) == 0 and count(app, Participant) == 0


def test_invalid_fields_show_their_messages_and_store_nothing(app: Any) -> None:
    from datamarket.ledger.models import Market, Participant, Submission

    op, csrf = sign_in(app, ADMIN)
    # a number that is not one, and one the adapter refuses: each message beside its field
    r = op.post("/portal/markets/new", data={"csrf": csrf, "kind": "broker", "sigma": "abc", "delta": "x"})
    assert r.status_code == 422
    assert 'id="sigma-error"' in r.text and 'id="delta-error"' in r.text and "must be a number" in r.text
    r = op.post("/portal/markets/new", data={"csrf": csrf, "kind": "broker", "sigma": "-1"})
    assert r.status_code == 422 and re.search(r'id="sigma-error"[^>]*>must be positive<', r.text)
    r = op.post("/portal/markets/new", data={"csrf": csrf, "kind": "broker", "solver": "E9"})
    assert r.status_code == 422 and 'id="solver-error"' in r.text
    r = op.post("/portal/markets/new", data={"csrf": csrf, "kind": "broker", "currency": "NOPE!"})
    assert r.status_code == 422 and 'id="currency-error"' in r.text
    r = op.post(
        "/portal/markets/new",
        data={"csrf": csrf, "kind": "collaborative", "model__kind": "tree", "n_permutations": "1.5"},
    )
    assert r.status_code == 422 and 'id="n_permutations-error"' in r.text
    r = op.post("/portal/markets/new", data={"csrf": csrf, "kind": "collaborative", "model__kind": "tree"})
    assert r.status_code == 422 and 'id="model__kind-error"' in r.text
    r = op.post("/portal/participants", data={"csrf": csrf, "name": "bad name!"})
    assert r.status_code == 422 and 'id="pname-error"' in r.text
    assert count(app, Market) == 0 and count(app, Participant) == 0

    mid = broker_market(op, csrf)
    key = register(app, op, csrf, "buyer")
    b, bcsrf = sign_in(app, key)
    for data, field, text in [
        ({"width": "0.5"}, "bid-valuation", "must be one of"),
        ({"valuation": "gaussian", "width": "-2"}, "bid-width", "must be positive"),
        ({"valuation": "gaussian", "width": "nan"}, "bid-width", "finite"),
        ({"valuation": "gaussian", "width": "0.5", "scale": "7"}, "bid-scale", "(0, 1]"),
        ({"valuation": "gaussian", "width": "wide"}, "bid-width", "must be a number"),
    ]:
        r = b.post(f"/portal/markets/{mid}/submit/bid", data={"csrf": bcsrf, **data})
        assert r.status_code == 422, (data, r.status_code)
        assert f'id="{field}-error"' in r.text and text in r.text, data
    r = b.post(f"/portal/markets/{mid}/submit/cost", data={"csrf": bcsrf, "cost": "0"})
    # 409: another kind of market takes a cost of 0, this one does not (the field still says why)
    assert r.status_code == 409 and 'id="cost-cost-error"' in r.text
    # an upload before a cost (409: the participant's inputs so far exclude it)
    r = b.post(
        f"/portal/markets/{mid}/datasets",
        data={"csrf": bcsrf, "kind": "dataset"},
        files={"file": ("d.csv", b"x0\n1\n2\n", "text/csv")},
    )
    assert r.status_code == 409 and 'id="upload-file-error"' in r.text and "report a cost" in r.text
    assert count(app, Submission) == 0
    # nothing stored above; a valid bid is
    r = b.post(f"/portal/markets/{mid}/submit/bid", data=BID | {"csrf": bcsrf})
    assert r.status_code == 303 and count(app, Submission) == 1


def test_names_are_escaped(app: Any) -> None:
    from datamarket.ledger.models import Participant

    op, csrf = sign_in(app, ADMIN)
    evil = "<script>alert(1)</script>"
    mid = broker_market(op, csrf, name=evil)
    # a participant name the API refuses, echoed back escaped
    r = op.post("/portal/participants", data={"csrf": csrf, "name": evil})
    assert r.status_code == 422 and evil not in r.text and "&lt;script&gt;" in r.text
    # one stored by other means (an older version, a direct insert) is rendered escaped too
    with app.state.service.db.write() as s:
        s.add(Participant(name=evil, api_key_hash="0" * 64))
    for path in ("/portal/participants", "/portal/", f"/portal/markets/{mid}"):
        page = op.get(path)
        assert page.status_code == 200
        assert evil not in page.text and "&lt;script&gt;" in page.text, path


def _broker_ready(app: Any) -> dict[str, Any]:
    """A broker market with two buyers and two contributors whose data are uploaded, via the portal."""
    op, csrf = sign_in(app, ADMIN)
    mid = broker_market(op, csrf)
    users: dict[str, tuple[TestClient, str]] = {}
    for name in ("buyer_a", "buyer_b", "seller_x", "seller_y"):
        users[name] = sign_in(app, register(app, op, csrf, name))
    for name in ("buyer_a", "buyer_b"):
        c, t = users[name]
        r = c.post(f"/portal/markets/{mid}/submit/bid", data=BID | {"csrf": t})
        assert r.status_code == 303, r.text
    for name, cost in (("seller_x", "0.05"), ("seller_y", "0.06")):
        c, t = users[name]
        assert c.post(f"/portal/markets/{mid}/submit/cost", data={"csrf": t, "cost": cost}).status_code == 303
    rng = np.random.default_rng(0)
    for name in ("seller_x", "seller_y"):
        c, t = users[name]
        page = c.get(f"/portal/markets/{mid}")
        n = int(re.search(r'id="my-n">The plan asks you for <strong>(\d+)', page.text).group(1))  # type: ignore[union-attr]
        r = c.post(
            f"/portal/markets/{mid}/datasets",
            data={"csrf": t, "kind": "dataset"},
            files={"file": ("points.csv", csv_bytes(rng.normal(2.0, 1.0, (n, 1))), "text/csv")},
            headers={"Accept": "application/json"},
        )
        assert r.status_code == 200 and r.json() == {"redirect": f"/portal/markets/{mid}?done=uploaded"}
    return {"op": op, "csrf": csrf, "mid": mid, "users": users}


def test_bad_path_and_query_values_answer_html_pages(app: Any) -> None:
    c, _ = sign_in(app, ADMIN)
    missing = c.get("/portal/rounds/999999")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    for path in (
        "/portal/rounds/abc",
        "/portal/submissions/1.5",
        "/portal/rounds/0",
        f"/portal/rounds/{2**63}",
    ):
        r = c.get(path)
        assert r.status_code == 404, (path, r.status_code)
        assert r.headers["content-type"].startswith("text/html") and "no such page" in r.text, path
        assert r.headers["X-Frame-Options"] == "DENY"  # the portal's headers, as on every page
    r = c.get("/portal/ledger?page_no=abc")
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
    assert 'id="problem"' in r.text and "page_no" not in r.url.path
    # anonymous visitors are sent to sign in before any value is looked at
    anon = browser(app)
    r = anon.get("/portal/rounds/abc")
    assert r.status_code == 303 and r.headers["location"] == "/portal/login"


def test_participants_cannot_open_each_others_pages(app: Any) -> None:
    w = _broker_ready(app)
    a, at = w["users"]["buyer_a"]
    b, _ = w["users"]["buyer_b"]
    mid = w["mid"]
    subs_b = app.state.test_client.get(f"/markets/{mid}/submissions", headers={"X-API-Key": ADMIN}).json()
    ids_b = [x["id"] for x in subs_b if x["payload"].get("data", {}).get("valuation")]
    b_id = b.get(f"/portal/markets/{mid}").text
    mine_b = [int(i) for i in re.findall(r'id="sub-(\d+)"', b_id)]
    assert mine_b
    # another participant's ids answer exactly as ids that do not exist (no enumeration)
    missing = a.get("/portal/submissions/999999")
    missing_withdraw = a.post("/portal/submissions/999999/withdraw", data={"csrf": at})
    assert missing.status_code == 404 and missing_withdraw.status_code == 404
    for sid in mine_b:
        r = a.get(f"/portal/submissions/{sid}")
        assert r.status_code == 404 and "gaussian" not in r.text
        assert r.text == missing.text.replace("999999", str(sid))
        r = a.post(f"/portal/submissions/{sid}/withdraw", data={"csrf": at})
        assert r.status_code == 404
    assert ids_b
    # A's market page lists only A's submissions
    page = a.get(f"/portal/markets/{mid}")
    assert set(int(i) for i in re.findall(r'id="sub-(\d+)"', page.text)).isdisjoint(mine_b)
    # operator pages are closed to participants
    for path in ("/portal/participants", "/portal/ledger", "/portal/markets/new?kind=broker"):
        r = a.get(path)
        assert r.status_code == 403 and "seller_x" not in r.text, path
    # the operator cannot submit
    op, csrf = w["op"], w["csrf"]
    r = op.post(f"/portal/markets/{mid}/submit/bid", data=BID | {"csrf": csrf})
    assert r.status_code == 403
    # clear the round, then: B's receipt is the operator's to read, not A's
    r = op.post(f"/portal/markets/{mid}/rounds", data={"csrf": csrf, "seed": "3"})
    assert r.status_code == 303
    rid = int(r.headers["location"].rsplit("/", 1)[1])
    from tests.service_support import wait_round

    class _Admin:
        def get(self, path: str) -> Any:
            return app.state.test_client.get(path, headers={"X-API-Key": ADMIN})

    assert wait_round(_Admin(), rid)["status"] == "cleared"  # type: ignore[arg-type]
    pid_b = subs_b[-1]["participant_id"]
    # the operator's receipt pages are closed to participants by role (403, as the JSON API's)
    assert a.get(f"/portal/rounds/{rid}/receipts/{pid_b}").status_code == 403
    mine = a.get(f"/portal/rounds/{rid}/receipt")
    assert mine.status_code == 200 and "buyer_b" not in mine.text


def test_withdraw_exclude_round_receipt_verify_ledger(app: Any) -> None:
    w = _broker_ready(app)
    op, csrf, mid = w["op"], w["csrf"], w["mid"]
    a, at = w["users"]["buyer_a"]
    # a participant withdraws an unconsumed submission and bids again
    page = a.get(f"/portal/markets/{mid}")
    sid = int(re.findall(r'id="sub-(\d+)"', page.text)[0])
    assert a.post(f"/portal/submissions/{sid}/withdraw", data={"csrf": at}).status_code == 303
    assert "withdrawn by its owner" in a.get(f"/portal/markets/{mid}").text
    r = a.post(
        f"/portal/markets/{mid}/submit/bid", data={"csrf": at, "valuation": "threshold", "width": "0.4"}
    )
    assert r.status_code == 303
    # the operator excludes a submission with a reason (empty reason: message, nothing changes)
    subs = op.get(f"/portal/markets/{mid}").text
    new_sid = max(int(i) for i in re.findall(r'id="sub-(\d+)"', subs))
    r = op.post(f"/portal/submissions/{new_sid}/exclude", data={"csrf": csrf, "reason": ""})
    assert r.status_code == 422 and f'id="reason-{new_sid}-error"' in r.text
    r = op.post(f"/portal/submissions/{new_sid}/exclude", data={"csrf": csrf, "reason": "late bid"})
    assert r.status_code == 303
    assert "excluded by the operator: late bid" in op.get(f"/portal/markets/{mid}").text
    # buyer_a bids as at first again (the sellers' data fit that plan)
    r = a.post(f"/portal/markets/{mid}/submit/bid", data=BID | {"csrf": at})
    assert r.status_code == 303
    # clearing: bad seed, then a round; the round page polls its status fragment
    r = op.post(f"/portal/markets/{mid}/rounds", data={"csrf": csrf, "seed": "minus one"})
    assert r.status_code == 422 and 'id="seed-error"' in r.text
    r = op.post(f"/portal/markets/{mid}/rounds", data={"csrf": csrf, "seed": "7"})
    assert r.status_code == 303
    rid = int(r.headers["location"].rsplit("/", 1)[1])
    import time

    deadline = time.monotonic() + 60
    while 'data-final="1"' not in (frag := op.get(f"/portal/rounds/{rid}/status").text):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert "cleared" in frag
    page = op.get(f"/portal/rounds/{rid}")
    assert page.status_code == 200 and 'id="receipts"' in page.text
    svg = op.get(f"/portal/rounds/{rid}/figure.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in svg.content and b"posted expected price" in svg.content
    # a participant's receipt: same amounts as the ledger; verify
    c, t = w["users"]["seller_x"]
    rec = c.get(f"/portal/rounds/{rid}/receipt")
    assert rec.status_code == 200
    shown = {int(s): int(a) for s, a in re.findall(r'data-seq="(\d+)" data-amount-minor="(-?\d+)"', rec.text)}
    ledger = app.state.test_client.get("/ledger/entries", headers={"X-API-Key": ADMIN}).json()["entries"]
    pid = int(re.search(r'name="pid" value="(\d+)"', rec.text).group(1))  # type: ignore[union-attr]
    expected = {
        e["seq"]: e["amount_minor"] for e in ledger if e["round_id"] == rid and e["participant_id"] == pid
    }
    assert shown == expected and shown
    # a participant's pid field is ignored: the receipt is always the session's own
    home = c.get("/portal/")
    assert f'href="/portal/rounds/{rid}/receipt"' in home.text
    v = c.post(f"/portal/rounds/{rid}/receipt/verify", data={"csrf": t, "pid": "1"})
    assert v.status_code == 200 and 'class="ok"' in v.text and "Verified" in v.text
    # the ledger, paged, with its verification
    led = op.get("/portal/ledger")
    assert led.status_code == 200 and "Verified:" in led.text
    assert len(re.findall(r'<tr data-seq="', led.text)) == min(50, len(ledger))
    # the JSON API is unchanged and the portal is not in its schema
    schema = app.state.test_client.get("/openapi.json").json()
    assert not any(p.startswith("/portal") for p in schema["paths"])


def test_static_assets_are_served_by_the_app(app: Any) -> None:
    c = browser(app)
    css = c.get("/portal/static/portal.css")
    js = c.get("/portal/static/portal.js")
    assert css.status_code == 200 and js.status_code == 200
    page = c.get("/portal/login")
    assert "http://" not in page.text.replace("http://127.0.0.1", "") and "https://" not in page.text
    assert 'name="viewport"' in page.text and '<label for="api_key">' in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["cache-control"] == "no-store" and page.headers["x-frame-options"] == "DENY"


def test_demo_serve_keeps_the_portal_up_on_the_demo_data() -> None:
    """``datamarket demo --serve``: once the demo's rounds are cleared, the portal serves its data and
    every printed key signs in."""
    import httpx

    from datamarket.service.demo import run_service_demo

    seen: dict[str, Any] = {}

    def hold(url: str, admin_key: str, keys: dict[str, str]) -> None:
        seen["keys"] = sorted(keys)
        for key in (admin_key, keys["lab_a"]):
            with httpx.Client(base_url=url, follow_redirects=False) as c:
                r = c.post(
                    "/portal/login", data={"api_key": key, "csrf": csrf_of(c.get("/portal/login").text)}
                )
                assert r.status_code == 303
                home = c.get("/portal/")
                assert home.status_code == 200 and key not in home.text
                seen.setdefault("homes", []).append(home.text)

    result = run_service_demo(seed=1, hold=hold)
    assert result["verify"]["ok"]
    assert seen["keys"] == sorted(
        ["lab_a", "lab_b", "lab_c", "sensor_x", "sensor_y", "sensor_z", "clinic_1", "clinic_2", "clinic_3"]
    )
    assert "mean estimation" in seen["homes"][0] and "hospitals" in seen["homes"][0]
    assert 'id="my-markets"' in seen["homes"][1] and "mean estimation" in seen["homes"][1]


def test_every_kind_has_labelled_forms_and_its_defaults_create_a_market(app: Any) -> None:
    """Each built-in kind's parameter form and submission forms are generated from the input models
    its adapter validates with (a label for every input; no JSON fallback), and the empty parameter
    form creates a market with the model's defaults."""
    from datamarket.service.portal import forms

    st = app.state.service
    op, csrf = sign_in(app, ADMIN)
    for kind, adapter in sorted(st.adapters.items()):
        assert forms.params_model(kind) is adapter.params_model, kind
        for sub in adapter.submission_kinds:
            if sub not in adapter.dataset_kinds:
                assert forms.submission_model(kind, sub) is adapter.submission_models[sub], (kind, sub)
        page = op.get(f"/portal/markets/new?kind={kind}")
        assert page.status_code == 200
        for f in forms.fields(forms.params_model(kind)):
            assert f'<label for="{f.name}">' in page.text, (kind, f.name)
        r = op.post("/portal/markets/new", data={"csrf": csrf, "kind": kind, "name": kind})
        assert r.status_code == 303, (kind, r.text)
    key = register(app, op, csrf, "viewer")
    c, _ = sign_in(app, key)
    for m in app.state.test_client.get("/markets", headers={"X-API-Key": ADMIN}).json():
        page = c.get(f"/portal/markets/{m['id']}")
        assert page.status_code == 200
        for sub in st.adapters[m["kind"]].submission_kinds:
            if sub in st.adapters[m["kind"]].dataset_kinds:
                continue
            for f in forms.fields(forms.submission_model(m["kind"], sub)):
                assert f'<label for="{sub}-{f.name}">' in page.text, (m["kind"], sub, f.name)
