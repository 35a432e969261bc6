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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from datamarket.core.errors import DatamarketError
from datamarket.ledger.chain import GENESIS, EntryRecord
from datamarket.ledger.merkle import inclusion_proof, merkle_root, verify_inclusion
from datamarket.ledger.models import LedgerEntry, LedgerRound
from datamarket.ledger.money import Currency, format_minor


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


def parse_checkpoints(data: Any) -> list[dict[str, Any]]:
    """Checkpoints from a JSON document: one checkpoint, a receipt with a ``checkpoint`` field (its
    ``entries`` come along, to be found in the chain), or a list of either. Raises
    :class:`ValueError` naming what is missing."""
    items = data if isinstance(data, list) else [data]
    out = []
    for k, item in enumerate(items):
        cp = item.get("checkpoint", item) if isinstance(item, dict) else None
        if (
            not isinstance(cp, dict)
            or not isinstance(cp.get("seq"), int)
            or not isinstance(cp.get("hash"), str)
        ):
            raise ValueError(
                f"checkpoint {k}: needs integer 'seq' and string 'hash' (or a receipt carrying them)"
            )
        if cp is not item and isinstance(item.get("entries"), list):
            cp = {**cp, "entries": item["entries"]}
        out.append(cp)
    return out


# -- a receipt alone --------------------------------------------------------------------------------
def receipt_problems(receipt: Mapping[str, Any]) -> list[str]:
    """Step 1 of the module docstring: what is wrong with ``receipt`` on its own (empty: nothing)."""
    cp = receipt.get("checkpoint")
    entries = receipt.get("entries")
    if not isinstance(entries, list):
        return ["the receipt lists no entries"]
    problems = [p for e in entries for p in _own_entry_problems(receipt, e)]
    if not isinstance(cp, Mapping):
        return [*problems, "the receipt carries no checkpoint: its entries cannot be proved"]
    proofs = {p.get("seq"): p for p in cp.get("proofs") or [] if isinstance(p, Mapping)}
    size, root = cp.get("size"), cp.get("merkle_root")
    if size is None and isinstance(cp.get("entry_hashes"), list):
        size = len(cp["entry_hashes"])
    for e in entries:
        p = proofs.get(e.get("seq"))
        if p is None or p.get("hash") != e.get("hash"):
            problems.append(f"entry {e.get('seq')}: no inclusion proof of its hash")
        elif not _proved(p, size, root):
            problems.append(f"entry {e.get('seq')}: its inclusion proof fails against the Merkle root")
    try:
        net = sum(int(e["amount_minor"]) for e in entries)
    except (KeyError, TypeError, ValueError):
        net = None
    if "net_minor" in receipt and net != receipt["net_minor"]:
        problems.append(f"net_minor {receipt['net_minor']!r} is not the sum of the entries ({net})")
    return problems


def _own_entry_problems(receipt: Mapping[str, Any], e: Any) -> list[str]:
    """An entry of the receipt whose hash does not recompute, or that is not of the receipt's round,
    participant or currency."""
    if not isinstance(e, Mapping):
        return ["an entry of the receipt is not an object"]
    where = f"entry {e.get('seq')}"
    try:
        ok = EntryRecord.from_dict(e).computed_hash() == e["hash"]
    except (KeyError, TypeError, ValueError) as exc:
        return [f"{where}: cannot hash ({exc.__class__.__name__}: {exc})"]
    problems = [] if ok else [f"{where}: its fields do not hash to its hash (altered)"]
    for key, field in (
        ("round_id", "round_id"),
        ("participant_id", "participant_id"),
        ("currency", "currency"),
    ):
        if key in receipt and e.get(field) != receipt[key]:
            problems.append(f"{where}: {field} {e.get(field)!r}, the receipt's is {receipt[key]!r}")
    if "amount" in e:
        try:
            shown = format_minor(
                int(e["amount_minor"]), Currency.parse(str(e["currency"]), stored=True).scale
            )
        except (DatamarketError, TypeError, ValueError):
            shown = None
        if shown != e["amount"]:
            problems.append(
                f"{where}: amount {e['amount']!r} is not its {e.get('amount_minor')!r} minor units"
            )
    return problems


def _proved(p: Mapping[str, Any], size: Any, root: Any) -> bool:
    try:
        return (
            isinstance(size, int)
            and isinstance(root, str)
            and verify_inclusion(p["hash"], p["index"], size, p["proof"], root)
        )
    except (KeyError, TypeError):
        return False


# -- a checkpoint against a ledger ------------------------------------------------------------------
def check_checkpoint(cp: Mapping[str, Any], seen: Sequence[EntryRecord], *, head: bool = True) -> list[str]:
    """Step 2 of the module docstring: problems showing that the chain ``seen`` does not extend
    checkpoint ``cp`` (empty: it does); without ``head``, the entry at ``seq`` is not looked at."""
    rid = cp.get("round_id")
    tag = f"checkpoint (seq {cp['seq']}" + (f", round {rid})" if rid is not None else ")")
    by_seq = {e.seq: e for e in seen}
    problems = _head_problems(cp, by_seq) if head else []
    if rid is not None:
        now = [e.hash for e in seen if e.round_id == rid]
        hashes = cp.get("entry_hashes")
        size = len(hashes) if isinstance(hashes, list) else cp.get("size")
        if isinstance(hashes, list):  # a checkpoint written before revision 0007
            problems += _listed_problems(cp, hashes, now, rid)
        elif size is not None and len(now) != size:
            problems.append(f"round {rid} has {len(now)} entries now, not the {size} checkpointed ones")
        elif cp.get("merkle_root") is not None and _root(now) != cp["merkle_root"]:
            problems.append(f"round {rid}'s entries are not the checkpointed ones (Merkle root differs)")
        problems += _proof_problems(cp, by_seq, size)
    for e in cp.get("entries") or []:
        seq = e.get("seq") if isinstance(e, Mapping) else None
        entry = by_seq.get(seq) if isinstance(seq, int) else None
        if entry is None or not isinstance(e, Mapping) or entry.hash != e.get("hash"):
            problems.append(f"entry {seq} of the receipt is not in the chain")
    return [f"{tag}: {p}" for p in problems]


def _root(hashes: list[str]) -> str | None:
    """The Merkle root of ``hashes``, ``None`` when one is not hex (a tampered row)."""
    try:
        return merkle_root(hashes)
    except (ValueError, TypeError):
        return None


def _head_problems(cp: Mapping[str, Any], by_seq: Mapping[int, EntryRecord]) -> list[str]:
    if cp["seq"] == 0:
        return [] if cp["hash"] == GENESIS else ["sequence number 0 must have the genesis hash"]
    entry = by_seq.get(cp["seq"])
    if entry is None:
        return [f"the chain has no entry {cp['seq']} any more (truncated)"]
    if entry.hash != cp["hash"]:
        return [
            f"entry {cp['seq']} no longer has the checkpoint's hash {cp['hash'][:12]} (history rewritten)"
        ]
    return []


def _listed_problems(cp: Mapping[str, Any], hashes: list[Any], now: list[str], rid: Any) -> list[str]:
    problems = []
    if now != hashes:
        problems.append(f"round {rid} has {len(now)} entries now, not the {len(hashes)} checkpointed ones")
    try:
        root_ok = cp.get("merkle_root") is None or merkle_root(hashes) == cp["merkle_root"]
    except (ValueError, TypeError):  # not hex
        root_ok = False
    if not root_ok:
        problems.append("the Merkle root does not match the checkpoint's entry hashes")
    return problems


def _proof_problems(cp: Mapping[str, Any], by_seq: Mapping[int, EntryRecord], size: Any) -> list[str]:
    problems = []
    for k, p in enumerate(cp.get("proofs") or []):
        try:
            proved = _proved(p, size, cp.get("merkle_root"))
            entry = by_seq.get(p["seq"])
        except (KeyError, TypeError):
            problems.append(f"proof {k} is malformed (needs seq, hash, index, proof)")
            continue
        if not proved:
            problems.append(f"inclusion proof of entry {p['seq']} fails")
        elif entry is None or entry.hash != p["hash"]:
            problems.append(f"entry {p['seq']} of the receipt is not in the chain")
    return problems
