"""A retried write after a dropped connection never stores or books twice (live service, SQLite and
PostgreSQL).

:class:`DropAnswer` lets a request reach the live service, which acts on it, then drops the answer
(``httpx.ReadError``, as a connection reset after the server wrote): the client cannot know whether
the service acted. A keyed write (upload, submission, opening a round) is sent again with the same
``Idempotency-Key`` and the service answers the first response again (200): one submission, one
round, one booking. A write the API does not key (registering a participant) is not sent again: the
client raises :class:`~datamarket.client.ConnectionFailed`. And the control: the same upload sent
twice without the key stores two rows, so the checks below would see a double store.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np
import pytest

from datamarket.client import AsyncClient, Client, ConnectionFailed, RetryPolicy
from datamarket.scenarios.inputs import broker
from tests import service_support
from tests.client.drive import join
from tests.service_support import ADMIN, LiveServer, audit

db_url, live = service_support.db_url, service_support.live  # the shared fixtures
FAST = RetryPolicy(attempts=4, initial=0.01, maximum=0.05)


def dropped(request: httpx.Request, method: str, suffix: str) -> bool:
    return request.method == method and request.url.path.endswith(suffix)


class DropAnswer(httpx.HTTPTransport):
    """Sends every request on; drops the answer of the first ``drops`` requests ``method`` on a path
    ending in ``suffix`` after the service answered. ``sent`` records (method, path, key, status)."""

    def __init__(self, method: str, suffix: str, drops: int = 1) -> None:
        super().__init__()
        self.method, self.suffix, self.drops = method, suffix, drops
        self.sent: list[tuple[str, str, str | None, int]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        response.read()
        self.sent.append(
            (request.method, request.url.path, request.headers.get("idempotency-key"), response.status_code)
        )
        if self.drops and dropped(request, self.method, self.suffix):
            self.drops -= 1
            response.close()
            raise httpx.ReadError("connection reset by peer", request=request)
        return response


class AsyncDropAnswer(httpx.AsyncHTTPTransport):
    """:class:`DropAnswer` for the async client."""

    def __init__(self, method: str, suffix: str, drops: int = 1) -> None:
        super().__init__()
        self.method, self.suffix, self.drops = method, suffix, drops
        self.sent: list[tuple[str, str, str | None, int]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        await response.aread()
        self.sent.append(
            (request.method, request.url.path, request.headers.get("idempotency-key"), response.status_code)
        )
        if self.drops and dropped(request, self.method, self.suffix):
            self.drops -= 1
            await response.aclose()
            raise httpx.ReadError("connection reset by peer", request=request)
        return response


def posts(sent: list[tuple[str, str, str | None, int]], suffix: str) -> list[tuple[str | None, int]]:
    return [(key, status) for method, path, key, status in sent if method == "POST" and path.endswith(suffix)]


def broker_inputs(op: Client, tmp: Path) -> tuple[int, dict[str, Client]]:
    """A broker market with its bids and costs; the contributors have not uploaded yet."""
    market = op.create_market("broker", broker.Params(sigma=1.0))
    cl = join(op, market, ["buyer", "seller_x", "seller_y"])
    cl["buyer"].submit(market, broker.Bid(valuation="gaussian", width=0.5))
    cl["seller_x"].submit(market, broker.Cost(cost=0.05))
    cl["seller_y"].submit(market, broker.Cost(cost=0.06))
    return market.id, cl


def upload_planned(client: Client, market: int, name: str, transport_client: Client | None = None) -> int:
    """Upload the points the plan asks of ``name`` (through ``transport_client`` when given)."""
    n = client.get_plan(market)["n_star"][name]
    sender = transport_client or client
    return sender.upload(market, np.random.default_rng(1).normal(2.0, 1.0, n)).id


def test_a_retried_upload_and_round_start_store_and_book_once(
    live: LiveServer, db_url: str, tmp_path: Path
) -> None:
    with Client(live.url, ADMIN) as op:
        mid, cl = broker_inputs(op, tmp_path)
        x = cl["seller_x"]
        drop_upload = DropAnswer("POST", "/datasets")
        with Client(live.url, x._api_key, retry=FAST, transport=drop_upload) as flaky_x:
            sid = upload_planned(x, mid, f"seller_x_{mid}", flaky_x)
        tries = posts(drop_upload.sent, "/datasets")
        assert [s for _, s in tries] == [201, 200] and tries[0][0] == tries[1][
            0
        ] is not None  # one key, replayed
        datasets = [s for s in op.list_submissions(mid) if s.kind == "dataset"]
        assert [s.id for s in datasets] == [sid] and datasets[0].superseded_by is None  # stored once
        upload_planned(cl["seller_y"], mid, f"seller_y_{mid}")
        drop_open = DropAnswer("POST", f"/markets/{mid}/rounds")
        with Client(live.url, ADMIN, retry=FAST, transport=drop_open) as flaky_op:
            opened = flaky_op.open_round(mid, seed=3)
        tries = posts(drop_open.sent, "/rounds")
        assert [s for _, s in tries] == [202, 200] and tries[0][0] == tries[1][0]
        assert [r.id for r in op.list_rounds(mid)] == [opened.id]  # one round
        done = op.wait(opened)
        assert done.status == "cleared"
        entries = [e for e in op.ledger_entries()["entries"] if e["round_id"] == done.id]
        mine = sorted(e.seq for r in op.list_receipts(done) for e in r.entries)
        platform = [e["seq"] for e in entries if e["participant_id"] is None]
        assert sorted(e["seq"] for e in entries) == sorted(mine + platform)  # each line booked once
        assert sum(e["amount_minor"] for e in entries) == 0
    assert audit(db_url) == {
        "double_booked": [],
        "booked_not_cleared": [],
        "cleared_not_booked": [],
        "consumed_mismatch": [],
    }


def test_a_retried_submission_is_stored_once_and_an_unkeyed_write_is_not_retried(live: LiveServer) -> None:
    with Client(live.url, ADMIN) as op:
        market = op.create_market("broker", broker.Params(sigma=1.0))
        reg = op.register_participant("bidder")
        drop = DropAnswer("POST", "/submissions")
        with Client(live.url, reg.api_key, retry=FAST, transport=drop) as bidder:
            sub = bidder.submit(market, broker.Bid(valuation="gaussian", width=0.5))
        assert [s for _, s in posts(drop.sent, "/submissions")] == [201, 200]
        assert [s.id for s in op.list_submissions(market)] == [sub.id]
        # registering is not keyed by the API: after a lost answer the client does not send it again
        drop_reg = DropAnswer("POST", "/participants")
        with Client(live.url, ADMIN, retry=FAST, transport=drop_reg) as flaky_op:
            with pytest.raises(ConnectionFailed) as lost:
                flaky_op.register_participant("newcomer")
        assert isinstance(lost.value.__cause__, httpx.ReadError)
        assert [s for _, s in posts(drop_reg.sent, "/participants")] == [201]
        assert [p.name for p in op.list_participants()].count("newcomer") == 1


def test_without_the_key_a_repeated_upload_is_stored_twice(live: LiveServer, tmp_path: Path) -> None:
    """The control: what the retries above avoid."""
    with Client(live.url, ADMIN) as op:
        mid, cl = broker_inputs(op, tmp_path)
        x = cl["seller_x"]
        n = x.get_plan(mid)["n_star"][f"seller_x_{mid}"]
        body = b"x0\n" + b"2.0\n" * n
        with live.client(x._api_key) as raw:
            codes = [
                raw.post(
                    f"/markets/{mid}/datasets", content=body, headers={"Content-Type": "text/csv"}
                ).status_code
                for _ in range(2)
            ]
        assert codes == [201, 201]
        assert len([s for s in op.list_submissions(mid) if s.kind == "dataset"]) == 2  # stored twice


def test_the_async_client_retries_an_upload_with_the_same_key(live: LiveServer, tmp_path: Path) -> None:
    with Client(live.url, ADMIN) as op:
        mid, cl = broker_inputs(op, tmp_path)
        key = cl["seller_x"]._api_key
        n = cl["seller_x"].get_plan(mid)["n_star"][f"seller_x_{mid}"]
        drop = AsyncDropAnswer("POST", "/datasets")

        async def send() -> int:
            async with AsyncClient(live.url, key, retry=FAST, transport=drop) as x:
                return (await x.upload(mid, np.full(n, 2.0))).id

        sid = asyncio.run(send())
        tries = posts(drop.sent, "/datasets")
        assert [s for _, s in tries] == [201, 200] and tries[0][0] == tries[1][0]
        assert [s.id for s in op.list_submissions(mid) if s.kind == "dataset"] == [sid]
