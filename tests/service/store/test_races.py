"""Exactly-once money under concurrency: a retry racing a new round and concurrent retries, with real
concurrent HTTP clients against a live uvicorn server, on SQLite and PostgreSQL
(``benchmarks/service_hostile_load.py`` runs them at 50 markets each).

Reproductions: (1) a failed round's retry and a new round of the same market sent at the same instant
once booked both rounds on the same inputs (buyers charged twice); (2) ten simultaneous retries of a
failed round once left a booked round marked ``failed``. The database now decides both: the partial
unique index admits one active round per market, and every transition is a compare-and-set.
"""

from __future__ import annotations

import pytest

from tests.service_support import (
    BACKENDS,
    FLAKY_REF,
    audit,
    race_concurrent_retries,
    race_retry_vs_new_round,
    served_with,
)

MARKETS = 5
CLEAN = {"double_booked": [], "booked_not_cleared": [], "cleared_not_booked": [], "consumed_mismatch": []}


@pytest.fixture(params=BACKENDS)
def served(request: pytest.FixtureRequest, tmp_path):  # type: ignore[no-untyped-def]
    with served_with(request.param, tmp_path, {"flaky_broker": FLAKY_REF}) as world:
        yield world


def test_retry_racing_a_new_round_books_once(served) -> None:  # type: ignore[no-untyped-def]
    url, srv, admin = served
    out = race_retry_vs_new_round(srv, admin, MARKETS)
    for codes in out["codes"]:
        assert sorted(codes) == [202, 409], out  # exactly one of the two opens a round
    assert audit(url) == CLEAN, out
    assert admin.get("/ledger/verify").json()["ok"]
    booked = {e["round_id"] for e in admin.get("/ledger/entries").json()["entries"]}
    assert len(booked) == MARKETS  # one booked round per market
    assert all(admin.get(f"/rounds/{rid}").json()["status"] == "cleared" for rid in booked)


def test_ten_concurrent_retries_book_once_and_report_cleared(served) -> None:  # type: ignore[no-untyped-def]
    url, srv, admin = served
    out = race_concurrent_retries(srv, admin, MARKETS)
    for codes in out["codes"]:
        assert sorted(codes) == [202] + [409] * 9, out
    assert out["statuses"] == ["cleared"] * MARKETS, out
    assert audit(url) == CLEAN, out
    assert admin.get("/ledger/verify").json()["ok"]
