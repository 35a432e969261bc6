"""Background clearing: a process pool (default), a Dask cluster, or threads.

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
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from datamarket.core.types import json_safe
from datamarket.service.adapters import Input, load_adapter

log = logging.getLogger(__name__)
EXECUTORS = ("process", "thread", "dask")


def run_clearing(ref: str, params: Mapping[str, Any], inputs: Sequence[Input], seed: int) -> dict[str, Any]:
    """Clear one round in a worker; returns ``{"outcome": Outcome.to_dict(), "deliverables": {...}}``."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        result = load_adapter(ref).clear(params, inputs, seed)
    return {
        "outcome": result.outcome.to_dict(),
        "deliverables": {str(k): json_safe(dict(v)) for k, v in result.deliverables.items()},
    }


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


class WorkerPool:
    """The executor rounds are cleared on; recreated after a worker crash."""

    def __init__(self, kind: str = "process", *, max_workers: int = 2, dask_address: str | None = None):
        if kind not in EXECUTORS:
            raise ValueError(f"executor: must be one of {', '.join(EXECUTORS)}, got {kind!r}")
        if kind == "dask" and not dask_address:
            raise ValueError("executor: 'dask' needs dask_address (e.g. tcp://127.0.0.1:8786)")
        self.kind = kind
        self.max_workers = max_workers
        self.dask_address = dask_address
        self._lock = threading.Lock()
        self._executor: Executor | None = None
        self._client: Any = None

    def _get(self) -> Executor:
        with self._lock:
            if self._executor is None:
                if self.kind == "process":
                    ctx = multiprocessing.get_context("spawn")
                    self._executor = ProcessPoolExecutor(
                        self.max_workers, mp_context=ctx, initializer=watch_parent, initargs=(os.getpid(),)
                    )
                else:
                    self._executor = ThreadPoolExecutor(self.max_workers, thread_name_prefix="clearing")
            return self._executor

    def run(self, ref: str, params: Mapping[str, Any], inputs: Sequence[Input], seed: int) -> dict[str, Any]:
        """Clear one round on the pool and wait for the result (raises what the worker raised)."""
        if self.kind == "dask":
            if self._client is None:
                from distributed import Client

                self._client = Client(self.dask_address)
            fut = self._client.submit(run_clearing, ref, dict(params), list(inputs), seed, pure=False)
            return dict(fut.result())
        executor = self._get()
        future: Future[dict[str, Any]] = executor.submit(run_clearing, ref, dict(params), list(inputs), seed)
        try:
            return future.result()
        except BrokenProcessPool:
            self._reset(executor)
            raise

    def _reset(self, broken: Executor) -> None:
        with self._lock:
            if self._executor is broken:
                log.warning("worker pool broken (a worker died); starting a new one")
                self._executor = None
        broken.shutdown(wait=False, cancel_futures=True)

    def shutdown(self) -> None:
        with self._lock:
            ex, self._executor = self._executor, None
        if ex is not None:
            ex.shutdown(wait=False, cancel_futures=True)
            if isinstance(ex, ProcessPoolExecutor):
                for p in (getattr(ex, "_processes", None) or {}).values():
                    if p.is_alive():
                        p.terminate()
        if self._client is not None:
            self._client.close()
            self._client = None
