"""Seeded splits of a labelled pool among parties (Ohrimenko et al., Sec. 6 adapted to digits).

Pure functions on arrays: the caller loads the data (``sklearn.datasets.load_digits`` stands in for MNIST
offline). Per class, the rows are shuffled with the seed and cut into a training pool, a validation pool
and an optional held-out test pool. A class whose training pool is held by several parties is split
disjointly among them, round-robin after the seeded shuffle. A task is the validation rows of
its labels.

>>> import numpy as np
>>> x = np.arange(40, dtype=float).reshape(20, 2); y = np.repeat([0, 1], 10)
>>> m = build_market(x, y, [(0,), (1,)], (0, 1), seed=0)
>>> [p.train.n_samples for p in m.parties], m.parties[0].task.n_samples
([5, 5], 10)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from datamarket.core.errors import InvalidMarketError
from datamarket.core.random import make_rng
from datamarket.core.types import Dataset
from datamarket.mechanisms.collaborative._types import Party


@dataclass(frozen=True)
class SplitMarket:
    """Parties built from a pool, with the held-out test task of each party (``None`` without one)."""

    parties: list[Party]
    tests: list[Dataset | None]
    classes: tuple[Any, ...]


def _rows(x: NDArray[np.float64], y: NDArray[Any], idx: list[NDArray[np.intp]]) -> Dataset | None:
    rows = np.concatenate(idx) if idx else np.zeros(0, dtype=np.intp)
    if rows.size == 0:
        return None
    return Dataset(x[rows], y[rows])


def build_market(
    x: NDArray[np.float64],
    y: NDArray[Any],
    holdings: Sequence[Sequence[Any]],
    tasks: Sequence[Any] | Sequence[Sequence[Any]],
    *,
    seed: int,
    train_frac: float = 0.5,
    test_frac: float = 0.0,
    train_count: int | None = None,
    halve: Sequence[Any] = (),
    names: Sequence[str] | None = None,
) -> SplitMarket:
    """Split ``(x, y)`` among parties holding the labels ``holdings[i]``.

    ``tasks`` is one label tuple (a common single task) or one label tuple per party. Per class: the
    first ``train_count`` rows (or ``train_frac`` of them) go to training, ``test_frac`` to the held-out
    test pool, the rest to validation. Labels in ``halve`` keep only half of their training pool
    (Figure 3's setting: the class-8 training pool halved between P1 and P2).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    rng = make_rng(seed)
    n = len(holdings)
    names = [f"P{i + 1}" for i in range(n)] if names is None else list(names)
    if len(names) != n:
        raise InvalidMarketError("names", "one name per party")
    single = len(tasks) > 0 and not isinstance(tasks[0], tuple | list)
    task_labels = [tuple(tasks)] * n if single else [tuple(t) for t in tasks]  # type: ignore[arg-type]
    if len(task_labels) != n:
        raise InvalidMarketError("tasks", "one task per party (or one common task)")
    train: list[list[NDArray[np.intp]]] = [[] for _ in range(n)]
    val: dict[Any, NDArray[np.intp]] = {}
    test: dict[Any, NDArray[np.intp]] = {}
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_train = min(train_count, idx.size) if train_count is not None else round(train_frac * idx.size)
        n_test = round(test_frac * idx.size)
        pool = idx[:n_train]
        val[c.item()] = idx[n_train : idx.size - n_test]
        test[c.item()] = idx[idx.size - n_test :]
        if c.item() in halve:
            pool = pool[: pool.size // 2]
        holders = [i for i in range(n) if c.item() in holdings[i]]
        for j, i in enumerate(holders):
            train[i].append(pool[j :: len(holders)])
    parties, tests = [], []
    for i in range(n):
        tr = _rows(x, y, train[i])
        if tr is None:
            raise InvalidMarketError(f"holdings[{i}]", "party holds no data")
        task = _rows(x, y, [val[c] for c in task_labels[i] if c in val])
        parties.append(Party(names[i], tr, task))
        tests.append(_rows(x, y, [test[c] for c in task_labels[i] if c in test]) if test_frac > 0 else None)
    return SplitMarket(parties, tests, tuple(v.item() for v in np.unique(y)))


def random_pair_holdings(
    seed: int, n_parties: int, labels: Sequence[Any], second_task: Sequence[Any]
) -> list[tuple[Any, Any]]:
    """Two random labels per party, rejection-sampled: every label is held, some label has
    exactly one holder, and some party holds no label of ``second_task``."""
    rng = make_rng(seed)
    labels = list(labels)
    for _ in range(10_000):
        hold = [
            tuple(sorted(rng.choice(len(labels), size=2, replace=False).tolist())) for _ in range(n_parties)
        ]
        counts = np.bincount([c for h in hold for c in h], minlength=len(labels))
        pairs = [(labels[a], labels[b]) for a, b in hold]
        if counts.min() >= 1 and (counts == 1).any() and any(not set(h) & set(second_task) for h in pairs):
            return pairs
    raise InvalidMarketError("holdings", "no admissible random holdings found")
