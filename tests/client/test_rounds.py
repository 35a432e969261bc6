"""The client drives a round of every family against a live service (uvicorn, real HTTP), on SQLite and
PostgreSQL: the operator and each participant with its own :class:`~datamarket.client.Client`, every
receipt verified offline, the ledger balanced and verified, and a participant kept out of what is not
its own."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from datamarket.client import (
    AsyncClient,
    Client,
    Conflict,
    Forbidden,
    NotFound,
    ReceiptInvalid,
    RoundFailed,
    Unauthorized,
    ValidationFailed,
    receipt_problems,
)
from datamarket.scenarios.inputs import broker
from tests import service_support
from tests.client.drive import AUTOMATIC, FAMILIES, booked_rounds, broker_market
from tests.service_support import ADMIN, FLAKY, FLAKY_REF, LiveServer, make_app

db_url, live = service_support.db_url, service_support.live  # the shared fixtures


def round_sums(op: Client) -> dict[int, int]:
    sums: dict[int, int] = {}
    for e in op.ledger_entries()["entries"]:
        sums[e["round_id"]] = sums.get(e["round_id"], 0) + e["amount_minor"]
    return sums


@pytest.mark.slow  # six markets cleared, each by its own participants: ~15 s per database
def test_the_client_clears_a_round_of_every_family(live: LiveServer, tmp_path: Path) -> None:
    with Client(live.url, ADMIN) as op:
        assert set(FAMILIES) == {k.kind for k in op.kinds()}  # a new family needs its setup here
        for kind, setup in FAMILIES.items():
            market, clients = setup(op, tmp_path)
            if kind in AUTOMATIC:  # every answered bid booked by the rounds that opened by themselves
                rounds = booked_rounds(op, market)
            else:
                rounds = [op.wait(op.open_round(market, seed=11), timeout=120)]
            seen = set()
            for done in rounds:
                assert done.status == "cleared" and done.progress == 1.0, (kind, done.error)
                receipts = {r.participant_id: r for r in op.list_receipts(done)}
                seen |= set(receipts)
                for name, client in clients.items():
                    if client.participant_id not in receipts:
                        continue
                    mine = client.verify_receipt(client.get_receipt(done))  # offline: hashes, proofs, sum
                    assert mine == receipts[client.participant_id], (kind, name)
                    assert client.get_deliverable(done).deliverable, (kind, name)
                    assert client.verify_checkpoint(mine).ok, (kind, name)  # online: the ledger extends it
                # a round whose amounts all round to 0 minor units books no entry (a real-time buyer's charge
                # can be under a cent)
                assert round_sums(op).get(done.id, 0) == 0, kind
            assert seen == {c.participant_id for c in clients.values()}, kind
            others = list(clients.values())
            with pytest.raises(NotFound):  # another participant's receipt: the answer for a missing row
                others[0].get_receipt(rounds[0], others[1].participant_id)
        assert op.verify_ledger().ok
        assert len(op.list_markets()) == len(FAMILIES)


def test_receipts_are_checked_offline_and_tampering_is_found(live: LiveServer, tmp_path: Path) -> None:
    with Client(live.url, ADMIN) as op:
        market, cl = broker_market(op, tmp_path)
        done = op.wait(op.open_round(market, seed=1), progress=lambda s: None)
        buyer = cl["buyer_a"]
        receipt = buyer.get_receipt(done)
        assert receipt_problems(receipt) == []
        kept = json.loads(receipt.model_dump_json())  # a receipt kept as a file checks the same
        assert receipt_problems(kept) == []
        kept["entries"][0]["amount_minor"] -= 1  # the participant's own price, lowered by one cent
        with pytest.raises(ReceiptInvalid) as bad:
            buyer.verify_receipt(kept)
        assert any("altered" in p for p in bad.value.problems)
        assert op.verify_checkpoint(receipt.checkpoint).ok  # the operator checks any checkpoint


def test_errors_carry_the_problem_details(live: LiveServer, tmp_path: Path) -> None:
    with Client(live.url, ADMIN) as op:
        with pytest.raises(ValidationFailed) as bad:
            op.create_market("broker", {"sigma": -1})
        assert bad.value.status == 422 and "sigma" in str(bad.value.detail)
        market, cl = broker_market(op, tmp_path)
        seller = cl["seller_x"]
        with pytest.raises(Forbidden):
            seller.open_round(market)
        with pytest.raises(Unauthorized) as denied:
            with Client(live.url, "not-a-key") as stranger:
                stranger.me()
        assert denied.value.status == 401 and denied.value.path == "/participants/me"
        with pytest.raises(Conflict) as taken:
            op.register_participant(f"seller_x_{market.id}")  # names are unique
        assert taken.value.status == 409
        with pytest.raises(NotFound):
            op.get_round(999)
        sub = seller.list_submissions(market)[0]
        assert seller.get_submission(sub).id == sub.id
        assert op.exclude_submission(sub, "test").excluded_reason.endswith(": test")
        with pytest.raises(Conflict):  # excluded already
            op.exclude_submission(sub, "again")


def test_wait_reports_progress_and_raises_on_a_failed_round(tmp_path: Path) -> None:
    app = make_app(f"sqlite:///{tmp_path}/flaky.db", adapters={"flaky_broker": FLAKY_REF})
    with LiveServer(app) as srv, Client(srv.url, ADMIN) as op:
        market, _ = broker_market(op, tmp_path, kind="flaky_broker")
        FLAKY.fail = True
        try:
            seen: list[str] = []
            failing = op.open_round(market)
            with pytest.raises(RoundFailed) as failed:
                op.wait(failing, progress=lambda s: seen.append(s.status))
            assert failed.value.round.status == "failed" and "injected" in failed.value.round.error
            assert seen[-1] == "failed"
            assert op.wait(failing, check=False).status == "failed"
        finally:
            FLAKY.fail = False
        retried = op.retry_round(failing)
        assert op.wait(retried).status == "cleared"
        for act in (op.fail_round, op.release_round):  # a cleared round is neither failed nor released
            with pytest.raises(Conflict):
                act(retried)


def test_the_async_client_drives_a_round(live: LiveServer) -> None:
    async def drive() -> None:
        async with AsyncClient(live.url, ADMIN) as op:
            market = await op.create_market("broker", broker.Params(sigma=1.0))
            names = ["ab", "as1", "as2"]
            cl = {n: op.participant(await op.register_participant(n)) for n in names}
            await cl["ab"].submit(market, broker.Bid(valuation="gaussian", width=0.5))
            for k, n in enumerate(names[1:]):
                await cl[n].submit(market, broker.Cost(cost=0.05 + 0.01 * k))

            async def contribute(name: str) -> None:  # the contributors upload at the same time
                plan = await cl[name].get_plan(market)
                if plan["n_star"][name]:
                    await cl[name].upload(market, np.full(plan["n_star"][name], 2.0))

            await asyncio.gather(*(contribute(n) for n in names[1:]))
            done = await op.wait(await op.open_round(market, seed=5))
            assert done.status == "cleared"
            for client in cl.values():
                client.verify_receipt(await client.get_receipt(done))
                await client.aclose()
            assert (await op.verify_ledger()).ok

    asyncio.run(drive())
