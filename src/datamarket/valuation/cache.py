"""A persistent coalition cache: an interrupted run resumes and a repeated run refits nothing.

:class:`PersistentCache` is a :class:`~datamarket.valuation.games.MemoCache` whose values are also
written to an SQLite file (``DIR/coalitions.sqlite``), keyed by ``(fingerprint, coalition)``. The
fingerprint identifies everything a coalition's value depends on besides the coalition (for a
:class:`~datamarket.valuation.ModelGame`: the sellers' data, the test set, the estimator and its
parameters (its seed included), the scorer and the empty-coalition value; see
:meth:`ModelGame.fingerprint`), so one directory can hold many games safely.

* Values computed in worker processes come back to the parent, which alone writes (one transaction
  per evaluated chunk, so at most one chunk is lost when a run is killed).
* Several runs may share a directory at once: the file is in WAL mode, writes are
  ``INSERT OR IGNORE`` (a coalition's value is deterministic, so the first writer wins and the others
  agree), and a busy database is retried for up to ``timeout`` seconds.
* Exact resumption: values on disk are *restored* when a run asks for them (:meth:`restore`, called
  by the evaluation loop instead of fitting), and they count against the run's budget like fresh
  evaluations. A run that is interrupted and started again with the same seed therefore follows the
  same path and returns bit-identical values, while fitting only what the first attempt had not;
  ``restored`` counts the fits saved (``evaluations`` = fresh fits + restored values).

The cache is storage the caller injects (like a backend); the library never picks a path itself.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from datamarket.core.errors import ConfigurationError
from datamarket.valuation.games import MemoCache

FILE_NAME = "coalitions.sqlite"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS coalition_values ("
    " fingerprint TEXT NOT NULL, coalition TEXT NOT NULL, value REAL NOT NULL,"
    " PRIMARY KEY (fingerprint, coalition))"
)


class PersistentCache(MemoCache):
    """Memo cache backed by ``directory/coalitions.sqlite`` for one game ``fingerprint``.

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> c = PersistentCache(d, "game-1"); c.put(5, 0.25); c.close()
    >>> again = PersistentCache(d, "game-1")
    >>> again.restore([5, 6]), again.peek(5), again.restored, again.stored
    ([6], 0.25, 1, 1)
    >>> PersistentCache(d, "other-game").stored
    0
    >>> again.close()
    """

    def __init__(self, directory: str | Path, fingerprint: str, *, timeout: float = 30.0) -> None:
        super().__init__()
        if not isinstance(fingerprint, str) or not fingerprint:
            raise ConfigurationError("cache", "needs a non-empty game fingerprint")
        path = Path(directory)
        try:
            path.mkdir(parents=True, exist_ok=True)
            self._conn: sqlite3.Connection | None = sqlite3.connect(
                path / FILE_NAME, timeout=timeout, isolation_level=None
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(_SCHEMA)
            rows = self._conn.execute(
                "SELECT coalition, value FROM coalition_values WHERE fingerprint = ?", (fingerprint,)
            ).fetchall()
        except (OSError, sqlite3.Error) as exc:
            raise ConfigurationError("cache", f"cannot use cache directory {str(path)!r}: {exc}") from None
        self.fingerprint = fingerprint
        self.path = path / FILE_NAME
        self._disk: dict[int, float] = {int(c, 16): float(v) for c, v in rows}
        self.stored = len(rows)
        self.restored = 0
        self._pending: list[tuple[str, str, float]] = []

    def restore(self, masks: list[int]) -> list[int]:
        """Move the values of ``masks`` found on disk into the memo (as evaluations without a fit);
        return the masks that still need evaluating, in order."""
        todo = []
        for m in masks:
            v = self._disk.get(int(m))
            if v is None:
                todo.append(m)
            else:
                MemoCache.put(self, m, v)
                self.restored += 1
        return todo

    def put(self, mask: int, value: float) -> None:
        super().put(mask, value)
        if int(mask) not in self._disk:
            self._disk[int(mask)] = float(value)
            self._pending.append((self.fingerprint, format(int(mask), "x"), float(value)))

    def flush(self) -> None:
        """Write the values computed since the last flush (one transaction)."""
        if not self._pending or self._conn is None:
            return
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany(
                "INSERT OR IGNORE INTO coalition_values (fingerprint, coalition, value) VALUES (?, ?, ?)",
                self._pending,
            )
        self._pending.clear()

    def close(self) -> None:
        """Flush and close the file (the in-memory values stay usable)."""
        if self._conn is not None:
            self.flush()
            self._conn.close()
            self._conn = None

    def __del__(self) -> None:  # pragma: no cover - best effort at interpreter exit
        try:
            self.close()
        except Exception:
            pass
