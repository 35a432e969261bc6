"""The table behind ``datamarket value``: named columns to features, labels and each row's source.

No file is read here. The CLI reads the file and passes what it read:

* a CSV file's text to :func:`csv_columns` (named columns of strings);
* a Parquet file's columns (numbers as numpy arrays, text as lists of strings), read with pyarrow.

:func:`dataset_from_columns` turns either into a :class:`TabularData`, by one conversion: a feature or
label cell becomes ``float(cell)``, so a table written to CSV (with ``repr`` of its floats) and to
Parquet gives bit-identical arrays. The source column (``sellers.column``) is read as text, one
seller per distinct value, and is not a feature.

:func:`split_rows` is the seeded subsample (``dataset.max_rows``) and train/test split (scikit-learn's
``train_test_split`` with ``random_state = seed``) shared by the seller game and the K-NN point values;
:func:`source_parts` groups the training rows by their source, sellers in order of first appearance in
the file and each seller's rows in file order.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from datamarket.core.errors import InvalidMarketError
from datamarket.scenarios._errors import suggest


@dataclass(frozen=True)
class TabularData:
    """Features ``x`` (rows x columns), labels ``y`` and, when the table names them, each row's source."""

    x: NDArray[np.float64]
    y: NDArray[Any]
    sources: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.x.ndim != 2 or self.y.shape != (self.x.shape[0],):
            raise InvalidMarketError("dataset", "needs a 2-d feature array and one label per row")
        if self.sources is not None and len(self.sources) != self.x.shape[0]:
            raise InvalidMarketError("sellers.column", "needs one source per row")


@dataclass(frozen=True)
class Split:
    """Training and test rows (standardised when asked); ``train_rows``/``test_rows`` index the table."""

    x_train: NDArray[np.float64]
    y_train: NDArray[Any]
    x_test: NDArray[np.float64]
    y_test: NDArray[Any]
    train_rows: NDArray[np.intp]
    test_rows: NDArray[np.intp]


def bundled_dataset(name: str) -> tuple[NDArray[np.float64], NDArray[Any]]:
    """Features and labels of a scikit-learn bundled dataset."""
    import sklearn.datasets as skd

    loader: Callable[..., Any] = getattr(skd, f"load_{name}")
    x, y = loader(return_X_y=True)
    return np.asarray(x, dtype=np.float64), np.asarray(y)


def csv_columns(text: str) -> dict[str, list[str]]:
    """The columns of CSV text with a header row, by name (blank lines are skipped).

    >>> csv_columns("a,src\\n1.5,x\\n2,y\\n")
    {'a': ['1.5', '2'], 'src': ['x', 'y']}
    """
    rows = list(csv.reader(io.StringIO(text)))
    body = [r for r in rows[1:] if r]
    if not rows or not body:
        raise InvalidMarketError("dataset.csv", "needs a header row and at least one data row")
    header = [h.strip() for h in rows[0]]
    _check_unique(header, "dataset.csv")
    if any(len(r) != len(header) for r in body):
        raise InvalidMarketError("dataset.csv", "every row must have as many values as the header")
    return {h: [r[j] for r in body] for j, h in enumerate(header)}


def dataset_from_csv_text(text: str, target: str | None) -> tuple[NDArray[np.float64], NDArray[Any]]:
    """Parse a CSV with a header row; ``target`` names the label column (default: the last one)."""
    data = dataset_from_columns(csv_columns(text), target)
    return data.x, data.y


def dataset_from_columns(
    columns: Mapping[str, Sequence[Any] | NDArray[Any]],
    target: str | None,
    source: str | None = None,
    *,
    fmt: str = "csv",
) -> TabularData:
    """Features, labels and sources from named columns (``fmt``: ``"csv"`` or ``"parquet"``, for errors).

    ``target`` names the label column (default: the last column other than ``source``); ``source``, when
    given, names the column that says which seller each row came from (read as text, not a feature).

    >>> d = dataset_from_columns({"a": ["1", "2"], "src": ["x", "y"], "label": ["0", "1"]}, None, "src")
    >>> d.x.tolist(), d.y.tolist(), d.sources
    ([[1.0], [2.0]], [0.0, 1.0], ('x', 'y'))
    """
    header = list(columns)
    _check_unique(header, f"dataset.{fmt}")
    n = len(columns[header[0]]) if header else 0
    if n == 0:
        raise InvalidMarketError(f"dataset.{fmt}", "needs a header row and at least one data row")
    where = f"in the {'CSV' if fmt == 'csv' else 'Parquet'} header"
    if source is not None and source not in columns:
        raise InvalidMarketError("sellers.column", f"no column {source!r} {where}{suggest(source, header)}")
    label = target if target is not None else next((h for h in reversed(header) if h != source), None)
    if label is None:
        raise InvalidMarketError("dataset.target", "no label column: the table has only the source column")
    if label not in columns:
        raise InvalidMarketError("dataset.target", f"no column {label!r} {where}{suggest(label, header)}")
    if label == source:
        raise InvalidMarketError("sellers.column", f"{source!r} is the label column (dataset.target)")
    features = [h for h in header if h not in (label, source)]
    x = np.column_stack([_numeric(columns[h], h, fmt) for h in features]) if features else np.zeros((n, 0))
    y = _numeric(columns[label], label, fmt)
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise InvalidMarketError(f"dataset.{fmt}", "must be finite (no NaN or inf)")
    sources = None if source is None else _sources(columns[source])
    return TabularData(x, y, sources)


def _check_unique(header: list[str], field: str) -> None:
    seen: set[str] = set()
    for h in header:
        if h in seen:
            raise InvalidMarketError(field, f"duplicate column name {h!r}")
        seen.add(h)


def _numeric(values: Sequence[Any] | NDArray[Any], name: str, fmt: str) -> NDArray[np.float64]:
    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
        return values.astype(np.float64)
    try:
        return np.array([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        missing = next((i for i, v in enumerate(values) if v is None), None)
        why = f"data row {missing + 1} has no value" if missing is not None else f"non-numeric value ({exc})"
        raise InvalidMarketError(f"dataset.{fmt}", f"column {name!r}: {why}") from None


def _sources(values: Sequence[Any] | NDArray[Any]) -> tuple[str, ...]:
    out = tuple("" if v is None else (v.strip() if isinstance(v, str) else str(v)) for v in values)
    empty = next((i for i, s in enumerate(out) if not s), None)
    if empty is not None:
        raise InvalidMarketError("sellers.column", f"data row {empty + 1} has no source (an empty cell)")
    return out


def split_rows(
    data: TabularData,
    *,
    seed: int,
    rng: np.random.Generator,
    test_size: float,
    max_rows: int | None = None,
    stratify: bool = False,
    standardize: bool = True,
) -> Split:
    """Seeded subsample of ``max_rows`` rows (drawn from ``rng``), then the train/test split.

    Standardisation uses the training rows' mean and standard deviation (a constant column is left
    unscaled); the rows of each part are in ``train_test_split``'s order.
    """
    from sklearn.model_selection import train_test_split

    rows = subsample(data.x.shape[0], max_rows, rng)
    try:
        tr, te = train_test_split(
            rows,
            test_size=test_size,
            random_state=seed,
            stratify=data.y[rows] if stratify else None,
        )
    except ValueError as exc:
        raise InvalidMarketError("dataset", str(exc)) from None
    xtr, xte = data.x[tr], data.x[te]
    if standardize:
        xtr, xte = standardized(xtr, xte)
    return Split(xtr, data.y[tr], xte, data.y[te], np.asarray(tr), np.asarray(te))


def subsample(n: int, max_rows: int | None, rng: np.random.Generator) -> NDArray[np.intp]:
    """All ``n`` rows, or ``max_rows`` of them drawn from ``rng`` (in table order)."""
    if max_rows is not None and n > max_rows:
        return np.sort(rng.choice(n, max_rows, replace=False))
    return np.arange(n)


def standardized(
    fit: NDArray[np.float64], other: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``fit`` and ``other`` scaled by ``fit``'s column means and standard deviations."""
    mu, sd = fit.mean(axis=0), fit.std(axis=0)
    sd[sd == 0] = 1.0
    return (fit - mu) / sd, (other - mu) / sd


def source_parts(
    sources: Sequence[str], train_rows: NDArray[np.intp]
) -> tuple[tuple[str, ...], list[NDArray[np.intp]]]:
    """Sellers (distinct sources, in order of first appearance in the table) and each one's positions in
    the training arrays, in table order; every source must keep a training row.

    >>> names, parts = source_parts(["b", "a", "b", "a"], np.array([3, 0, 2]))
    >>> names, [p.tolist() for p in parts]
    (('b', 'a'), [[1, 2], [0]])
    """
    names = tuple(dict.fromkeys(sources))
    code = {s: i for i, s in enumerate(names)}
    of_row = np.array([code[s] for s in sources], dtype=np.intp)
    order = np.argsort(train_rows, kind="stable")
    owner = of_row[train_rows[order]]
    parts = [order[owner == i] for i in range(len(names))]
    empty = [names[i] for i, p in enumerate(parts) if p.size == 0]
    if empty:
        total = int(np.sum(of_row == code[empty[0]]))
        more = f" (and {len(empty) - 1} more)" if len(empty) > 1 else ""
        raise InvalidMarketError(
            "sellers.column",
            f"source {empty[0]!r}{more} has no training row: its {total} row(s) went to the test set "
            "(dataset.test_size) or were left out (dataset.max_rows)",
        )
    return names, parts
