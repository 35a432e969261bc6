"""Concurrent uploads share one memory budget.

Twelve compressed NPZ uploads at once, each within its own cap, took the process from 119 MB to
1.5 GB. Now each parse is admitted by the process's :class:`ParseBudget` for the bytes
:func:`parse_cost` bounds, or answered 503 with ``Retry-After`` and nothing stored. The tests check
(1) that the bound holds (what a parse allocates, measured, is at most its cost), (2) the accounting
(never more than the slots and bytes, back to zero after), and (3) the attack itself over HTTP.
"""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from datamarket.service.uploads import (
    ParseBudget,
    UploadLimits,
    dataset_summary,
    pack_dataset,
    parse_budget,
    parse_cost,
    parse_dataset,
)
from tests import service_support
from tests.service.uploads.support import multipart, portal_client
from tests.service_support import LiveServer, register

db_url, live = service_support.db_url, service_support.live  # the shared fixtures

SMALL = UploadLimits(max_bytes=1_000_000, max_rows=20_000, max_cells=400_000)


def _npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _csv_ones(rows: int, columns: int) -> bytes:
    """The most values a CSV body can carry: one-character cells."""
    header = ",".join(f"x{j}" for j in range(columns - 1)) + ",label\n"
    return (header + ("1," * (columns - 1) + "0\n") * rows).encode()


WORST = {  # the uploads that allocate the most per byte or per value, at the SMALL limits
    "csv of one-character cells": ("csv", _csv_ones(399, 1000)),
    "csv text beyond Latin-1": ("csv", "x\U0001f600,label\n".encode() + b"1,0\n" * 19_999),
    "npz of float64 zeros": (
        "npz",
        _npz(features=np.zeros((20_000, 20)), labels=np.zeros(20_000), groups=np.zeros(20_000)),
    ),
    "npz of int8 zeros": (
        "npz",
        _npz(
            features=np.zeros((20_000, 20), np.int8),
            labels=np.zeros(20_000, np.int8),
            groups=np.zeros(20_000, np.int8),
        ),
    ),
    "npz of booleans": ("npz", _npz(features=np.zeros((20_000, 20), bool), labels=np.zeros(20_000, bool))),
}


def _allocated(data: bytes, fmt: str, limits: UploadLimits) -> int:
    """Peak bytes allocated (Python objects and numpy arrays, as tracemalloc counts them) while
    ``data`` is parsed, summarised and packed, as the store does."""
    tracemalloc.start()
    try:
        ds = parse_dataset(data, fmt, limits=limits)
        dataset_summary(ds)
        pack_dataset(ds)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("what", WORST)
def test_a_parse_allocates_at_most_its_cost(what: str) -> None:
    fmt, data = WORST[what]
    assert len(data) <= SMALL.max_bytes
    cost = parse_cost(data, fmt, SMALL)
    assert cost <= SMALL.max_parse_cost
    assert _allocated(data, fmt, SMALL) <= cost


PARQUET_PEAK = """
import io, sys, tracemalloc
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
from datamarket.service.uploads import UploadLimits, dataset_summary, pack_dataset, parse_dataset
from datamarket.service.uploads import parse_cost
limits = UploadLimits(max_bytes=1_000_000, max_rows=20_000, max_cells=400_000)
dtype = sys.argv[1]
buf = io.BytesIO()
pq.write_table(pa.table({f"x{j}": np.zeros(20_000, dtype) for j in range(20)}), buf)
data = buf.getvalue()
parse_dataset(buf.getvalue(), "parquet", limits=UploadLimits())  # imports, then a fresh peak
arrow = pa.default_memory_pool()
before = arrow.max_memory()
tracemalloc.start()
ds = parse_dataset(data, "parquet", limits=limits)
dataset_summary(ds)
pack_dataset(ds)
traced = tracemalloc.get_traced_memory()[1]
print(traced + arrow.max_memory() - before, parse_cost(data, "parquet", limits))
"""


@pytest.mark.parametrize("dtype", ["float64", "int8", "bool"])
def test_a_parquet_parse_allocates_at_most_its_cost(dtype: str) -> None:
    """Parquet also allocates in pyarrow's own pool (not traced by tracemalloc): its peak is read
    in a fresh process, whose pool has seen nothing larger before."""
    pytest.importorskip("pyarrow")
    root = Path(__file__).resolve().parents[3]
    out = subprocess.run(
        [sys.executable, "-c", PARQUET_PEAK, dtype],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root / "src")},
        timeout=120,
        check=True,
    )
    allocated, cost = map(int, out.stdout.split())
    assert allocated <= cost <= SMALL.max_parse_cost


def test_the_limits_cover_one_worst_upload() -> None:
    limits = UploadLimits()
    assert limits.max_parse_cost <= limits.parse_memory
    with pytest.raises(ValueError, match="must cover one upload"):
        UploadLimits(parse_memory=limits.max_parse_cost - 1)
    # a compressed NPZ counts its declared sizes, each member at most its cap in values
    bomb = _npz(features=np.zeros((200_000, 20)), labels=np.zeros(200_000), groups=np.zeros(200_000))
    assert parse_cost(bomb, "npz", limits) <= len(bomb) + 48 * (limits.max_cells + 2 * limits.max_rows)


def test_admissions_hold_slots_and_bytes_until_they_exit() -> None:
    budget = ParseBudget(max_parallel=2, max_bytes=100)
    calls: list[int] = []

    def cost(n: int) -> Any:
        return lambda: calls.append(n) or n

    a = budget.admit(cost(40))
    b = budget.admit(cost(70))  # 110 > 100: refused, its slot given back
    assert a is not None and b is None and (budget.running, budget.reserved) == (1, 40)
    c = budget.admit(cost(60))
    assert c is not None and (budget.running, budget.reserved) == (2, 100)
    assert budget.admit(cost(0)) is None and calls == [40, 70, 60]  # no slot: cost() never called

    def broken() -> int:
        raise ValueError("unreadable")

    with a:
        pass
    with pytest.raises(ValueError):
        budget.admit(broken)
    assert (budget.running, budget.reserved) == (1, 60)
    with c:
        pass
    assert (budget.running, budget.reserved, budget.peak) == (0, 0, 100)


def test_the_budget_holds_under_concurrent_admissions() -> None:
    budget = ParseBudget(max_parallel=3, max_bytes=1_000)
    seen: list[tuple[int, int]] = []
    lock = threading.Lock()

    def worker(seed: int) -> int:
        rng = random.Random(seed)
        refused = 0
        for _ in range(300):
            held = budget.admit(lambda: rng.randint(0, 600))
            if held is None:
                refused += 1
                continue
            with held:
                with lock:
                    seen.append((budget.running, budget.reserved))
                time.sleep(0)
        return refused

    with ThreadPoolExecutor(8) as pool:
        refused = sum(pool.map(worker, range(8)))
    assert refused > 0 and len(seen) + refused == 8 * 300
    assert max(r for r, _ in seen) <= 3 and max(b for _, b in seen) <= 1_000
    assert (budget.running, budget.reserved) == (0, 0) and budget.peak <= 1_000


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@contextmanager
def _rss_growth() -> Iterator[list[int]]:
    """``[peak growth]`` of this process's resident memory while the block runs (sampled every 5 ms)."""
    base, out, stop = _rss(), [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            out[0] = max(out[0], _rss() - base)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        yield out
    finally:
        stop.set()
        sampler.join()


class HeldParses:
    """``parse_dataset`` of the store, held until :meth:`release`: every admitted upload waits in it,
    so that a burst's uploads are all admitted or refused before any finishes."""

    def __init__(self, real: Any) -> None:
        self.real, self.entered, self.open = real, 0, threading.Event()
        self.lock = threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            self.entered += 1
        self.open.wait(60)
        return self.real(*args, **kwargs)


def _burst(clients: list[httpx.Client], url: str, body: bytes, held: HeldParses) -> list[httpx.Response]:
    """``body`` posted to ``url`` by every client at the same instant; the held parses are released
    once each upload is admitted (waiting in ``held``) or refused (503)."""
    barrier, refused = threading.Barrier(len(clients)), [0]

    def send(c: httpx.Client) -> httpx.Response:
        barrier.wait()
        r = c.post(url, params={"format": "npz"}, content=body)
        with held.lock:
            refused[0] += r.status_code == 503
        return r

    try:
        with ThreadPoolExecutor(len(clients)) as pool:
            futures = [pool.submit(send, c) for c in clients]
            deadline = time.monotonic() + 60
            while held.entered + refused[0] < len(clients) and time.monotonic() < deadline:
                time.sleep(0.01)
            held.open.set()
            return [f.result() for f in futures]
    finally:
        held.open.set()


@pytest.mark.slow
def test_twelve_npz_uploads_at_once_stay_within_the_budget(live: LiveServer, monkeypatch: Any) -> None:
    """The attack: twelve compressed NPZ uploads (35 kB each, 4,200,000 values inflated; each within
    its own cap) sent at once, all overlapping (:class:`HeldParses`): exactly as many are admitted as
    the budget holds (2 of about 200 MB in 512 MiB), the others are 503s with Retry-After and store
    nothing, none is a 5xx; the admitted ones are stored; the process grew by less than the budget
    (without it: 1.4 GB); the budget is back to zero."""
    from datamarket.service.store import submissions

    limits = live.app.state.service.limits
    held = HeldParses(submissions.parse_dataset)
    monkeypatch.setattr(submissions, "parse_dataset", held)
    bomb = _npz(features=np.zeros((200_000, 20)), labels=np.zeros(200_000, np.int8))
    cost = parse_cost(bomb, "npz", limits)
    assert len(bomb) < limits.max_bytes and cost > limits.parse_memory // 3
    fits = min(limits.max_parallel_parses, limits.parse_memory // cost)
    with live.client() as admin:
        mid = admin.post("/markets", json={"kind": "collaborative", "params": {}}).json()["id"]
        clients = [live.client(register(admin, f"bomber{k}")[1]) for k in range(12)]
    with _rss_growth() as growth:
        answers = _burst(clients, f"/markets/{mid}/datasets", bomb, held)
    for c in clients:
        c.close()
    assert sorted(r.status_code for r in answers) == [201] * fits + [503] * (12 - fits)
    for r in answers:
        if r.status_code == 503:
            assert r.headers["retry-after"] == str(limits.busy_retry_after)
            assert "retry after" in r.json()["detail"]
    budget = parse_budget(limits)
    assert (budget.running, budget.reserved) == (0, 0) and budget.peak <= limits.parse_memory
    assert growth[0] <= limits.parse_memory, growth[0] / 1e6
    with live.client() as admin:
        assert len(admin.get(f"/markets/{mid}/submissions").json()) == fits


def test_a_full_budget_is_a_503_on_both_routes(live: LiveServer, monkeypatch: Any) -> None:
    """With no slot left (a budget of zero parses), the JSON API and the portal's form both answer
    503 with ``Retry-After`` (the portal: its page, or JSON for its script) and store nothing."""
    from datamarket.service.store import submissions

    monkeypatch.setattr(submissions, "parse_budget", lambda limits: ParseBudget(0, 0))
    data = _csv_ones(3, 3)
    with live.client() as admin:
        mid = admin.post("/markets", json={"kind": "collaborative", "params": {}}).json()["id"]
        _, key = register(admin, "late")
    with live.client(key) as c:
        r = c.post(f"/markets/{mid}/datasets", params={"format": "csv"}, content=data)
        assert (
            r.status_code == 503 and r.headers["retry-after"] == "2" and "retry after" in r.json()["detail"]
        )
    browser, csrf = portal_client(live, key)
    try:
        body, ctype = multipart({"csrf": csrf, "kind": "dataset"}, b"d.csv", data)
        for accept in ("text/html", "application/json"):
            r = browser.post(
                f"/portal/markets/{mid}/datasets",
                content=body,
                headers={"content-type": ctype, "accept": accept},
            )
            assert r.status_code == 503 and r.headers["retry-after"] == "2", (accept, r.text[:300])
            assert "retry after" in r.text
    finally:
        browser.close()
    with live.client() as admin:
        assert admin.get(f"/markets/{mid}/submissions").json() == []
