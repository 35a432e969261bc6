"""The rules that let schemathesis pass every check (``test_schema.py``), checked fast: ``Allow`` on
every 405, JSON Schema integers, and the per-kind ``MarketIn``/``SubmissionIn`` with the exact set of
currency codes (:mod:`datamarket.service.api.openapi`)."""

from __future__ import annotations

import random
import re
import string
from typing import Any

import pydantic
import pytest
from fastapi.testclient import TestClient

from datamarket.core.errors import InvalidMarketError
from datamarket.ledger.money import ISO_4217, Currency
from datamarket.service.api import schemas as S
from datamarket.service.api.openapi import currency_pattern
from tests.service_support import ADMIN, db_url, make_app  # noqa: F401  (fixture)


def test_every_405_lists_every_method_of_the_path(db_url: str) -> None:  # noqa: F811
    with TestClient(make_app(db_url), headers={"X-API-Key": ADMIN}) as c:
        for path, allow in (
            ("/markets", "GET, POST"),
            ("/markets/1/rounds", "GET, POST"),
            ("/participants/me", "GET"),
            ("/rounds/1/release", "POST"),
        ):
            for method in ("OPTIONS", "DELETE", "PUT"):
                r = c.request(method, path)
                assert (r.status_code, r.headers.get("allow")) == (405, allow), (method, path)


@pytest.mark.parametrize("bad", [False, True, "3", 3.5, None])
def test_integer_fields_are_json_schema_integers(bad: Any) -> None:
    assert S.RoundIn(seed=3.0).seed == 3 and S.ReleaseIn(attempt=2.0).attempt == 2
    with pytest.raises(pydantic.ValidationError):
        S.MarketIn(kind="broker", scale=bad)
    if bad is not None:
        with pytest.raises(pydantic.ValidationError):
            S.RoundIn(seed=bad)
    assert S.MarketIn(kind="x", params={"a": 2.0, "b": [1.0, 2.5]}).params == {"a": 2, "b": [1, 2.5]}


def _accepted(code: str) -> bool:
    if not re.fullmatch(S.CURRENCY, code):
        return False
    try:
        Currency.parse(code)
    except InvalidMarketError:
        return False
    return True


def test_the_documented_currency_codes_are_exactly_the_accepted_ones() -> None:
    rng = random.Random(29)
    alphabet = string.ascii_letters + string.digits + "_:/ "
    codes = [*ISO_4217, *(c.lower() for c in ISO_4217), *(f"{c}:{e}" for c in ISO_4217 for e in range(11))]
    codes += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8))) for _ in range(20_000)]
    codes += [f"u{rng.choice(['', '_1'])}/{'0' * rng.randint(0, 11)}{n}" for n in (0, 1, 7, 10**9, 10**9 + 1)]
    names = ["".join(rng.choice("ABEJPSUDY") for _ in range(rng.randint(1, 4))) for _ in range(3000)]
    codes += [
        f"{n}:{rng.randint(0, 12)}" for n in names
    ]  # ISO names among them, with right and wrong decimals
    documented = re.compile(currency_pattern())
    assert [c for c in codes if bool(documented.fullmatch(c)) != _accepted(c)] == []
    assert sum(map(_accepted, codes)) > 1000  # both sides of the line are exercised
    for e in (0, 2, 3, 6):
        with_scale = re.compile(currency_pattern(e))
        wrong = [
            c
            for c in codes
            if bool(with_scale.fullmatch(c))
            != (_accepted(c) and "/" not in c and Currency.parse(c).scale == 10**e)
        ]
        assert wrong == []


def test_market_and_submission_bodies_are_documented_per_kind(db_url: str) -> None:  # noqa: F811
    app = make_app(db_url)
    components = app.openapi()["components"]["schemas"]
    kinds = [b["properties"]["kind"]["const"] for b in components["MarketIn"]["anyOf"]]
    assert kinds == sorted(app.state.service.adapters)
    broker = next(b for b in components["MarketIn"]["anyOf"] if b["properties"]["kind"]["const"] == "broker")
    sigma = broker["properties"]["params"]["properties"]["sigma"]
    assert sigma["maximum"] <= 1e9 and sigma["exclusiveMinimum"] == 0
    subs = {(b["properties"]["kind"]["const"]) for b in components["SubmissionIn"]["anyOf"]}
    assert {"bid", "cost", "estimator", "source", "fee_scale"} <= subs and "dataset" not in subs
    with TestClient(app, headers={"X-API-Key": ADMIN}) as c:
        with_scale = c.post("/markets", json={"kind": "broker", "currency": "UNIT/7", "scale": 7})
        assert with_scale.status_code == 422  # a legacy unit names its scale: none beside it
        assert c.post("/markets", json={"kind": "broker", "currency": "UNIT/7"}).json()["scale"] == 7
        assert c.post("/markets", json={"kind": "broker", "currency": " usd"}).status_code == 422
