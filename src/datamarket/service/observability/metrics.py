"""The Prometheus metrics of one service process, and the events that move them.

Every metric lives in one registry per process (:data:`REGISTRY`) and is moved by a function named
after its event, called where the event happens: the HTTP middleware (requests), the round runner
(rounds, ledger entries), the lease claims (expiries, takeovers), the throttle, the ledger's
verification. The label values are bounded: a route is its template (``/rounds/{rid}``, never
``/rounds/5``; ``unmatched`` for a path no route serves), a method one of :data:`METHODS` or
``other``, a kind one of the configured adapters, a status or reason one of a fixed set.

========================================================  ==============================================
``datamarket_http_requests_total{route,method,status}``   requests answered (``status``: the HTTP code)
``datamarket_http_request_duration_seconds{route,method}`` time to answer (histogram)
``datamarket_rounds_total{kind,status}``                  rounds this process's workers finished:
                                                          ``cleared``, ``unverified`` (certificate
                                                          failed, nothing booked) or ``failed`` (also
                                                          rounds its claims failed after too many
                                                          expired leases, and rounds the operator
                                                          failed through this process)
``datamarket_round_duration_seconds{kind}``               claim to end of those rounds (histogram)
``datamarket_lease_expiries_total``                       expired leases this process's claims found
``datamarket_lease_takeovers_total``                      of those, rounds it took over and cleared anew
``datamarket_upload_bytes_total``                         body bytes of uploads answered with success
``datamarket_upload_rejections_total{reason}``            uploads refused: ``too_large`` (413),
                                                          ``unreadable`` (422), ``refused`` (409: the
                                                          market does not take it), ``busy`` (503),
                                                          ``unauthorized`` (401/403/429),
                                                          ``not_found`` (404), ``other``
``datamarket_ledger_entries_total``                       ledger entries booked (committed)
``datamarket_ledger_verifications_total{scope,result}``   verifications run: ``scope`` ``ledger`` (the
                                                          whole chain) or ``checkpoint`` (a receipt's;
                                                          participants may send wrong ones), ``result``
                                                          ``ok`` or ``failed``
``datamarket_auth_failures_total``                        unknown API keys presented (401)
``datamarket_throttle_rejections_total``                  requests refused 429 by the failed-
                                                          authentication throttle
``datamarket_process_info{version,instance_id}``          1; ``instance_id`` is the process's id in
                                                          rounds' ``claimed_by``
========================================================  ==============================================

plus the ``process_*`` (CPU, memory, file descriptors) and ``python_info`` series of
prometheus-client.

Several processes
-----------------
Counts are per process, exactly as Prometheus expects of a scrape target: scrape every
``datamarket serve`` process on its own address (or its ``--metrics-port``), never through the load
balancer, and sum across targets (``sum by (kind, status) (rate(datamarket_rounds_total[5m]))``).
A round is counted once, by the process whose worker finished it, whichever process opened it; a
restarted process starts from zero, which ``rate`` and ``increase`` treat as a counter reset. No
series carries the random instance id (it would start new series at every restart, whose first
increments ``rate`` cannot see); ``datamarket_process_info`` maps a target to its instance id.
prometheus-client's multiprocess mode is not used: a ``datamarket serve`` process is one uvicorn
process, its clearing workers count nothing (the coordinator thread counts their rounds), and the
mode would need a directory shared by the processes of one host only.

Apps built in one Python process (tests, the docs) share the registry and its counts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, Info, PlatformCollector, ProcessCollector
from prometheus_client.exposition import choose_encoder, start_http_server
from prometheus_client.metrics import disable_created_metrics

from datamarket import __version__

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
ROUND_STATUSES = ("cleared", "unverified", "failed")
UPLOAD_REASONS = {413: "too_large", 422: "unreadable", 409: "refused", 503: "busy", 404: "not_found"}
UPLOAD_REASONS |= {401: "unauthorized", 403: "unauthorized", 429: "unauthorized"}
ROUND_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)

HTTP_REQUESTS = Counter(
    "datamarket_http_requests",
    "HTTP requests answered, by route template, method and status code.",
    ("route", "method", "status"),
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "datamarket_http_request_duration_seconds",
    "Seconds from a request's arrival to the end of its answer, by route template and method.",
    ("route", "method"),
    registry=REGISTRY,
)
ROUNDS = Counter(
    "datamarket_rounds",
    "Rounds finished by this process, by market kind and final status (cleared, unverified, failed).",
    ("kind", "status"),
    registry=REGISTRY,
)
ROUND_DURATION = Histogram(
    "datamarket_round_duration_seconds",
    "Seconds from the claim of a round to its end (cleared, unverified or failed) in this process.",
    ("kind",),
    buckets=ROUND_BUCKETS,
    registry=REGISTRY,
)
LEASE_EXPIRIES = Counter(
    "datamarket_lease_expiries", "Expired round leases found by this process's claims.", registry=REGISTRY
)
LEASE_TAKEOVERS = Counter(
    "datamarket_lease_takeovers",
    "Rounds whose lease had expired that this process took over (cleared anew).",
    registry=REGISTRY,
)
UPLOAD_BYTES = Counter(
    "datamarket_upload_bytes", "Body bytes of dataset uploads answered with success.", registry=REGISTRY
)
UPLOAD_REJECTIONS = Counter(
    "datamarket_upload_rejections",
    "Dataset uploads refused, by reason class.",
    ("reason",),
    registry=REGISTRY,
)
LEDGER_ENTRIES = Counter(
    "datamarket_ledger_entries", "Ledger entries booked (committed) by this process.", registry=REGISTRY
)
LEDGER_VERIFICATIONS = Counter(
    "datamarket_ledger_verifications",
    "Ledger verifications: the whole chain (scope=ledger) or a receipt's checkpoint (scope=checkpoint).",
    ("scope", "result"),
    registry=REGISTRY,
)
AUTH_FAILURES = Counter(
    "datamarket_auth_failures", "Unknown API keys presented (answered 401).", registry=REGISTRY
)
THROTTLE_REJECTIONS = Counter(
    "datamarket_throttle_rejections",
    "Requests refused 429 by the failed-authentication throttle.",
    registry=REGISTRY,
)
PROCESS = Info("datamarket_process", "This service process: version and instance id.", registry=REGISTRY)

for _reason in {*UPLOAD_REASONS.values(), "other"}:
    UPLOAD_REJECTIONS.labels(_reason)
for _scope in ("ledger", "checkpoint"):
    for _result in ("ok", "failed"):
        LEDGER_VERIFICATIONS.labels(_scope, _result)


def declare(kinds: Iterable[str], instance: str) -> None:
    """Create the series of every market kind (so that a dashboard shows 0 before the first round)
    and name this process; called once per app. Turns off the ``*_created`` series, which double
    the series of every counter for no use of ours."""
    disable_created_metrics()
    for kind in kinds:
        ROUND_DURATION.labels(kind)
        for status in ROUND_STATUSES:
            ROUNDS.labels(kind, status)
    PROCESS.info({"version": __version__, "instance_id": instance})


# -- the events ---------------------------------------------------------------------------------------
_HTTP_CHILDREN: dict[tuple[str, str, int], tuple[Any, Any]] = {}  # bounded, as the labels are


def http_request(route: str, method: str, status: int, seconds: float) -> None:
    """One HTTP request answered (``route``: the template; ``method`` outside :data:`METHODS`:
    ``other``). The series of each label set are looked up once, then kept (a dict lookup per
    request instead of prometheus-client's locked label lookup)."""
    m = method if method in METHODS else "other"
    key = (route, m, status)
    children = _HTTP_CHILDREN.get(key)
    if children is None:  # a race creates the same children twice: labels() returns one series
        children = HTTP_REQUESTS.labels(route, m, str(status)), HTTP_DURATION.labels(route, m)
        _HTTP_CHILDREN[key] = children
    children[0].inc()
    children[1].observe(seconds)


def upload_answered(status: int, body_bytes: int) -> None:
    """A dataset upload was answered ``status`` after ``body_bytes`` of body."""
    if status < 400:
        UPLOAD_BYTES.inc(body_bytes)
    else:
        UPLOAD_REJECTIONS.labels(UPLOAD_REASONS.get(status, "other")).inc()


def round_finished(kind: str, status: str, seconds: float | None) -> None:
    """A round this process claimed ended ``status`` (one of :data:`ROUND_STATUSES`) ``seconds`` after
    its claim (None: failed by a claim for its expired leases, no duration of ours)."""
    ROUNDS.labels(kind, status).inc()
    if seconds is not None:
        ROUND_DURATION.labels(kind).observe(seconds)


def lease_expired(taken_over: bool) -> None:
    """A claim found a round whose lease had expired: taken over, or failed (too many expiries)."""
    LEASE_EXPIRIES.inc()
    if taken_over:
        LEASE_TAKEOVERS.inc()


def ledger_booked(entries: int) -> None:
    """A round's ``entries`` ledger entries were committed."""
    LEDGER_ENTRIES.inc(entries)


def ledger_verified(scope: str, ok: bool) -> None:
    """A verification of the whole ledger (``scope="ledger"``) or a checkpoint ran."""
    LEDGER_VERIFICATIONS.labels(scope, "ok" if ok else "failed").inc()


def auth_failed() -> None:
    """An unknown API key was presented."""
    AUTH_FAILURES.inc()


def throttled() -> None:
    """The failed-authentication throttle refused a request."""
    THROTTLE_REJECTIONS.inc()


# -- exposition ---------------------------------------------------------------------------------------
def exposition(accept: str | None) -> tuple[bytes, str]:
    """The registry in the format ``accept`` asks for (Prometheus text, or OpenMetrics when asked)
    and its content type."""
    encode, content_type = choose_encoder(accept or "")
    return encode(REGISTRY), content_type


def serve(host: str, port: int) -> Callable[[], None]:
    """Serve :data:`REGISTRY` without authentication on ``host:port`` (the separate bind of
    ``--metrics-port``) in a daemon thread; returns the function that stops it."""
    server, thread = start_http_server(port, addr=host, registry=REGISTRY)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
