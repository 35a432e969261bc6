"""Checkpoints and receipts: what a participant keeps of a round, and how it is checked.

A **checkpoint** of round ``r`` (:func:`checkpoint_of`) is
``{"round_id", "seq", "hash", "merkle_root", "size", "proofs"}``: the chain head after the round
(``seq``, ``hash``), the Merkle root of the round's ``size`` entry hashes (RFC 9162 tree,
:mod:`datamarket.ledger.merkle`) and, for each entry of one participant, its inclusion proof
``{"seq", "hash", "index", "proof"}``. A **receipt** (built by the service) adds that participant's
own entries with every hashed field, their salts included, and nothing of anyone else's.

What a receipt reveals. Format-3 entries (:mod:`datamarket.ledger.chain`) hash a 256-bit random salt
with their fields, so the head, the root and the sibling hashes of a proof are hashes over unknown
salts: a participant cannot test guesses of another entry's amount against them. It learns the
number of entries of its round (``size``, and the positions of its own) and the chain's length at
the round (``seq``), nothing else. Rounds booked before revision 0007 (entries of formats 1 and 2,
unsalted: :func:`salted`) get no checkpoint in new receipts, since any of their hashes would let a
co-participant test guesses; their old checkpoints still verify.

Checking:

1. :func:`receipt_problems` checks a receipt **alone, offline**: each entry's hash recomputes from its
   fields (an altered amount, account or salt breaks it), each entry has a proof that verifies against
   the root, the entries are of the receipt's round and participant and add up to its net amount;
2. :func:`check_checkpoint` checks that a **ledger** (a database's entries or an export's) still
   extends a checkpoint: the entry at ``seq`` still has ``hash``; the round still has ``size``
   entries with that Merkle root (or, for checkpoints written before revision 0007, exactly the
   listed ``entry_hashes``); every proof holds and its entry is still in the chain; and a receipt's
   entries (when the checkpoint came with them, :func:`parse_checkpoints`) are still in the chain.
   Problems never quote a hash of the ledger that the checkpoint does not hold.

Both checks need no database: they live in :mod:`datamarket.ledger.proofs` (which a participant's
client imports without SQLAlchemy) and are re-exported here; this module adds what reads the database
(:func:`checkpoint_of`, :func:`salted`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from datamarket.ledger.merkle import inclusion_proof
from datamarket.ledger.models import LedgerEntry, LedgerRound

# the checks need no database: they live in proofs (the client imports them from there)
from datamarket.ledger.proofs import check_checkpoint as check_checkpoint
from datamarket.ledger.proofs import parse_checkpoints as parse_checkpoints
from datamarket.ledger.proofs import receipt_problems as receipt_problems


def salted(session: Session, round_id: int) -> bool:
    """Whether every entry of ``round_id`` is salted (format 3; true for a round without entries)."""
    versions = session.execute(
        select(LedgerEntry.version).where(LedgerEntry.round_id == round_id).distinct()
    ).scalars()
    return all(v == 3 for v in versions)


def checkpoint_of(
    session: Session, round_id: int, participant_id: int | None = None
) -> dict[str, Any] | None:
    """The checkpoint of ``round_id`` with the proofs of ``participant_id``'s entries (module
    docstring); ``None`` while the round is not booked."""
    rec = session.get(LedgerRound, round_id)
    if rec is None:
        return None
    rows = session.execute(
        select(LedgerEntry.seq, LedgerEntry.hash, LedgerEntry.participant_id)
        .where(LedgerEntry.round_id == round_id)
        .order_by(LedgerEntry.seq)
    ).all()
    hashes = [h for _, h, _ in rows]
    proofs = [
        {"seq": seq, "hash": h, "index": i, "proof": inclusion_proof(hashes, i)}
        for i, (seq, h, pid) in enumerate(rows)
        if participant_id is not None and pid == participant_id
    ]
    return {
        "round_id": round_id,
        "seq": rec.head_seq,
        "hash": rec.head_hash,
        "merkle_root": rec.merkle_root,
        "size": len(hashes),
        "proofs": proofs,
    }
