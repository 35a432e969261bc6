"""File names and column names of uploads, through the JSON API and the portal's upload form, on
SQLite and PostgreSQL.

A multipart file name of 304 characters was a 500 on PostgreSQL (``submissions.filename`` is
``VARCHAR(255)``) and stored whole on SQLite; one with control characters was stored and shown
back. The JSON API's ``?filename=`` was bounded by its query validation, the portal's multipart
file name by nothing. Both now go through :func:`datamarket.service.uploads.check_filename`: a 422
naming the field, nothing stored, never a 5xx.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from datamarket.core.errors import UploadError
from datamarket.service.uploads import check_filename
from datamarket.service.uploads.names import MAX_FILENAME
from tests import service_support
from tests.service.uploads.support import multipart, portal_client
from tests.service_support import LiveServer, csv_bytes, register

db_url, live = service_support.db_url, service_support.live  # the shared fixtures

DATA = csv_bytes(np.arange(6.0).reshape(3, 2), np.array([0, 1, 0]))

HOSTILE = {  # as a client sends them: UTF-8 bytes in the multipart header
    "304 characters": "a" * 300 + ".csv",
    "256 characters": "b" * 252 + ".csv",
    "NUL": "a\x00b.csv",
    "C0 control (SOH)": "a\x01b.csv",
    "escape sequence": "a\x1b[31mred.csv",
    "DEL": "a\x7fb.csv",
    "C1 control (NEL)": "a\x85b.csv",
    "right-to-left override": "evil\u202egpj.csv",
    "line separator": "a\u2028b.csv",
    "tab": "a\tb.csv",
}
FINE = {"255 characters": "c" * 251 + ".csv", "accents and CJK": "données_数据.csv", "spaces": "my data.csv"}


def test_the_column_length_is_the_models() -> None:
    from datamarket.ledger.models import Submission

    assert Submission.__table__.c.filename.type.length == MAX_FILENAME


@pytest.mark.parametrize("what", HOSTILE)
def test_check_filename_refuses(what: str) -> None:
    with pytest.raises(UploadError) as err:
        check_filename(HOSTILE[what])
    assert err.value.field == "filename"


def _market(srv: LiveServer) -> tuple[int, str]:
    with srv.client() as admin:
        mid = admin.post("/markets", json={"kind": "collaborative", "params": {}}).json()["id"]
        _, key = register(admin, f"uploader_{uuid.uuid4().hex[:6]}")
    return mid, key


def _stored(srv: LiveServer, mid: int) -> list[Any]:
    with srv.client() as admin:
        out: list[Any] = admin.get(f"/markets/{mid}/submissions").json()
        return out


def test_api_filename_query(live: LiveServer) -> None:
    mid, key = _market(live)
    with live.client(key) as c:
        for what, name in HOSTILE.items():
            r = c.post(f"/markets/{mid}/datasets", params={"format": "csv", "filename": name}, content=DATA)
            assert r.status_code == 422 and r.json()["field"] == "filename", (what, r.status_code, r.text)
        assert _stored(live, mid) == []
        for what, name in FINE.items():
            r = c.post(f"/markets/{mid}/datasets", params={"format": "csv", "filename": name}, content=DATA)
            assert r.status_code == 201 and r.json()["filename"] == name, (what, r.text)
        for column in ("label_column", "group_column"):
            for bad in ("x" * 101, "a\x85b", "a\u202eb"):
                r = c.post(f"/markets/{mid}/datasets", params={"format": "csv", column: bad}, content=DATA)
                assert r.status_code == 422 and r.json()["field"] == column, (column, bad, r.text)
    assert len(_stored(live, mid)) == len(FINE)


@pytest.fixture
def portal(live: LiveServer) -> Iterator[tuple[httpx.Client, str, int]]:
    mid, key = _market(live)
    c, csrf = portal_client(live, key)
    try:
        yield c, csrf, mid
    finally:
        c.close()


@pytest.mark.parametrize("accept", ["text/html", "application/json"])
def test_portal_multipart_file_name(live: LiveServer, portal: Any, accept: str) -> None:
    c, csrf, mid = portal
    url = f"/portal/markets/{mid}/datasets"
    for what, name in HOSTILE.items():
        body, ctype = multipart({"csrf": csrf, "kind": "dataset"}, name.encode(), DATA)
        r = c.post(url, content=body, headers={"content-type": ctype, "accept": accept})
        assert r.status_code == 422, (what, r.status_code, r.text[:300])
        if accept == "application/json":
            assert "file" in r.json()["errors"], r.text
        else:
            assert 'id="upload-file-error"' in r.text and r.headers["content-type"].startswith("text/html")
            assert "\x00" not in r.text and "\u202e" not in r.text
    assert _stored(live, mid) == []
    for what, name in FINE.items():
        body, ctype = multipart({"csrf": csrf, "kind": "dataset"}, name.encode(), DATA)
        r = c.post(url, content=body, headers={"content-type": ctype, "accept": accept})
        assert r.status_code in (200, 303), (what, r.status_code, r.text[:300])
    assert sorted(x["filename"] for x in _stored(live, mid)) == sorted(FINE.values())


def test_portal_column_names(live: LiveServer, portal: Any) -> None:
    c, csrf, mid = portal
    for column in ("label_column", "group_column"):
        for bad in ("x" * 101, "a\x00b", "a\u202eb"):
            fields = {"csrf": csrf, "kind": "dataset", column: bad}
            body, ctype = multipart(fields, b"d.csv", DATA)
            r = c.post(f"/portal/markets/{mid}/datasets", content=body, headers={"content-type": ctype})
            assert r.status_code == 422 and 'id="upload-file-error"' in r.text, (column, bad, r.status_code)
    assert _stored(live, mid) == []


def test_the_schema_pattern_accepts_exactly_the_names_the_check_accepts() -> None:
    """The OpenAPI schema declares NAME_PATTERN for ``filename`` and the column names: over every code
    point (surrogates aside: UTF-8 cannot carry them), the pattern and ``check_name`` agree, so the
    schema promises no name the service refuses (schemathesis' positive-data check)."""
    import re

    from datamarket.core.errors import UploadError
    from datamarket.service.uploads.names import NAME_PATTERN, check_name

    rx = re.compile(NAME_PATTERN)
    disagree = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        s = f"a{chr(cp)}b"
        try:
            accepted = check_name("f", s, 3) == s
        except UploadError:
            accepted = False
        if (rx.fullmatch(s) is not None) != accepted:
            disagree.append(f"U+{cp:04X}")
    assert disagree == []
