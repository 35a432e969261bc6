"""The one idempotent replay: every write that takes an ``Idempotency-Key`` goes through
:func:`create_once`.

A keyed write stores, with the row it creates, the key (column ``idempotency_key``, unique within its
scope: a participant's submissions, a market's rounds) and the SHA-256 of the request
(:func:`request_hash` of the request's canonical JSON). A repeat with the same key finds that row:

* the same request hash: the first response again (``created`` is False: status 200, no new row);
* another hash: :class:`~datamarket.service.store.errors.Conflict` (409);
* concurrent repeats race on the unique constraint: the loser's insert fails and it answers the
  winner's row (a caller whose insert failed on another constraint gets the ``IntegrityError``).

Where the hash is kept (:func:`stored_hash` reads it, :func:`stamp` writes it; nowhere else): rounds in
their column ``request_hash`` (migration 0002), submissions in their payload under ``"_request"``
(they have no such column; the views never show it). A row without a hash is answered as a replay:
only rounds opened before migration 0002 are such rows (every submission ever stored with a key
carries ``"_request"``, from the first version on), so one rule reads every existing database as the
two copies of the replay it replaces did.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from datamarket.ledger.models import Round, Submission
from datamarket.service.store.db import Database
from datamarket.service.store.errors import Conflict

Row = Round | Submission
V = TypeVar("V")
PAYLOAD_KEY = "_request"


def request_hash(*parts: Any) -> str:
    """SHA-256 of a request's canonical JSON (to tell a replay from a different request).

    >>> request_hash("round", 1, None)[:12]
    'b771e10e1b6e'
    """
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def stored_hash(row: Row) -> str | None:
    """The request hash stored with ``row`` (None for a row written without one)."""
    if isinstance(row, Round):
        return row.request_hash
    value = (row.payload or {}).get(PAYLOAD_KEY)
    return None if value is None else str(value)


def stamp(row: Row, digest: str) -> None:
    """Store the request hash ``digest`` with the new ``row`` (where its table keeps it)."""
    if isinstance(row, Round):
        row.request_hash = digest
    else:
        row.payload = {**(row.payload or {}), PAYLOAD_KEY: digest}


@dataclass(frozen=True)
class Keyed:
    """A keyed write: the table, the scope the key is unique in, the key (None: not idempotent) and
    the request's hash."""

    model: type[Round] | type[Submission]
    scope: ColumnElement[bool]
    key: str | None
    digest: str


def find(s: Session, keyed: Keyed) -> Any:
    """The row created earlier under ``keyed.key``, or None; :class:`Conflict` when it was created by
    another request."""
    if keyed.key is None:
        return None
    model: Any = keyed.model
    found = s.connection().execute(select(model.id).where(keyed.scope, model.idempotency_key == keyed.key))
    ident = found.scalar_one_or_none()  # the id alone: the whole row is loaded only for a replay
    old = None if ident is None else s.get(model, ident)
    if old is None:
        return None
    if stored_hash(old) not in (None, keyed.digest):
        raise Conflict("Idempotency-Key already used with a different request")
    return old


def create_once(
    db: Database,
    keyed: Keyed,
    build: Callable[[Session], Any],
    view: Callable[[Any], V],
    prepare: Callable[[Session], None] | None = None,
    after: Callable[[Session, Any], None] | None = None,
) -> tuple[V, bool]:
    """``(view of the row, created)``: in one write transaction the replay of an earlier row with the
    same key, else ``prepare`` (checks, locks: taken after the replay's lookup, so that a replay takes
    none and a lock is held one statement less), ``build`` a new row (its checks included), which is
    stamped with the request hash and inserted (one ``INSERT``), then ``after(session, row)`` (what the
    new row's id decides, in the same transaction). A row inserted under the same key after the lookup
    fails the unique constraint, and the winner's row is answered as the replay. The transaction may
    be committed together with other threads' (:meth:`~datamarket.service.store.db.Database.batched`);
    it is committed when this returns."""

    def once(s: Session) -> tuple[V, bool]:
        old = find(s, keyed)
        if old is not None:
            return view(old), False
        if prepare is not None:
            prepare(s)
        row = build(s)
        row.idempotency_key = keyed.key
        stamp(row, keyed.digest)
        s.add(row)
        s.flush()
        if after is not None:
            after(s, row)
        return view(row), True

    try:
        return db.batched(once)
    except IntegrityError:  # a concurrent request with the same key won the race (or another constraint)
        with db.read() as s:
            old = find(s, keyed)
            if old is None:
                raise
            return view(old), False
