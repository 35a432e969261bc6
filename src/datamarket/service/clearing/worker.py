"""The worker side of clearing: a process pool (default), a Dask cluster, or threads.

:func:`run_clearing` is the function a worker executes: it imports the adapter by reference, clears
the round (a pure, seeded computation that never touches the database) and returns the outcome and
deliverables as JSON-safe data. BLAS threads are pinned to one inside workers (STYLE practice 8).

Executors
---------
``process`` (default)  :class:`concurrent.futures.ProcessPoolExecutor` with the ``spawn`` start method
                       (the service runs threads; forking a threaded process is unsafe). When a worker
                       dies (killed, out of memory) the pool is broken: the round fails and the pool
                       is recreated for the next round. Each worker runs a watchdog thread
                       (:func:`watch_parent`) that exits the worker as soon as its parent process
                       is gone, so that no worker outlives a killed service (``kill -9``).
``dask``               a ``distributed.Client`` connected to ``dask_address`` (the Dask cluster).
``thread``             a thread pool in the service process (tests of the HTTP layer, tiny demos).

Progress
--------
An adapter whose ``clear`` accepts ``progress`` gets a callback (:mod:`datamarket.core.progress`). In
a worker process it puts ``(token, stage, fraction)`` on a queue the pool created with its
processes (handed to each worker by the initializer, :func:`init_worker`), at most every
:data:`PROGRESS_EVERY_S` per stage; a reader thread of the service hands each report to the
listener the coordinator registered for that run. On threads the callback is called directly. Dask
workers report nothing (the coordinator's coarse stages only).

Logs
----
The worker logs with the request id and round id of the coordinator that handed it the round (a
thread runs in a copy of the coordinator's context; a process or Dask worker gets them with the job,
:func:`run_clearing`), and a worker process logs in the service's format (:func:`init_worker`
configures it as the service's logging was: :func:`datamarket.service.observability.logs.worker_setup`).
"""

from __future__ import annotations

import contextvars
import inspect
import itertools
import logging
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from datamarket.core.errors import ConfigurationError
from datamarket.core.progress import Progress
from datamarket.core.types import json_safe
from datamarket.service.adapters import Input, answer_kinds_of, load_adapter, standing_kinds_of
from datamarket.service.adapters.charges import reconcile
from datamarket.service.observability import logs

log = logging.getLogger(__name__)
EXECUTORS = ("process", "thread", "dask")
PROGRESS_EVERY_S = 0.2
DONE = -1.0  # the fraction of a run's last queue item: no more reports follow
_QUEUE: Any = None  # in a worker process: the pool's progress queue (set by init_worker)


def clear_with(
    ref: str, params: Mapping[str, Any], inputs: Sequence[Input], seed: int, progress: Progress | None = None
) -> dict[str, Any]:
    """Clear one round; returns ``{"outcome": Outcome.to_dict(), "deliverables": {...}, "certificate":
    Certificate.to_dict(), "charges": {participant: [charge, ...]}}`` (charges reconciled with the
    outcome: :func:`~datamarket.service.adapters.charges.reconcile`).

    ``progress`` reaches the adapter when its ``clear`` takes that keyword."""
    from threadpoolctl import threadpool_limits

    adapter = load_adapter(ref)
    kwargs: dict[str, Any] = {}
    if progress is not None and "progress" in inspect.signature(adapter.clear).parameters:
        kwargs["progress"] = progress
    log.debug("clearing with %s: %d inputs (worker pid %d)", ref, len(inputs), os.getpid())
    started = time.monotonic()
    with threadpool_limits(limits=1):
        result = adapter.clear(params, inputs, seed, **kwargs)
    log.debug("cleared with %s in %.3f s", ref, time.monotonic() - started)
    return {
        "outcome": result.outcome.to_dict(),
        "deliverables": {str(k): json_safe(dict(v)) for k, v in result.deliverables.items()},
        "certificate": result.certificate.to_dict(),
        "charges": json_safe(reconcile(result.outcome, result.charges)),
        "standing": sorted(standing_kinds_of(adapter)),  # inputs the booking leaves waiting
        "answers": bool(answer_kinds_of(adapter)),  # the market opens its rounds by itself
    }


def throttled(send: Callable[[str, float], None], every_s: float = PROGRESS_EVERY_S) -> Progress:
    """A progress callback that forwards a report when the stage changes, the work is done, or
    ``every_s`` passed since the last one (a queue is not flooded by a tight loop)."""
    last_stage, last_t = [""], [0.0]

    def progress(stage: str, fraction: float) -> None:
        now = time.monotonic()
        if stage != last_stage[0] or fraction >= 1.0 or now - last_t[0] >= every_s:
            last_stage[0], last_t[0] = stage, now
            send(stage, fraction)

    return progress


def run_clearing(
    ref: str,
    params: Mapping[str, Any],
    inputs: Sequence[Input],
    seed: int,
    token: int | None = None,
    context: tuple[str | None, int | None] = (None, None),
) -> dict[str, Any]:
    """Clear one round in a worker process; progress goes to the pool's queue tagged with ``token``,
    log lines carry ``context`` (request id, round id)."""
    with logs.bound(*context):
        return _run_clearing(ref, params, inputs, seed, token)


def _run_clearing(
    ref: str, params: Mapping[str, Any], inputs: Sequence[Input], seed: int, token: int | None
) -> dict[str, Any]:
    progress = None
    q = _QUEUE
    if token is not None and q is not None:

        def send(stage: str, fraction: float) -> None:
            try:
                q.put_nowait((token, stage, fraction))
            except Exception:  # a full or closed queue loses a report, never the round
                pass

        progress = throttled(send)
    try:
        return clear_with(ref, params, inputs, seed, progress)
    finally:
        if progress is not None:  # the end marker: every report of this run was put before it
            try:
                q.put_nowait((token, "", DONE))
            except Exception:
                pass


PARENT_POLL_S = 0.5


def watch_parent(parent_pid: int, poll_s: float = PARENT_POLL_S) -> None:
    """Worker initializer: a daemon thread that ends this process when ``parent_pid`` is no longer its
    parent (the service died, even by ``SIGKILL``, and the worker was re-parented)."""

    def watch() -> None:
        import time

        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def init_worker(parent_pid: int, progress_queue: Any, log_setup: dict[str, Any] | None = None) -> None:
    """Worker initializer: the parent watchdog (:func:`watch_parent`), the progress queue, and the
    service's logging (``log_setup``: :func:`~datamarket.service.observability.logs.configure_logging`'s
    arguments; None: left as it is)."""
    global _QUEUE
    _QUEUE = progress_queue
    if log_setup is not None:
        logs.configure_logging(log_setup["fmt"], log_setup["level"], secrets=log_setup["secrets"])
    watch_parent(parent_pid)


def check_executor(kind: str, max_workers: int, dask_address: str | None) -> None:
    """:class:`~datamarket.core.errors.ConfigurationError` unless ``kind`` is one of :data:`EXECUTORS`
    with at least one worker, and ``dask`` comes with an address."""
    if kind not in EXECUTORS:
        raise ConfigurationError("executor", f"must be one of {', '.join(EXECUTORS)}, got {kind!r}")
    if kind == "dask" and not dask_address:
        raise ConfigurationError("executor", "'dask' needs dask_address (e.g. tcp://127.0.0.1:8786)")
    if max_workers < 1:
        raise ConfigurationError("max_workers", f"must be at least 1, got {max_workers}")


class WorkerPool:
    """The executor rounds are cleared on; recreated after a worker crash."""

    def __init__(self, kind: str = "process", *, max_workers: int = 2, dask_address: str | None = None):
        check_executor(kind, max_workers, dask_address)
        self.kind = kind
        self.max_workers = max_workers
        self.dask_address = dask_address
        self._lock = threading.Lock()
        self._executor: Executor | None = None
        self._client: Any = None
        self._reader: _ProgressReader | None = None
        self._tokens = itertools.count(1)
        self._listeners: dict[int, tuple[Progress, threading.Event]] = {}

    def _get(self) -> Executor:
        with self._lock:
            if self._executor is None:
                if self.kind == "process":
                    ctx = multiprocessing.get_context("spawn")
                    self._reader = _ProgressReader(ctx.Queue(), self._listeners)
                    self._executor = ProcessPoolExecutor(
                        self.max_workers,
                        mp_context=ctx,
                        initializer=init_worker,
                        initargs=(os.getpid(), self._reader.queue, logs.worker_setup()),
                    )
                else:
                    self._executor = ThreadPoolExecutor(self.max_workers, thread_name_prefix="clearing")
            return self._executor

    def run(
        self,
        ref: str,
        params: Mapping[str, Any],
        inputs: Sequence[Input],
        seed: int,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Clear one round on the pool and wait for the result (raises what the worker raised);
        ``progress`` receives the adapter's reports (module docstring)."""
        if self.kind == "dask":
            if self._client is None:
                from distributed import Client

                self._client = Client(self.dask_address)  # type: ignore[no-untyped-call]
            fut = self._client.submit(
                run_clearing, ref, dict(params), list(inputs), seed, None, logs.context(), pure=False
            )
            return dict(fut.result())
        executor = self._get()
        future: Future[dict[str, Any]]
        if isinstance(executor, ProcessPoolExecutor):
            token, done = next(self._tokens), threading.Event()
            if progress is not None:
                self._listeners[token] = (progress, done)
            try:
                future = executor.submit(
                    run_clearing,
                    ref,
                    dict(params),
                    list(inputs),
                    seed,
                    None if progress is None else token,
                    logs.context(),
                )
                out = future.result()
                if progress is not None:  # the reports still in the queue reach the listener first
                    done.wait(timeout=2.0)
                return out
            except BrokenProcessPool:
                self._reset(executor)
                raise
            finally:
                self._listeners.pop(token, None)
        report = None if progress is None else throttled(progress)
        ctx = contextvars.copy_context()  # the thread logs with the coordinator's request and round
        future = executor.submit(ctx.run, clear_with, ref, dict(params), list(inputs), seed, report)
        return future.result()

    def _reset(self, broken: Executor) -> None:
        with self._lock:
            reader = None
            if self._executor is broken:
                log.warning("worker pool broken (a worker died); starting a new one")
                self._executor = None
                reader, self._reader = self._reader, None
        broken.shutdown(wait=False, cancel_futures=True)
        if reader is not None:
            reader.stop()

    def shutdown(self) -> None:
        with self._lock:
            ex, self._executor = self._executor, None
            reader, self._reader = self._reader, None
        if reader is not None:
            reader.stop()
        if ex is not None:
            ex.shutdown(wait=False, cancel_futures=True)
            if isinstance(ex, ProcessPoolExecutor):
                for p in (getattr(ex, "_processes", None) or {}).values():
                    if p.is_alive():
                        p.terminate()
        if self._client is not None:
            self._client.close()
            self._client = None


class _ProgressReader:
    """A daemon thread of the service that hands the workers' progress reports to their listeners.

    The service only reads from the queue (never writes), so a worker killed while writing cannot
    block it; :meth:`stop` ends the thread within one poll."""

    def __init__(self, q: Any, listeners: dict[int, tuple[Progress, threading.Event]], poll_s: float = 0.2):
        self.queue = q
        self._listeners = listeners
        self._poll_s = poll_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                token, stage, fraction = self.queue.get(timeout=self._poll_s)
            except queue.Empty:
                continue
            except (OSError, EOFError, ValueError):  # the queue was closed
                return
            listener = self._listeners.get(token)
            if listener is None:
                continue
            if fraction == DONE:  # exact: the marker value itself
                listener[1].set()
                continue
            try:
                listener[0](str(stage), float(fraction))
            except Exception:
                log.exception("progress listener failed")

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=2 * self._poll_s + 1)
        self.queue.close()
        self.queue.cancel_join_thread()
