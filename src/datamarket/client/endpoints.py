"""Every operation of the service's JSON API a participant or an operator calls, written once.

Each function is one route (:func:`~datamarket.client.calls.endpoint`); the first argument is the
client making the call (:class:`~datamarket.client.calls.Owner`), the others are the method's, and
:class:`~datamarket.client.Client` and :class:`~datamarket.client.AsyncClient` expose each as a
method of the same name. Answers are read into the service's own response models
(:mod:`datamarket.service.api.schemas`, pydantic only), so a field the service renames breaks here
at once. Which routes the service reserves to the operator is the service's business: a participant
calling one gets :class:`~datamarket.client.errors.Forbidden`.

The routes that list rows page their answers (:mod:`datamarket.service.api.paging`); the methods
that call them follow the pages and return the whole list.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from datamarket.client.calls import (
    Many,
    One,
    Owner,
    Ref,
    Spec,
    as_bytes,
    as_json,
    as_text,
    concat,
    endpoint,
    id_of,
    more_entries,
)
from datamarket.client.payloads import encode_dataset, plain, submission_body
from datamarket.client.retry import Safety
from datamarket.service.api.schemas import (
    CheckpointOut,
    KindOut,
    MarketOut,
    ModelOut,
    ParticipantCreated,
    ParticipantOut,
    ReceiptOut,
    RoundOut,
    SubmissionOut,
    VerifyOut,
)

ONCE = Safety.ONCE


def _pages(page_size: int | None) -> dict[str, str]:
    """The query of a paged list: ``page_size`` rows a request (None: the service's default, its
    largest page); the method follows every page whatever the size."""
    return {} if page_size is None else {"limit": str(page_size)}


# -- public -----------------------------------------------------------------------------------------
@endpoint("GET", "/health")
def health(owner: Owner) -> Spec[dict[str, str]]:
    """Liveness: ``{"status": "ok", "version", "instance"}`` (no key needed)."""
    return Spec(as_json)


@endpoint("GET", "/kinds")
def kinds(owner: Owner) -> Spec[list[KindOut]]:
    """The market kinds the service clears and the submissions each accepts (no key needed)."""
    return Spec(Many(KindOut))


# -- participants -----------------------------------------------------------------------------------
@endpoint("POST", "/participants", ONCE)
def register_participant(owner: Owner, name: str) -> Spec[ParticipantCreated]:
    """Register a participant (operator); its ``api_key`` is in the answer, and only there."""
    return Spec(One(ParticipantCreated), json={"name": name})


@endpoint("GET", "/participants")
def list_participants(owner: Owner, *, page_size: int | None = None) -> Spec[list[ParticipantOut]]:
    """Every participant with its balances (operator)."""
    return Spec(Many(ParticipantOut), query=_pages(page_size), join=concat)


@endpoint("GET", "/participants/me")
def me(owner: Owner) -> Spec[ParticipantOut]:
    """The calling participant's record and balances."""
    return Spec(One(ParticipantOut))


@endpoint("GET", "/participants/{pid}")
def get_participant(owner: Owner, participant: Ref) -> Spec[ParticipantOut]:
    """A participant's record (itself, or any for the operator)."""
    return Spec(One(ParticipantOut), {"pid": id_of(participant)})


# -- markets ----------------------------------------------------------------------------------------
@endpoint("POST", "/markets", ONCE)
def create_market(
    owner: Owner,
    kind: str,
    params: BaseModel | Mapping[str, Any] | None = None,
    *,
    name: str = "",
    currency: str | None = None,
    scale: int | None = None,
) -> Spec[MarketOut]:
    """Create a market of ``kind`` (operator); ``params`` as the family's ``Params`` model of
    :mod:`datamarket.scenarios.inputs` or a dict; ``currency`` (ISO 4217 or ``NAME:e``) and
    ``scale`` as the service takes them (default USD, 100 minor units)."""
    body: dict[str, Any] = {"kind": kind, "name": name, "params": plain(params)}
    if currency is not None:
        body["currency"] = currency
    if scale is not None:
        body["scale"] = scale
    return Spec(One(MarketOut), json=body)


@endpoint("GET", "/markets")
def list_markets(owner: Owner, *, page_size: int | None = None) -> Spec[list[MarketOut]]:
    """Every market."""
    return Spec(Many(MarketOut), query=_pages(page_size), join=concat)


@endpoint("GET", "/markets/{mid}")
def get_market(owner: Owner, market: Ref) -> Spec[MarketOut]:
    """One market."""
    return Spec(One(MarketOut), {"mid": id_of(market)})


@endpoint("GET", "/markets/{mid}/plan")
def get_plan(owner: Owner, market: Ref) -> Spec[dict[str, Any]]:
    """What the mechanism asks given the inputs so far: the operator reads the whole plan, a
    participant its own row, ``aggregates`` and ``next_steps`` (sentences: what to submit or upload
    next). :class:`~datamarket.client.errors.Conflict` while the inputs do not determine it."""
    return Spec(as_json, {"mid": id_of(market)})


# -- submissions ------------------------------------------------------------------------------------
@endpoint("POST", "/markets/{mid}/submissions", keyed=True)
def submit(
    owner: Owner, market: Ref, data: BaseModel | Mapping[str, Any], kind: str | None = None
) -> Spec[SubmissionOut]:
    """Submit a JSON input: a submission model of :mod:`datamarket.scenarios.inputs` (its kind is
    known) or a dict with ``kind`` (:func:`~datamarket.client.payloads.submission_body`)."""
    return Spec(One(SubmissionOut), {"mid": id_of(market)}, json=submission_body(data, kind))


@endpoint("POST", "/markets/{mid}/datasets", keyed=True)
def upload(
    owner: Owner,
    market: Ref,
    data: Any,
    *,
    kind: str = "dataset",
    labels: Any = None,
    groups: Any = None,
    format: str | None = None,
    filename: str | None = None,
    label_column: str = "label",
    group_column: str = "group",
) -> Spec[SubmissionOut]:
    """Upload a dataset of submission ``kind`` (``dataset``, ``task``...): a path, bytes, a pandas
    DataFrame or a numpy array, with ``labels`` and ``groups`` (:mod:`datamarket.client.payloads`);
    a new upload of a kind replaces your earlier waiting one (``superseded_by``)."""
    enc = encode_dataset(
        data,
        labels=labels,
        groups=groups,
        format=format,
        filename=filename,
        label_column=label_column,
        group_column=group_column,
    )
    query = {"kind": kind}
    if enc.filename is not None:
        query["filename"] = enc.filename
    if label_column != "label":
        query["label_column"] = label_column
    if group_column != "group":
        query["group_column"] = group_column
    headers = {"Content-Type": enc.media_type}
    return Spec(One(SubmissionOut), {"mid": id_of(market)}, query, content=enc.content, headers=headers)


@endpoint("GET", "/markets/{mid}/submissions")
def list_submissions(owner: Owner, market: Ref, *, page_size: int | None = None) -> Spec[list[SubmissionOut]]:
    """The market's submissions: all of them for the operator, your own for a participant."""
    return Spec(Many(SubmissionOut), {"mid": id_of(market)}, _pages(page_size), join=concat)


@endpoint("GET", "/submissions/{sid}")
def get_submission(owner: Owner, submission: Ref) -> Spec[SubmissionOut]:
    """One submission's metadata (its owner or the operator)."""
    return Spec(One(SubmissionOut), {"sid": id_of(submission)})


@endpoint("GET", "/submissions/{sid}/content")
def get_submission_content(owner: Owner, submission: Ref) -> Spec[bytes]:
    """The stored bytes of a submission (its owner or the operator)."""
    return Spec(as_bytes, {"sid": id_of(submission)})


@endpoint("POST", "/submissions/{sid}/exclude", ONCE)
def exclude_submission(owner: Owner, submission: Ref, reason: str) -> Spec[SubmissionOut]:
    """Exclude an unconsumed submission from every future round, with the reason (operator)."""
    return Spec(One(SubmissionOut), {"sid": id_of(submission)}, json={"reason": reason})


@endpoint("POST", "/submissions/{sid}/withdraw", ONCE)
def withdraw_submission(owner: Owner, submission: Ref) -> Spec[SubmissionOut]:
    """Withdraw one of your unconsumed submissions."""
    return Spec(One(SubmissionOut), {"sid": id_of(submission)})


# -- rounds -----------------------------------------------------------------------------------------
@endpoint("POST", "/markets/{mid}/rounds", keyed=True)
def open_round(owner: Owner, market: Ref, seed: int | None = None) -> Spec[RoundOut]:
    """Open a round over the market's unconsumed inputs (operator); it clears in the background:
    follow it with ``wait``. ``seed`` makes it reproducible (default: drawn by the service)."""
    return Spec(One(RoundOut), {"mid": id_of(market)}, json={} if seed is None else {"seed": seed})


@endpoint("GET", "/markets/{mid}/rounds")
def list_rounds(owner: Owner, market: Ref, *, page_size: int | None = None) -> Spec[list[RoundOut]]:
    """Every round of a market (outcomes for the operator only)."""
    return Spec(Many(RoundOut), {"mid": id_of(market)}, _pages(page_size), join=concat)


@endpoint("GET", "/rounds/{rid}")
def get_round(owner: Owner, round: Ref) -> Spec[RoundOut]:
    """A round's status, stage and progress (outcome and certificate for the operator)."""
    return Spec(One(RoundOut), {"rid": id_of(round)})


@endpoint("POST", "/rounds/{rid}/retry", ONCE)
def retry_round(owner: Owner, round: Ref) -> Spec[RoundOut]:
    """Run a failed round again on the same inputs (operator)."""
    return Spec(One(RoundOut), {"rid": id_of(round)})


@endpoint("POST", "/rounds/{rid}/release")
def release_round(owner: Owner, round: Ref, attempt: int | None = None) -> Spec[RoundOut]:
    """End the lease of a stuck running round, only while it is in ``attempt`` when given (operator;
    idempotent)."""
    body = {} if attempt is None else {"attempt": attempt}
    return Spec(One(RoundOut), {"rid": id_of(round)}, json=body)


@endpoint("POST", "/rounds/{rid}/fail")
def fail_round(
    owner: Owner, round: Ref, attempt: int | None = None, reason: str | None = None
) -> Spec[RoundOut]:
    """Fail a pending or running round now: nothing booked, inputs kept (operator; idempotent)."""
    body = {k: v for k, v in (("attempt", attempt), ("reason", reason)) if v is not None}
    return Spec(One(RoundOut), {"rid": id_of(round)}, json=body)


# -- receipts ---------------------------------------------------------------------------------------
@endpoint("GET", "/rounds/{rid}/receipts")
def list_receipts(owner: Owner, round: Ref) -> Spec[list[ReceiptOut]]:
    """Every receipt of a cleared round (operator)."""
    return Spec(Many(ReceiptOut), {"rid": id_of(round)})


def _participant(owner: Owner, participant: Ref | None) -> int:
    if participant is not None:
        return id_of(participant)
    if owner.participant_id is None:
        raise ValueError("name the participant, or make the client with participant_id")
    return owner.participant_id


@endpoint("GET", "/rounds/{rid}/receipts/{pid}")
def get_receipt(owner: Owner, round: Ref, participant: Ref | None = None) -> Spec[ReceiptOut]:
    """A participant's receipt of a round (default: the client's participant): its own ledger
    entries with their salts, net amount, deliverable, checkpoint and the revealed seed. Check it
    offline with :func:`~datamarket.client.verify_receipt`."""
    return Spec(One(ReceiptOut), {"rid": id_of(round), "pid": _participant(owner, participant)})


@endpoint("GET", "/rounds/{rid}/models/{pid}")
def get_deliverable(owner: Owner, round: Ref, participant: Ref | None = None) -> Spec[ModelOut]:
    """What a participant received from the round: model, estimate, data points or contracts."""
    return Spec(One(ModelOut), {"rid": id_of(round), "pid": _participant(owner, participant)})


# -- ledger -----------------------------------------------------------------------------------------
@endpoint("GET", "/ledger/verify")
def verify_ledger(owner: Owner) -> Spec[VerifyOut]:
    """Recompute the hash chain and check it against rounds and submissions (operator)."""
    return Spec(One(VerifyOut))


@endpoint("GET", "/ledger/checkpoint")
def get_checkpoint(owner: Owner) -> Spec[CheckpointOut]:
    """The chain head now, to publish or keep (operator)."""
    return Spec(One(CheckpointOut))


@endpoint("POST", "/ledger/checkpoint")
def verify_checkpoint(owner: Owner, checkpoint: BaseModel | Mapping[str, Any]) -> Spec[VerifyOut]:
    """Check that the ledger still extends a checkpoint: one kept from a receipt (pass the receipt
    or its ``checkpoint``), or the operator's :meth:`get_checkpoint`."""
    data = plain(checkpoint)
    if isinstance(data.get("checkpoint"), Mapping):  # a receipt: its checkpoint
        data = dict(data["checkpoint"])
    body = CheckpointOut.model_validate(data).model_dump(mode="json", exclude_defaults=True)
    return Spec(One(VerifyOut), json=body)


@endpoint("GET", "/ledger/export")
def export_ledger(owner: Owner) -> Spec[str]:
    """The ledger as JSON Lines (operator); ``datamarket ledger verify --file`` checks it offline."""
    return Spec(as_text)


@endpoint("GET", "/ledger/entries")
def ledger_entries(owner: Owner, *, page_size: int | None = None) -> Spec[dict[str, Any]]:
    """Every ledger entry and the chain head (operator), all pages."""
    return Spec(as_json, query=_pages(page_size), join=more_entries)


@endpoint("GET", "/ledger/balances")
def ledger_balances(owner: Owner) -> Spec[dict[str, dict[str, int]]]:
    """Net minor units per account and currency, the platform's included (operator)."""
    return Spec(as_json)
