"""Ledger entries as plain values and their hashes: no database, no SQLAlchemy.

What a receipt's verifier needs offline (:mod:`datamarket.ledger.receipts`, :mod:`datamarket.client`):
the entry formats 1, 2 and 3 and their hashes (:mod:`datamarket.ledger.chain` states them),
:class:`EntryRecord` (an entry as a database row, an export line or a receipt holds it) and the
canonical timestamp. :mod:`datamarket.ledger.chain` re-exports every name, so the old import paths work.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datamarket.ledger.models import LedgerEntry

GENESIS = "0" * 64
FORMAT_VERSION = 3
SALT_BYTES = 32
ENTRY_COLUMNS = (
    "seq",
    "version",
    "round_id",
    "market_id",
    "participant_id",
    "account",
    "kind",
    "amount_minor",
    "currency",
    "memo",
    "created_at",
    "prev_hash",
    "hash",
    "salt",
)
"""Every column of ``ledger_entries``; format 3 hashes all of them but ``hash`` itself."""

_SALT = re.compile(r"[0-9a-f]{64}")


def new_salt() -> str:
    """A fresh per-entry salt: :data:`SALT_BYTES` random bytes, hex."""
    return secrets.token_hex(SALT_BYTES)


def is_salt(value: Any) -> bool:
    """Whether ``value`` is a salt as :func:`new_salt` draws them (64 lowercase hex digits).

    >>> is_salt(new_salt()), is_salt("ab"), is_salt(None)
    (True, False, False)
    """
    return isinstance(value, str) and _SALT.fullmatch(value) is not None


def _sha(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def entry_hash(seq: int, round_id: int, account: str, amount_minor: int, memo: str, prev_hash: str) -> str:
    """SHA-256 hex digest of a **format-1** entry (module docstring).

    >>> entry_hash(1, 1, "platform", 0, "x", GENESIS)[:12]
    'e10d92056670'
    """
    return _sha(
        {
            "seq": int(seq),
            "round": int(round_id),
            "account": account,
            "amount_minor": int(amount_minor),
            "memo": memo,
            "prev": prev_hash,
        }
    )


def canonical_time(t: datetime | str) -> str:
    """A timestamp as hashed: UTC, ISO 8601 with microseconds (naive values are UTC).

    >>> canonical_time(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    '2026-01-02T03:04:05.000000+00:00'
    """
    if isinstance(t, str):
        t = datetime.fromisoformat(t)
    t = t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
    return t.isoformat(timespec="microseconds")


@dataclass(frozen=True)
class EntryRecord:
    """One ledger entry as plain values (a database row or one line of an export).

    ``amount_minor`` is kept as read (it may be a float or a string in a tampered row or file); the
    audit refuses anything but a 63-bit integer.
    """

    seq: int
    version: int
    round_id: int
    market_id: int | None
    participant_id: int | None
    account: str
    kind: str
    amount_minor: Any
    currency: str
    memo: str
    created_at: str
    prev_hash: str
    hash: str
    salt: str | None = None

    @classmethod
    def from_row(cls, e: LedgerEntry) -> EntryRecord:
        return cls(
            seq=e.seq,
            version=e.version,
            round_id=e.round_id,
            market_id=e.market_id,
            participant_id=e.participant_id,
            account=e.account,
            kind=e.kind,
            amount_minor=e.amount_minor,
            currency=e.currency,
            memo=e.memo,
            created_at=canonical_time(e.created_at),
            prev_hash=e.prev_hash,
            hash=e.hash,
            salt=e.salt,
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EntryRecord:
        """From :meth:`to_dict` output (``salt`` may be absent: exports written before revision 0007);
        raises ``KeyError``/``TypeError`` on a malformed line."""
        return cls(**{k: d[k] for k in ENTRY_COLUMNS if k != "salt"}, salt=d.get("salt"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def computed_hash(self) -> str:
        """The hash this entry should have, in its own format (:class:`ValueError` for another)."""
        if self.version == 1:
            return entry_hash(
                self.seq, self.round_id, self.account, int(self.amount_minor), self.memo, self.prev_hash
            )
        fields = {k: getattr(self, k) for k in ENTRY_COLUMNS if k not in ("version", "hash", "salt")}
        if self.version == 2:
            return entry_hash_v2(**fields)
        if self.version == 3:
            if not is_salt(self.salt):
                raise ValueError(f"format-3 entry without a valid salt ({self.salt!r})")
            return entry_hash_v3(**fields, salt=str(self.salt))
        raise ValueError(f"unknown entry format version {self.version!r}")


def entry_hash_v2(
    *,
    seq: int,
    round_id: int,
    market_id: int | None,
    participant_id: int | None,
    account: str,
    kind: str,
    amount_minor: Any,
    currency: str,
    memo: str,
    created_at: datetime | str,
    prev_hash: str,
) -> str:
    """SHA-256 hex digest of a **format-2** entry: every column (module docstring).

    ``amount_minor`` enters the JSON as given, so a float amount hashes differently from the integer.

    >>> entry_hash_v2(seq=1, round_id=1, market_id=1, participant_id=None, account="platform",
    ...               kind="other", amount_minor=0, currency="USD", memo="x",
    ...               created_at="2026-01-01T00:00:00+00:00", prev_hash=GENESIS)[:12]
    '38e9bc5f97fa'
    """
    return _sha(_body(2, locals()))


def entry_hash_v3(
    *,
    seq: int,
    round_id: int,
    market_id: int | None,
    participant_id: int | None,
    account: str,
    kind: str,
    amount_minor: Any,
    currency: str,
    memo: str,
    created_at: datetime | str,
    prev_hash: str,
    salt: str,
) -> str:
    """SHA-256 hex digest of a **format-3** entry: every column, the per-entry ``salt`` included.

    >>> entry_hash_v3(seq=1, round_id=1, market_id=1, participant_id=None, account="platform",
    ...               kind="other", amount_minor=0, currency="USD", memo="x",
    ...               created_at="2026-01-01T00:00:00+00:00", prev_hash=GENESIS, salt="00" * 32)[:12]
    '833b88a6f81f'
    """
    return _sha({**_body(3, locals()), "salt": salt})


def _body(version: int, f: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical JSON object of formats 2 and 3 (without the salt) from the keyword arguments."""
    return {
        "v": version,
        "seq": f["seq"],
        "round": f["round_id"],
        "market": f["market_id"],
        "participant": f["participant_id"],
        "account": f["account"],
        "kind": f["kind"],
        "amount_minor": f["amount_minor"],
        "currency": f["currency"],
        "memo": f["memo"],
        "created_at": canonical_time(f["created_at"]),
        "prev": f["prev_hash"],
    }
