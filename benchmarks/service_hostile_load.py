"""Benchmark: exactly-once money under concurrency and hostile load, measured.

Run as ``.venv/bin/python benchmarks/service_hostile_load.py [--markets 50] [--postgres URL]``
(PostgreSQL: ``--postgres`` or ``$DATAMARKET_TEST_POSTGRES_URL``, e.g. after ``source .ci/postgres``).

1. **Races**, on SQLite and PostgreSQL, against a live uvicorn server with real concurrent clients
   (one thread and connection each, released together by a barrier): per market, (a) the retry of a
   failed round and a new round of the same market at the same instant; (b) ten simultaneous retries
   of one failed round. The database is then audited (``tests/service_support.audit``): double
   bookings, rounds booked but not ``cleared``, cleared rounds without bookings, inputs not consumed
   by the round that booked them. All must be 0.
2. **Peak memory** of parsing the largest accepted uploads and of decompression bombs, each in a fresh
   child process (``ru_maxrss`` before and after the parse; the bombs are written to files first), at
   the default :class:`UploadLimits`; the documented cap is 256 MB.
3. **Latency** of a JSON submission (p50/p99 over ``--samples`` requests) while a round over 50 uploads
   (truthful payments, 50 sellers with 1 MB CSVs each, process executor) is opened and cleared, against
   the named baseline: the same submissions on the same server with no round running.

Writes ``benchmarks/results/service_hostile_load.json`` (``_support.Recorder``): one row per race,
upload and backend, each with its ``section`` (races, memory, latency).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _support import Recorder  # noqa: E402
from tests.service_support import (  # noqa: E402
    FLAKY_REF,
    LiveServer,
    audit,
    csv_bytes,
    fresh_database,
    make_app,
    race_concurrent_retries,
    race_retry_vs_new_round,
    register,
    wait_round,
)

CAP_MB = 256


# -- 1. races ----------------------------------------------------------------------------------------
def races(backend: str, markets: int, tmp: str, only: str | None = None) -> dict[str, object]:
    out: dict[str, object] = {"backend": backend, "markets": markets}
    for name, fn in (
        ("retry_vs_new_round", race_retry_vs_new_round),
        ("ten_retries", race_concurrent_retries),
    ):
        if only is not None and name != only:
            continue
        with fresh_database(backend, tmp) as url:
            app = make_app(url, adapters={"flaky_broker": FLAKY_REF})
            t0 = time.perf_counter()
            with LiveServer(app) as srv, srv.client() as admin:
                res = fn(srv, admin, markets)
                ok = admin.get("/ledger/verify").json()["ok"]
            found = audit(url)
        codes = [tuple(sorted(c)) for c in res["codes"]]
        out[name] = {
            "seconds": round(time.perf_counter() - t0, 1),
            "accepted_202": sum(c.count(202) for c in codes),
            "refused_409": sum(c.count(409) for c in codes),
            "other_codes": sorted({x for c in codes for x in c} - {202, 409}),
            "double_booked": len(found["double_booked"]),
            "booked_but_not_cleared": len(found["booked_not_cleared"]),
            "cleared_not_booked": len(found["cleared_not_booked"]),
            "consumed_mismatch": len(found["consumed_mismatch"]),
            "ledger_verifies": ok,
        }
        if "statuses" in res:
            out[name]["retried_round_cleared"] = res["statuses"].count("cleared")  # type: ignore[index]
    return out


# -- 2. memory ----------------------------------------------------------------------------------------
CHILD = """
import sys, time
from pathlib import Path
from datamarket.core.errors import UploadError
from datamarket.service.uploads import UploadLimits, parse_dataset
data = Path(sys.argv[1]).read_bytes()
def hwm():  # peak resident set of this process image (VmHWM, kB; unlike ru_maxrss not inherited)
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
base = hwm()
t0 = time.perf_counter()
try:
    ds = parse_dataset(data, sys.argv[2], limits=UploadLimits())
    verdict = f"accepted {ds.n_samples}x{ds.n_features}"
except UploadError as exc:
    verdict = f"422 {exc.message[:70]}"
dt = time.perf_counter() - t0
peak = hwm()
print(f"{base / 1024:.1f} {peak / 1024:.1f} {dt:.3f} {verdict}")
"""


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _deflate_bomb(inflated: int, shape: tuple[int, ...], declared: int | None = None) -> bytes:
    """A zip whose ``features.npy`` declares ``shape`` and inflates to ``inflated`` zero bytes; its zip
    headers declare ``declared`` uncompressed bytes (default: the truth)."""
    size = (inflated if declared is None else declared) & 0xFFFFFFFF
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": shape})
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts, crc, chunk = [comp.compress(header.getvalue())], zlib.crc32(header.getvalue()), bytes(1 << 24)
    left = inflated - len(header.getvalue())
    while left > 0:
        piece = chunk[: min(left, len(chunk))]
        parts.append(comp.compress(piece))
        crc = zlib.crc32(piece, crc)
        left -= len(piece)
    parts.append(comp.flush())
    body = b"".join(parts)
    # hand-built archive: local header + raw deflate stream + central directory
    name = b"features.npy"
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(body), size, len(name), 0)
    central = struct.pack(
        "<4s6H3L5H2L",
        b"PK\x01\x02",
        20,
        20,
        0,
        8,
        0,
        0,
        crc,
        len(body),
        size,
        len(name),
        0,
        0,
        0,
        0,
        0,
        0,
    )
    offset = len(local) + len(name) + len(body)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central) + len(name), offset, 0)
    return local + name + body + central + name + end


def memory(tmp: str) -> list[dict[str, object]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    cases: dict[str, tuple[bytes, str]] = {}
    # largest accepted: a CSV just under the 10 MiB body limit within the 4M-cell cap
    n = 200_000
    x = rng.normal(size=(n, 5)).round(5)
    cases["largest accepted CSV"] = (csv_bytes(x, rng.integers(0, 2, n)), "csv")
    # largest accepted NPZ and Parquet: 200,000 x 20 = 4M cells (small integers: under 10 MiB packed)
    feats = rng.integers(0, 100, (200_000, 20)).astype(np.float64)
    cases["largest accepted NPZ (4M cells)"] = (_npz_bytes(features=feats), "npz")
    pbuf = io.BytesIO()
    pq.write_table(pa.table({f"x{j}": feats[:, j] for j in range(20)}), pbuf)
    cases["largest accepted Parquet (4M cells)"] = (pbuf.getvalue(), "parquet")
    # bombs
    cases["NPZ bomb, honest headers (2 GB zeros)"] = (_deflate_bomb(2_000_000_000, (250_000_000, 1)), "npz")
    cases["NPZ bomb, .npy header lies (2 GB zeros)"] = (_deflate_bomb(2_000_000_000, (1000, 1)), "npz")
    lie = _deflate_bomb(2_000_000_000, (1000, 1), declared=8128)
    cases["NPZ bomb, zip and .npy headers lie (2 GB zeros)"] = (lie, "npz")
    m = 100_000_000
    pbomb = io.BytesIO()
    pq.write_table(pa.table({"x": pa.array(np.zeros(m, dtype=np.int8))}), pbomb, compression="zstd")
    cases[f"Parquet bomb ({m:.0e} rows)"] = (pbomb.getvalue(), "parquet")
    out = []
    for what, (data, fmt) in cases.items():
        path = Path(tmp) / "case.bin"
        path.write_bytes(data)
        res = subprocess.run(
            [sys.executable, "-c", CHILD, str(path), fmt], capture_output=True, text=True, check=True
        )
        base, peak, dt, verdict = res.stdout.split(" ", 3)
        out.append(
            {
                "case": what,
                "file_MB": round(len(data) / 1e6, 2),
                "verdict": verdict.strip(),
                "parse_s": float(dt),
                "rss_before_MB": float(base),
                "peak_rss_MB": float(peak),
                "peak_growth_MB": round(float(peak) - float(base), 1),
                "under_cap": float(peak) - float(base) < CAP_MB,
            }
        )
    return out


# -- 3. latency ---------------------------------------------------------------------------------------
def latency(backend: str, samples: int, tmp: str) -> dict[str, object]:
    rng = np.random.default_rng(1)
    with fresh_database(backend, tmp) as url:
        app = make_app(url, executor="process", max_workers=2)
        with LiveServer(app) as srv, srv.client() as admin:
            mid = admin.post("/markets", json={"kind": "truthful_payments", "params": {}}).json()["id"]
            _, key = register(admin, "buyer")
            assert (
                srv.client(key)
                .post(f"/markets/{mid}/submissions", json={"kind": "task", "data": {"target": [0.0, 0.0]}})
                .status_code
                == 201
            )
            for j in range(50):
                _, key = register(admin, f"seller{j}")
                c = srv.client(key)
                assert (
                    c.post(
                        f"/markets/{mid}/submissions", json={"kind": "cost", "data": {"cost": 1.0 + j}}
                    ).status_code
                    == 201
                )
                body = csv_bytes(rng.normal(size=(40_000, 2)).round(9))
                assert (
                    c.post(f"/markets/{mid}/datasets", params={"format": "csv"}, content=body).status_code
                    == 201
                )
            other = admin.post("/markets", json={"kind": "broker", "params": {}}).json()["id"]
            _, key = register(admin, "probe")
            probe = srv.client(key)

            def submit_times(stop: threading.Event | None) -> list[float]:
                times = []
                for i in range(samples):
                    t0 = time.perf_counter()
                    r = probe.post(
                        f"/markets/{other}/submissions",
                        json={"kind": "cost", "data": {"cost": 0.5 + i * 1e-6}},
                    )
                    times.append(time.perf_counter() - t0)
                    assert r.status_code == 201, r.text
                    if stop is not None and stop.is_set():
                        break
                return times

            idle = submit_times(None)
            stop = threading.Event()
            result: dict[str, object] = {}

            def run_round() -> None:
                t0 = time.perf_counter()
                r = admin.post(f"/markets/{mid}/rounds")
                result["open_s"] = time.perf_counter() - t0
                done = wait_round(admin, r.json()["id"], timeout=600)
                result["round_s"] = time.perf_counter() - t0
                result["status"] = done["status"]
                stop.set()

            th = threading.Thread(target=run_round)
            th.start()
            busy: list[float] = []
            while not stop.is_set():
                busy += submit_times(stop)
            th.join()

    def q(xs: list[float], p: float) -> float:
        return round(1000 * float(np.quantile(xs, p)), 1)

    return {
        "backend": backend,
        "round_status": result["status"],
        "round_open_s": round(float(result["open_s"]), 2),  # type: ignore[arg-type]
        "round_total_s": round(float(result["round_s"]), 2),  # type: ignore[arg-type]
        "baseline_idle": {"n": len(idle), "p50_ms": q(idle, 0.5), "p99_ms": q(idle, 0.99)},
        "during_round": {"n": len(busy), "p50_ms": q(busy, 0.5), "p99_ms": q(busy, 0.99)},
        "p99_ratio_vs_idle": round(q(busy, 0.99) / max(q(idle, 0.99), 1e-9), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--markets", type=int, default=50)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--postgres", default=os.environ.get("DATAMARKET_TEST_POSTGRES_URL"))
    ap.add_argument("--only", choices=("races", "memory", "latency"))
    ap.add_argument("--race", choices=("retry_vs_new_round", "ten_retries"))
    ap.add_argument("--backend", choices=("sqlite", "postgres"))
    args = ap.parse_args()
    rec = Recorder(__file__)
    if args.postgres:
        os.environ["DATAMARKET_TEST_POSTGRES_URL"] = args.postgres
    backends = ["sqlite", "postgres"] if args.postgres else ["sqlite"]
    if not args.postgres:
        print("(no PostgreSQL URL: SQLite only)")
    if args.backend:
        backends = [args.backend]
    report: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "races"):
            report["races"] = [races(b, args.markets, tmp, args.race) for b in backends]
            print(json.dumps(report["races"], indent=1), flush=True)
        if args.only in (None, "memory"):
            report["memory"] = memory(tmp)
            for row in report["memory"]:  # type: ignore[attr-defined]
                print(json.dumps(row), flush=True)
        if args.only in (None, "latency"):
            report["latency"] = [latency(b, args.samples, tmp) for b in backends]
            print(json.dumps(report["latency"], indent=1), flush=True)
    rows = table_rows(report)
    rec.write(
        rows,
        claim=(
            "Money is booked exactly once when retries and new rounds race; parsing the largest "
            f"accepted uploads and decompression bombs stays under the {CAP_MB} MB cap; a running round "
            "does not block other submissions."
        ),
        target=(
            "0 double bookings, 0 booked but not cleared, 0 cleared but not booked, 0 inputs consumed by "
            f"another round, the ledger verifies; every parse's peak growth < {CAP_MB} MB"
        ),
        met=all(_row_ok(r) for r in rows) if rows else None,
        notes=(
            "latency: the baseline is the same submissions on the same server with no round running; "
            "needs the service extra, so it runs with .venv (make), not .bench-venv"
        ),
    )


AUDIT = ("double_booked", "booked_but_not_cleared", "cleared_not_booked", "consumed_mismatch")


def table_rows(report: dict[str, object]) -> list[dict[str, object]]:
    """The report as flat table rows, one per race, upload and backend (``section`` names the part)."""
    rows: list[dict[str, object]] = []
    for block in report.get("races", []):  # type: ignore[attr-defined]
        for race, found in block.items():
            if isinstance(found, dict):
                rows.append({"section": "races", "backend": block["backend"], "race": race, **found})
    rows += [{"section": "memory", **row} for row in report.get("memory", [])]  # type: ignore[attr-defined]
    for row in report.get("latency", []):  # type: ignore[attr-defined]
        flat = {k: v for k, v in row.items() if not isinstance(v, dict)}
        for part in ("baseline_idle", "during_round"):
            flat |= {f"{part}_{k}": v for k, v in row[part].items()}
        rows.append({"section": "latency", **flat})
    return rows


def _row_ok(row: dict[str, object]) -> bool:
    if row["section"] == "races":
        return all(row[k] == 0 for k in AUDIT) and bool(row["ledger_verifies"])
    if row["section"] == "memory":
        return bool(row["under_cap"])
    return row["round_status"] == "cleared"


if __name__ == "__main__":
    main()
