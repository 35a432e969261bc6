"""Rounds: opening one over a market's unconsumed inputs (steps 1 of
:mod:`datamarket.service.clearing.runner`), retrying a failed one, and reading them.

Opening reads and checks the inputs with the adapter in a read-only session (no computation holds a
write lock); a short write transaction then locks the market row, checks that the inputs did not
change meanwhile and inserts the round ``pending`` with its seed commitment. The partial unique index
``uq_round_active`` (migration 0002) lets at most one ``pending``/``running`` round per market exist:
a concurrent open or retry fails in the database (409), not in a Python check. A failed round can be
retried (compare-and-set ``failed -> pending``); a cleared one cannot (409).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from datamarket.core.errors import DatamarketError
from datamarket.ledger.models import Market, Round, Submission, utcnow
from datamarket.service.adapters import Adapter
from datamarket.service.auth import Principal
from datamarket.service.store.db import Database, rowcount
from datamarket.service.store.errors import Conflict, NotReady
from datamarket.service.store.idempotency import Keyed, create_once, find, request_hash
from datamarket.service.store.rows import get_or_404, window
from datamarket.service.store.submissions import load_inputs, unconsumed_ids
from datamarket.service.uploads import UploadLimits


def seed_commitment(seed: int, salt: str) -> str:
    """The commitment published when a round opens: ``sha256(salt ":" seed)`` (hex).

    The seed is revealed with the salt in the receipts; anyone can recompute the hash.

    >>> seed_commitment(7, "ab")[:16]
    'b7e1dfec11fd191b'
    """
    return hashlib.sha256(f"{salt}:{seed}".encode()).hexdigest()


def round_view(r: Round, who: Principal) -> dict[str, Any]:
    """A round as ``who`` may see it: the seed once cleared (the operator: always), the outcome and the
    certificate's checks for the operator only."""
    return {
        "id": r.id,
        "market_id": r.market_id,
        "status": r.status,
        "progress": r.progress,
        "stage": r.stage,
        "attempts": r.attempts,
        "claimed_by": r.claimed_by,
        "lease_expires_at": r.lease_expires_at,
        "lease_expiries": r.lease_expiries or 0,
        "seed": r.seed if who.is_admin or r.status == "cleared" else None,
        "seed_commit": r.seed_commit,
        "seed_source": r.seed_source,
        "input_ids": list(r.input_ids),
        "error": r.error,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "outcome": r.outcome if who.is_admin else None,
        "certificate_passed": None if r.certificate is None else bool(r.certificate.get("passed")),
        "certificate": r.certificate if who.is_admin else None,
    }


def busy_round(s: Session, mid: int) -> None:
    """:class:`Conflict` while a round of market ``mid`` is pending or running."""
    busy = s.execute(
        select(Round.id).where(Round.market_id == mid, Round.status.in_(("pending", "running")))
    ).first()
    if busy is not None:
        raise Conflict(f"round {busy[0]} of market {mid} is still in progress")


def _draw_seed(seed: int | None) -> tuple[int, str, str]:
    """``(seed, salt, source)``: the operator's seed, or one from the operating system's CSPRNG."""
    if seed is not None:
        return seed, secrets.token_hex(16), "operator"
    return secrets.randbits(32), secrets.token_hex(16), "csprng"


def open_round(
    db: Database,
    adapters: Mapping[str, Adapter],
    limits: UploadLimits,
    who: Principal,
    mid: int,
    seed: int | None = None,
    key: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """Open a round over the market's unconsumed inputs: ``(round, created)`` (module docstring).

    :class:`NotReady` when the adapter finds the inputs cannot be cleared yet, :class:`Conflict` while
    another round of the market is in progress or when the inputs changed meanwhile; ``created`` is
    False for a replay of ``key``. The caller hands a created round to the round runner.
    """
    keyed = Keyed(Round, Round.market_id == mid, key, request_hash("round", mid, seed))
    with db.read() as s:  # 1. read and check the inputs without holding a write lock
        m = get_or_404(s, Market, mid, "market")
        old = find(s, keyed)
        if old is not None:
            return round_view(old, who), False
        busy_round(s, mid)
        ids = unconsumed_ids(s, mid)
        inputs = load_inputs(s, ids, limits)
        kind, params = m.kind, dict(m.params)
    try:
        adapters[kind].check_inputs(params, inputs)
    except DatamarketError as exc:  # the request is fine; the market's state does not allow a round
        raise NotReady(str(exc), getattr(exc, "field", None)) from None
    drawn, salt, source = _draw_seed(seed)

    def lock(s: Session) -> None:  # opening, retrying, excluding and booking all lock the market row
        s.execute(select(Market.id).where(Market.id == mid).with_for_update())

    def build(s: Session) -> Round:  # 2. the inputs must still be those checked
        if unconsumed_ids(s, mid) != ids:
            raise Conflict("the market's inputs changed while the round was checked; retry")
        commit = seed_commitment(drawn, salt)
        return Round(
            market_id=mid, seed=drawn, seed_salt=salt, seed_commit=commit, seed_source=source, input_ids=ids
        )

    try:
        return create_once(db, keyed, build, lambda r: round_view(r, who), lock)
    except IntegrityError:  # uq_round_active: another round of the market won
        with db.read() as s:
            busy_round(s, mid)
        raise Conflict(f"another round of market {mid} was opened concurrently") from None


def retry(db: Database, who: Principal, rid: int) -> dict[str, Any]:
    """Move a failed round back to ``pending`` on the same inputs; :class:`Conflict` unless it failed,
    its inputs are all still unconsumed and no other round of the market is in progress."""
    try:
        with db.write() as s:
            r = get_or_404(s, Round, rid, "round")
            # lock the market row (as opening and booking do), then check with fresh reads
            s.execute(select(Market.id).where(Market.id == r.market_id).with_for_update())
            used = s.execute(
                select(Submission.id).where(
                    Submission.id.in_(list(r.input_ids)),
                    or_(Submission.consumed_round_id.is_not(None), Submission.excluded_at.is_not(None)),
                )
            ).first()
            if used is not None:
                raise Conflict(f"submission {used[0]} was used by another round or excluded")
            moved = s.execute(  # compare-and-set: only one of concurrent retries matches
                update(Round)
                .where(Round.id == rid, Round.status == "failed")
                .values(
                    status="pending",
                    progress=0.0,
                    stage="retry",
                    error=None,
                    claimed_by=None,
                    lease_expires_at=None,
                    lease_expiries=0,
                    updated_at=utcnow(),
                )
            )
            s.refresh(r)
            if rowcount(moved) != 1:
                raise Conflict(f"round {rid} is {r.status}; only a failed round can be retried")
            return round_view(r, who)
    except IntegrityError:  # uq_round_active: another round of the market is in progress
        raise Conflict(f"another round of round {rid}'s market is in progress") from None


def list_rounds(
    db: Database, who: Principal, mid: int, after: int = 0, limit: int | None = None
) -> list[dict[str, Any]]:
    """The rounds of a market by id, after ``after`` (:func:`~datamarket.service.store.rows.window`)."""
    with db.read() as s:
        get_or_404(s, Market, mid, "market")
        q = window(select(Round).where(Round.market_id == mid), Round.id, after, limit)
        return [round_view(r, who) for r in s.execute(q).scalars()]


def get_round(db: Database, who: Principal, rid: int) -> dict[str, Any]:
    """One round."""
    with db.read() as s:
        return round_view(get_or_404(s, Round, rid, "round"), who)
