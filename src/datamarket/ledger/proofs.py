"""Receipts and checkpoints checked without a database (steps 1 and 2 of
:mod:`datamarket.ledger.receipts`, which re-exports every name here): what a participant runs
offline on a receipt it fetched (:mod:`datamarket.client` imports this module, and nothing of
SQLAlchemy comes with it), and what the audit runs on a ledger's entries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from datamarket.core.errors import DatamarketError
from datamarket.ledger.entries import GENESIS, EntryRecord
from datamarket.ledger.merkle import merkle_root, verify_inclusion
from datamarket.ledger.money import Currency, format_minor


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
