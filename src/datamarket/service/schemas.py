"""Request and response bodies of the HTTP API (pydantic; they make the OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Name = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ParticipantIn(Strict):
    name: str = Name


class ParticipantCreated(BaseModel):
    id: int
    name: str
    api_key: str = Field(description="shown once; only its hash is stored")


# -- ledger (issue 14): balances per currency, currencies of markets, receipts' checkpoints ---------
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
    kind: str = Field(min_length=1, max_length=50)
    name: str = Field(default="", max_length=200)
    params: dict[str, Any] = Field(default_factory=dict)
    scale: int = Field(default=100, ge=1, le=1_000_000, description="minor units per major unit")
    currency: str | None = Field(
        default=None,
        max_length=40,
        description="ISO 4217 code (USD, EUR, JPY...) or a named unit NAME:e with e decimals "
        "(e.g. CREDIT:0); default: USD for scale 100, UNIT:e for scale 10^e",
    )


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


class SubmissionIn(Strict):
    kind: str = Field(min_length=1, max_length=30)
    data: dict[str, Any] = Field(default_factory=dict)


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
    created_at: datetime


class RoundIn(Strict):
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)


class RoundOut(BaseModel):
    id: int
    market_id: int
    status: Literal["pending", "running", "cleared", "failed"]
    progress: float
    stage: str
    attempts: int
    seed: int
    input_ids: list[int]
    error: str | None
    created_at: datetime
    updated_at: datetime
    outcome: dict[str, Any] | None = Field(default=None, description="operator only")


class EntryOut(BaseModel):
    seq: int
    round_id: int
    account: str
    amount_minor: int
    amount: str
    memo: str
    hash: str
    version: int = Field(description="entry format (2: every field below is in the hash)")
    market_id: int
    participant_id: int | None
    kind: str
    currency: str
    created_at: str = Field(description="as hashed (UTC, microseconds)")
    prev_hash: str


Hash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class ProofOut(BaseModel):
    seq: int
    hash: Hash
    index: int = Field(description="position of the entry in its round")
    proof: list[Hash] = Field(description="Merkle inclusion proof (sibling hashes, leaf level first)")


class CheckpointOut(BaseModel):
    round_id: int | None = None
    seq: int = Field(description="sequence number of the chain head after the round")
    hash: Hash = Field(description="hash of the chain head after the round")
    entry_hashes: list[Hash] | None = Field(default=None, description="the round's entries, in order")
    merkle_root: Hash | None = None
    proofs: list[ProofOut] = Field(default_factory=list)


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
    round_hash: str | None = Field(description="hash of the round's last ledger entry")
    checkpoint: CheckpointOut | None = Field(
        default=None, description="keep it: POST it to /ledger/checkpoint later to check the ledger"
    )


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
    detail: Any
