"""The client and the service's OpenAPI schema cannot drift apart.

Every client method (:data:`datamarket.client.calls.ROUTES`) is built with every argument it takes,
and what it would send is checked against the app's schema: its method and path template exist, its
path parameters are the declared ones, every query parameter it sends is declared and valid for its
schema, it sends an ``Idempotency-Key`` exactly where the operation declares one, its JSON body
validates against the declared request body (JSON Schema 2020-12) and an upload's Content-Type is a
declared one. And every operation of the schema has a client method, except those in
:data:`NOT_FOR_CLIENTS` (each with its reason).
"""

from __future__ import annotations

import re
from pathlib import Path
from types import FunctionType
from typing import Any

import httpx
import jsonschema
import pytest

from datamarket.client import AsyncClient, Client
from datamarket.client.calls import IDEMPOTENCY_KEY, ROUTES, Call, Owner
from datamarket.scenarios.inputs import broker
from tests.service_support import make_app

NOT_FOR_CLIENTS = {
    ("get", "/ready"): "a load balancer's readiness probe (the operator's deployment polls it)",
    ("get", "/metrics"): "Prometheus text for a scraper, not a participant's or operator's call",
}
RECEIPT_CHECKPOINT = {
    "round_id": 1,
    "seq": 4,
    "hash": "a" * 64,
    "merkle_root": "b" * 64,
    "size": 4,
    "proofs": [{"seq": 2, "hash": "c" * 64, "index": 1, "proof": ["d" * 64, "e" * 64]}],
}
# every method with every argument it takes (so that every parameter it can send is checked)
SAMPLES: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
    "health": ((), {}),
    "kinds": ((), {}),
    "register_participant": (("alice",), {}),
    "list_participants": ((), {}),
    "me": ((), {}),
    "get_participant": ((2,), {}),
    "create_market": (
        ("broker", broker.Params(sigma=2.0)),
        {"name": "m", "currency": "EUR", "scale": 100},
    ),
    "list_markets": ((), {}),
    "get_market": ((1,), {}),
    "get_plan": ((1,), {}),
    "submit": ((1, broker.Bid(valuation="gaussian", width=0.5)), {}),
    "upload": (
        (1, b"x0,y,g\n1.5,0,1\n"),
        {"kind": "task", "format": "csv", "filename": "a.csv", "label_column": "y", "group_column": "g"},
    ),
    "list_submissions": ((1,), {}),
    "get_submission": ((5,), {}),
    "get_submission_content": ((5,), {}),
    "exclude_submission": ((5, "late"), {}),
    "withdraw_submission": ((5,), {}),
    "open_round": ((1,), {"seed": 7}),
    "list_rounds": ((1,), {}),
    "get_round": ((3,), {}),
    "retry_round": ((3,), {}),
    "release_round": ((3,), {"attempt": 2}),
    "fail_round": ((3,), {"attempt": 2, "reason": "stuck"}),
    "list_receipts": ((3,), {}),
    "get_receipt": ((3, 2), {}),
    "get_deliverable": ((3, 2), {}),
    "verify_ledger": ((), {}),
    "get_checkpoint": ((), {}),
    "verify_checkpoint": (({"checkpoint": RECEIPT_CHECKPOINT, "entries": []},), {}),
    "export_ledger": ((), {}),
    "ledger_entries": ((), {}),
    "ledger_balances": ((), {}),
}


class Me:
    participant_id: int | None = 2


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    db = Path(tmp_path_factory.mktemp("openapi")) / "a.db"
    return make_app(f"sqlite:///{db}").openapi()


def build(name: str) -> Call[Any]:
    from datamarket.client import endpoints

    args, kwargs = SAMPLES[name]
    owner: Owner = Me()
    call: Call[Any] = getattr(endpoints, name)(owner, *args, **kwargs)
    return call


def validate(value: Any, sub: dict[str, Any], schema: dict[str, Any]) -> None:
    """``value`` against the schema ``sub`` of the document ``schema`` (its $refs resolved there)."""
    jsonschema.Draft202012Validator({**sub, "components": schema["components"]}).validate(value)


def params(op: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    return {p["name"].lower(): p for p in op.get("parameters", []) if p["in"] == where}


def test_every_method_and_only_methods_are_sampled() -> None:
    def api_methods(cls: type) -> set[str]:
        return {n for n, v in vars(cls).items() if isinstance(v, FunctionType) and hasattr(v, "__wrapped__")}

    assert set(SAMPLES) == set(ROUTES) == api_methods(Client) == api_methods(AsyncClient)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_what_a_method_sends_is_what_the_schema_declares(name: str, schema: dict[str, Any]) -> None:
    call = build(name)
    route = call.route
    op = schema["paths"].get(route.path, {}).get(route.method.lower())
    assert op is not None, f"{route.method} {route.path} is not an operation of the service"
    declared = params(op, "path")
    assert set(re.findall(r"{(\w+)}", route.path)) == set(declared) == set(call.spec.path_params)
    for key, value in call.spec.path_params.items():
        validate(value, declared[key]["schema"], schema)
    query = params(op, "query")
    for key, value in call.spec.query.items():
        assert key in query, f"{name} sends ?{key}= which the operation does not declare"
        validate(value, query[key]["schema"], schema)
    headers = {k.lower() for k in call.headers} - {"content-type"}
    assert headers <= set(params(op, "header")), name
    assert (
        (IDEMPOTENCY_KEY.lower() in params(op, "header")) == route.keyed == (IDEMPOTENCY_KEY in call.headers)
    )
    body = op.get("requestBody")
    if call.spec.json is not None:
        assert body is not None, f"{name} sends a body the operation does not read"
        validate(call.spec.json, body["content"]["application/json"]["schema"], schema)
    elif call.spec.content is not None:
        assert body is not None and call.headers["Content-Type"] in body["content"], name
    else:
        assert body is None or not body.get("required"), f"{name} sends no body but one is required"


def test_every_operation_has_a_method_or_a_reason(schema: dict[str, Any]) -> None:
    covered = {(r.method.lower(), r.path) for r in ROUTES.values()}
    operations = {(m, p) for p, ops in schema["paths"].items() for m in ops}
    missing = operations - covered - set(NOT_FOR_CLIENTS)
    assert not missing, f"operations without a client method: {sorted(missing)}"
    assert len(covered) == len(ROUTES)  # one method per operation


def test_a_method_sends_exactly_what_it_built() -> None:
    """What the checks above look at is what goes on the wire."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(500, json={"detail": "stop"})

    c = Client("http://service", "k", participant_id=2, transport=httpx.MockTransport(answer))
    for name, (args, kwargs) in SAMPLES.items():
        call = build(name)
        try:
            getattr(c, name)(*args, **kwargs)
        except Exception:  # the scripted 500
            pass
        request = seen[-1]
        assert (request.method, request.url.path) == (call.route.method, call.url), name
        assert dict(request.url.params) == dict(call.spec.query), name
        assert (IDEMPOTENCY_KEY in request.headers) == call.route.keyed, name
