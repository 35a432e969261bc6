"""Merkle tree over a round's entry hashes: root, inclusion proofs and their verification.

The tree is the one of Certificate Transparency (RFC 9162, section 2.1; RFC 6962, section 2.1), over
leaves ``d_0 .. d_{n-1}`` (here: the 32-byte SHA-256 entry hashes of one round, in sequence order):

.. math:: \\mathrm{MTH}(\\{\\}) = \\mathrm{SHA256}(),\\quad
          \\mathrm{MTH}(\\{d_0\\}) = \\mathrm{SHA256}(0\\mathtt{x}00 \\,\\|\\, d_0),\\quad
          \\mathrm{MTH}(D_n) = \\mathrm{SHA256}(0\\mathtt{x}01 \\,\\|\\, \\mathrm{MTH}(D[0{:}k])
          \\,\\|\\, \\mathrm{MTH}(D[k{:}n]))

with ``k`` the largest power of two below ``n``. The distinct leaf and node prefixes rule out
second-preimage tricks between leaves and inner nodes. An inclusion proof of leaf ``m`` is the list of
sibling hashes on its path (``ceil(log2 n)`` hashes at most), so a participant can keep the root and
its own proof instead of every hash of the round. This is bookkeeping, not a formula of the five
papers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").hexdigest()


def _leaf(h: str) -> bytes:
    return hashlib.sha256(b"\x00" + bytes.fromhex(h)).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _mth(leaves: Sequence[str]) -> bytes:
    if len(leaves) == 1:
        return _leaf(leaves[0])
    k = _split(len(leaves))
    return _node(_mth(leaves[:k]), _mth(leaves[k:]))


def merkle_root(leaves: Sequence[str]) -> str:
    """Hex root of the tree over hex entry hashes ``leaves`` (module docstring).

    >>> merkle_root([]) == EMPTY_ROOT
    True
    >>> merkle_root(["00" * 32])[:12]
    '7f9c9e31ac82'
    """
    return EMPTY_ROOT if not leaves else _mth(leaves).hex()


def inclusion_proof(leaves: Sequence[str], index: int) -> list[str]:
    """Sibling hashes (hex, leaf level first) proving that ``leaves[index]`` is in the tree.

    >>> hs = [bytes([i]).hex() * 32 for i in range(5)]
    >>> all(verify_inclusion(h, i, 5, inclusion_proof(hs, i), merkle_root(hs)) for i, h in enumerate(hs))
    True
    """
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf {index} of a tree with {len(leaves)} leaves")
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*inclusion_proof(leaves[:k], index), _mth(leaves[k:]).hex()]
    return [*inclusion_proof(leaves[k:], index - k), _mth(leaves[:k]).hex()]


def verify_inclusion(leaf: str, index: int, size: int, proof: Sequence[str], root: str) -> bool:
    """Whether ``proof`` shows leaf ``index`` (hex hash ``leaf``) in a tree of ``size`` leaves with
    ``root`` (the verification algorithm of RFC 9162, section 2.1.3.2)."""
    if not 0 <= index < size:
        return False
    try:
        fn, sn = index, size - 1
        r = _leaf(leaf)
        for p in proof:
            sibling = bytes.fromhex(p)
            if sn == 0:
                return False
            if fn % 2 == 1 or fn == sn:
                r = _node(sibling, r)
                if fn % 2 == 0:
                    while fn % 2 == 0 and fn != 0:
                        fn, sn = fn >> 1, sn >> 1
            else:
                r = _node(r, sibling)
            fn, sn = fn >> 1, sn >> 1
    except ValueError:  # not hex
        return False
    return sn == 0 and r.hex() == root
