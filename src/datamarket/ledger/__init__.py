"""Persistence: SQLAlchemy models, migrations shipped in the package, exact money, hash chain.

``money`` converts float outcomes into balanced integer minor-unit postings (largest remainder) in a
currency; ``chain`` appends them to a hash-chained, append-only ledger of salted entries; ``audit``
verifies it (against the rest of the database, checkpoints held by participants, or an export
offline); ``receipts`` builds a round's checkpoint and checks receipts and checkpoints; ``merkle``
builds the per-round Merkle trees; ``migrations.upgrade`` creates or updates the schema
programmatically.

The names below are imported when first used (PEP 562), so that the modules that need no database
(``entries``: entries and their hashes; ``proofs``: receipts and checkpoints checked offline;
``merkle``; ``money``) import without SQLAlchemy: a participant's client
(:mod:`datamarket.client`) verifies receipts with them and does not install the server stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datamarket.ledger.audit import (
        VerifyReport,
        checkpoint_of,
        export_lines,
        verify,
        verify_checkpoints,
        verify_export,
    )
    from datamarket.ledger.chain import append_round, balances, dump, round_sums
    from datamarket.ledger.db import database_url, make_engine, make_sessionmaker
    from datamarket.ledger.entries import (
        FORMAT_VERSION,
        GENESIS,
        EntryRecord,
        entry_hash,
        entry_hash_v2,
        entry_hash_v3,
    )
    from datamarket.ledger.migrations import current_revision, head_revision, upgrade
    from datamarket.ledger.money import (
        MAX_MINOR,
        PLATFORM,
        Currency,
        Posting,
        format_minor,
        largest_remainder,
        outcome_postings,
    )
    from datamarket.ledger.proofs import check_checkpoint, parse_checkpoints, receipt_problems

_HOME: dict[str, str] = {
    "VerifyReport": "audit",
    "check_checkpoint": "proofs",
    "checkpoint_of": "audit",
    "export_lines": "audit",
    "parse_checkpoints": "proofs",
    "verify": "audit",
    "verify_checkpoints": "audit",
    "verify_export": "audit",
    "FORMAT_VERSION": "entries",
    "GENESIS": "entries",
    "EntryRecord": "entries",
    "append_round": "chain",
    "balances": "chain",
    "dump": "chain",
    "entry_hash": "entries",
    "entry_hash_v2": "entries",
    "entry_hash_v3": "entries",
    "round_sums": "chain",
    "database_url": "db",
    "make_engine": "db",
    "make_sessionmaker": "db",
    "current_revision": "migrations",
    "head_revision": "migrations",
    "upgrade": "migrations",
    "MAX_MINOR": "money",
    "PLATFORM": "money",
    "Currency": "money",
    "Posting": "money",
    "format_minor": "money",
    "largest_remainder": "money",
    "outcome_postings": "money",
    "receipt_problems": "proofs",
}
"""The module of each name of ``__all__``, imported on first use."""


def __getattr__(name: str) -> Any:
    """``datamarket.ledger.NAME``: the name from its module (:data:`_HOME`), imported now."""
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "FORMAT_VERSION",
    "GENESIS",
    "MAX_MINOR",
    "PLATFORM",
    "Currency",
    "EntryRecord",
    "Posting",
    "VerifyReport",
    "append_round",
    "balances",
    "check_checkpoint",
    "checkpoint_of",
    "current_revision",
    "database_url",
    "dump",
    "entry_hash",
    "entry_hash_v2",
    "entry_hash_v3",
    "export_lines",
    "format_minor",
    "head_revision",
    "largest_remainder",
    "make_engine",
    "make_sessionmaker",
    "outcome_postings",
    "parse_checkpoints",
    "receipt_problems",
    "round_sums",
    "upgrade",
    "verify",
    "verify_checkpoints",
    "verify_export",
]
