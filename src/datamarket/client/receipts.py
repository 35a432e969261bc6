"""A receipt checked offline, by the ledger's own checks (:mod:`datamarket.ledger.proofs`, which needs
no database: nothing of SQLAlchemy is imported).

A receipt holds the participant's own ledger entries with every hashed field, their salts included,
the round's Merkle root and size and an inclusion proof of each entry (the checkpoint). Offline, with
nothing but the receipt, :func:`receipt_problems` recomputes each entry's hash from its fields, checks
each proof against the root, that the entries are of the receipt's round, participant and currency
and that they add up to its net amount. That the service's ledger still holds the round as it was is
the other half: keep the receipt and later send its checkpoint to ``POST /ledger/checkpoint``
(:meth:`~datamarket.client.Client.verify_checkpoint`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

from datamarket.client.errors import ReceiptInvalid
from datamarket.ledger import proofs

R = TypeVar("R", bound=BaseModel | Mapping[str, Any])


def receipt_problems(receipt: BaseModel | Mapping[str, Any]) -> list[str]:
    """What is wrong with ``receipt`` on its own (empty: nothing); a receipt as the client returns it
    (:class:`~datamarket.service.api.schemas.ReceiptOut`) or as JSON data (a file you kept)."""
    data = receipt.model_dump(mode="json") if isinstance(receipt, BaseModel) else receipt
    return proofs.receipt_problems(data)


def verify_receipt(receipt: R) -> R:
    """``receipt`` itself when it verifies offline (:func:`receipt_problems`), else
    :class:`~datamarket.client.errors.ReceiptInvalid` listing the problems."""
    problems = receipt_problems(receipt)
    if problems:
        raise ReceiptInvalid(problems)
    return receipt
