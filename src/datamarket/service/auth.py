"""API keys: random tokens given once to their owner; the database stores only their SHA-256.

Keys carry 256 bits of entropy (:func:`secrets.token_urlsafe`), so an unsalted SHA-256 is a sound
verifier (no dictionary to attack) and lets the service find the participant by an indexed lookup.
Requests authenticate with the header ``X-API-Key: <key>`` (or ``Authorization: Bearer <key>``).
The operator's admin key is a setting (:class:`~datamarket.service.config.ServiceSettings`, or
``$DATAMARKET_ADMIN_KEY``) and is compared by hash in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from datamarket.ledger.models import Participant

KEY_PREFIX = "dm_"


def new_api_key() -> str:
    """A fresh random API key (shown to its owner once)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """Hex SHA-256 of a key (what the database stores).

    >>> len(hash_key("dm_x")), hash_key("a") == hash_key("a")
    (64, True)
    """
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def same_hash(a: str, b: str) -> bool:
    """Constant-time comparison of two hex digests."""
    return hmac.compare_digest(a.encode(), b.encode())


@dataclass(frozen=True)
class Principal:
    """Who is calling: the operator (``is_admin``) or one participant."""

    is_admin: bool
    participant_id: int | None = None
    name: str = "operator"

    @classmethod
    def of(cls, p: Participant) -> Principal:
        return cls(False, p.id, p.name)

    def may_read(self, owner_id: int | None) -> bool:
        """The operator reads everything; a participant only what it owns."""
        return self.is_admin or (owner_id is not None and owner_id == self.participant_id)
