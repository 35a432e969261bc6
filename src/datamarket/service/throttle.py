"""Failed-authentication throttle: too many unknown keys from one client address answer 429.

A client address that has presented ``limit`` unknown API keys within the last ``window_s`` seconds
is refused, before its key is even looked at, until the oldest of those failures leaves the window
(``429 Too Many Requests`` with ``Retry-After``). Successful requests neither count nor reset the
count: a participant holding a valid key cannot interleave it with guesses to keep guessing. A
request without any key is a 401 but not a guess, so it does not count.

The limit is exact, also for guesses sent at the same instant: the check before the key is looked
up (:meth:`AuthThrottle.retry_after`) only spares the database, and the guess is admitted by
:meth:`AuthThrottle.failure`, which checks and counts under one lock: of any number of concurrent
unknown keys from one address, at most ``limit`` per window are answered 401, the others 429.

The state is in memory, per process: with several ``datamarket serve`` processes behind one address
an attacker gets ``limit`` guesses per process and window. Participants' keys carry 256 random bits, so the
throttle bounds the load of guessing and the noise in the logs, not the odds of a guess (already
negligible). Memory is bounded: at most ``max_clients`` addresses (least recently failing dropped
first), each with at most ``limit`` times and a key of at most :data:`MAX_ADDRESS` characters (about
15 MB at the defaults, measured). A flood of fresh addresses can push an address out of that table (it then
starts afresh), so ``max_clients`` should exceed the addresses that fail within one window.

Every unknown key admitted and every refusal is counted (``datamarket_auth_failures_total``,
``datamarket_throttle_rejections_total``: :mod:`datamarket.service.observability.metrics`).

The address is the TCP peer's (``request.client.host``), never a header a client chose. Behind a
reverse proxy that is the proxy's address, and every client shares one budget, unless the proxy is
trusted (``--forwarded-allow-ips``, :func:`forwarded_allow_ips`): only then does the service take the
client from the proxy's ``X-Forwarded-For`` (and the scheme from ``X-Forwarded-Proto``), as uvicorn's
``ProxyHeadersMiddleware`` does. Nothing is trusted by default, loopback peers included (uvicorn
itself trusts ``127.0.0.1`` unless told otherwise): a local client that sends ``X-Forwarded-For``
gets neither a fresh budget per made-up address nor a way to lock out another address.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from datamarket.core.errors import ConfigurationError
from datamarket.service.observability import metrics

MAX_ADDRESS = 64
"""Characters of a client address kept as the throttle's key (an IPv6 address has at most 45); a
longer one (a literal name a trusted proxy forwarded) is cut, so that it cannot pin memory."""


def forwarded_allow_ips(value: str) -> str:
    """``value`` checked and normalised as uvicorn's ``--forwarded-allow-ips``: comma-separated IP
    addresses and networks whose ``X-Forwarded-For``/``X-Forwarded-Proto`` are trusted, ``*`` for
    every peer, empty for none (the default here); a :class:`ConfigurationError` for anything else
    (uvicorn would silently take a typo for a literal host name and trust nothing).

    >>> forwarded_allow_ips(" 10.0.0.1, 192.168.0.0/16 ,::1")
    '10.0.0.1,192.168.0.0/16,::1'
    >>> forwarded_allow_ips("proxy.local")
    Traceback (most recent call last):
    ...
    datamarket.core.errors.ConfigurationError: forwarded_allow_ips: 'proxy.local' is not an IP address \
or network (comma-separated, or * for every peer)
    """
    items = [item.strip() for item in value.split(",") if item.strip()]
    if items == ["*"]:
        return "*"
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False) if "/" in item else ipaddress.ip_address(item)
        except ValueError:
            raise ConfigurationError(
                "forwarded_allow_ips",
                f"{item!r} is not an IP address or network (comma-separated, or * for every peer)",
            ) from None
    return ",".join(items)


@dataclass(frozen=True)
class ThrottleSettings:
    """The throttle's limits, without its state (one field of
    :class:`~datamarket.service.config.ServiceSettings`): ``limit`` failures within ``window_s``
    seconds block an address (``limit = 0``: off), at most ``max_clients`` addresses tracked.

    >>> ThrottleSettings(limit=-1)
    Traceback (most recent call last):
    ...
    datamarket.core.errors.ConfigurationError: throttle: auth throttle: need limit >= 0, window > 0 and \
max_clients >= 1; got limit=-1, window=60.0, max_clients=10000
    """

    limit: int = 20
    window_s: float = 60.0
    max_clients: int = 10_000

    def __post_init__(self) -> None:
        if self.limit < 0 or not self.window_s > 0 or self.max_clients < 1:
            raise ConfigurationError(
                "throttle",
                f"auth throttle: need limit >= 0, window > 0 and max_clients >= 1; got limit={self.limit}, "
                f"window={self.window_s}, max_clients={self.max_clients}",
            )

    def build(self, clock: Callable[[], float] = time.monotonic) -> AuthThrottle:
        """A fresh throttle (no failures recorded) with these limits."""
        return AuthThrottle(self.limit, self.window_s, self.max_clients, clock)


@dataclass
class AuthThrottle:
    """Sliding-window count of failed authentications per client address (thread-safe).

    ``limit`` failures within ``window_s`` seconds block the address; ``limit = 0`` disables the
    throttle. At most ``max_clients`` addresses are tracked (least recently failing dropped first),
    so a flood of addresses cannot grow memory without bound.

    >>> t = AuthThrottle(limit=2, window_s=60.0, clock=lambda: 0.0)
    >>> t.retry_after("10.0.0.1") is None
    True
    >>> t.failure("10.0.0.1"), t.failure("10.0.0.1"), t.failure("10.0.0.1")
    (None, None, 60)
    >>> t.retry_after("10.0.0.1")
    60
    """

    limit: int = ThrottleSettings.limit
    window_s: float = ThrottleSettings.window_s
    max_clients: int = ThrottleSettings.max_clients
    clock: Callable[[], float] = time.monotonic
    _fails: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        ThrottleSettings(self.limit, self.window_s, self.max_clients)  # validates

    @property
    def settings(self) -> ThrottleSettings:
        """The limits of this throttle."""
        return ThrottleSettings(self.limit, self.window_s, self.max_clients)

    def _recent(self, client: str, now: float) -> deque[float] | None:
        fails = self._fails.get(client)
        if fails is not None:
            while fails and fails[0] <= now - self.window_s:
                fails.popleft()
            if not fails:
                del self._fails[client]
                return None
        return fails

    def _wait(self, fails: deque[float] | None, now: float) -> int | None:
        if fails is None or len(fails) < self.limit:
            return None
        return max(1, math.ceil(fails[-self.limit] + self.window_s - now))

    def retry_after(self, client: str) -> int | None:
        """Whole seconds until ``client`` may try again, or None when it is not blocked."""
        if self.limit == 0:
            return None
        with self._lock:
            now = self.clock()
            wait = self._wait(self._recent(client[:MAX_ADDRESS], now), now)
        if wait is not None:
            metrics.throttled()
        return wait

    def failure(self, client: str) -> int | None:
        """Count one unknown key presented by ``client`` if its budget admits it: None (answer 401),
        else the seconds to wait (answer 429; not counted). Checked and counted under one lock, so
        concurrent guesses cannot overrun the limit."""
        if self.limit == 0:
            metrics.auth_failed()
            return None
        client = client[:MAX_ADDRESS]
        with self._lock:
            now = self.clock()
            fails = self._recent(client, now)
            wait = self._wait(fails, now)
            if wait is not None:
                metrics.throttled()
                return wait
            if fails is None:
                fails = self._fails[client] = deque(maxlen=self.limit)
            fails.append(now)
            self._fails.move_to_end(client)
            while len(self._fails) > self.max_clients:
                self._fails.popitem(last=False)
        metrics.auth_failed()
        return None
