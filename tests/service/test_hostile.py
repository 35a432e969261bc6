"""Hostile and careless inputs, through real HTTP on SQLite and PostgreSQL: each test is
the reproduction of a reported failure; none may cause a 5xx, block a market or move money."""

from __future__ import annotations

import hashlib
import io
import zipfile

import numpy as np

from tests import service_support
from tests.service_support import (
    csv_bytes,
    register,
    setup_broker,
    wait_round,
)

db_url, live = service_support.db_url, service_support.live  # the shared fixtures


def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def test_no_accepted_input_can_block_a_market(live) -> None:  # type: ignore[no-untyped-def]
    with live.client() as admin:
        m = setup_broker(live, admin)
        mid, cl = m["market"], m["clients"]
        url = f"/markets/{mid}/submissions"
        # a buyer cannot also report a cost, nor a contributor bid; no data without a cost (409: the
        # input is well formed, the participant's earlier inputs exclude it)
        r = cl["buyer_a"].post(url, json={"kind": "cost", "data": {"cost": 0.1}})
        assert r.status_code == 409 and r.json()["field"] == "kind", r.text
        assert (
            cl["seller_x"]
            .post(url, json={"kind": "bid", "data": {"valuation": "gaussian", "width": 1}})
            .status_code
            == 409
        )
        _, key = register(admin, f"spoiler_{mid}")
        spoiler = live.client(key)
        up = spoiler.post(f"/markets/{mid}/datasets", params={"format": "csv"}, content=b"x0\n1\n2\n")
        assert up.status_code == 409 and "cost" in up.json()["detail"]
        # numbers that would overflow a price later are refused now (1e308, 1e400, 10**400 digits)
        for raw in (b"1e308", b"1e400", b"1" + b"0" * 400):
            body = b'{"kind": "cost", "data": {"cost": ' + raw + b"}}"
            r = spoiler.post(url, content=body, headers={"content-type": "application/json"})
            assert r.status_code == 422, (raw[:8], r.status_code, r.text)
        # an accepted but unwelcome contributor changes the plan: the round cannot open (409, not 422:
        # the request is fine, the market's state is not) until the operator excludes its inputs; its
        # data must have the size the plan asks of it (409 otherwise, naming both numbers)
        c = spoiler.post(url, json={"kind": "cost", "data": {"cost": 0.01}})
        assert c.status_code == 201
        d = spoiler.post(f"/markets/{mid}/datasets", params={"format": "csv"}, content=b"x0\n1\n2\n")
        n = spoiler.get(f"/markets/{mid}/plan").json()["n_star"][f"spoiler_{mid}"]
        assert (
            d.status_code == 409
            and d.json()["detail"] == f"the plan asks you for {n} points; this file has 2"
        )
        d = spoiler.post(
            f"/markets/{mid}/datasets", params={"format": "csv"}, content=csv_bytes(np.ones((n, 1)))
        )
        assert d.status_code == 201
        assert admin.post(f"/markets/{mid}/rounds").status_code == 409
        assert spoiler.post(f"/submissions/{c.json()['id']}/exclude", json={"reason": "x"}).status_code == 403
        for sid in (c.json()["id"], d.json()["id"]):
            r = admin.post(f"/submissions/{sid}/exclude", json={"reason": "spam"})
            assert r.status_code == 200 and r.json()["excluded_reason"] == "excluded by the operator: spam"
            assert admin.post(f"/submissions/{sid}/exclude", json={"reason": "again"}).status_code == 409
        done = wait_round(admin, admin.post(f"/markets/{mid}/rounds").json()["id"])
        assert done["status"] == "cleared", done["error"]
        assert c.json()["id"] not in done["input_ids"]
        # withdrawal: own, unconsumed only; the operator excludes instead
        w = cl["buyer_a"].post(url, json={"kind": "bid", "data": {"valuation": "gaussian", "width": 0.3}})
        sid = w.json()["id"]
        assert cl["buyer_b"].post(f"/submissions/{sid}/withdraw").status_code == 404
        assert admin.post(f"/submissions/{sid}/withdraw").status_code == 403
        r = cl["buyer_a"].post(f"/submissions/{sid}/withdraw")
        assert r.status_code == 200 and r.json()["excluded_reason"] == "withdrawn by its owner"
        consumed = done["input_ids"][0]
        assert admin.post(f"/submissions/{consumed}/exclude", json={"reason": "late"}).status_code == 409
        assert admin.get("/ledger/verify").json()["ok"]


def test_round_idempotency_is_bound_to_the_body_and_seeds_are_committed(live) -> None:  # type: ignore[no-untyped-def]
    with live.client() as admin:
        m = setup_broker(live, admin)
        mid = m["market"]
        first = admin.post(f"/markets/{mid}/rounds", headers={"Idempotency-Key": "k"})
        assert first.status_code == 202
        body = first.json()
        assert body["seed_source"] == "csprng" and len(body["seed_commit"]) == 64
        other = admin.post(f"/markets/{mid}/rounds", json={"seed": 3}, headers={"Idempotency-Key": "k"})
        assert other.status_code == 409
        same = admin.post(f"/markets/{mid}/rounds", headers={"Idempotency-Key": "k"})
        assert same.status_code == 200 and same.json()["id"] == body["id"]
        buyer = m["clients"]["buyer_a"]
        pid = m["ids"]["buyer_a"]
        done = wait_round(admin, body["id"])
        assert done["status"] == "cleared", done["error"]
        receipt = buyer.get(f"/rounds/{done['id']}/receipts/{pid}").json()
        # the revealed seed and salt hash to the commitment published when the round opened
        reveal = f"{receipt['seed_salt']}:{receipt['seed']}".encode()
        assert hashlib.sha256(reveal).hexdigest() == body["seed_commit"] == receipt["seed_commit"]
        assert receipt["seed_source"] == "csprng"
        # an operator's explicit seed stays possible (reproducibility) and is labelled as such
        m2 = setup_broker(live, admin)
        r2 = admin.post(f"/markets/{m2['market']}/rounds", json={"seed": 11})
        assert r2.json()["seed_source"] == "operator" and r2.json()["seed"] == 11
        # participants see the seed only once the round is cleared
        done2 = wait_round(admin, r2.json()["id"])
        assert m2["clients"]["buyer_a"].get(f"/rounds/{done2['id']}").json()["seed"] == 11


def test_bad_bytes_and_strings_are_422_not_5xx(live) -> None:  # type: ignore[no-untyped-def]
    with live.client() as admin:
        assert admin.post("/markets", json={"kind": "collaborative", "name": "a\x00b"}).status_code == 422
        raw = b'{"kind": "broker", "params": {"sigma": 1e400}}'
        assert (
            admin.post("/markets", content=raw, headers={"content-type": "application/json"}).status_code
            == 422
        )
        mid = admin.post("/markets", json={"kind": "collaborative", "params": {}}).json()["id"]
        _, key = register(admin, "uploader")
        c = live.client(key)
        url = f"/markets/{mid}/datasets"
        ok = csv_bytes(np.arange(6.0).reshape(3, 2), np.array([0, 1, 0]))
        r = c.post(url, params={"format": "csv", "filename": "a\x00.csv"}, content=ok)
        assert r.status_code == 422
        long_type = "text/csv; " + "x" * 300
        r = c.post(url, content=ok, headers={"content-type": long_type})
        assert r.status_code == 201 and r.json()["media_type"] == "text/csv"
        npy = io.BytesIO()
        np.save(npy, np.zeros((3, 2)))
        member = io.BytesIO()
        with zipfile.ZipFile(member, "w") as z:
            z.writestr("features", npy.getvalue())  # no .npy suffix
        deflated = bytearray(_npz(features=np.zeros((50, 2)), labels=np.zeros(50)))
        i = deflated.index(b"features.npy") + len("features.npy")
        deflated[i + 5 : i + 40] = b"\xff" * 35  # corrupt the deflate stream
        method99 = bytearray(_npz(features=np.zeros((3, 2))))
        method99[8:10] = (99).to_bytes(2, "little")  # local header's compression method
        j = method99.index(b"PK\x01\x02")
        method99[j + 10 : j + 12] = (99).to_bytes(2, "little")  # and the central directory's
        for what, body in {
            "bare npy": npy.getvalue(),
            "member without .npy": member.getvalue(),
            "corrupt deflate": bytes(deflated),
            "method 99": bytes(method99),
        }.items():
            r = c.post(url, params={"format": "npz"}, content=body)
            assert r.status_code == 422, (what, r.status_code, r.text)
        assert len(admin.get(f"/markets/{mid}/submissions").json()) == 1


def test_bombs_and_unbounded_bodies_are_refused_early(live) -> None:  # type: ignore[no-untyped-def]
    import pyarrow as pa
    import pyarrow.parquet as pq

    with live.client() as admin:
        mid = admin.post("/markets", json={"kind": "collaborative", "params": {}}).json()["id"]
        _, key = register(admin, "bomber")
        c = live.client(key)
        url = f"/markets/{mid}/datasets"
        bomb = _npz(features=np.zeros((4_500_000, 1)))  # 36 MB inflated
        assert len(bomb) < 64_000
        r = c.post(url, params={"format": "npz"}, content=bomb)
        assert r.status_code == 422 and "limit" in r.json()["detail"], r.text
        buf = io.BytesIO()
        n = 300_000  # over max_rows: refused from the footer before a page is decoded
        pq.write_table(pa.table({"x": np.zeros(n), "label": np.zeros(n, dtype=np.int8)}), buf)
        assert len(buf.getvalue()) < 64_000
        r = c.post(url, params={"format": "parquet"}, content=buf.getvalue())
        assert r.status_code == 422 and "rows exceed" in r.json()["detail"], r.text

        def chunks():  # no Content-Length, anonymous: cut off at the limit, before authentication
            for _ in range(5_000):
                yield b"x" * 1024

        with live.client(None) as anon:
            r = anon.post(
                f"/markets/{mid}/submissions", content=chunks(), headers={"content-type": "application/json"}
            )
            assert r.status_code == 413
        assert admin.get(f"/markets/{mid}/submissions").json() == []


def test_probing_learns_nothing_before_authenticating_nor_which_ids_exist(live) -> None:  # type: ignore[no-untyped-def]
    with live.client() as admin, live.client(None) as anon, live.client("not-a-key") as wrong:
        m = setup_broker(live, admin)
        mid, cl = m["market"], m["clients"]
        # a malformed JSON body: 401 for an anonymous or unknown caller (not the parser's 422)
        for client in (anon, wrong):
            for path in ("/markets", f"/markets/{mid}/submissions", f"/markets/{mid}/rounds"):
                r = client.post(path, content=b"{not json", headers={"content-type": "application/json"})
                assert r.status_code == 401, (path, r.status_code, r.text)
            r = client.post("/markets", json={"kind": 7})  # well-formed but invalid: 401 as well
            assert r.status_code == 401, r.text
        r = admin.post("/markets", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text
        # another participant's ids answer exactly what ids that do not exist answer
        buyer_a, buyer_b = cl["buyer_a"], cl["buyer_b"]
        theirs = buyer_b.get(f"/markets/{mid}/submissions").json()[0]["id"]
        other = m["ids"]["buyer_b"]
        absent = 2**31 - 1
        for path, ident in (
            ("/submissions/{}", theirs),
            ("/submissions/{}/content", theirs),
            ("/participants/{}", other),
        ):
            mine, none = buyer_a.get(path.format(ident)), buyer_a.get(path.format(absent))
            assert mine.status_code == none.status_code == 404, (path, mine.text, none.text)
            assert mine.json()["detail"].replace(str(ident), "ID") == none.json()["detail"].replace(
                str(absent), "ID"
            )
        for path in ("/rounds/1/receipts/{}", "/rounds/1/models/{}"):
            mine, none = buyer_a.get(path.format(other)), buyer_a.get(path.format(absent))
            assert mine.status_code == none.status_code == 404, (path, mine.text, none.text)
        w = buyer_a.post(f"/submissions/{theirs}/withdraw")
        assert w.status_code == 404 and w.json()["detail"] == f"submission {theirs} not found"
        # CSV numbers are plain decimals: digit-group underscores and non-ASCII digits are refused
        seller = cl["seller_x"]
        for cell in ("1_000", "\uff11\uff12", "0x10"):
            body = f"x0\n1.5\n{cell}\n".encode()
            r = seller.post(f"/markets/{mid}/datasets", params={"format": "csv"}, content=body)
            assert r.status_code == 422 and "'x0' is not numeric" in r.json()["detail"], (cell, r.text)
