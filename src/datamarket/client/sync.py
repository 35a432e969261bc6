"""The synchronous client, over :class:`httpx.Client` (its methods: :mod:`datamarket.client.endpoints`)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
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


def sync_method(build: Callable[Concatenate[Owner, P], Call[T]]) -> Callable[Concatenate[Client, P], T]:
    """A :class:`Client` method that builds the call of an endpoint function and runs it."""

    @functools.wraps(build)
    def method(self: Client, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._run(build(self, *args, **kwargs))

    return method


class Client(ClientBase):
    """A participant's or the operator's synchronous client of a datamarket service.

    Arguments as :class:`~datamarket.client.base.ClientBase`, plus ``transport`` (an httpx transport,
    e.g. for tests) and ``sleep`` (how retries pause; :func:`time.sleep`). Every method is one route
    of the API (:mod:`datamarket.client.endpoints`), retried as
    :class:`~datamarket.client.RetryPolicy` allows, and raises
    :class:`~datamarket.client.errors.ApiError` subclasses with the service's problem details; plus
    :meth:`wait` (follow a round), :meth:`participant` (a client with another key) and the offline
    :meth:`verify_receipt`. Use it as a context manager, or :meth:`close` it.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        participant_id: int | None = None,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        headers: dict[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(
            base_url, api_key, participant_id=participant_id, timeout=timeout, retry=retry, headers=headers
        )
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url, headers=self._headers(), timeout=timeout, transport=transport
        )

    # -- plumbing ------------------------------------------------------------------------------------
    def _attempt(self, call: Call[T]) -> httpx.Response:
        response = self._http.request(call.route.method, call.url, **call.request_kwargs())
        if response.is_error:
            raise api_error(response)
        return response

    def _send(self, call: Call[T]) -> httpx.Response:
        """Send ``call`` (again, unchanged, as long as the retry policy allows)."""
        retrying = self.retry.retrying(call.route.safety, call.describe(), self._sleep)
        try:
            return retrying(self._attempt, call)  # type: ignore[no-any-return]
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"{call.describe()}: {type(exc).__name__}: {exc}") from exc

    def _run(self, call: Call[T]) -> T:
        """Send ``call`` and read its answer, every page of it (:meth:`Call.next_page`)."""
        response = self._send(call)
        answer = call.spec.parse(response)
        while (page := call.next_page(response)) is not None and call.spec.join is not None:
            response = self._send(page)
            answer = call.spec.join(answer, page.spec.parse(response))
        return answer

    def participant(self, key: ParticipantCreated | str, participant_id: Ref | None = None) -> Client:
        """A client of the same service acting for a participant: its registration (as
        :meth:`register_participant` returns it) or its API key (and id). It has its own connections
        (a custom ``transport`` is not shared) and this client's timeout, retry policy and headers."""
        return Client(**self._options(key, participant_id), sleep=self._sleep)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- following a round, checking a receipt -------------------------------------------------------
    def wait(
        self,
        round: Ref,
        *,
        timeout: float = 300.0,
        progress: Progress | bool | None = None,
        interval: float = 0.05,
        max_interval: float = 2.0,
        check: bool = True,
    ) -> RoundOut:
        """Poll the round until it ends (:class:`~datamarket.client.progress.Poll`): its last state.

        ``progress`` is called with each state read (``True``: a text bar on standard error,
        :class:`~datamarket.client.progress.TextProgress`). Raises
        :class:`~datamarket.client.errors.RoundFailed` when it ends ``failed`` or ``unverified``
        (unless ``check=False``), :class:`~datamarket.client.errors.WaitTimeout` after ``timeout`` s.
        """
        poll = Poll(timeout, progress, interval, max_interval, check)
        rid = id_of(round)
        while True:
            state = self.get_round(rid)
            if poll.done(state):
                return state
            time.sleep(poll.next_pause())

    verify_receipt = staticmethod(verify_receipt)
    receipt_problems = staticmethod(receipt_problems)

    # -- the API (datamarket.client.endpoints) ------------------------------------------------------
    health = sync_method(E.health)
    kinds = sync_method(E.kinds)
    register_participant = sync_method(E.register_participant)
    list_participants = sync_method(E.list_participants)
    me = sync_method(E.me)
    get_participant = sync_method(E.get_participant)
    create_market = sync_method(E.create_market)
    list_markets = sync_method(E.list_markets)
    get_market = sync_method(E.get_market)
    get_plan = sync_method(E.get_plan)
    submit = sync_method(E.submit)
    upload = sync_method(E.upload)
    list_submissions = sync_method(E.list_submissions)
    get_submission = sync_method(E.get_submission)
    get_submission_content = sync_method(E.get_submission_content)
    exclude_submission = sync_method(E.exclude_submission)
    withdraw_submission = sync_method(E.withdraw_submission)
    open_round = sync_method(E.open_round)
    list_rounds = sync_method(E.list_rounds)
    get_round = sync_method(E.get_round)
    retry_round = sync_method(E.retry_round)
    release_round = sync_method(E.release_round)
    fail_round = sync_method(E.fail_round)
    list_receipts = sync_method(E.list_receipts)
    get_receipt = sync_method(E.get_receipt)
    get_deliverable = sync_method(E.get_deliverable)
    verify_ledger = sync_method(E.verify_ledger)
    get_checkpoint = sync_method(E.get_checkpoint)
    verify_checkpoint = sync_method(E.verify_checkpoint)
    export_ledger = sync_method(E.export_ledger)
    ledger_entries = sync_method(E.ledger_entries)
    ledger_balances = sync_method(E.ledger_balances)
