"""Persistence: SQLAlchemy models, migrations shipped in the package, exact money, hash chain.

``money`` converts float outcomes into balanced integer minor-unit postings (largest remainder) in a
currency; ``chain`` appends them to a hash-chained, append-only ledger of salted entries; ``audit``
verifies it (against the rest of the database, checkpoints held by participants, or an export
offline); ``receipts`` builds a round's checkpoint and checks receipts and checkpoints; ``merkle``
builds the per-round Merkle trees; ``migrations.upgrade`` creates or updates the schema
programmatically.
"""

from datamarket.ledger.audit import (
    VerifyReport,
    check_checkpoint,
    checkpoint_of,
    export_lines,
    parse_checkpoints,
    verify,
    verify_checkpoints,
    verify_export,
)
from datamarket.ledger.chain import (
    FORMAT_VERSION,
    GENESIS,
    EntryRecord,
    append_round,
    balances,
    dump,
    entry_hash,
    entry_hash_v2,
    entry_hash_v3,
    round_sums,
)
from datamarket.ledger.db import database_url, make_engine, make_sessionmaker
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
from datamarket.ledger.receipts import receipt_problems

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
