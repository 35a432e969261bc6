"""A typed Python client of a datamarket service, for participants and operators.

``pip install 'datamarket[client]'`` (httpx and tenacity; no server stack: nothing of FastAPI or
SQLAlchemy is imported). :class:`Client` is synchronous, :class:`AsyncClient` its asynchronous twin
with the same methods; each method is one route of the service's JSON API
(:mod:`datamarket.client.endpoints`), and a test checks every one against the service's OpenAPI
schema. In short::

    from datamarket.client import Client
    from datamarket.scenarios.inputs import broker

    with Client("http://127.0.0.1:8000", admin_key) as operator:
        market = operator.create_market("broker", broker.Params(sigma=1.0))
        alice = operator.participant(operator.register_participant("alice"))
        alice.submit(market, broker.Bid(valuation="gaussian", width=0.5))
        ...                                    # contributors: submit costs, read get_plan, upload
        done = operator.wait(operator.open_round(market), progress=True)
        receipt = alice.verify_receipt(alice.get_receipt(done))   # checked offline

* **Inputs** are the models of :mod:`datamarket.scenarios.inputs` (or dicts); datasets are paths,
  bytes, pandas DataFrames or numpy arrays (:mod:`datamarket.client.payloads`).
* **Errors** are exceptions carrying the service's problem details (:mod:`datamarket.client.errors`:
  :class:`ApiError` > :class:`NotFound`, :class:`Conflict`, :class:`Unauthorized`,
  :class:`ValidationFailed`, :class:`RateLimited`...).
* **Retries** on 429, 503 and connection errors, honouring ``Retry-After``; a write is repeated only
  where a repeat cannot act twice: the submissions, uploads and round openings carry an
  ``Idempotency-Key`` drawn once per call and reused on every retry (:mod:`datamarket.client.retry`).
* **Rounds** are followed with :meth:`Client.wait` (polling with backoff, a progress callback or a
  text bar, a timeout); **receipts** are verified offline (:func:`verify_receipt`).
"""

from __future__ import annotations

from datamarket.client.aio import AsyncClient
from datamarket.client.errors import (
    ApiError,
    ClientError,
    Conflict,
    ConnectionFailed,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ReceiptInvalid,
    RoundFailed,
    ServerError,
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
    WaitTimeout,
)
from datamarket.client.progress import TextProgress
from datamarket.client.receipts import receipt_problems, verify_receipt
from datamarket.client.retry import RetryPolicy, Safety
from datamarket.client.sync import Client
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

__all__ = [
    "ApiError",
    "AsyncClient",
    "CheckpointOut",
    "Client",
    "ClientError",
    "Conflict",
    "ConnectionFailed",
    "Forbidden",
    "KindOut",
    "MarketOut",
    "ModelOut",
    "NotFound",
    "ParticipantCreated",
    "ParticipantOut",
    "PayloadTooLarge",
    "RateLimited",
    "ReceiptInvalid",
    "ReceiptOut",
    "RetryPolicy",
    "RoundFailed",
    "RoundOut",
    "Safety",
    "ServerError",
    "ServiceUnavailable",
    "SubmissionOut",
    "TextProgress",
    "Unauthorized",
    "ValidationFailed",
    "VerifyOut",
    "WaitTimeout",
    "receipt_problems",
    "verify_receipt",
]
