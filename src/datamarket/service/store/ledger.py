"""Reading the ledger: verification (whole chain, or a participant's checkpoint), export, entries and
balances."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from datamarket.ledger import audit, chain
from datamarket.service.auth import Principal
from datamarket.service.store.db import Database


def verify(db: Database) -> dict[str, Any]:
    """The hash chain recomputed and checked against rounds, submissions and deliverables."""
    with db.read() as s:
        return audit.verify(s).to_dict()


def verify_checkpoint(db: Database, who: Principal, checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """Whether the ledger still extends ``checkpoint`` (kept from a receipt). A participant sees the
    checkpoint's own problems and only the number of other problems."""
    with db.read() as s:
        rep = audit.verify_checkpoints(s, [dict(checkpoint)])
        own = audit.check_checkpoint(dict(checkpoint), chain.records(s))
    out = rep.to_dict()
    if not who.is_admin:
        hidden = len(rep.problems) - len(own)
        out["problems"] = own + ([f"{hidden} other problem(s) found; ask the operator"] if hidden else [])
    return out


def export(db: Database) -> str:
    """The ledger as JSON Lines (``datamarket ledger verify --file`` checks it offline)."""
    with db.read() as s:
        return "".join(line + "\n" for line in audit.export_lines(s))


def entries(db: Database) -> dict[str, Any]:
    """Every ledger entry and the chain head."""
    with db.read() as s:
        return chain.dump(s)


def balances(db: Database) -> dict[str, dict[str, int]]:
    """Net minor units per account and currency, the platform included."""
    with db.read() as s:
        return chain.balances(s)
