"""How many uploads are parsed at once, and how much memory they may hold together.

Each upload is capped alone (:class:`~datamarket.service.uploads.limits.UploadLimits`), but twelve
compressed NPZ uploads parsed at once took a process from 119 MB to 1.5 GB. So the parses share one
budget per process:

1. a parse first takes one of ``max_parallel_parses`` slots;
2. its cost is bounded (:func:`parse_cost`) from the body's size and the sizes its headers declare,
   which the readers enforce (an NPZ member's declared size and element count, a Parquet footer's
   row and column counts; a CSV's values are at most one per two bytes), never above
   :attr:`~datamarket.service.uploads.limits.UploadLimits.max_parse_cost`;
3. it is admitted only if that cost fits in what ``parse_memory`` leaves after the parses in
   progress; otherwise its slot is given back.

A small upload (a body of at most :data:`SMALL_BODY` bytes whose cost is at most :data:`LIGHT_COST`)
skips step 1: it holds too little to need a slot, and under load a few milliseconds of parsing by
dozens of such uploads at once otherwise filled the slots and answered 1 kB uploads with 503s.

Admission never waits: a refused upload is answered 503 with ``Retry-After`` by the caller and
nothing is stored, so that a burst of uploads holds neither memory nor server threads. The slot is
returned when the parse is over (:meth:`Admission.parsed`: the upload then only waits to be stored,
which takes no slot), the bytes when the upload is stored or refused (:class:`Admission` is a
context manager), so that what waits for the database still counts against ``parse_memory``.
The budget is per process (:func:`parse_budget`, one per limits value): N processes may hold N
times ``parse_memory``. Bodies still arriving are bounded by ``max_bytes`` each, not by this
budget.
"""

from __future__ import annotations

import io
import threading
import zipfile
from collections.abc import Callable
from types import TracebackType

from datamarket.service.uploads.limits import TEXT_BYTES, VALUE_BYTES, UploadLimits


def parse_cost(data: bytes, fmt: str, limits: UploadLimits) -> int:
    """Bytes that parsing and storing ``data`` (in format ``fmt``) may hold, the body included.

    >>> limits = UploadLimits()
    >>> parse_cost(b"x,label\\n1,0\\n", "csv", limits) == 5 * 12 + 48 * 7
    True
    >>> parse_cost(b"not a zip", "npz", limits)  # refused before anything is inflated
    9
    """
    size = len(data)
    if fmt == "csv":
        values = min(limits.max_cells, size // 2 + 1)
        return (1 + TEXT_BYTES) * size + VALUE_BYTES * values
    values = _npz_values(data, limits) if fmt == "npz" else _parquet_values(data, limits)
    return size + VALUE_BYTES * values


def _npz_values(data: bytes, limits: UploadLimits) -> int:
    """At most the values an NPZ's members may inflate to: each member holds at most its declared
    size in bytes and its cap in elements (the reader refuses more before inflating it)."""
    caps = {"features.npy": limits.max_cells, "labels.npy": limits.max_rows, "groups.npy": limits.max_rows}
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        return 0  # the reader refuses it before inflating anything
    return sum(min(caps.get(i.filename, 0), i.file_size) for i in infos)


def _parquet_values(data: bytes, limits: UploadLimits) -> int:
    """The values a Parquet footer declares (rows x columns; the reader checks the row groups add up
    and reads no more), at most ``max_cells``."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return 0  # refused: Parquet uploads need the optional extra
    try:
        md = pq.ParquetFile(io.BytesIO(data)).metadata
    except (pa.ArrowException, OSError, ValueError, IndexError):
        return 0  # the reader refuses it at the same step, before reading a page
    return int(min(limits.max_cells, md.num_rows * md.num_columns))


SMALL_BODY = 64 * 1024
"""Bytes of a body up to which an upload's cost is computed before it takes a slot
(:meth:`ParseBudget.admit`)."""
LIGHT_COST = 4 * 2**20
"""Bytes a parse may hold and still take no slot, only its bytes: a 1 kB CSV is not refused because
``max_parallel_parses`` large files are parsing (``parse_memory`` still bounds all of them)."""


class ParseBudget:
    """At most ``max_parallel`` parses at once, whose costs add up to at most ``max_bytes``.

    ``running`` and ``reserved`` are what is held now, ``peak`` the most bytes ever held at once.

    >>> budget = ParseBudget(max_parallel=2, max_bytes=100)
    >>> first = budget.admit(lambda: 60)
    >>> budget.admit(lambda: 50) is None, budget.running, budget.reserved  # 110 > 100
    (True, 1, 60)
    >>> with first:
    ...     budget.reserved
    60
    >>> budget.running, budget.reserved, budget.peak
    (0, 0, 60)
    """

    def __init__(self, max_parallel: int, max_bytes: int) -> None:
        self.max_parallel = max_parallel
        self.max_bytes = max_bytes
        self.running = 0
        self.reserved = 0
        self.peak = 0
        self._lock = threading.Lock()

    def admit(self, cost: Callable[[], int], size: int | None = None) -> Admission | None:
        """An :class:`Admission` for a parse costing ``cost()`` bytes (called once a slot is taken),
        or None when every slot is taken or the bytes do not fit; never waits. An upload whose body
        (``size``) is at most :data:`SMALL_BODY` bytes has its cost computed first (cheap at that
        size), and takes no slot when that is at most :data:`LIGHT_COST`: only its bytes.

        >>> budget = ParseBudget(max_parallel=1, max_bytes=100)
        >>> big = budget.admit(lambda: 60)
        >>> budget.admit(lambda: 10) is None, budget.admit(lambda: 10, size=100) is None  # a slot, or none
        (True, False)
        >>> budget.running, budget.reserved
        (1, 70)
        """
        if size is not None and size <= SMALL_BODY:
            nbytes = cost()
            if nbytes <= LIGHT_COST:
                return self._reserve(nbytes, slot=False)
            cost = lambda: nbytes  # noqa: E731
        with self._lock:
            if self.running >= self.max_parallel:
                return None
            self.running += 1
        try:
            nbytes = cost()
        except BaseException:
            self.release(0)
            raise
        return self._reserve(nbytes, slot=True)

    def _reserve(self, nbytes: int, slot: bool) -> Admission | None:
        """Reserve ``nbytes`` if they fit (else give back the ``slot`` taken, if one was)."""
        with self._lock:
            if self.reserved + nbytes <= self.max_bytes:
                self.reserved += nbytes
                self.peak = max(self.peak, self.reserved)
                return Admission(self, nbytes, slot)
            self.running -= int(slot)
        return None

    def release(self, nbytes: int, slot: bool = True) -> None:
        """Give back ``nbytes`` and, with ``slot``, a slot (what :class:`Admission` calls)."""
        with self._lock:
            self.running -= int(slot)
            self.reserved -= nbytes


class Admission:
    """A parse admitted by a :class:`ParseBudget`: its slot is given back by :meth:`parsed` or on
    exit, its ``nbytes`` on exit.

    >>> budget = ParseBudget(max_parallel=1, max_bytes=100)
    >>> with budget.admit(lambda: 60) as admission:
    ...     admission.parsed()
    ...     budget.running, budget.reserved, budget.admit(lambda: 50) is None  # a slot, not the bytes
    (0, 60, True)
    >>> budget.running, budget.reserved
    (0, 0)
    """

    def __init__(self, budget: ParseBudget, nbytes: int, slot: bool = True) -> None:
        self.budget = budget
        self.nbytes = nbytes
        self.parsing = slot  # holding a slot

    def parsed(self) -> None:
        """The parse is over: its slot goes back to the next upload, the bytes stay reserved until
        exit (the body and the parsed form are held until they are stored)."""
        if self.parsing:
            self.parsing = False
            self.budget.release(0)

    def __enter__(self) -> Admission:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.budget.release(self.nbytes, slot=self.parsing)


_BUDGETS: dict[UploadLimits, ParseBudget] = {}
_BUDGETS_LOCK = threading.Lock()


def parse_budget(limits: UploadLimits) -> ParseBudget:
    """The process's budget for uploads parsed under ``limits`` (created on first use).

    >>> parse_budget(UploadLimits()) is parse_budget(UploadLimits())
    True
    """
    with _BUDGETS_LOCK:
        if limits not in _BUDGETS:
            _BUDGETS[limits] = ParseBudget(limits.max_parallel_parses, limits.parse_memory)
        return _BUDGETS[limits]
