"""Request and response bodies of the HTTP API (pydantic; they make the OpenAPI schema). The store
returns plain data of the same shape (:mod:`datamarket.service.store`); the portal validates its forms
with the request models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

Name = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"  # no NUL or other control characters (PostgreSQL rejects NUL)
MAX_DEPTH = 32
# a currency code as given (ASCII, no spaces): ISO 4217, NAME:e or a legacy NAME/n, any case;
# Currency.parse decides the rest, and the OpenAPI schema states the exact set
# (datamarket.service.api.openapi.currency_pattern)
CURRENCY = r"^[A-Za-z][A-Za-z0-9_]{0,15}(?::[0-9]{1,2}|/[0-9]{1,19})?$"
MAX_INT = 2**63 - 1


def check_json(value: Any, where: str = "data", depth: int = 0) -> Any:
    """``value`` unchanged if it is plain, storable JSON: finite numbers, integers within 64 bits,
    strings without NUL, nesting at most ``MAX_DEPTH``; else ``ValueError`` naming the place.

    >>> check_json({"a": [1, 2.5, "x"]})
    {'a': [1, 2.5, 'x']}
    >>> check_json({"a": [float("inf")]})
    Traceback (most recent call last):
    ...
    ValueError: data.a.0: numbers must be finite
    """
    if depth > MAX_DEPTH:
        raise ValueError(f"{where}: nested deeper than {MAX_DEPTH}")
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if abs(value) > MAX_INT:
            raise ValueError(f"{where}: integer out of range")
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{where}: numbers must be finite")
    elif isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{where}: NUL characters are not allowed")
    elif isinstance(value, dict):
        for k, v in value.items():
            check_json(k, f"{where}", depth + 1)
            check_json(v, f"{where}.{k}", depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_json(v, f"{where}.{i}", depth + 1)
    else:
        raise ValueError(f"{where}: unsupported value of type {type(value).__name__}")
    return value


def json_integer(value: Any) -> Any:
    """JSON Schema's ``integer`` exactly: an int, or a number with an integral value (``3.0`` is the
    JSON number 3), never a boolean or a string (pydantic's lax ``int`` takes ``true`` and ``"3"``).

    >>> json_integer(3.0), json_integer(7)
    (3, 7)
    >>> json_integer(False)
    Traceback (most recent call last):
    ...
    ValueError: must be an integer, not a boolean or a string
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an integer, not a boolean or a string")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be an integer")
        return int(value)
    return value


def json_numbers(value: Any) -> Any:
    """``value`` with every integral float within 2^53 made an int (``2.0`` -> ``2``), as JSON Schema
    reads numbers: a field declared ``integer`` then takes ``2.0`` in the adapters' strict
    validation, and a ``number`` field still takes the int. Nothing else changes."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: json_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_numbers(v) for v in value]
    return value


# integer fields of request bodies, validated as JSON Schema's ``integer`` (:func:`json_integer`); the
# bounds come before the validator, or pydantic writes them into the schema as ``ge``/``le``
JsonInt = Annotated[int, BeforeValidator(json_integer)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1), BeforeValidator(json_integer)]
Attempt = Annotated[int, Field(ge=1, le=2**31 - 1), BeforeValidator(json_integer)]
RoundId = Annotated[int, Field(ge=1, le=2**31 - 1), BeforeValidator(json_integer)]
Count = Annotated[int, Field(ge=0), BeforeValidator(json_integer)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ParticipantIn(Strict):
    name: str = Name


class ParticipantCreated(BaseModel):
    id: int
    name: str
    api_key: str = Field(description="shown once; only its hash is stored")


# -- ledger (format 2): balances per currency, currencies of markets, receipts' checkpoints ---------
class BalanceOut(BaseModel):
    currency: str
    balance_minor: int
    balance: str = Field(description="exact, in major units")


class ParticipantOut(BaseModel):
    id: int
    name: str
    balance_minor: int | None = Field(
        description="deprecated: the balance when the participant holds at most one currency, "
        "null when several (amounts in different currencies are never added); see balances"
    )
    balances: list[BalanceOut] = Field(default_factory=list, description="one per currency")
    created_at: datetime


class MarketIn(Strict):
    kind: str = Field(min_length=1, max_length=50, pattern=PRINTABLE)
    name: str = Field(default="", max_length=200, pattern=PRINTABLE)
    params: dict[str, Any] = Field(default_factory=dict)
    scale: JsonInt = Field(default=100, ge=1, le=1_000_000, description="minor units per major unit")
    currency: str | None = Field(
        default=None,
        max_length=40,
        pattern=CURRENCY,
        description="ISO 4217 code (USD, EUR, JPY...) or a named unit NAME:e with e decimals, "
        "0 <= e <= 9 (e.g. CREDIT:0); default: USD for scale 100, UNIT:e for scale 10^e; checked by "
        "datamarket.ledger.money.Currency.parse (422 naming currency)",
    )

    @field_validator("params")
    @classmethod
    def _plain(cls, v: dict[str, Any]) -> dict[str, Any]:
        return json_numbers(check_json(v, "params"))  # type: ignore[no-any-return]

    @model_validator(mode="after")
    def _legacy_alone(self) -> MarketIn:
        """A legacy ``NAME/n`` carries its scale: no ``scale`` beside it (as the schema says)."""
        if self.currency is not None and "/" in self.currency and "scale" in self.model_fields_set:
            raise ValueError("currency: a legacy NAME/n names its scale n; give no scale with it")
        return self


class MarketOut(BaseModel):
    id: int
    kind: str
    name: str
    params: dict[str, Any]
    scale: int
    currency: str
    exponent: int | None = Field(description="decimals of the currency (scale = 10^exponent)")
    created_at: datetime


class KindOut(BaseModel):
    kind: str
    description: str
    submission_kinds: dict[str, str]


class ReadyOut(BaseModel):
    """``GET /ready`` while the process is ready (a 503 carries an ``ErrorOut`` saying why)."""

    status: Literal["ready"]


class SubmissionIn(Strict):
    kind: str = Field(min_length=1, max_length=30, pattern=PRINTABLE)
    data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("data")
    @classmethod
    def _plain(cls, v: dict[str, Any]) -> dict[str, Any]:
        return json_numbers(check_json(v, "data"))  # type: ignore[no-any-return]


class ExcludeIn(Strict):
    reason: str = Field(min_length=1, max_length=500, pattern=PRINTABLE, description="recorded with the row")


class SubmissionOut(BaseModel):
    id: int
    market_id: int
    participant_id: int
    kind: str
    payload: dict[str, Any]
    content_hash: str
    size_bytes: int
    media_type: str | None
    filename: str | None
    consumed_round_id: int | None
    excluded_at: datetime | None = None
    excluded_reason: str | None = Field(
        default=None,
        description="operator's exclusion, withdrawal, or 'superseded by #N, ignored': a later submission "
        "of the same kind by the same participant replaced this one while it waited",
    )
    superseded_by: int | None = Field(
        default=None,
        description="the id of the later submission of the same kind that replaced this one (the "
        "mechanism reads only a participant's latest submission of a kind); null otherwise",
    )
    created_at: datetime


class RoundIn(Strict):
    seed: Seed | None = Field(
        default=None,
        description="explicit seed (reproducible; receipts say seed_source=operator); default: drawn "
        "from the operating system's CSPRNG",
    )


class ReleaseIn(Strict):
    attempt: Attempt | None = Field(
        default=None,
        description="act only if the round is still in this attempt (the one you saw: compare-and-set); "
        "default: whatever attempt holds it now",
    )


class FailIn(ReleaseIn):
    reason: str | None = Field(
        default=None, max_length=500, pattern=PRINTABLE, description="recorded in the round's error"
    )


class RoundOut(BaseModel):
    id: int
    market_id: int
    status: Literal["pending", "running", "cleared", "failed", "unverified"] = Field(
        description="unverified: the mechanism's certificate failed, nothing was booked and the inputs "
        "stay unconsumed (the failing checks are in error and certificate)"
    )
    progress: float = Field(description="fraction done in [0, 1], reported by the process clearing it")
    stage: str = Field(description="what the round is doing (stage of the mechanism while running)")
    attempts: int = Field(description="times the round was started (claims, takeovers and retries)")
    claimed_by: str | None = Field(
        default=None, description="instance id of the service process holding (or that cleared) the round"
    )
    lease_expires_at: datetime | None = Field(
        default=None, description="while running: when another process may take the round over"
    )
    lease_expiries: int = Field(default=0, description="leases of the round that expired since it opened")
    seed: int | None = Field(description="revealed once the round is cleared (operator: always)")
    seed_commit: str | None = Field(description="sha256(salt ':' seed), published when the round opens")
    seed_source: Literal["csprng", "operator"]
    input_ids: list[int]
    error: str | None
    created_at: datetime
    updated_at: datetime
    outcome: dict[str, Any] | None = Field(default=None, description="operator only")
    certificate_passed: bool | None = Field(
        default=None,
        description="whether every check of the outcome's certificate passed (null before clearing)",
    )
    certificate: dict[str, Any] | None = Field(
        default=None,
        description="operator only: the claims of the outcome, each with its check, residual and tolerance",
    )


class EntryOut(BaseModel):
    seq: int
    round_id: int
    account: str
    amount_minor: int
    amount: str
    memo: str
    hash: str | None = Field(description="null in receipts of rounds booked before salted entries")
    version: int = Field(description="entry format (3: every field below is in the hash, salt included)")
    market_id: int
    participant_id: int | None
    kind: str
    currency: str
    created_at: str = Field(description="as hashed (UTC, microseconds)")
    prev_hash: str | None
    salt: str | None = Field(default=None, description="the entry's random salt (format 3), hashed with it")


Hash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class ProofOut(BaseModel):
    seq: JsonInt
    hash: Hash
    index: JsonInt = Field(description="position of the entry in its round")
    proof: list[Hash] = Field(description="Merkle inclusion proof (sibling hashes, leaf level first)")


class CheckpointOut(BaseModel):
    round_id: RoundId | None = None
    seq: JsonInt = Field(description="sequence number of the chain head after the round")
    hash: Hash = Field(description="hash of the chain head after the round")
    entry_hashes: list[Hash] | None = Field(
        default=None, description="checkpoints written before salted entries only: the round's entries"
    )
    merkle_root: Hash | None = Field(default=None, description="Merkle root of the round's entry hashes")
    size: Count | None = Field(default=None, description="number of entries of the round")
    proofs: list[ProofOut] = Field(
        default_factory=list, description="inclusion proofs of the receipt's own entries, and no others"
    )


class TermOut(BaseModel):
    label: str
    value: float = Field(description="major units; the terms of a line add up to its amount")


class ChargeOut(BaseModel):
    """Why one receipt line is what it is (datamarket.service.adapters.charges)."""

    memo: Literal["price", "payment"] = Field(description="the ledger line it explains")
    rule: str = Field(description="id of the rule; the portal's guide explains it at /portal/guide#GUIDE")
    guide: str = Field(description="anchor of the rule in the portal's guide: <kind>-<rule>")
    amount: float = Field(description="exact amount in major units before rounding (paid or received)")
    terms: list[TermOut] = Field(description="what the amount adds up to")
    inputs: dict[str, Any] = Field(description="what the rule used: your submission, prices, quantities")
    money_inputs: list[str] = Field(description="which inputs are amounts of money (major units)")
    reconciled: bool = Field(description="the amount is the outcome's and the terms add up to it")
    booked_minor: int = Field(description="the line as booked, minor units (negative for a price)")
    sign: Literal[-1, 1] = Field(description="-1 for a price (paid), 1 for a payment (received)")


class ReceiptOut(BaseModel):
    round_id: int
    market_id: int
    participant_id: int
    participant: str
    entries: list[EntryOut]
    net_minor: int
    net: str
    currency: str
    deliverable: dict[str, Any] | None
    charges: list[ChargeOut] | None = Field(
        default=None,
        description="the explanation of each line (null for a round cleared before receipts explained them)",
    )
    round_hash: str | None = Field(
        description="hash of the round's last ledger entry (null for a round booked before salted entries)"
    )
    checkpoint: CheckpointOut | None = Field(
        default=None, description="keep it: POST it to /ledger/checkpoint later to check the ledger"
    )
    seed: int = Field(description="the round's seed, revealed")
    seed_salt: str | None = Field(description="salt of the commitment (null for operator seeds)")
    seed_commit: str | None = Field(description="sha256(seed_salt ':' seed), as published at opening")
    seed_source: Literal["csprng", "operator"]


class ModelOut(BaseModel):
    round_id: int
    participant_id: int
    deliverable: dict[str, Any]


class VerifyOut(BaseModel):
    ok: bool
    entries: int
    rounds: int
    head_seq: int = 0
    head_hash: str
    problems: list[str]


class ErrorOut(BaseModel):
    """Every error body: a message (or pydantic's list of problems) and the offending field."""

    detail: str | list[dict[str, Any]]
    field: str | None = None
