"""What an operator watches: metrics, logs and readiness of one service process.

* :mod:`.metrics` -- the process's Prometheus metrics (one registry per process, every metric named
  ``datamarket_*``) and the functions the service calls where each event happens; the exposition
  for ``GET /metrics`` (operator only) and the optional separate bind (``--metrics-port``).
* :mod:`.logs` -- standard-library logging with a JSON or a human formatter, the request id and the
  round id of the work a line belongs to (context variables, carried into the threads and worker
  processes that clear a round), and the redaction of API keys.
* :mod:`.http` -- the ASGI middleware that gives every request its id (``X-Request-ID``), counts it
  by route template and writes the access log line.
* :mod:`.readiness` -- ``GET /ready``: the database answers and its schema is at this version's
  head; 503 while the process drains after SIGTERM (:class:`~.readiness.DrainingServer`).

Nothing here imports FastAPI, the store or the clearing, so every layer of the service may count
and log (``docs/service.md``, "Operations").
"""
