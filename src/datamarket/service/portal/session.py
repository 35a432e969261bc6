"""Portal sign-in: an API key exchanged once for a server-side session, a cookie and CSRF tokens.

* ``POST /portal/login`` checks the key exactly as the JSON API does
  (:func:`datamarket.service.api.deps.principal`) and stores a new row of ``portal_sessions``: the SHA-256
  of a random session token, who it acts for, a random CSRF token and the expiry. The browser gets
  the token in the cookie :data:`COOKIE` (``HttpOnly``, ``SameSite=Strict``, ``Path=/portal``,
  ``Secure`` unless the request came to a loopback address). The key itself is never stored, put in a
  page or a URL, or logged.
* Every form carries the session's CSRF token (a hidden field ``csrf``); a POST without it, or with
  another, is refused (403). The sign-in form, before any session exists, uses a double-submit token
  (cookie :data:`LOGIN_COOKIE` and the same value in the form).
* Logging out deletes the row: every service process sharing the database forgets the session.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from fastapi import HTTPException, Request, Response
from sqlalchemy import delete, select

from datamarket.ledger.models import Participant, PortalSession, utcnow
from datamarket.service.auth import Principal, hash_key
from datamarket.service.store.db import Database

COOKIE = "dm_portal"
LOGIN_COOKIE = "dm_portal_login"
SESSION_TTL = timedelta(hours=8)
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


@dataclass(frozen=True)
class Visitor:
    """A signed-in browser: who it acts for and its session's CSRF token."""

    who: Principal
    csrf: str
    token_hash: str


def secure_cookie(request: Request) -> bool:
    """``Secure`` cookies everywhere except on a loopback host (plain HTTP there, for development)."""
    return (request.url.hostname or "") not in LOOPBACK


def same_token(a: str | None, b: str | None) -> bool:
    """Constant-time equality of two non-empty tokens."""
    return bool(a) and bool(b) and hmac.compare_digest(str(a).encode(), str(b).encode())


def open_session(db: Database, who: Principal) -> tuple[str, str]:
    """A new session for ``who``: ``(token, csrf)``; only the token's hash is stored."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = utcnow()
    with db.write() as s:
        s.execute(delete(PortalSession).where(PortalSession.expires_at < now))  # sweep expired ones
        s.add(
            PortalSession(
                token_hash=hash_key(token),
                participant_id=who.participant_id,
                is_operator=who.is_admin,
                csrf_token=csrf,
                created_at=now,
                expires_at=now + SESSION_TTL,
            )
        )
    return token, csrf


def find_session(db: Database, token: str | None) -> Visitor | None:
    """The live session of the cookie ``token``, or ``None`` (missing, unknown, expired)."""
    if not token or len(token) > 200:
        return None
    h = hash_key(token)
    with db.read() as s:
        row = s.execute(select(PortalSession).where(PortalSession.token_hash == h)).scalar_one_or_none()
        if row is None or row.expires_at <= utcnow():
            return None
        if row.is_operator:
            return Visitor(Principal(True), row.csrf_token, h)
        p = s.get(Participant, row.participant_id) if row.participant_id is not None else None
        if p is None:
            return None
        return Visitor(Principal.of(p), row.csrf_token, h)


def close_session(db: Database, token_hash: str) -> None:
    """Forget a session (logout)."""
    with db.write() as s:
        s.execute(delete(PortalSession).where(PortalSession.token_hash == token_hash))


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(SESSION_TTL.total_seconds()),
        path="/portal",
        httponly=True,
        samesite="strict",
        secure=secure_cookie(request),
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE, path="/portal", httponly=True, samesite="strict", secure=secure_cookie(request)
    )


def check_csrf(visitor: Visitor, token: object) -> None:
    """403 unless the form's ``csrf`` field is the session's token."""
    if not isinstance(token, str) or not same_token(token, visitor.csrf):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and submit again")
