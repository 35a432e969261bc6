"""Lists a page at a time (``?after=&limit=``, ``Link: rel="next"``) on SQLite and PostgreSQL: every
row exactly once, in id order, whatever the page size; the client follows the pages and returns the
whole list; the ledger's entries page by ``seq``; a participant pages only its own rows."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from datamarket.client import Client, ValidationFailed
from datamarket.scenarios.inputs import broker
from datamarket.service.api.paging import MAX_PAGE
from tests import service_support
from tests.client.drive import broker_market
from tests.service_support import ADMIN, LiveServer

db_url, live = service_support.db_url, service_support.live  # the shared fixtures


def walk(http: httpx.Client, url: str, headers: dict[str, str]) -> tuple[list[dict], int]:
    """Every row of a raw list by following its links; the number of requests."""
    rows, requests = [], 0
    next_url: str | None = url
    while next_url is not None:
        answer = http.get(next_url, headers=headers)
        assert answer.status_code == 200, answer.text
        requests += 1
        page = answer.json()
        rows += page["entries"] if isinstance(page, dict) else page
        link = answer.links.get("next")
        next_url = None if link is None else link["url"]
    return rows, requests


def test_lists_page_by_id_and_the_client_reads_them_whole(live: LiveServer, tmp_path: Path) -> None:
    admin = {"X-API-Key": ADMIN}
    with Client(live.url, ADMIN) as op, httpx.Client(base_url=live.url) as http:
        made = [op.create_market("broker", broker.Params(sigma=1.0), name=f"m{k}") for k in range(4)]
        market, clients = broker_market(op, tmp_path)  # a fifth market, four participants
        done = op.wait(op.open_round(market, seed=3), timeout=120)
        assert done.status == "cleared", done.error
        ids = [m.id for m in [*made, market]]

        for size in (1, 2, 3, MAX_PAGE):
            rows, requests = walk(http, f"/markets?limit={size}", admin)
            assert [r["id"] for r in rows] == ids  # each once, in order
            assert requests == -(-len(ids) // size)  # one more row than a page tells that more follow
            assert [m.id for m in op.list_markets(page_size=size)] == ids
        last = http.get("/markets", params={"after": ids[-2]}, headers=admin)
        assert [r["id"] for r in last.json()] == [ids[-1]] and "link" not in last.headers

        everyone = [p.id for p in op.list_participants()]
        assert [p.id for p in op.list_participants(page_size=1)] == everyone and len(everyone) == 4
        subs = [s.id for s in op.list_submissions(market)]
        assert [s.id for s in op.list_submissions(market, page_size=2)] == subs == sorted(subs)
        assert [r.id for r in op.list_rounds(market, page_size=1)] == [done.id]

        whole = op.ledger_entries()
        entries, requests = walk(http, "/ledger/entries?limit=3", admin)
        assert entries == whole["entries"] and requests == -(-len(entries) // 3)
        paged = op.ledger_entries(page_size=2)
        assert paged["entries"] == whole["entries"] and paged["head"] == whole["head"]

        seller = clients["seller_x"]
        own = [s.id for s in seller.list_submissions(market, page_size=1)]
        assert own and set(own) < set(subs)
        assert all(s.participant_id == seller.participant_id for s in seller.list_submissions(market))


@pytest.mark.parametrize(
    "query", ["limit=0", f"limit={MAX_PAGE + 1}", "after=-1", "limit=x", "after=2147483648"]
)
def test_a_bad_page_is_a_clear_422(live: LiveServer, query: str) -> None:
    answer = httpx.get(f"{live.url}/markets?{query}", headers={"X-API-Key": ADMIN})
    assert answer.status_code == 422 and answer.json()["field"] == query.split("=")[0], answer.text
    with Client(live.url, ADMIN) as op, pytest.raises(ValidationFailed):
        op.list_markets(page_size=0)
    for path in ("/markets", "/participants", "/ledger/entries"):  # the largest key: an empty page
        last = httpx.get(f"{live.url}{path}?after={2**31 - 1}", headers={"X-API-Key": ADMIN})
        assert last.status_code == 200 and "link" not in last.headers, (path, last.text)
