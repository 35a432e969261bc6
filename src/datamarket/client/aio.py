"""The asynchronous client, over :class:`httpx.AsyncClient`: the same methods as
:class:`~datamarket.client.Client`, awaited."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Concatenate, ParamSpec, TypeVar

import httpx

from datamarket.client import endpoints as E
from datamarket.client.base import ClientBase
from datamarket.client.calls import Call, Owner, Ref, id_of
from datamarket.client.errors import ConnectionFailed, api_error
from datamarket.client.progress import Poll, Progress
from datamarket.client.receipts import receipt_problems, verify_receipt
from datamarket.client.retry import RetryPolicy
from datamarket.service.api.schemas import ParticipantCreated, RoundOut

T = TypeVar("T")
P = ParamSpec("P")


def async_method(
    build: Callable[Concatenate[Owner, P], Call[T]],
) -> Callable[Concatenate[AsyncClient, P], Awaitable[T]]:
    """An :class:`AsyncClient` method that builds the call of an endpoint function and awaits it."""

    @functools.wraps(build)
    async def method(self: AsyncClient, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._run(build(self, *args, **kwargs))

    return method


class AsyncClient(ClientBase):
    """The asynchronous twin of :class:`~datamarket.client.Client`: every API method is a coroutine
    (``await client.submit(...)``), ``wait`` too; ``transport`` is an async httpx transport and
    ``sleep`` an async pause (:func:`asyncio.sleep`). Use it as an async context manager, or
    :meth:`aclose` it."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        participant_id: int | None = None,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(
            base_url, api_key, participant_id=participant_id, timeout=timeout, retry=retry, headers=headers
        )
        self._sleep = sleep
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=self._headers(), timeout=timeout, transport=transport
        )

    # -- plumbing ------------------------------------------------------------------------------------
    async def _attempt(self, call: Call[T]) -> httpx.Response:
        response = await self._http.request(call.route.method, call.url, **call.request_kwargs())
        if response.is_error:
            raise api_error(response)
        return response

    async def _send(self, call: Call[T]) -> httpx.Response:
        """Send ``call`` (again, unchanged, as long as the retry policy allows)."""
        retrying = self.retry.async_retrying(call.route.safety, call.describe(), self._sleep)
        try:
            response: httpx.Response = await retrying(self._attempt, call)
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"{call.describe()}: {type(exc).__name__}: {exc}") from exc
        return response

    async def _run(self, call: Call[T]) -> T:
        """Send ``call`` and read its answer, every page of it (:meth:`Call.next_page`)."""
        response = await self._send(call)
        answer = call.spec.parse(response)
        while (page := call.next_page(response)) is not None and call.spec.join is not None:
            response = await self._send(page)
            answer = call.spec.join(answer, page.spec.parse(response))
        return answer

    def participant(self, key: ParticipantCreated | str, participant_id: Ref | None = None) -> AsyncClient:
        """A client of the same service acting for a participant: its registration (as
        :meth:`register_participant` returns it) or its API key (and id). It has its own connections
        (a custom ``transport`` is not shared) and this client's timeout, retry policy and headers."""
        return AsyncClient(**self._options(key, participant_id), sleep=self._sleep)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- following a round, checking a receipt -------------------------------------------------------
    async def wait(
        self,
        round: Ref,
        *,
        timeout: float = 300.0,
        progress: Progress | bool | None = None,
        interval: float = 0.05,
        max_interval: float = 2.0,
        check: bool = True,
    ) -> RoundOut:
        """As :meth:`Client.wait <datamarket.client.Client.wait>`, pausing with :func:`asyncio.sleep`."""
        poll = Poll(timeout, progress, interval, max_interval, check)
        rid = id_of(round)
        while True:
            state = await self.get_round(rid)
            if poll.done(state):
                return state
            await asyncio.sleep(poll.next_pause())

    verify_receipt = staticmethod(verify_receipt)
    receipt_problems = staticmethod(receipt_problems)

    # -- the API (datamarket.client.endpoints) ------------------------------------------------------
    health = async_method(E.health)
    kinds = async_method(E.kinds)
    register_participant = async_method(E.register_participant)
    list_participants = async_method(E.list_participants)
    me = async_method(E.me)
    get_participant = async_method(E.get_participant)
    create_market = async_method(E.create_market)
    list_markets = async_method(E.list_markets)
    get_market = async_method(E.get_market)
    get_plan = async_method(E.get_plan)
    submit = async_method(E.submit)
    upload = async_method(E.upload)
    list_submissions = async_method(E.list_submissions)
    get_submission = async_method(E.get_submission)
    get_submission_content = async_method(E.get_submission_content)
    exclude_submission = async_method(E.exclude_submission)
    withdraw_submission = async_method(E.withdraw_submission)
    open_round = async_method(E.open_round)
    list_rounds = async_method(E.list_rounds)
    get_round = async_method(E.get_round)
    retry_round = async_method(E.retry_round)
    release_round = async_method(E.release_round)
    fail_round = async_method(E.fail_round)
    list_receipts = async_method(E.list_receipts)
    get_receipt = async_method(E.get_receipt)
    get_deliverable = async_method(E.get_deliverable)
    verify_ledger = async_method(E.verify_ledger)
    get_checkpoint = async_method(E.get_checkpoint)
    verify_checkpoint = async_method(E.verify_checkpoint)
    export_ledger = async_method(E.export_ledger)
    ledger_entries = async_method(E.ledger_entries)
    ledger_balances = async_method(E.ledger_balances)
