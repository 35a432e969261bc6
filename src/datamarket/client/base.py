"""What both clients hold: the service's address, the key, the retry policy, whom they act for."""

from __future__ import annotations

from typing import Any

from datamarket import __version__
from datamarket.client.calls import Ref, id_of
from datamarket.client.retry import RetryPolicy
from datamarket.service.api.schemas import ParticipantCreated

USER_AGENT = f"datamarket-client/{__version__}"


class ClientBase:
    """Settings shared by :class:`~datamarket.client.Client` and :class:`~datamarket.client.AsyncClient`.

    ``base_url`` is the service's root (``http://127.0.0.1:8000``); ``api_key`` the operator's or a
    participant's (sent as ``X-API-Key``; none for ``health`` and ``kinds``); ``participant_id`` the
    participant the key belongs to, the default of ``get_receipt`` and ``get_deliverable`` (set by
    :meth:`participant`); ``timeout`` seconds per request; ``retry`` the
    :class:`~datamarket.client.RetryPolicy`; ``headers`` sent with every request.
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
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.participant_id = participant_id
        self.timeout = timeout
        self.retry = retry if retry is not None else RetryPolicy()
        self._api_key = api_key
        self._extra_headers = dict(headers or {})

    def _headers(self) -> dict[str, str]:
        out = {"User-Agent": USER_AGENT, **self._extra_headers}
        if self._api_key:
            out["X-API-Key"] = self._api_key
        return out

    def _options(self, key: ParticipantCreated | str, participant: Ref | None) -> dict[str, Any]:
        """The constructor's arguments of a client like this one acting for the participant ``key``
        (its registration, or its API key and ``participant``)."""
        api_key = key.api_key if isinstance(key, ParticipantCreated) else key
        if isinstance(key, ParticipantCreated) and participant is None:
            participant = key.id
        return {
            "base_url": self.base_url,
            "api_key": api_key,
            "participant_id": None if participant is None else id_of(participant),
            "timeout": self.timeout,
            "retry": self.retry,
            "headers": self._extra_headers,
        }

    def __repr__(self) -> str:  # never the key
        who = "no key" if not self._api_key else "a key"
        if self.participant_id is not None:
            who = f"participant {self.participant_id}"
        return f"{type(self).__name__}({self.base_url!r}, {who})"
