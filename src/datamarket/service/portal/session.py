"""Portal sign-in: an API key exchanged once for a server-side session, a cookie and CSRF tokens.

* ``POST /portal/login`` checks the key exactly as the JSON API does
  (:func:`datamarket.service.api.deps.principal`) and stores a new row of ``portal_sessions``: the SHA-256
  of a random session token, who it acts for, a random CSRF token, the expiry and the **key binding**
  (:func:`key_binding`: an HMAC, keyed by the session token, of the hash of the key that opened it).
  The browser gets the token in the cookie :data:`COOKIE` (``HttpOnly``, ``SameSite=Strict``,
  ``Path=/portal``, ``Secure`` as :func:`secure_cookie` decides). The key itself is never stored, put in
  a page or a URL, or logged.
* A session is live while its expiry is ahead and the key that opened it is still the key of whom it
  acts for: the operator's current admin key (a service restarted with another key ends every operator
  session), the participant's current key (a key replaced or revoked ends its sessions). The binding
  is keyed by the token, which the database does not hold, so the table gives no verifier of a key.
* Expiry (:class:`SessionSettings`): at most ``ttl_s`` (8 h) after sign-in; an operator session also
  ends after ``operator_idle_s`` (30 min) without a request, sliding on activity (the expiry is moved
  forward at most once per :func:`touch_step`, so the idle limit holds within that step, a minute at
  most); participants keep the absolute limit only (``participant_idle_s = None``).
* Every form carries the session's CSRF token (a hidden field ``csrf``); a POST without it, or with
  another, is refused (403). The sign-in form, before any session exists, uses a double-submit token
  (cookie :data:`LOGIN_COOKIE` and the same value in the form). Every state-changing request also
  passes :func:`same_origin` (see :class:`~datamarket.service.portal.views.common.PortalRoute`).
* Logging out deletes the row: every service process sharing the database forgets the session.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, Response
from sqlalchemy import delete, select, update

from datamarket.core.errors import ConfigurationError
from datamarket.ledger.models import Participant, PortalSession, utcnow
from datamarket.service.auth import Principal, hash_key
from datamarket.service.store.db import Database

COOKIE = "dm_portal"
LOGIN_COOKIE = "dm_portal_login"
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
_BINDING = b"datamarket portal session key binding v1\0"


@dataclass(frozen=True)
class SessionSettings:
    """How long portal sessions live and how their cookie is sent (one field of
    :class:`~datamarket.service.config.ServiceSettings`).

    ``ttl_s``: seconds from sign-in to the end of any session. ``operator_idle_s`` /
    ``participant_idle_s``: seconds without a request after which the operator's / a participant's
    session ends (``None``: no idle limit). ``cookie_secure``: ``True`` or ``False`` forces the
    cookies' ``Secure`` flag; ``None`` (default) derives it from the request (:func:`secure_cookie`);
    ``$DATAMARKET_COOKIE_SECURE`` sets it.

    >>> SessionSettings(operator_idle_s=0)
    Traceback (most recent call last):
    ...
    datamarket.core.errors.ConfigurationError: sessions: need ttl_s > 0 and idle limits > 0 (or None)...
    """

    ttl_s: float = 8 * 3600.0
    operator_idle_s: float | None = 30 * 60.0
    participant_idle_s: float | None = None
    cookie_secure: bool | None = None

    def __post_init__(self) -> None:
        idle = (self.operator_idle_s, self.participant_idle_s)
        if not self.ttl_s > 0 or any(x is not None and not x > 0 for x in idle):
            raise ConfigurationError(
                "sessions",
                f"need ttl_s > 0 and idle limits > 0 (or None); got ttl_s={self.ttl_s}, "
                f"operator_idle_s={self.operator_idle_s}, participant_idle_s={self.participant_idle_s}",
            )

    def idle_s(self, operator: bool) -> float | None:
        """The idle limit of an operator's (``operator``) or a participant's session."""
        return self.operator_idle_s if operator else self.participant_idle_s


def touch_step(idle_s: float) -> float:
    """Seconds between two moves of a session's expiry: a tenth of the idle limit, at most a minute
    (so a busy operator costs one write a minute, and the session ends between ``idle_s - step``
    and ``idle_s`` after its last request)."""
    return min(60.0, idle_s / 10)


@dataclass(frozen=True)
class Visitor:
    """A signed-in browser: who it acts for and its session's CSRF token."""

    who: Principal
    csrf: str
    token_hash: str


def secure_cookie(request: Request, rules: SessionSettings) -> bool:
    """``Secure`` as ``rules.cookie_secure`` forces it; else when the request came over HTTPS as the
    server sees it (``request.url.scheme``, after the ``X-Forwarded-Proto`` of a trusted proxy:
    ``ServiceSettings.forwarded_allow_ips``), or to a host that is not a loopback address (plain
    HTTP on loopback stays usable, for development)."""
    if rules.cookie_secure is not None:
        return rules.cookie_secure
    return request.url.scheme in ("https", "wss") or (request.url.hostname or "") not in LOOPBACK


def same_token(a: str | None, b: str | None) -> bool:
    """Constant-time equality of two non-empty tokens."""
    return bool(a) and bool(b) and hmac.compare_digest(str(a).encode(), str(b).encode())


def key_binding(token: str, key_hash: str) -> str:
    """HMAC-SHA256, keyed by the session ``token``, of the hash of the key that opened the session.

    >>> key_binding("t", hash_key("k")) == key_binding("t", hash_key("k")) != key_binding("t", hash_key("j"))
    True
    """
    return hmac.new(token.encode(), _BINDING + key_hash.encode(), hashlib.sha256).hexdigest()


def _expiry(created: datetime, now: datetime, idle_s: float | None, rules: SessionSettings) -> datetime:
    """The end of a session opened at ``created`` and last used at ``now``."""
    end = created + timedelta(seconds=rules.ttl_s)
    return end if idle_s is None else min(end, now + timedelta(seconds=idle_s))


def open_session(db: Database, who: Principal, key_hash: str, rules: SessionSettings) -> tuple[str, str]:
    """A new session for ``who``, who signed in with the key hashing to ``key_hash``: ``(token,
    csrf)``; only the token's hash is stored."""
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
                key_binding=key_binding(token, key_hash),
                created_at=now,
                expires_at=_expiry(now, now, rules.idle_s(who.is_admin), rules),
            )
        )
    return token, csrf


def find_session(db: Database, token: str | None, admin_hash: str, rules: SessionSettings) -> Visitor | None:
    """The live session of the cookie ``token``, or ``None`` (missing, unknown, expired, idle too long,
    or opened with a key that is no longer the key of whom it acts for: such a row is deleted, so
    putting the old key back does not revive it); a live one's expiry slides."""
    if not token or len(token) > 200:
        return None
    h, now = hash_key(token), utcnow()
    with db.read() as s:
        row = s.execute(select(PortalSession).where(PortalSession.token_hash == h)).scalar_one_or_none()
        if row is None:
            return None
        p = None if row.is_operator or row.participant_id is None else s.get(Participant, row.participant_id)
        key_hash = admin_hash if row.is_operator else None if p is None else p.api_key_hash
        live = row.expires_at > now and key_hash is not None
        if live and same_token(row.key_binding, key_binding(token, key_hash or "")):
            visitor = Visitor(Principal(True) if p is None else Principal.of(p), row.csrf_token, h)
            created, expires = row.created_at, row.expires_at
        else:
            visitor = None
    if visitor is None:
        close_session(db, h)
        return None
    idle = rules.idle_s(visitor.who.is_admin)
    if idle is not None:
        _slide(db, h, expires, _expiry(created, now, idle, rules), touch_step(idle))
    return visitor


def _slide(db: Database, token_hash: str, expires: datetime, new: datetime, step: float) -> None:
    """Move a session's expiry forward to ``new`` when that gains more than ``step`` seconds."""
    if (new - expires).total_seconds() <= step:
        return
    with db.write() as s:
        s.execute(
            update(PortalSession)
            .where(PortalSession.token_hash == token_hash, PortalSession.expires_at < new)
            .values(expires_at=new)
        )


def close_session(db: Database, token_hash: str) -> None:
    """Forget a session (logout)."""
    with db.write() as s:
        s.execute(delete(PortalSession).where(PortalSession.token_hash == token_hash))


def set_session_cookie(response: Response, request: Request, token: str, rules: SessionSettings) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(rules.ttl_s),
        path="/portal",
        httponly=True,
        samesite="strict",
        secure=secure_cookie(request, rules),
    )


def clear_session_cookie(response: Response, request: Request, rules: SessionSettings) -> None:
    response.delete_cookie(
        COOKIE, path="/portal", httponly=True, samesite="strict", secure=secure_cookie(request, rules)
    )


def check_csrf(visitor: Visitor, token: object) -> None:
    """403 unless the form's ``csrf`` field is the session's token."""
    if not isinstance(token, str) or not same_token(token, visitor.csrf):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and submit again")


def _origin_of(value: str) -> str | None:
    """``host[:port]`` of an ``Origin`` or ``Referer`` value (lower case); ``None`` for ``null`` or
    anything without a host."""
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return parts.netloc.lower()


def same_origin(request: Request) -> bool:
    """Whether a state-changing request comes from the service's own pages, as a browser says it:
    ``Sec-Fetch-Site`` when sent (``same-origin``, or ``none`` for a request the user typed); else the
    ``Origin`` header, else the ``Referer``, whose host must be the request's ``Host``; a request with
    none of them (not a browser, or an old one) passes, and still needs the CSRF token."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site.strip().lower() in ("same-origin", "none")
    claimed = request.headers.get("origin") or request.headers.get("referer")
    if claimed is None:
        return True
    host = request.headers.get("host", "").strip().lower()
    return bool(host) and _origin_of(claimed) == host
