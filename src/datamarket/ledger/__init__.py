"""Persistence: SQLAlchemy models, migrations shipped in the package, exact money, hash chain.

``money`` converts float outcomes into balanced integer minor-unit postings (largest remainder);
``chain`` appends them to a hash-chained, append-only ledger and verifies it; ``migrations.upgrade``
creates or updates the schema programmatically.
"""

from datamarket.ledger.chain import (
    GENESIS,
    VerifyReport,
    append_round,
    balances,
    dump,
    entry_hash,
    round_sums,
    verify,
)
from datamarket.ledger.db import database_url, make_engine, make_sessionmaker
from datamarket.ledger.migrations import current_revision, head_revision, upgrade
from datamarket.ledger.money import PLATFORM, Posting, format_minor, largest_remainder, outcome_postings

__all__ = [
    "GENESIS",
    "PLATFORM",
    "Posting",
    "VerifyReport",
    "append_round",
    "balances",
    "current_revision",
    "database_url",
    "dump",
    "entry_hash",
    "format_minor",
    "head_revision",
    "largest_remainder",
    "make_engine",
    "make_sessionmaker",
    "outcome_postings",
    "round_sums",
    "upgrade",
    "verify",
]
