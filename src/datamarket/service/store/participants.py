"""Participants: registration (the API key given once) and records with their balances."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from datamarket.core.errors import InvalidMarketError
from datamarket.ledger import chain
from datamarket.ledger.models import Participant
from datamarket.ledger.money import PLATFORM, Currency
from datamarket.service.auth import Principal, hash_key, new_api_key
from datamarket.service.store.db import Database
from datamarket.service.store.errors import Conflict
from datamarket.service.store.rows import check_owner, get_or_404, window


def participant_view(s: Session, p: Participant) -> dict[str, Any]:
    """A participant's record with one balance per currency (never summed across currencies)."""
    per = chain.balances(s, p.name).get(p.name, {})
    rows = [
        {"currency": c, "balance_minor": v, "balance": Currency.parse(c, stored=True).format(v)}
        for c, v in sorted(per.items())
    ]
    single = None if len(per) > 1 else sum(per.values())
    return {"id": p.id, "name": p.name, "balance_minor": single, "balances": rows, "created_at": p.created_at}


def register(db: Database, name: str) -> dict[str, Any]:
    """A new participant ``name``: ``{"id", "name", "api_key"}`` (the key is returned only here)."""
    if name == PLATFORM:
        raise InvalidMarketError("name", f"{PLATFORM!r} is reserved for the operator's account")
    key = new_api_key()
    try:
        with db.write() as s:
            p = Participant(name=name, api_key_hash=hash_key(key))
            s.add(p)
            s.flush()
            pid = p.id
    except IntegrityError:
        raise Conflict(f"participant {name!r} already exists") from None
    return {"id": pid, "name": name, "api_key": key}


def list_participants(db: Database, after: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
    """The participants with their balances, by id, after ``after``
    (:func:`~datamarket.service.store.rows.window`)."""
    with db.read() as s:
        q = window(select(Participant), Participant.id, after, limit)
        return [participant_view(s, p) for p in s.execute(q).scalars()]


def get_participant(db: Database, who: Principal, pid: int) -> dict[str, Any]:
    """Participant ``pid`` as ``who`` may see it (itself, or the operator)."""
    with db.read() as s:
        p = get_or_404(s, Participant, pid, "participant")
        check_owner(who, p.id, "participant", pid)
        return participant_view(s, p)


def me(db: Database, who: Principal) -> dict[str, Any]:
    """The calling participant's record."""
    with db.read() as s:
        return participant_view(s, get_or_404(s, Participant, who.participant_id or 0, "participant"))


def principal_of_key(db: Database, key_hash: str) -> Principal | None:
    """The participant whose API key hashes to ``key_hash``, or None."""
    with db.read() as s:
        p = s.execute(select(Participant).where(Participant.api_key_hash == key_hash)).scalar_one_or_none()
    return None if p is None else Principal.of(p)
