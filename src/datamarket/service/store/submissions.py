"""Submissions: JSON inputs and dataset uploads (stored once per ``Idempotency-Key``), reading them
back, exclusion and withdrawal, and the adapter's view of a market's inputs (:func:`load_inputs`).

Adapters read only each participant's latest waiting submission of a kind
(:func:`~datamarket.service.adapters.latest_by`; kinds the adapter declares ``cumulative_kinds``
excepted, :mod:`datamarket.service.adapters.plans`). So a new submission excludes its owner's earlier
waiting ones of its kind, in the transaction that stores it, with the reason ``superseded by #N,
ignored`` (:func:`submission_view`'s ``superseded_by``): nothing is used without a word. An input of
a round in progress is left to that round. An upload whose number of rows differs from what the
determined plan asks of the participant (the adapter's ``plan_quota``) is refused before it is stored.

**Answered at once.** A submission of a kind the adapter lists in ``answer_kinds`` (the real-time
market's bid) is answered in the transaction that stores it, under the market's lock
(:func:`_answer`): the adapter's ``answer(params, inputs, new, previous)`` sees the market's waiting
inputs and the private part of the market's previous answer, and returns what the participant is
told (stored as ``payload.answer``, shown in the submission) and what the clearing needs later
(``payload._answer``: never shown, like every payload key that starts with ``_``). An answered
submission cannot be withdrawn by its owner (it was delivered); kinds in ``standing_kinds`` stay
waiting after a round (:mod:`datamarket.service.clearing.runner`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from datamarket.core.errors import DatamarketError, InvalidInputError
from datamarket.ledger.models import Market, Participant, Round, Submission, utcnow
from datamarket.service.adapters import Adapter, Input, answer_kinds_of, documented, require_kind
from datamarket.service.adapters.plans import plan_quota_of, quota_problem, supersedes
from datamarket.service.auth import Principal
from datamarket.service.store.db import Database, rowcount
from datamarket.service.store.errors import Busy, Conflict, NotFound, NotReady, TooLarge
from datamarket.service.store.idempotency import Keyed, create_once, request_hash
from datamarket.service.store.rows import check_owner, get_or_404, window
from datamarket.service.uploads import (
    Admission,
    UploadLimits,
    check_columns,
    check_filename,
    dataset_summary,
    detect_format,
    pack_dataset,
    parse_budget,
    parse_cost,
    parse_dataset,
    unpack_dataset,
)

SUPERSEDED = "superseded by #{}, ignored"
_SUPERSEDED = re.compile(r"superseded by #(\d+), ignored")


ANSWER_KEY = "_answer"
"""Where an answered submission's private part is kept in its payload (module docstring)."""


def submission_view(x: Submission) -> dict[str, Any]:
    """A submission's metadata (the stored request hash and every private ``_`` key left out);
    ``superseded_by``: the id of the later submission of its kind that replaced it while it waited
    (module docstring), else None."""
    replaced = _SUPERSEDED.fullmatch(x.excluded_reason or "")
    return {
        "id": x.id,
        "market_id": x.market_id,
        "participant_id": x.participant_id,
        "kind": x.kind,
        "payload": {k: v for k, v in (x.payload or {}).items() if not k.startswith("_")},
        "content_hash": x.content_hash,
        "size_bytes": x.size_bytes,
        "media_type": x.media_type,
        "filename": x.filename,
        "consumed_round_id": x.consumed_round_id,
        "excluded_at": x.excluded_at,
        "excluded_reason": x.excluded_reason,
        "superseded_by": int(replaced.group(1)) if replaced else None,
        "created_at": x.created_at,
    }


# -- the adapter's view of inputs -------------------------------------------------------------------
def unconsumed_ids(s: Session, market_id: int) -> list[int]:
    """Ids of the market's submissions that no round consumed and nobody excluded, in order."""
    return list(
        s.execute(
            select(Submission.id)
            .where(
                Submission.market_id == market_id,
                Submission.consumed_round_id.is_(None),
                Submission.excluded_at.is_(None),
            )
            .order_by(Submission.id)
        ).scalars()
    )


def load_inputs(s: Session, ids: list[int], limits: UploadLimits, *, datasets: bool = True) -> list[Input]:
    """The adapter's view of submissions ``ids``: payloads and the datasets stored parsed at upload.

    Rows from before migration 0002 have no parsed form; their bytes are parsed here (once per call).
    With ``datasets=False`` only kinds and payloads are read.
    """
    cols: list[Any] = [Submission.id, Submission.kind, Submission.payload, Participant.name]
    cols.append(Submission.blob.is_not(None).label("is_upload"))
    if datasets:
        cols += [Submission.parsed, Submission.blob]
    rows = s.execute(
        select(*cols)
        .join(Participant, Submission.participant_id == Participant.id)
        .where(Submission.id.in_(ids))
        .order_by(Submission.id)
    ).all()
    out = []
    for row in rows:
        meta = dict(row.payload or {})
        ds = None
        if datasets and row.parsed is not None:
            ds = unpack_dataset(row.parsed)
        elif datasets and row.blob is not None:
            ds = parse_dataset(
                row.blob,
                str(meta.get("format", "csv")),
                label_column=str(meta.get("label_column", "label")),
                group_column=str(meta.get("group_column", "group")),
                limits=limits,
            )
        out.append(Input(row.name, row.kind, meta if row.is_upload else _json_input(meta), ds))
    return out


def _json_input(meta: Mapping[str, Any]) -> Mapping[str, Any]:
    """A JSON submission's data as its adapter sees it: with its answer, public and private, if any."""
    data = meta.get("data", {})
    if "answer" not in meta:
        return data  # type: ignore[no-any-return]
    return {**data, "answer": meta["answer"], ANSWER_KEY: meta.get(ANSWER_KEY, {})}


# -- storing ------------------------------------------------------------------------------------------
# One write transaction per submission (idempotency.create_once): the key's earlier row looked up, the
# market row locked, the caller's waiting inputs read once under that lock (the adapter's check and
# what the new input supersedes both come from them), the INSERT, and only when something is
# superseded the rounds in progress and the UPDATE. The market (kind, parameters: never changed once
# created) comes from the process's memo (store.db.Memo), not from another transaction. The statements
# are built once, with bound parameters, and run on the session's connection (building one, or running
# it through the ORM, costs about as much as running it).
_LOCK_MARKET = select(Market.id).where(Market.id == bindparam("mid")).with_for_update()
_WAITING = (
    select(Submission.id, Submission.kind, Submission.payload, Submission.blob.is_not(None).label("upload"))
    .where(
        Submission.market_id == bindparam("mid"),
        Submission.participant_id == bindparam("pid"),
        Submission.consumed_round_id.is_(None),
        Submission.excluded_at.is_(None),
    )
    .order_by(Submission.id)
)
_IN_PROGRESS = select(Round.input_ids).where(
    Round.market_id == bindparam("mid"), Round.status.in_(("pending", "running"))
)
_SUPERSEDE = (  # none of the rows is loaded in the session: nothing there to synchronise
    update(Submission)
    .where(Submission.id.in_(bindparam("ids", expanding=True)))
    .values(excluded_at=bindparam("at"), excluded_reason=bindparam("reason"))
)


def _waiting(s: Session, market_id: int, participant_id: int | None) -> list[Any]:
    """The caller's submissions in the market that no round consumed and nobody excluded, in order:
    id, kind, payload and whether it is an upload."""
    return list(s.connection().execute(_WAITING, {"mid": market_id, "pid": participant_id}))


def _fits(adapter: Adapter, who: Principal, m: Market, waiting: list[Any], new: Input) -> None:
    """The adapter's check of ``new`` against the caller's ``waiting`` inputs in the market (read
    under the market's lock, so that two concurrent submissions see each other)."""
    check = getattr(adapter, "check_submission", None)
    if check is None:
        return
    name = who.name or ""
    mine = [
        Input(name, w.kind, dict(w.payload or {}) if w.upload else (w.payload or {}).get("data", {}))
        for w in waiting
    ]
    try:
        check(m.params, mine, new)
    except InvalidInputError as exc:  # a fine input that the participant's earlier ones exclude
        raise NotReady(str(exc), getattr(exc, "field", None)) from None


def _answer(
    s: Session, adapter: Adapter, m: Market, row: Submission, new: Input, limits: UploadLimits
) -> None:
    """Answer ``row`` at once (module docstring): the caller holds the market's lock, so answers are
    given one at a time, each after the previous one is stored."""
    inputs = load_inputs(s, unconsumed_ids(s, m.id), limits)
    kinds = sorted(answer_kinds_of(adapter))
    last = s.execute(
        select(Submission.payload)
        .where(Submission.market_id == m.id, Submission.kind.in_(kinds))
        .order_by(Submission.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    previous = None if last is None else (last or {}).get(ANSWER_KEY)
    try:
        public, private = adapter.answer(m.params, inputs, new, previous)  # type: ignore[attr-defined]
    except InvalidInputError as exc:  # the market cannot answer yet (no seller): a fine request, refused
        raise NotReady(f"market {m.id} ({m.kind}): {exc}", getattr(exc, "field", None)) from None
    row.payload = {**(row.payload or {}), "answer": public, ANSWER_KEY: private}


def _store(
    db: Database,
    adapter: Adapter,
    who: Principal,
    m: Market,
    key: str | None,
    row: Submission,
    digest: str,
    limits: UploadLimits,
) -> tuple[dict[str, Any], bool]:
    """Insert ``row`` (or replay the one stored under ``key``, created by the request ``digest``)
    after the adapter's check, superseding the caller's earlier waiting inputs of its kind, answered
    at once when its kind is one the adapter answers."""
    new = Input(who.name or "", row.kind, row.payload.get("data", {}) if row.blob is None else row.payload)
    replaces = supersedes(adapter, row.kind)
    reads = replaces or getattr(adapter, "check_submission", None) is not None
    stale: list[int] = []

    def prepare(s: Session) -> None:  # the market row first, as opening a round and excluding do
        if s.connection().execute(_LOCK_MARKET, {"mid": m.id}).first() is None:
            raise NotFound(f"market {m.id} not found")

    def build(s: Session) -> Submission:
        waiting = _waiting(s, m.id, who.participant_id) if reads else []
        _fits(adapter, who, m, waiting, new)
        stale.extend(w.id for w in waiting if replaces and w.kind == row.kind)
        if row.kind in answer_kinds_of(adapter):
            _answer(s, adapter, m, row, new, limits)
        return row

    def after(s: Session, stored: Submission) -> None:
        if stale:
            _supersede(s, stored, stale)

    keyed = Keyed(Submission, Submission.participant_id == who.participant_id, key, digest)
    return create_once(db, keyed, build, submission_view, prepare, after)


def _supersede(s: Session, row: Submission, earlier: list[int]) -> None:
    """Exclude ``earlier`` (the owner's waiting submissions of ``row``'s kind in its market), except
    the inputs of a round in progress, with the reason :data:`SUPERSEDED`; the caller holds the
    market's lock."""
    busy = s.connection().execute(_IN_PROGRESS, {"mid": row.market_id}).scalars()
    held = {int(i) for ids in busy for i in ids or []}
    stale = [i for i in earlier if i not in held]
    if stale:
        s.connection().execute(
            _SUPERSEDE, {"ids": stale, "at": utcnow(), "reason": SUPERSEDED.format(row.id)}
        )


def _check_quota(
    db: Database, adapter: Adapter, limits: UploadLimits, who: Principal, m: Market, kind: str, n_rows: int
) -> None:
    """:class:`NotReady` when the plan that the market's waiting inputs determine asks ``who`` for
    another number of rows of ``kind`` (the adapter's ``plan_quota``); nothing to check while the
    inputs do not determine it (the round's check then compares the plan with the upload)."""
    if kind not in plan_quota_of(adapter):
        return
    with db.read() as s:
        inputs = load_inputs(s, unconsumed_ids(s, m.id), limits)
    try:
        plan = adapter.plan(m.params, inputs)
    except DatamarketError:
        return
    problem = quota_problem(adapter, plan, kind, who.name, n_rows)
    if problem is not None:
        raise NotReady(problem, "file")


def _market(db: Database, adapters: Mapping[str, Adapter], mid: int) -> tuple[Market, Adapter]:
    """Market ``mid`` (remembered by the process: a market never changes) and its adapter."""

    def read() -> Market | None:
        with db.read() as s:
            return s.get(Market, mid)

    m = db.memo.get(("market", mid), read)
    if m is None:
        raise NotFound(f"market {mid} not found")
    return m, adapters[m.kind]


def submit_json(
    db: Database,
    adapters: Mapping[str, Adapter],
    limits: UploadLimits,
    who: Principal,
    mid: int,
    kind: str,
    data: Mapping[str, Any],
    key: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """Store a JSON input (a bid, a cost, a task...) validated by the market's adapter:
    ``(submission, created)``; ``created`` is False for a replay of ``key``.

    An input of a kind this market does not take, but another kind of market does, is
    :class:`NotReady` (409), and so is data that this market refuses (its parameters) but another
    market kind's model takes (the OpenAPI schema documents the union): the request is well formed,
    the market refuses it. Data that no market kind's model takes is invalid (422)."""
    m, adapter = _market(db, adapters, mid)
    try:
        require_kind(adapter, kind, has_dataset=False)
    except InvalidInputError as exc:  # another kind of market's input
        if any(kind in a.submission_kinds and kind not in a.dataset_kinds for a in adapters.values()):
            raise NotReady(f"market {mid} ({m.kind}): {exc}", getattr(exc, "field", None)) from None
        raise
    try:
        valid = adapter.validate_submission(m.params, kind, data, None)
    except InvalidInputError as exc:
        if documented(adapters, kind, data):
            raise NotReady(f"market {mid} ({m.kind}): {exc}", getattr(exc, "field", None)) from None
        raise
    content = json.dumps(valid, sort_keys=True).encode()
    row = Submission(
        market_id=mid,
        participant_id=who.participant_id,
        kind=kind,
        payload={"data": valid},
        content_hash=hashlib.sha256(content).hexdigest(),
        size_bytes=len(content),
    )
    return _store(db, adapter, who, m, key, row, request_hash("json", mid, kind, valid), limits)


@dataclass(frozen=True)
class Upload:
    """An uploaded file and how to read it (the query of ``POST /markets/{id}/datasets``)."""

    data: bytes
    kind: str = "dataset"
    format: str | None = None
    content_type: str | None = None
    filename: str | None = None
    label_column: str = "label"
    group_column: str = "group"


def check_size(size: int, limits: UploadLimits) -> None:
    """:class:`TooLarge` for an upload of ``size`` bytes over ``limits.max_bytes``."""
    if size > limits.max_bytes:
        raise TooLarge(f"upload exceeds the limit of {limits.max_bytes} bytes")


def upload_dataset(
    db: Database,
    adapters: Mapping[str, Adapter],
    limits: UploadLimits,
    who: Principal,
    mid: int,
    up: Upload,
    key: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """Parse, validate and store an uploaded dataset with its parsed form: ``(submission, created)``.

    The names are checked first (:func:`~datamarket.service.uploads.check_filename`); the parse and
    the storing hold an admission of the process's parse budget (:class:`Busy` when it is full:
    nothing is parsed or stored)."""
    check_size(len(up.data), limits)
    filename = check_filename(up.filename)
    check_columns(up.label_column, up.group_column)
    fmt = detect_format(up.format, up.content_type, filename)
    m, adapter = _market(db, adapters, mid)
    try:
        require_kind(adapter, up.kind, has_dataset=True)
    except InvalidInputError as exc:
        if any(up.kind in a.dataset_kinds for a in adapters.values()):
            raise NotReady(f"market {mid} ({m.kind}): {exc}", getattr(exc, "field", None)) from None
        raise
    admission = parse_budget(limits).admit(lambda: parse_cost(up.data, fmt, limits), size=len(up.data))
    if admission is None:
        raise Busy(
            f"the server is parsing as many uploads as its memory allows: nothing was stored, "
            f"retry after {limits.busy_retry_after} s",
            limits.busy_retry_after,
        )
    with admission:
        return _parse_and_store(db, adapter, limits, who, m, up, fmt, key, admission)


def _parse_and_store(
    db: Database,
    adapter: Adapter,
    limits: UploadLimits,
    who: Principal,
    m: Market,
    up: Upload,
    fmt: str,
    key: str | None,
    admission: Admission,
) -> tuple[dict[str, Any], bool]:
    """The rest of :func:`upload_dataset`, once admitted: parse, the adapter's check, store (the
    parse's slot given back before waiting for the database, its bytes still held)."""
    mid = m.id
    media_type = (up.content_type or "").split(";", 1)[0].strip()[:100] or None
    ds = parse_dataset(
        up.data, fmt, label_column=up.label_column, group_column=up.group_column, limits=limits
    )
    try:
        extra = adapter.validate_submission(m.params, up.kind, {}, ds)
    except InvalidInputError as exc:  # the file reads: this market does not take it
        raise NotReady(f"market {mid} ({m.kind}): {exc}", getattr(exc, "field", None)) from None
    _check_quota(db, adapter, limits, who, m, up.kind, ds.n_samples)
    digest = hashlib.sha256(up.data).hexdigest()
    payload = {
        "format": fmt,
        "label_column": up.label_column,
        "group_column": up.group_column,
        **dataset_summary(ds),
        **extra,
    }
    row = Submission(
        market_id=mid,
        participant_id=who.participant_id,
        kind=up.kind,
        payload=payload,
        blob=up.data,
        parsed=pack_dataset(ds),  # outside the write transaction, like every computation
        media_type=media_type,
        filename=up.filename or None,
        content_hash=digest,
        size_bytes=len(up.data),
    )
    rh = request_hash(up.kind, mid, digest, fmt, up.label_column, up.group_column)
    admission.parsed()
    return _store(db, adapter, who, m, key, row, rh, limits)


# -- reading and excluding ------------------------------------------------------------------------
def list_submissions(
    db: Database, who: Principal, mid: int, after: int = 0, limit: int | None = None
) -> list[dict[str, Any]]:
    """The market's submissions by id, after ``after`` (:func:`~datamarket.service.store.rows.window`):
    every one for the operator, a participant's own for a participant."""
    with db.read() as s:
        get_or_404(s, Market, mid, "market")
        q = select(Submission).where(Submission.market_id == mid)
        if not who.is_admin:
            q = q.where(Submission.participant_id == who.participant_id)
        q = window(q, Submission.id, after, limit)
        return [submission_view(x) for x in s.execute(q).scalars()]


def get_submission(db: Database, who: Principal, sid: int) -> dict[str, Any]:
    """One submission's metadata (its owner or the operator)."""
    with db.read() as s:
        x = get_or_404(s, Submission, sid, "submission")
        check_owner(who, x.participant_id, "submission", sid)
        return submission_view(x)


def content(db: Database, who: Principal, sid: int) -> tuple[bytes, str]:
    """The stored bytes of a submission and their media type (its owner or the operator); a JSON
    input's are its validated data."""
    with db.read() as s:
        x = get_or_404(s, Submission, sid, "submission")
        check_owner(who, x.participant_id, "submission", sid)
        if x.blob is None:
            return json.dumps(x.payload.get("data", {})).encode(), "application/json"
        return x.blob, x.media_type or "application/octet-stream"


def exclude(db: Database, who: Principal, sid: int, reason: str) -> dict[str, Any]:
    """Mark an unconsumed submission excluded from every future round, with ``reason``; :class:`Conflict`
    when it is consumed, already excluded, or an input of the round in progress."""
    with db.write() as s:
        x = get_or_404(s, Submission, sid, "submission")
        check_owner(who, x.participant_id, "submission", sid)
        # serialise with the opening of rounds (which lock the market row too)
        s.execute(select(Market.id).where(Market.id == x.market_id).with_for_update())
        for rid, ids in s.execute(
            select(Round.id, Round.input_ids).where(
                Round.market_id == x.market_id, Round.status.in_(("pending", "running"))
            )
        ):
            if sid in ids:
                raise Conflict(f"submission {sid} is an input of round {rid}, in progress")
        moved = s.execute(
            update(Submission)
            .where(
                Submission.id == sid, Submission.consumed_round_id.is_(None), Submission.excluded_at.is_(None)
            )
            .values(excluded_at=utcnow(), excluded_reason=reason)
        )
        s.refresh(x)
        if rowcount(moved) != 1:
            state = (
                f"consumed by round {x.consumed_round_id}"
                if x.consumed_round_id is not None
                else f"already excluded ({x.excluded_reason})"
            )
            raise Conflict(f"submission {sid} is {state}")
        return submission_view(x)


def exclude_by_operator(db: Database, who: Principal, sid: int, reason: str) -> dict[str, Any]:
    """The operator's exclusion of submission ``sid`` (the reason is recorded with the row)."""
    return exclude(db, who, sid, f"excluded by the operator: {reason}")


def withdraw(db: Database, who: Principal, sid: int) -> dict[str, Any]:
    """A participant's withdrawal of one of its unconsumed submissions; :class:`Conflict` for one that
    was answered at once (module docstring: its owner has the answer; the answer is never removed, so
    the check needs no lock)."""
    with db.read() as s:
        x = get_or_404(s, Submission, sid, "submission")
        check_owner(who, x.participant_id, "submission", sid)
        if "answer" in (x.payload or {}):
            raise Conflict(
                f"submission {sid} was answered at once (you have its answer): it cannot be withdrawn"
            )
    return exclude(db, who, sid, "withdrawn by its owner")
