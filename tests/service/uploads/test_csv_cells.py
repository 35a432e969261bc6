"""CSV cells are read in linear time, and parsing never stops the service.

The regular expression the reader used before split a run of digits in every possible way before
failing: a cell of 20,000 digits and a letter held the GIL for about 18 s (every request, lease
heartbeat and the claim loop stopped), a cell near the csv module's 131,072-character limit for
minutes. The reader now checks a cell's characters against a set and lets ``float()`` read it (both
linear), and the service parses uploads in a worker thread.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datamarket.core.errors import UploadError
from datamarket.service.uploads import UploadLimits, parse_dataset
from datamarket.service.uploads.csv_reader import is_float
from tests import service_support
from tests.service_support import LiveServer, make_app, register

db_url = service_support.db_url  # the shared fixture: SQLite, and PostgreSQL when configured

# The regular expression the reader used before, the reference of what a cell may be.
OLD_NUMBER = re.compile(
    r"[ \t]*[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|nan|inf|infinity)[ \t]*", re.I
)

# A refused cell's check is a constant number of linear passes in C (UTF-8 decoding, the csv
# module's split, a set lookup per character, float()) over at most 132 kB: milliseconds. One
# second leaves a margin of over 100x for a loaded 2-core machine, and is far below the old
# regular expression (quadratic: 20,000 digits took ~18 s, 131,000 would take minutes).
REFUSED_WITHIN_S = 1.0
# Over HTTP the refusal also authenticates and reads the market (a few queries): 3 s.
ANSWERED_WITHIN_S = 3.0
# /health, while another client's upload is parsed in a worker thread: the parse holds the GIL at
# most a switch interval (5 ms) at a time, so a probe waits for its turn, not for the parse.
HEALTH_WITHIN_S = 1.0

ATTACKS = {
    "20,000 digits and a letter": "1" * 20_000 + "a",
    "131,000 digits and a letter": "1" * 131_000 + "a",
    "131,000 digits, a point, a blank, digits": "1" * 65_000 + ". " + "1" * 65_000,
    "131,000 digits and an exponent without digits": "9" * 131_000 + "e",
}


def _old_is_float(v: str) -> bool:
    if OLD_NUMBER.fullmatch(v) is None:
        return False
    try:
        float(v)
    except ValueError:
        return False
    return True


@given(st.text(alphabet="0123456789+-.eEnaNAifIFtyTY_ \t\n\x0c１٣x", max_size=12))
def test_cells_accepted_are_exactly_those_of_the_old_regex(v: str) -> None:
    assert is_float(v) == _old_is_float(v), repr(v)


@pytest.mark.parametrize(
    "v",
    [
        "1",
        "-1.",
        ".5",
        "+1e-3",
        " 2E+10\t",
        "nan",
        "-InFiNiTy",
        "inf",
        "1_000",
        "１２",
        "0x10",
        "1 2",
        "",
        " ",
        "e5",
        ".e1",
        "1e",
        "--1",
        "nan1",
        "infinit",
        "\n1",
        "1\x0c",
        "١",
    ],
)
def test_cells_of_note(v: str) -> None:
    assert is_float(v) == _old_is_float(v)


@pytest.mark.parametrize("what", ATTACKS)
def test_backtracking_cells_are_refused_in_linear_time(what: str) -> None:
    cell = ATTACKS[what]
    data = f"x0,x1,label\n1,2,0\n3,{cell},1\n".encode()
    start = time.perf_counter()
    with pytest.raises(UploadError) as err:
        parse_dataset(data, "csv", limits=UploadLimits())
    took = time.perf_counter() - start
    assert took < REFUSED_WITHIN_S, (what, took)
    assert err.value.field == "file"
    # names the column and the row, and quotes at most 40 characters of the cell
    assert "column 'x1'" in err.value.message and "(row 2:" in err.value.message, err.value.message
    assert f"({len(cell)} characters)" in err.value.message and len(err.value.message) < 150


def test_a_cell_over_the_csv_modules_limit_is_malformed() -> None:
    data = ("x0,label\n1,0\n" + "1" * 131_073 + ",1\n").encode()
    start = time.perf_counter()
    with pytest.raises(UploadError, match=r"malformed CSV \(line 3\): field larger than field limit"):
        parse_dataset(data, "csv", limits=UploadLimits())
    assert time.perf_counter() - start < REFUSED_WITHIN_S


@pytest.fixture
def big_live(db_url: str) -> Iterator[LiveServer]:
    """The service with the default upload limits (10 MiB bodies)."""
    with LiveServer(make_app(db_url, limits=UploadLimits())) as srv:
        yield srv


def _uploader(srv: LiveServer) -> tuple[Any, int]:
    with srv.client() as admin:
        mid = admin.post("/markets", json={"kind": "collaborative", "params": {}}).json()["id"]
        _, key = register(admin, "uploader")
    return srv.client(key), mid


def test_backtracking_cells_are_422s_quickly_over_http(big_live: LiveServer) -> None:
    c, mid = _uploader(big_live)
    with c, big_live.client() as admin:
        for what, cell in ATTACKS.items():
            body = f"x0,x1,label\n1,2,0\n3,{cell},1\n".encode()
            start = time.perf_counter()
            r = c.post(f"/markets/{mid}/datasets", params={"format": "csv"}, content=body)
            took = time.perf_counter() - start
            assert r.status_code == 422 and r.json()["field"] == "file", (what, r.status_code, r.text[:200])
            assert "column 'x1'" in r.json()["detail"] and "row 2" in r.json()["detail"]
            assert took < ANSWERED_WITHIN_S, (what, took)
        assert admin.get(f"/markets/{mid}/submissions").json() == []


@pytest.mark.slow
def test_health_answers_while_an_upload_is_parsed(big_live: LiveServer, monkeypatch: Any) -> None:
    """An 8 MB CSV of 3,991,000 cells (about 1.5 s to parse on one core) whose last row holds the
    cell of 20,000 digits and a letter is uploaded by one client; another polls ``/health`` meanwhile:
    every probe answers within a second, several while the parse runs (its start and end are
    recorded around the real parse), and the upload is a 422. (Before, the last cell held the GIL
    for about 18 s.)"""
    from datamarket.service.store import submissions

    spans: list[tuple[float, float]] = []
    real = submissions.parse_dataset

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.monotonic()
        try:
            return real(*args, **kwargs)
        finally:
            spans.append((start, time.monotonic()))

    monkeypatch.setattr(submissions, "parse_dataset", timed)
    c, mid = _uploader(big_live)
    header = ",".join(f"x{j}" for j in range(999)) + ",label\n"
    last = "1," * 998 + ATTACKS["20,000 digits and a letter"] + ",0\n"
    body = (header + ("1," * 999 + "0\n") * 3_990 + last).encode()
    assert len(body) < UploadLimits().max_bytes
    result: dict[str, Any] = {}

    def upload() -> None:
        result["r"] = c.post(f"/markets/{mid}/datasets", params={"format": "csv"}, content=body)

    probes: list[tuple[float, float]] = []
    worker = threading.Thread(target=upload)
    with c, big_live.client(None) as probe:
        worker.start()
        while worker.is_alive():
            sent = time.monotonic()
            assert probe.get("/health").status_code == 200
            probes.append((sent, time.monotonic()))
            time.sleep(0.01)
        worker.join()
    r = result["r"]
    assert r.status_code == 422 and "column 'x998'" in r.json()["detail"] and "row 3991" in r.json()["detail"]
    ((p0, p1),) = spans
    during = [(s, e) for s, e in probes if s >= p0 and e <= p1]
    assert len(during) >= 3, (p1 - p0, len(probes))
    worst = max(e - s for s, e in probes)
    assert worst < HEALTH_WITHIN_S, worst
