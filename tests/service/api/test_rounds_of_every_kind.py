"""The marketplace service through real HTTP (uvicorn on 127.0.0.1, httpx), on SQLite and PostgreSQL."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from datamarket.ledger import make_engine, make_sessionmaker, round_sums
from tests import service_support
from tests.service_support import (
    LiveServer,
    csv_bytes,
    make_app,
    register,
    setup_broker,
    setup_collaborative,
    wait_round,
)

db_url, live = service_support.db_url, service_support.live  # the shared fixtures


def _round_sums(url: str) -> dict[int, int]:
    eng = make_engine(url)
    try:
        with make_sessionmaker(eng)() as s:
            return round_sums(s)
    finally:
        eng.dispose()


def test_broker_round_end_to_end_and_access_control(live, db_url) -> None:  # type: ignore[no-untyped-def]
    with live.client() as admin:
        m = setup_broker(live, admin)
        mid, ids, cl = m["market"], m["ids"], m["clients"]
        r = admin.post(f"/markets/{mid}/rounds", json={"seed": 7})
        assert r.status_code == 202 and r.json()["status"] == "pending"
        done = wait_round(admin, r.json()["id"])
        assert done["status"] == "cleared", done["error"]
        # exact: a cleared round's progress is set to the literal 1.0
        assert done["progress"] == 1.0 and done["attempts"] == 1
        rid = done["id"]
        receipts = admin.get(f"/rounds/{rid}/receipts").json()
        assert {x["participant_id"] for x in receipts} == set(ids.values())
        outcome = done["outcome"]
        assert outcome["mechanism"] == "broker_mstar"
        # every round's entries sum to zero in minor units, and the ledger verifies
        entries = admin.get("/ledger/entries").json()["entries"]
        assert sum(e["amount_minor"] for e in entries) == 0
        assert _round_sums(db_url) == {rid: 0}
        assert admin.get("/ledger/verify").json()["ok"]
        # each price and payment is booked within one minor unit
        for p in outcome["participants"]:
            booked = sum(e["amount_minor"] for e in entries if e["account"] == p["name"])
            assert abs(booked - 100 * (p["payments"] - p["prices"])) < 1 + 1e-9
        # a buyer reads its own receipt and data, not another's (404, as for ids that do not exist), and not
        # the outcome
        a, b = cl["buyer_a"], cl["buyer_b"]
        mine = a.get(f"/rounds/{rid}/receipts/{ids['buyer_a']}")
        assert mine.status_code == 200 and mine.json()["deliverable"]["kind"] == "data"
        assert mine.json()["net_minor"] == sum(e["amount_minor"] for e in mine.json()["entries"])
        assert a.get(f"/rounds/{rid}/models/{ids['buyer_a']}").json()["deliverable"]["points"]
        assert a.get(f"/rounds/{rid}/receipts/{ids['buyer_b']}").status_code == 404
        assert a.get(f"/rounds/{rid}/models/{ids['buyer_b']}").status_code == 404
        assert a.get(f"/participants/{ids['buyer_b']}").status_code == 404
        assert a.get(f"/rounds/{rid}").json()["outcome"] is None
        x_subs = cl["seller_x"].get(f"/markets/{mid}/submissions").json()
        assert all(s["participant_id"] == ids["seller_x"] for s in x_subs)
        data_sub = next(s for s in x_subs if s["kind"] == "dataset")
        assert b.get(f"/submissions/{data_sub['id']}").status_code == 404
        assert b.get(f"/submissions/{data_sub['id']}/content").status_code == 404
        content = cl["seller_x"].get(f"/submissions/{data_sub['id']}/content")
        assert content.status_code == 200 and content.content.startswith(b"x0\n")
        # balances: the participant's own, minor units
        me = a.get("/participants/me").json()
        assert me["balance_minor"] == mine.json()["net_minor"]
        # participants cannot act as the operator; wrong or missing keys are 401
        assert a.post(f"/markets/{mid}/rounds").status_code == 403
        assert a.get("/ledger/entries").status_code == 403
        assert live.client("wrong-key").get("/participants/me").status_code == 401
        assert live.client(None).get(f"/markets/{mid}").status_code == 401
        # a cleared round cannot be retried; its inputs are consumed
        assert admin.post(f"/rounds/{rid}/retry").status_code == 409
        assert (
            admin.post(f"/markets/{mid}/rounds").status_code == 409
        )  # no unconsumed inputs: the state, not the request, is wrong
        assert admin.get("/rounds/999").status_code == 404


def test_collaborative_round_end_to_end(live, db_url) -> None:  # type: ignore[no-untyped-def]
    with live.client() as admin:
        m = setup_collaborative(live, admin)
        r = admin.post(f"/markets/{m['market']}/rounds", json={"seed": 1})
        done = wait_round(admin, r.json()["id"])
        assert done["status"] == "cleared", done["error"]
        rid = done["id"]
        parties = done["outcome"]["participants"]
        assert {p["role"] for p in parties} == {"party"}
        # strong budget balance of Ohrimenko et al.: fees in, payouts out, nothing left to the platform
        assert abs(done["outcome"]["platform_take"]) < 1e-9
        assert _round_sums(db_url) == {rid: 0}
        for name, client in m["clients"].items():
            pid = m["ids"][name]
            model = client.get(f"/rounds/{rid}/models/{pid}").json()["deliverable"]
            assert model["kind"] == "model" and 0.0 <= model["delivered_accuracy"] <= 1.0
            assert model["delivered_accuracy"] >= model["own_accuracy"] - 1e-12  # zero-element guard
            others = [q for n, q in m["ids"].items() if n != name]
            assert client.get(f"/rounds/{rid}/models/{others[0]}").status_code == 404
        assert admin.get("/ledger/verify").json()["ok"]


def test_malformed_and_oversized_uploads_store_nothing(live) -> None:  # type: ignore[no-untyped-def]
    with live.client() as admin:
        mid = admin.post("/markets", json={"kind": "collaborative", "params": {}}).json()["id"]
        _, key = register(admin, "uploader")
        c = live.client(key)
        url = f"/markets/{mid}/datasets"
        bad = {
            "not numeric": (b"x0,label\n1,0\nfoo,1\n", {"format": "csv"}),
            "ragged": (b"x0,x1,label\n1,2,0\n1,1\n", {"format": "csv"}),
            "nan": (b"x0,label\nnan,0\n", {"format": "csv"}),
            "empty": (b"x0,label\n", {"format": "csv"}),
            "bad npz": (b"PK\x03\x04garbage", {"format": "npz"}),
            "bad parquet": (b"PAR1garbagePAR1", {"format": "parquet"}),
            "unknown format": (b"x0\n1\n", {}),
            "json kind as upload": (b"x0,label\n1,0\n", {"format": "csv", "kind": "fee_scale"}),
        }
        for what, (body, params) in bad.items():
            r = c.post(url, params=params, content=body)
            assert r.status_code == 422, (what, r.status_code, r.text)
            assert isinstance(r.json()["detail"], str) and r.json()["detail"], what
        # a file that reads but that this market's kind does not take (no labels): 409, stored neither
        r = c.post(url, params={"format": "csv"}, content=b"x0,x1\n1,2\n")
        assert r.status_code == 409 and "label" in r.json()["detail"], r.text
        big = csv_bytes(np.zeros((6000, 3)), np.zeros(6000))
        assert len(big) > 64_000
        assert c.post(url, params={"format": "csv"}, content=big).status_code == 413

        def chunks():  # no Content-Length: the streaming limit applies
            for _ in range(40):
                yield b"0.0,0.0,0\n" * 200

        assert c.post(url, params={"format": "csv"}, content=chunks()).status_code == 413
        bad_json = c.post(
            f"/markets/{mid}/submissions", json={"kind": "fee_scale", "data": {"fee_scale": -1}}
        )
        assert bad_json.status_code == 422 and "fee_scale" in bad_json.json()["detail"]
        assert (
            c.post(
                f"/markets/{mid}/submissions", content=b"{nope", headers={"content-type": "application/json"}
            ).status_code
            == 422
        )
        assert admin.get(f"/markets/{mid}/submissions").json() == []
        # the three formats are accepted
        x, y = np.arange(6.0).reshape(3, 2), np.array([0, 1, 0])
        buf = io.BytesIO()
        np.savez(buf, features=x, labels=y)
        assert c.post(url, params={"format": "npz"}, content=buf.getvalue()).status_code == 201
        import pyarrow as pa
        import pyarrow.parquet as pq

        pbuf = io.BytesIO()
        pq.write_table(pa.table({"a": x[:, 0], "b": x[:, 1], "label": y}), pbuf)
        r = c.post(url, content=pbuf.getvalue(), headers={"content-type": "application/vnd.apache.parquet"})
        assert r.status_code == 201 and r.json()["payload"]["n_samples"] == 3
        assert len(admin.get(f"/markets/{mid}/submissions").json()) == 2


def test_idempotency_and_concurrent_submissions(live) -> None:  # type: ignore[no-untyped-def]
    with live.client() as admin:
        mid = admin.post("/markets", json={"kind": "broker", "params": {"sigma": 2.0}}).json()["id"]
        _, key = register(admin, "bidder")
        c = live.client(key)
        body = {"kind": "cost", "data": {"cost": 0.5}}
        first = c.post(f"/markets/{mid}/submissions", json=body, headers={"Idempotency-Key": "k1"})
        again = c.post(f"/markets/{mid}/submissions", json=body, headers={"Idempotency-Key": "k1"})
        assert (first.status_code, again.status_code) == (201, 200)
        assert first.json() == again.json()
        other = {"kind": "cost", "data": {"cost": 0.7}}
        assert (
            c.post(f"/markets/{mid}/submissions", json=other, headers={"Idempotency-Key": "k1"}).status_code
            == 409
        )
        # 50 concurrent submissions from 10 participants (plus a duplicate of each): each recorded once
        keys = [register(admin, f"p{k}")[1] for k in range(10)]
        clients = [live.client(k) for k in keys]

        def send(i: int) -> int:
            req = {"kind": "cost", "data": {"cost": 0.01 * (i + 1)}}
            r = clients[i % 10].post(
                f"/markets/{mid}/submissions", json=req, headers={"Idempotency-Key": f"c{i}"}
            )
            return r.status_code

        with ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(send, [*range(50), *range(50)]))
        assert sorted(set(codes)) in ([200, 201], [201])
        assert codes.count(201) == 50
        subs = admin.get(f"/markets/{mid}/submissions").json()
        costs = sorted(
            round(s["payload"]["data"]["cost"], 6)
            for s in subs
            if s["participant_id"] != first.json()["participant_id"]
        )
        # exact: posted costs round-trip through JSON (repr) and are rounded alike on both sides
        assert costs == sorted(round(0.01 * (i + 1), 6) for i in range(50))
        for cl in clients:
            cl.close()


def test_round_idempotency_conflicts_and_bad_markets(live) -> None:  # type: ignore[no-untyped-def]
    with live.client() as admin:
        m = setup_broker(live, admin)
        mid = m["market"]
        r1 = admin.post(f"/markets/{mid}/rounds", json={"seed": 1}, headers={"Idempotency-Key": "clear-1"})
        r2 = admin.post(f"/markets/{mid}/rounds", json={"seed": 1}, headers={"Idempotency-Key": "clear-1"})
        assert r1.status_code == 202 and r2.status_code == 200 and r1.json()["id"] == r2.json()["id"]
        assert wait_round(admin, r1.json()["id"])["status"] == "cleared"
        assert len(admin.get(f"/markets/{mid}/rounds").json()) == 1
        assert admin.post("/markets", json={"kind": "nope"}).status_code == 422
        assert admin.post("/markets", json={"kind": "broker", "params": {"sigma": -1}}).status_code == 422
        assert admin.post("/markets", json={"kind": "broker", "params": {"sigam": 1}}).status_code == 422
        assert admin.post("/participants", json={"name": "platform"}).status_code == 422
        assert admin.post("/participants", json={"name": "seller_x_1"}).status_code == 409


def test_openapi_is_served(live) -> None:  # type: ignore[no-untyped-def]
    with live.client(None) as anon:
        schema = anon.get("/openapi.json").json()
    assert {"/markets", "/markets/{mid}/rounds", "/rounds/{rid}/receipts/{pid}", "/ledger/verify"} <= set(
        schema["paths"]
    )


def test_truthful_payments_round_end_to_end(live, db_url) -> None:  # type: ignore[no-untyped-def]
    with live.client() as admin:
        mid = admin.post(
            "/markets", json={"kind": "truthful_payments", "params": {"rule": "myerson"}}
        ).json()["id"]
        rng = np.random.default_rng(3)
        ids, clients = {}, {}
        for name, target in {"b1": [1.0, 0.5], "b2": [0.2, 1.0]}.items():
            ids[name], key = register(admin, name)
            clients[name] = live.client(key)
            r = clients[name].post(
                f"/markets/{mid}/submissions", json={"kind": "task", "data": {"target": target}}
            )
            assert r.status_code == 201, r.text
        for k, name in enumerate(["s1", "s2", "s3"]):
            ids[name], key = register(admin, name)
            clients[name] = live.client(key)
            body = csv_bytes(rng.normal([1.0, 0.5], 1.0 + k, (10 + 5 * k, 2)))
            assert (
                clients[name]
                .post(f"/markets/{mid}/datasets", content=body, params={"format": "csv"})
                .status_code
                == 201
            )
            r = clients[name].post(
                f"/markets/{mid}/submissions", json={"kind": "cost", "data": {"cost": 1.0 + k}}
            )
            assert r.status_code == 201, r.text
        done = wait_round(admin, admin.post(f"/markets/{mid}/rounds").json()["id"])
        assert done["status"] == "cleared", done["error"]
        rows = {p["name"]: p for p in done["outcome"]["participants"]}
        # Myerson payments are seller-IR (Fan et al., Theorem 4.1): payment >= reported cost x share
        for s in ("s1", "s2", "s3"):
            assert rows[s]["payments"] >= rows[s]["costs"] - 1e-9
        assert _round_sums(db_url) == {done["id"]: 0}
        est = clients["b1"].get(f"/rounds/{done['id']}/models/{ids['b1']}").json()["deliverable"]
        assert est["kind"] == "estimate" and len(est["estimate"]) == 2
        assert set(est["weights"]) == {"seller 1 of 3", "seller 2 of 3", "seller 3 of 3"}  # no names
        assert clients["b1"].get(f"/rounds/{done['id']}/models/{ids['s1']}").status_code == 404


def test_dask_executor_clears_a_round(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        url = f"sqlite:///{tmp_path}/dask.db"
        app = make_app(url, executor="dask", dask_address=cluster.scheduler_address)
        with LiveServer(app) as srv, srv.client() as admin:
            m = setup_broker(srv, admin)
            done = wait_round(admin, admin.post(f"/markets/{m['market']}/rounds").json()["id"])
            assert done["status"] == "cleared", done["error"]
            # the clearing task ran on the cluster
            assert any("run_clearing" in str(t[0]) for t in cluster.scheduler.transition_log)
            assert _round_sums(url) == {done["id"]: 0}


def test_balanced_market_round_end_to_end(live, db_url) -> None:  # type: ignore[no-untyped-def]
    with live.client() as admin:
        mid = admin.post("/markets", json={"kind": "balanced_market", "params": {"groups": [0, 1]}}).json()[
            "id"
        ]
        rng = np.random.default_rng(5)

        def data(n: int) -> bytes:
            y, g = np.arange(n) % 2, (np.arange(n) // 2) % 2
            return csv_bytes(rng.normal(0, 1, (n, 2)) + y[:, None] * 1.5, y, g)

        ids, clients = {}, {}
        for role, names in (("seller", ["s1", "s2"]), ("buyer", ["b1", "b2"])):
            for k, name in enumerate(names):
                ids[name], key = register(admin, name)
                c = clients[name] = live.client(key)
                kind, sub = ("dataset", "cost") if role == "seller" else ("task", "bid")
                vec = {"costs": [0.1, 0.2]} if role == "seller" else {"values": [1.0 + k, 0.5]}
                r = c.post(
                    f"/markets/{mid}/datasets", params={"format": "csv", "kind": kind}, content=data(16)
                )
                assert r.status_code == 201, r.text
                r = c.post(f"/markets/{mid}/submissions", json={"kind": sub, "data": vec})
                assert r.status_code == 201, r.text
        # a test set missing a group is rejected and not stored
        bad = csv_bytes(np.zeros((2, 2)), np.array([0, 1]), np.array([0, 0]))
        r = clients["b1"].post(
            f"/markets/{mid}/datasets", params={"format": "csv", "kind": "task"}, content=bad
        )
        assert r.status_code == 409 and "groups [1]" in r.json()["detail"]  # reads; the market refuses it
        done = wait_round(admin, admin.post(f"/markets/{mid}/rounds").json()["id"])
        assert done["status"] == "cleared", done["error"]
        # Shapley division is efficient: revenue in, payments out, strong budget balance
        # (Chaintreau et al., (7))
        assert abs(done["outcome"]["platform_take"]) < 1e-9
        assert _round_sums(db_url) == {done["id"]: 0}
        model = clients["b2"].get(f"/rounds/{done['id']}/models/{ids['b2']}").json()["deliverable"]
        assert model["kind"] == "model" and set(model["accuracy"]) == {"0", "1"}
        assert clients["s1"].get(f"/rounds/{done['id']}/models/{ids['b2']}").status_code == 404


def test_competing_buyers_round_end_to_end(live, db_url) -> None:  # type: ignore[no-untyped-def]
    with live.client() as admin:
        mid = admin.post(
            "/markets", json={"kind": "competing_buyers", "params": {"competition": 0.0}}
        ).json()["id"]
        ids, clients = {}, {}
        inputs = {
            "src1": ("source", {"location": 0.0, "effort_alpha": 1.0}),
            "src2": ("source", {"location": 1.0}),
            "buyer1": ("estimator", {"degree": 1}),
            "buyer2": ("estimator", {"degree": 1, "low": -1.0, "high": 1.0, "eta": 1.0}),
        }
        for name, (kind, data) in inputs.items():
            ids[name], key = register(admin, name)
            clients[name] = live.client(key)
            r = clients[name].post(f"/markets/{mid}/submissions", json={"kind": kind, "data": data})
            assert r.status_code == 201, r.text
        up = clients["src1"].post(f"/markets/{mid}/datasets", params={"format": "csv"}, content=b"x0\n1\n")
        assert up.status_code == 409  # this kind takes no uploads (other kinds of market do)
        done = wait_round(admin, admin.post(f"/markets/{mid}/rounds").json()["id"])
        assert done["status"] == "cleared", done["error"]
        assert _round_sums(db_url) == {done["id"]: 0}
        contracts = clients["src1"].get(f"/rounds/{done['id']}/models/{ids['src1']}").json()["deliverable"]
        # Westenbroek et al., Section IV, with the parameters it leaves implicit (errata: Section IV's
        # implicit
        # parameters): d_1 = 2.2222 for the sources at x = 0 and 1
        # contracts are keyed by the buyers' positions (name order), never by their names
        assert set(contracts["contracts"]) == {"buyer 1 of 2", "buyer 2 of 2"}
        assert abs(contracts["contracts"]["buyer 1 of 2"]["d"] - 20 / 9) < 1e-9
        assert clients["src2"].get(f"/rounds/{done['id']}/receipts/{ids['src1']}").status_code == 404


def test_service_demo_drives_both_rounds_and_verifies(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from rich.console import Console

    from datamarket.service.demo import report_service_demo

    out = io.StringIO()
    result = report_service_demo(Console(file=out, width=160), tmp_path, seed=1)
    assert result["verify"]["ok"] and set(result["round_sums"].values()) == {0}
    assert {r["market"] for r in result["receipts"]} == {"broker", "collaborative"}
    assert "ledger verified" in out.getvalue()
    assert "| participant |" in (tmp_path / "service-receipts.md").read_text()
