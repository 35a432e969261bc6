"""The ledger's modules that need no database import without SQLAlchemy (a participant's client checks
receipts with them), and the names they took from ``chain`` and ``receipts`` are still found there."""

from __future__ import annotations

import subprocess
import sys

import datamarket.ledger as ledger
from datamarket.ledger import chain, entries, proofs, receipts


def test_entries_and_proofs_import_without_sqlalchemy() -> None:
    code = (
        "import sys; import datamarket.ledger.entries, datamarket.ledger.proofs, datamarket.ledger; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'alembic')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


def test_the_old_import_paths_still_work() -> None:
    for name in (
        "GENESIS",
        "ENTRY_COLUMNS",
        "EntryRecord",
        "entry_hash",
        "entry_hash_v2",
        "entry_hash_v3",
        "is_salt",
    ):
        assert getattr(chain, name) is getattr(entries, name)
    for name in ("receipt_problems", "check_checkpoint", "parse_checkpoints"):
        assert getattr(receipts, name) is getattr(proofs, name) is getattr(ledger, name)
    assert set(ledger.__all__) <= set(dir(ledger))
    assert all(getattr(ledger, name) is not None for name in ledger.__all__)
