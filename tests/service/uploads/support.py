"""Helpers of the upload tests: a portal session over real HTTP, and multipart bodies written byte
for byte."""

from __future__ import annotations

import re
import uuid

import httpx

from tests.service_support import LiveServer

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def portal_client(srv: LiveServer, key: str) -> tuple[httpx.Client, str]:
    """A browser-like client signed in to the portal with ``key``, and its session's CSRF token."""
    c = httpx.Client(base_url=srv.url, timeout=60, follow_redirects=False)
    page = c.get("/portal/login")
    token = CSRF.search(page.text)
    assert token, page.text[:300]
    r = c.post("/portal/login", data={"api_key": key, "csrf": token.group(1)})
    assert r.status_code == 303, r.text
    home = c.get("/portal/")
    found = CSRF.search(home.text)
    assert home.status_code == 200 and found, home.text[:300]
    return c, found.group(1)


def multipart(fields: dict[str, str], filename: bytes, content: bytes) -> tuple[bytes, str]:
    """A multipart body written byte for byte (httpx would percent-encode control characters in a
    file name; an attacker's client does not)."""
    b = "dm" + uuid.uuid4().hex
    out = b"".join(
        f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    )
    out += f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="'.encode() + filename
    out += b'"\r\nContent-Type: text/csv\r\n\r\n' + content + f"\r\n--{b}--\r\n".encode()
    return out, f"multipart/form-data; boundary={b}"
