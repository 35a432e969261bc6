"""The ledger through the HTTP API: currencies of markets, balances per currency, receipts carrying
checkpoints, ``POST /ledger/checkpoint`` and ``GET /ledger/export``, on SQLite and
PostgreSQL."""

from __future__ import annotations

import numpy as np
import pytest

from datamarket.ledger import entry_hash_v3, receipt_problems, verify_export
from datamarket.service.uploads import UploadLimits
from tests.service_support import (
    BACKENDS,
    BROKER_BIDS,
    BROKER_COSTS,
    LiveServer,
    csv_bytes,
    fresh_database,
    make_app,
    setup_broker,
    wait_round,
)


@pytest.fixture(params=BACKENDS)
def live(request: pytest.FixtureRequest, tmp_path):  # type: ignore[no-untyped-def]
    with fresh_database(request.param, tmp_path) as url:
        app = make_app(url, limits=UploadLimits(max_bytes=64_000))
        with LiveServer(app) as srv:
            yield srv


def test_two_currencies_receipts_and_checkpoints(live) -> None:  # type: ignore[no-untyped-def]
    with live.client() as admin:
        bad = admin.post("/markets", json={"kind": "broker", "params": {"sigma": 1.0}, "currency": "XYZ"})
        assert bad.status_code == 422 and "unknown currency 'XYZ'" in bad.json()["detail"]
        clash = {"kind": "broker", "params": {"sigma": 1.0}, "currency": "EUR", "scale": 1000}
        assert admin.post("/markets", json=clash).status_code == 422
        usd = setup_broker(live, admin)
        got = admin.get(f"/markets/{usd['market']}").json()
        assert (got["currency"], got["exponent"], got["scale"]) == ("USD", 2, 100)
        r = admin.post("/markets", json={"kind": "broker", "params": {"sigma": 1.0}, "currency": "token:6"})
        assert r.status_code == 201 and (r.json()["currency"], r.json()["scale"]) == ("TOKEN:6", 10**6)
        tok, cl = r.json()["id"], usd["clients"]
        # the same participants trade in the TOKEN:6 market too
        for name, bid in BROKER_BIDS.items():
            assert (
                cl[name].post(f"/markets/{tok}/submissions", json={"kind": "bid", "data": bid}).status_code
                == 201
            )
        for name, cost in BROKER_COSTS.items():
            body = {"kind": "cost", "data": {"cost": cost}}
            assert cl[name].post(f"/markets/{tok}/submissions", json=body).status_code == 201
        rng = np.random.default_rng(1)
        for name in BROKER_COSTS:  # each contributor reads its own N*_i: the plan shows it only its row
            n = cl[name].get(f"/markets/{tok}/plan").json()["n_star"][f"{name}_{usd['market']}"]
            up = cl[name].post(
                f"/markets/{tok}/datasets",
                params={"format": "csv"},
                content=csv_bytes(rng.normal(2.0, 1.0, (n, 1))),
            )
            assert up.status_code == 201, up.text
        rounds = {}
        for mid in (usd["market"], tok):
            done = wait_round(admin, admin.post(f"/markets/{mid}/rounds", json={"seed": 3}).json()["id"])
            assert done["status"] == "cleared", done["error"]
            rounds[mid] = done["id"]
        assert admin.get("/ledger/verify").json()["ok"]
        a, aid = cl["buyer_a"], usd["ids"]["buyer_a"]
        receipts = {mid: a.get(f"/rounds/{rid}/receipts/{aid}").json() for mid, rid in rounds.items()}
        assert [x["currency"] for x in receipts.values()] == ["USD", "TOKEN:6"]
        # balances per currency, never added together
        me = a.get("/participants/me").json()
        assert me["balance_minor"] is None
        assert {b["currency"]: b["balance_minor"] for b in me["balances"]} == {
            "USD": receipts[usd["market"]]["net_minor"],
            "TOKEN:6": receipts[tok]["net_minor"],
        }
        # a receipt carries every hashed field, salts included: the participant recomputes its entries'
        # hashes and proves them in the round's Merkle tree, offline; it holds no other entry's hash
        rec = receipts[tok]
        for e in rec["entries"]:
            fields = {k: e[k] for k in e if k not in ("version", "hash", "amount")}
            assert e["version"] == 3 and entry_hash_v3(**fields) == e["hash"]
        assert receipt_problems(rec) == []
        cp = rec["checkpoint"]
        assert (
            cp["round_id"] == rounds[tok] and cp["hash"] == rec["round_hash"] and cp["entry_hashes"] is None
        )
        assert [p["hash"] for p in cp["proofs"]] == [e["hash"] for e in rec["entries"]]
        # later, the participant checks that the ledger still extends what it kept
        ok = a.post("/ledger/checkpoint", json=cp)
        assert ok.status_code == 200 and ok.json()["ok"], ok.json()
        forged = a.post("/ledger/checkpoint", json={**cp, "hash": "ab" * 32}).json()
        assert not forged["ok"] and any("history rewritten" in p for p in forged["problems"])
        assert live.client(None).post("/ledger/checkpoint", json=cp).status_code == 401
        # the operator's export verifies offline
        assert a.get("/ledger/export").status_code == 403
        export = admin.get("/ledger/export")
        assert export.status_code == 200 and export.headers["content-type"].startswith("application/x-ndjson")
        assert verify_export(export.text.splitlines(), [cp]).ok
