"""Retries, errors and ``wait`` of the client against scripted answers (httpx.MockTransport): what is
retried, after how long, with which idempotency key, and what is raised."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from datamarket.client import (
    ApiError,
    AsyncClient,
    Client,
    Conflict,
    ConnectionFailed,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    RetryPolicy,
    Safety,
    ServerError,
    ServiceUnavailable,
    TextProgress,
    Unauthorized,
    ValidationFailed,
    WaitTimeout,
)
from datamarket.client.calls import IDEMPOTENCY_KEY, ROUTES

Answer = httpx.Response | Exception
POLICY = RetryPolicy(attempts=4, initial=0.001, maximum=0.001, max_retry_after=30)
MARKET = {
    "id": 1,
    "kind": "broker",
    "name": "",
    "params": {},
    "scale": 100,
    "currency": "USD",
    "exponent": 2,
    "created_at": "2026-01-01T00:00:00Z",
}
SUBMISSION = {
    "id": 5,
    "market_id": 1,
    "participant_id": 2,
    "kind": "cost",
    "payload": {},
    "content_hash": "0" * 64,
    "size_bytes": 10,
    "media_type": None,
    "filename": None,
    "consumed_round_id": None,
    "created_at": "2026-01-01T00:00:00Z",
}


def round_json(status: str, progress: float = 0.0) -> dict[str, Any]:
    return {
        "id": 9,
        "market_id": 1,
        "status": status,
        "progress": progress,
        "stage": status,
        "attempts": 1,
        "seed": None,
        "seed_commit": None,
        "seed_source": "csprng",
        "input_ids": [],
        "error": None,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
    }


class Script:
    """A transport answering each request with the next of ``answers`` (an exception is raised)."""

    def __init__(self, *answers: Answer) -> None:
        self.answers: Iterator[Answer] = iter(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = next(self.answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def keys(self) -> list[str | None]:
        return [r.headers.get(IDEMPOTENCY_KEY) for r in self.requests]


def client(script: Script, sleeps: list[float], policy: RetryPolicy = POLICY) -> Client:
    return Client(
        "http://service", "k", retry=policy, transport=httpx.MockTransport(script), sleep=sleeps.append
    )


def problem(status: int, detail: Any = "no", field: str | None = None, **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"detail": detail, "field": field}, headers=headers)


def test_429_and_503_are_retried_after_their_retry_after() -> None:
    script = Script(
        problem(429, **{"Retry-After": "2"}),
        problem(503, **{"Retry-After": "1"}),
        httpx.Response(200, json=[]),
    )
    sleeps: list[float] = []
    assert client(script, sleeps).list_markets() == []
    assert sleeps == [2.0, 1.0] and len(script.requests) == 3


def test_a_long_retry_after_and_the_last_attempt_raise_the_problem() -> None:
    sleeps: list[float] = []
    long_wait = Script(problem(429, "slow down", **{"Retry-After": "3600"}))
    with pytest.raises(RateLimited) as err:
        client(long_wait, sleeps).list_markets()
    assert err.value.retry_after == 3600 and err.value.detail == "slow down" and sleeps == []
    busy = Script(*[problem(503, "busy", **{"Retry-After": "0"})] * 4)
    with pytest.raises(ServiceUnavailable) as err2:
        client(busy, sleeps).upload(1, b"x0\n1\n", format="csv")
    assert len(busy.requests) == POLICY.attempts and err2.value.status == 503


def test_lost_answers_are_retried_only_where_a_repeat_cannot_act_twice() -> None:
    sleeps: list[float] = []
    # not sent: any call is retried
    refused = Script(httpx.ConnectError("refused"), httpx.Response(201, json=MARKET))
    assert client(refused, sleeps).create_market("broker").id == 1
    # sent, answer lost: a read is retried, an unkeyed write is not
    read = Script(httpx.ReadError("reset"), httpx.Response(200, json=MARKET))
    assert client(read, sleeps).get_market(1).id == 1 and len(read.requests) == 2
    write = Script(httpx.ReadError("reset"), httpx.Response(201, json=MARKET))
    with pytest.raises(ConnectionFailed) as lost:
        client(write, sleeps).create_market("broker")
    assert len(write.requests) == 1 and isinstance(lost.value.__cause__, httpx.ReadError)
    # a keyed write is retried with the key it was first sent with; the next call draws another
    keyed = Script(
        httpx.ReadError("reset"),
        httpx.RemoteProtocolError("closed"),
        httpx.Response(200, json=SUBMISSION),
        httpx.Response(201, json=SUBMISSION),
    )
    c = client(keyed, sleeps)
    c.submit(1, {"cost": 0.5}, "cost")
    c.submit(1, {"cost": 0.5}, "cost")
    first, again, third, other = keyed.keys()
    assert first and first == again == third and other and other != first
    assert [r.content for r in keyed.requests[:3]] == [keyed.requests[0].content] * 3  # the same body


def test_the_policy_of_every_route() -> None:
    once = {name for name, r in ROUTES.items() if r.safety is Safety.ONCE}
    assert once == {
        "register_participant",
        "create_market",
        "retry_round",
        "exclude_submission",
        "withdraw_submission",
    }
    assert {name for name, r in ROUTES.items() if r.keyed} == {"submit", "upload", "open_round"}
    assert all(r.safety is Safety.REPEATABLE for r in ROUTES.values() if r.keyed or r.method == "GET")


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (401, Unauthorized),
        (403, Forbidden),
        (404, NotFound),
        (409, Conflict),
        (413, PayloadTooLarge),
        (422, ValidationFailed),
        (500, ServerError),
        (418, ApiError),
    ],
)
def test_errors_are_exceptions_with_the_problem_details(status: int, cls: type[ApiError]) -> None:
    script = Script(problem(status, "why", "params.sigma"))
    with pytest.raises(cls) as err:
        client(script, []).get_market(3)
    e = err.value
    assert type(e) is cls and (e.status, e.detail, e.field) == (status, "why", "params.sigma")
    assert (e.method, e.path) == ("GET", "/markets/3") and "why (params.sigma)" in str(e)


def test_an_answer_that_is_not_the_services_still_raises() -> None:
    script = Script(httpx.Response(502, text="<html>bad gateway</html>"))
    with pytest.raises(ServerError) as err:
        client(script, []).list_markets()
    assert "bad gateway" in err.value.detail and err.value.field is None


def test_pydantic_problems_read_as_one_message() -> None:
    detail = [{"type": "missing", "loc": ["body", "kind"], "msg": "Field required"}]
    with pytest.raises(ValidationFailed) as err:
        client(Script(problem(422, detail, "kind")), []).submit(1, {}, "cost")
    assert err.value.detail == detail and "body.kind: Field required" in str(err.value)


def rounds(*states: str) -> Callable[[httpx.Request], httpx.Response]:
    it = iter(states)
    last = states[-1]

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=round_json(next(it, last), 0.5))

    return answer


def test_wait_times_out_with_the_last_state() -> None:
    c = Client("http://service", "k", transport=httpx.MockTransport(rounds("pending", "running")))
    with pytest.raises(WaitTimeout) as err:
        c.wait(9, timeout=0.3, interval=0.01, max_interval=0.05)
    assert err.value.round.status == "running" and isinstance(err.value, TimeoutError)


def test_the_text_progress_draws_one_line_per_change() -> None:
    out = io.StringIO()
    c = Client(
        "http://service",
        "k",
        transport=httpx.MockTransport(rounds("pending", "running", "running", "cleared")),
    )
    assert c.wait(9, progress=TextProgress(out), interval=0.001).status == "cleared"
    lines = out.getvalue().splitlines()
    assert [line.split()[-1] for line in lines] == ["pending", "running", "cleared"]
    assert all(line.startswith("round 9 [") and "50%" in line for line in lines)


def test_the_async_client_retries_and_raises_alike() -> None:
    script = Script(
        problem(503, **{"Retry-After": "1"}),
        httpx.ConnectError("refused"),
        httpx.Response(200, json=[MARKET]),
        problem(404),
    )
    sleeps: list[float] = []

    async def pause(seconds: float) -> None:
        sleeps.append(seconds)

    async def run() -> None:
        async with AsyncClient(
            "http://service", "k", retry=POLICY, transport=httpx.MockTransport(script), sleep=pause
        ) as c:
            assert [m.id for m in await c.list_markets()] == [1]
            with pytest.raises(NotFound):
                await c.get_round(1)

    asyncio.run(run())
    assert sleeps[0] == 1.0 and len(sleeps) == 2
    assert script.requests[0].headers["X-API-Key"] == "k"


def test_policy_bounds_and_backoff() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)
    p = RetryPolicy(initial=0.1, maximum=0.4)
    assert all(
        0.0 <= p.delay(k, None) <= min(0.4, 0.1 * 2 ** (k - 1)) for k in range(1, 8) for _ in range(20)
    )
    assert p.delay(1, RateLimited(429, "x", retry_after=5.0)) == 5.0
    assert "secret" not in repr(Client("http://service", "secret-key"))  # the key is never shown
