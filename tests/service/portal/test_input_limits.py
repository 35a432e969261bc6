"""Input the service must refuse with a 4xx, never a 500 (a market's currency, a JSON form field),
through the JSON API and the portal, on both databases.

* A market currency with 10 or more decimals (``TOKEN:10``) or a legacy ``NAME/n`` with
  ``n > 2^31 - 1`` overflowed PostgreSQL's INTEGER ``scale`` column (500). Both are now refused by
  :meth:`~datamarket.ledger.money.Currency.parse` (at most 9 decimals, ``n <= 10^9``): 422 naming
  ``currency`` from the API, the form again with the message beside the field from the portal.
* A JSON form field nested 50,000 deep made ``json.loads`` raise RecursionError (500); its depth is now
  measured first: 422 with the field's message.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from datamarket.ledger.models import Market, Submission
from datamarket.service.adapters import builtin_adapters
from datamarket.service.portal.headers import SECURITY_HEADERS
from tests.service.portal.test_views import csrf_of, register
from tests.service_support import ADMIN, db_url, make_app  # noqa: F401  (fixture)

BASE = "http://127.0.0.1"
GATED = {"gated_broker": "tests.service_support:GATED"}  # a kind without input models: a JSON field
TOO_MANY_DECIMALS = ["TOKEN:10", "token:12", "TOKEN:18", "USD:10"]
TOO_BIG_LEGACY = ["UNIT/2147483648", "UNIT/1000000001", "LEGACY/9223372036854775807"]


@pytest.fixture
def app(db_url: str) -> Iterator[Any]:  # noqa: F811
    app = make_app(db_url, adapters={**builtin_adapters(), **GATED})
    with TestClient(app, base_url=BASE, headers={"X-API-Key": ADMIN}) as c:
        app.state.api = c
        yield app


def markets(app: Any) -> int:
    with app.state.service.db.read() as s:
        return int(s.execute(select(func.count()).select_from(Market)).scalar_one())


def sign_in(app: Any, key: str) -> tuple[TestClient, str]:
    c = TestClient(app, base_url=BASE, follow_redirects=False)
    page = c.get("/portal/login")
    r = c.post("/portal/login", data={"api_key": key, "csrf": csrf_of(page.text)})
    assert r.status_code == 303, r.text
    return c, csrf_of(c.get("/portal/").text)


@pytest.mark.parametrize("currency", TOO_MANY_DECIMALS + TOO_BIG_LEGACY)
def test_api_refuses_a_currency_whose_scale_overflows(app: Any, currency: str) -> None:
    body = {"kind": "broker", "params": {"sigma": 1.0}, "currency": currency}
    r = app.state.api.post("/markets", json=body)
    assert r.status_code == 422 and r.json()["field"] == "currency", r.text
    assert markets(app) == 0


def test_api_accepts_the_largest_scales_and_reads_them_back(app: Any) -> None:
    for currency, scale in (("TOKEN:9", 10**9), ("UNIT/1000000000", 10**9), ("CREDIT:0", 1)):
        body = {"kind": "broker", "params": {"sigma": 1.0}, "currency": currency}
        r = app.state.api.post("/markets", json=body)
        assert r.status_code == 201, r.text
        got = app.state.api.get(f"/markets/{r.json()['id']}").json()
        assert (got["currency"], got["scale"]) == (currency, scale)


@pytest.mark.parametrize("currency", ["TOKEN:10", "UNIT/2147483648"])
def test_portal_refuses_a_currency_whose_scale_overflows(app: Any, currency: str) -> None:
    op, csrf = sign_in(app, ADMIN)
    form = {"csrf": csrf, "kind": "broker", "sigma": "1.0", "currency": currency}
    r = op.post("/portal/markets/new", data=form)
    assert r.status_code == 422 and 'id="currency-error"' in r.text and "currency" in r.text
    assert all(r.headers.get(k) == v for k, v in SECURITY_HEADERS.items())
    assert markets(app) == 0
    r = op.post("/portal/markets/new", data=form | {"currency": "TOKEN:9"})
    assert r.status_code == 303 and markets(app) == 1


DEEP = {
    "arrays": "[" * 50_000 + "]" * 50_000,
    "objects": '{"a":' * 50_000 + "1" + "}" * 50_000,
    "unclosed": "[" * 50_000,
    "just over": '{"a":' * 33 + "1" + "}" * 33,
}


@pytest.mark.parametrize("text", list(DEEP.values()), ids=list(DEEP))
def test_portal_refuses_a_json_field_nested_too_deep(app: Any, text: str) -> None:
    op, csrf = sign_in(app, ADMIN)
    r = op.post("/portal/markets/new", data={"csrf": csrf, "kind": "gated_broker", "data": text})
    assert r.status_code == 422 and 'id="data-error"' in r.text and "nested at most 32 deep" in r.text
    assert all(r.headers.get(k) == v for k, v in SECURITY_HEADERS.items())
    assert markets(app) == 0
    # a participant's JSON submission form: the same check
    r = op.post("/portal/markets/new", data={"csrf": csrf, "kind": "gated_broker", "data": '{"sigma": 1.0}'})
    assert r.status_code == 303, r.text
    mid = int(r.headers["location"].split("/")[3].split("?")[0])
    alice, t = sign_in(app, register(app, op, csrf, "alice"))
    r = alice.post(f"/portal/markets/{mid}/submit/bid", data={"csrf": t, "data": text})
    assert r.status_code == 422 and "nested at most 32 deep" in r.text
    with app.state.service.db.read() as s:
        assert s.execute(select(func.count()).select_from(Submission)).scalar_one() == 0


def test_json_depth_ignores_brackets_in_strings_and_is_linear() -> None:
    import time

    from datamarket.service.portal.forms import json_depth, load_json_object

    assert json_depth(r'{"a": "[[[[\"[[[", "b": [{}]}') == 3
    assert load_json_object('{"x": "' + "[" * 1000 + '"}') == {"x": "[" * 1000}
    started = time.perf_counter()
    assert json_depth("[" * 2_000_000) == 2_000_000
    # one pass: 2 million brackets in well under a few seconds even on a loaded 2-core machine (a
    # quadratic scan would take hours)
    assert time.perf_counter() - started < 10


def test_api_refuses_a_json_body_nested_50000_deep(app: Any) -> None:
    body = '{"kind": "broker", "params": ' + '{"a":' * 50_000 + "1" + "}" * 50_000 + "}"
    r = app.state.api.post("/markets", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert markets(app) == 0
