"""Execution backends: where coalition values are computed (STYLE practice 8).

Every valuation method asks a backend to evaluate a list of coalitions of one game and gets the values
back **in the order asked**, whatever the number of workers; all randomness is drawn in the parent
(seeds spawned there), so the same seed gives bit-identical results on every backend.

* :class:`SerialBackend` — the reference, in this process.
* :class:`ProcessBackend` — local processes (:class:`concurrent.futures.ProcessPoolExecutor`).
* :class:`DaskBackend` — a Dask ``distributed.Client`` passed in, or a scheduler address; the game is
  scattered once and each batch is cut into guided tasks (:func:`guided_sizes`).

Games are shipped to workers with cloudpickle, so closures and lambdas (a ``FunctionGame`` defined in
a notebook) work on every backend; the worker side unpickles with the standard :mod:`pickle`.

Workers pin BLAS/OpenMP threads to 1 (threadpoolctl): with several workers on few cores,
oversubscribed BLAS made one logistic-regression fit 100x slower. A failing worker raises in the
parent (never a silently partial result).
"""

from __future__ import annotations

import hashlib
import math
import pickle
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from datamarket.core.errors import ConfigurationError, InvalidInputError, InvalidMarketError
from datamarket.valuation.games import CoalitionGame, raw_evaluator

_WORKER_GAMES: dict[str, Any] = {}
CHUNK_MAX = 64  # coalitions per chunk on the serial backend (progress granularity)
TASKS_PER_WORKER = 2  # parallel backends: this many tasks per worker and batch ...
TASK_MAX = 4096  # ... of at most this many coalitions (more tasks only for larger batches)
GUIDE = 2  # Dask: each task takes 1 / (GUIDE * workers) of the coalitions not yet handed out ...
GUIDED_MIN = 8  # ... and at least this many
_PINNED = False


def _pin_blas() -> None:
    global _PINNED
    if not _PINNED:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
        _PINNED = True


def eval_chunk(game: CoalitionGame, masks: list[int]) -> NDArray[np.float64]:
    """Evaluate ``masks`` of ``game`` without memo (batched ``values`` when the game has one)."""
    batched = getattr(game, "values", None)
    if callable(batched) and not hasattr(game, "evaluate_uncached") and max(masks, default=0) < 2**62:
        return np.asarray(batched(np.asarray(masks, dtype=np.int64)), dtype=np.float64)
    fn = raw_evaluator(game)
    return np.array([fn(m) for m in masks], dtype=np.float64)


def _guarded(game: CoalitionGame, masks: list[int]) -> Any:
    # InvalidInputError(field, message) does not survive pickling; send its class and parts back instead
    try:
        return eval_chunk(game, masks)
    except InvalidInputError as exc:
        return (type(exc), exc.field, exc.message)


def _unwrap(out: Any, n: int) -> NDArray[np.float64]:
    if isinstance(out, tuple):
        raise out[0](out[1], out[2])
    arr = np.asarray(out, dtype=np.float64)
    if arr.shape != (n,):  # pragma: no cover - defensive
        raise RuntimeError("worker returned a wrong number of values")
    return arr


def _worker_eval(key: str, payload: bytes | None, masks: list[int]) -> Any:
    _pin_blas()
    game = _WORKER_GAMES.get(key)
    if game is None:
        if payload is None:  # pragma: no cover - the parent always sends the payload
            raise RuntimeError("game not shipped to worker")
        _WORKER_GAMES.clear()
        game = _WORKER_GAMES[key] = pickle.loads(payload)
    return _guarded(game, masks)


def _dask_eval(game: Any, masks: list[int]) -> Any:
    _pin_blas()
    return _guarded(game, masks)


def chunked(masks: list[int], n_chunks: int) -> list[list[int]]:
    """Split ``masks`` into at most ``n_chunks`` contiguous, nearly equal chunks (order kept)."""
    if not masks:
        return []
    size = math.ceil(len(masks) / max(1, n_chunks))
    return [masks[i : i + size] for i in range(0, len(masks), size)]


def plan_chunks(masks: list[int], n_workers: int) -> list[list[int]]:
    """The tasks of one batch: contiguous chunks of ``masks``, in order.

    Serial: chunks of ``CHUNK_MAX`` (progress updates; no transfer cost). Parallel: few, large tasks,
    ``TASKS_PER_WORKER`` per worker (chunks of at most ``TASK_MAX``). Every task carries the shipped
    game (the training data of a model game) and a round trip through the parent, so the parent's
    share of the work grows with the number of tasks (measured: benchmarks/valuation_parallel_speedup.py).
    The chunking never changes a value (each coalition is evaluated alone; results come back in order).

    >>> [len(c) for c in plan_chunks(list(range(1000)), 2)]
    [250, 250, 250, 250]
    >>> len(plan_chunks(list(range(1000)), 1))
    16
    """
    if n_workers <= 1:
        return chunked(masks, math.ceil(len(masks) / CHUNK_MAX))
    return chunked(masks, max(math.ceil(len(masks) / TASK_MAX), TASKS_PER_WORKER * n_workers))


def guided_sizes(n: int, n_workers: int, smallest: int = GUIDED_MIN) -> list[int]:
    r"""The task sizes covering ``n`` coalitions on ``n_workers`` workers, largest first.

    Guided self-scheduling (Polychronopoulos & Kuck, *Guided self-scheduling: a practical scheduling
    scheme for parallel supercomputers*, IEEE Trans. Computers 36(12), 1987): each task takes
    :math:`\lceil R / (g\,p) \rceil` of the :math:`R` coalitions not yet handed out (:math:`p` workers,
    :math:`g` = ``GUIDE``; the paper has :math:`g = 1`), and at least ``smallest``. The tasks handed
    out last are the smallest, so workers that pull them in this order end a batch close together
    whatever the fits cost and whatever else runs on their cores, with about
    :math:`g\,p \ln(n / (g\,p\,\text{smallest}))` tasks a batch. The sizes never change a value (each
    coalition is evaluated alone).

    >>> guided_sizes(100, 2)
    [25, 19, 14, 11, 8, 8, 8, 7]
    >>> guided_sizes(5, 2), guided_sizes(0, 3)
    ([5], [])
    """
    sizes: list[int] = []
    left = n
    while left > 0:
        size = min(left, max(smallest, math.ceil(left / (GUIDE * max(1, n_workers)))))
        sizes.append(size)
        left -= size
    return sizes


class Backend(Protocol):
    """Evaluates coalitions; ``map_values`` yields one array per chunk, in the order of ``chunks``."""

    @property
    def n_workers(self) -> int: ...

    def map_values(self, game: CoalitionGame, chunks: list[list[int]]) -> Iterator[NDArray[np.float64]]: ...

    def close(self) -> None: ...


class SerialBackend:
    """The reference backend: evaluates in this process, in order."""

    n_workers = 1

    def map_values(self, game: CoalitionGame, chunks: list[list[int]]) -> Iterator[NDArray[np.float64]]:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            for c in chunks:
                yield eval_chunk(game, c)

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> SerialBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Shipper:
    """Pickles a game once per game object with cloudpickle (lambdas and closures travel by value;
    the memo is not shipped)."""

    def __init__(self) -> None:
        self._game: Any = None
        self._key = ""
        self._payload = b""

    def ship(self, game: Any) -> tuple[str, bytes]:
        if game is not self._game:
            import cloudpickle

            self._payload = cloudpickle.dumps(game, protocol=pickle.HIGHEST_PROTOCOL)
            self._key = hashlib.blake2b(self._payload, digest_size=16).hexdigest()
            self._game = game
        return self._key, self._payload


class ProcessBackend:
    """Local worker processes (``concurrent.futures.ProcessPoolExecutor``), started lazily and reused.

    Use as a context manager or call :meth:`close`. ``mp_context`` defaults to ``"forkserver"`` on
    POSIX (safe with threads in the parent) and ``"spawn"`` elsewhere.
    """

    def __init__(self, n_workers: int = 2, mp_context: str | None = None) -> None:
        if n_workers < 1:
            raise ConfigurationError("n_workers", f"must be >= 1, got {n_workers}")
        self.n_workers = int(n_workers)
        self.mp_context = mp_context
        self._pool: Any = None
        self._shipper = _Shipper()

    def _executor(self) -> Any:
        if self._pool is None:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            name = self.mp_context or (
                "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
            )
            self._pool = ProcessPoolExecutor(self.n_workers, mp_context=mp.get_context(name))
        return self._pool

    def warm_up(self, modules: tuple[str, ...] = ("sklearn.base", "sklearn.linear_model")) -> None:
        """Start the workers and import ``modules`` there now (timings then exclude start-up)."""
        pool = self._executor()
        futures = [pool.submit(_pin_blas_task, modules) for _ in range(4 * self.n_workers)]
        for f in futures:
            f.result()

    def map_values(self, game: CoalitionGame, chunks: list[list[int]]) -> Iterator[NDArray[np.float64]]:
        key, payload = self._shipper.ship(game)
        pool = self._executor()
        futures = [pool.submit(_worker_eval, key, payload, c) for c in chunks]
        try:
            for f, c in zip(futures, chunks, strict=True):
                yield _unwrap(f.result(), len(c))
        finally:
            for f in futures:
                f.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> ProcessBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _pin_blas_task(modules: tuple[str, ...]) -> int:
    import importlib
    import time

    _pin_blas()
    for m in modules:
        importlib.import_module(m)
    time.sleep(0.05)  # keep this worker busy so that the others start too
    return 0


class DaskBackend:
    """Dask distributed: pass a ``distributed.Client`` or a scheduler address (``tcp://host:port``).

    The game is scattered to every worker once (``broadcast=True``), so a task carries only its list
    of coalitions. The coalitions of one call are cut into guided tasks (:func:`guided_sizes`: on 2
    workers the first task takes a quarter of them, each next one a quarter of the rest, down to 8),
    submitted largest first with decreasing priority, so the scheduler hands the small ones to
    whichever worker is free and the workers end a batch together; results are gathered in
    submission order and handed back per chunk asked. A task that fails raises here.
    """

    def __init__(self, client: Any = None, *, address: str | None = None) -> None:
        if (client is None) == (address is None):
            raise ConfigurationError("backend", "give exactly one of a Dask client or a scheduler address")
        self._owns = client is None
        if client is None:
            from distributed import Client

            try:
                client = Client(address, timeout="10s")
            except OSError as exc:
                raise ConfigurationError("scheduler", f"cannot connect to {address}: {exc}") from None
        self.client = client
        self._game: Any = None
        self._future: Any = None

    @property
    def n_workers(self) -> int:
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    def map_values(self, game: CoalitionGame, chunks: list[list[int]]) -> Iterator[NDArray[np.float64]]:
        if game is not self._game:
            self._future = self.client.scatter(game, broadcast=True, hash=False)
            self._game = game
        flat = [m for c in chunks for m in c]
        sizes = guided_sizes(len(flat), self.n_workers)
        starts = np.cumsum([0, *sizes]).tolist()
        futures = [
            self.client.submit(_dask_eval, self._future, flat[a : a + k], pure=False, priority=len(sizes) - i)
            for i, (a, k) in enumerate(zip(starts, sizes, strict=False))
        ]
        try:
            done = (_unwrap(f.result(), k) for f, k in zip(futures, sizes, strict=True))
            buffer = np.empty(0, dtype=np.float64)
            for c in chunks:  # the chunks asked, cut from the tasks' results in order
                while buffer.size < len(c):
                    buffer = np.concatenate([buffer, next(done)])
                yield buffer[: len(c)]
                buffer = buffer[len(c) :]
        finally:
            for f in futures:
                f.cancel()

    def close(self) -> None:
        if self._owns:
            self.client.close()

    def __enter__(self) -> DaskBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def resolve_backend(backend: Any) -> Backend:
    """``None`` -> serial; a backend -> itself; a ``distributed.Client`` -> :class:`DaskBackend`;
    ``"serial"``, ``"processes"`` or a ``tcp://`` address."""
    if backend is None or backend == "serial":
        return SerialBackend()
    if backend == "processes":
        return ProcessBackend()
    if isinstance(backend, str):
        if "://" in backend:
            return DaskBackend(address=backend)
        raise ConfigurationError("backend", f"unknown backend {backend!r}")
    if hasattr(backend, "map_values"):
        return backend  # type: ignore[no-any-return]
    if hasattr(backend, "scatter") and hasattr(backend, "submit"):
        return DaskBackend(backend)
    raise ConfigurationError("backend", f"not a backend: {type(backend).__name__}")


def evaluate(
    game: CoalitionGame,
    masks: list[int],
    backend: Backend,
    cache: Any,
    *,
    on_chunk: Callable[[int], None] | None = None,
) -> None:
    """Evaluate the ``masks`` not yet in ``cache`` on ``backend`` and store them in ``cache``.

    ``masks`` must be distinct and absent from ``cache`` (the caller dedups, counting hits).
    Non-finite values raise :class:`InvalidMarketError` naming the coalition. A cache with
    ``restore`` (:class:`~datamarket.valuation.cache.PersistentCache`) supplies stored values first.
    """
    n_asked = len(masks)
    restore = getattr(cache, "restore", None)
    if callable(restore):  # a persistent cache supplies values computed by an earlier run
        masks = restore(masks)
        if on_chunk is not None and len(masks) < n_asked:
            on_chunk(n_asked - len(masks))
    if not masks:
        return
    chunks = plan_chunks(masks, backend.n_workers)
    for c, vals in zip(chunks, backend.map_values(game, chunks), strict=True):
        bad = np.flatnonzero(~np.isfinite(vals))
        if bad.size:
            raise InvalidMarketError("utility", f"game value is not finite for coalition {c[bad[0]]:#x}")
        for m, v in zip(c, vals.tolist(), strict=True):
            cache.put(m, v)
        flush = getattr(cache, "flush", None)
        if callable(flush):  # a persistent cache writes each chunk in one transaction
            flush()
        if on_chunk is not None:
            on_chunk(len(c))
