"""Dataset uploads: CSV, NPZ and Parquet bytes -> a validated :class:`~datamarket.core.types.Dataset`.

Formats
-------
``csv``      a header row, numeric cells; the ``label`` column (name configurable) holds labels and an
             optional ``group`` column demographic groups; every other column is a feature.
``npz``      arrays ``features`` (2-d) and optionally ``labels`` and ``groups`` (``allow_pickle`` off).
``parquet``  the same columns as CSV (read with pyarrow).

Anything else, a non-numeric or non-finite feature, ragged rows or an empty table raises
:class:`~datamarket.core.errors.InvalidMarketError` naming ``file`` (the service answers 422 and
stores nothing). Size limits are enforced by the caller while reading the request body (413).
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass

import numpy as np

from datamarket.core.errors import InvalidMarketError
from datamarket.core.types import Dataset

FORMATS = ("csv", "npz", "parquet")
MEDIA_TYPES = {
    "text/csv": "csv",
    "application/x-npz": "npz",
    "application/zip": "npz",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
}


@dataclass(frozen=True)
class UploadLimits:
    """Largest accepted upload (bytes), rows and feature columns."""

    max_bytes: int = 10 * 1024 * 1024
    max_rows: int = 200_000
    max_columns: int = 1_000


def detect_format(fmt: str | None, media_type: str | None, filename: str | None) -> str:
    """The upload format from an explicit ``format``, the Content-Type or the file name suffix.

    >>> detect_format(None, "text/csv; charset=utf-8", None), detect_format(None, None, "a.NPZ")
    ('csv', 'npz')
    """
    if fmt:
        if fmt.lower() not in FORMATS:
            raise InvalidMarketError("format", f"must be one of {', '.join(FORMATS)}, got {fmt!r}")
        return fmt.lower()
    base = (media_type or "").split(";", 1)[0].strip().lower()
    if base in MEDIA_TYPES:
        return MEDIA_TYPES[base]
    suffix = (filename or "").rsplit(".", 1)[-1].lower() if filename and "." in filename else ""
    if suffix in FORMATS:
        return suffix
    raise InvalidMarketError(
        "format", "unknown upload format: pass ?format=csv|npz|parquet or a matching Content-Type"
    )


def parse_dataset(
    data: bytes, fmt: str, *, label_column: str = "label", group_column: str = "group", limits: UploadLimits
) -> Dataset:
    """Parse ``data`` in format ``fmt`` into a validated dataset (module docstring).

    >>> d = parse_dataset(b"x1,x2,label\\n1,2,0\\n3,4,1\\n", "csv", limits=UploadLimits())
    >>> d.features.tolist(), d.labels.tolist()
    ([[1.0, 2.0], [3.0, 4.0]], [0.0, 1.0])
    >>> parse_dataset(b"x1,label\\n1,0\\nfoo,1\\n", "csv", limits=UploadLimits())
    Traceback (most recent call last):
    ...
    datamarket.core.errors.InvalidMarketError: file: column 'x1' is not numeric (row 2: 'foo')
    """
    if fmt == "csv":
        columns = _read_csv(data)
    elif fmt == "parquet":
        columns = _read_parquet(data)
    elif fmt == "npz":
        return _check_limits(_read_npz(data), limits)
    else:
        raise InvalidMarketError("format", f"must be one of {', '.join(FORMATS)}, got {fmt!r}")
    labels = columns.pop(label_column, None)
    groups = columns.pop(group_column, None)
    if not columns:
        raise InvalidMarketError("file", "no feature columns")
    features = np.column_stack(list(columns.values()))
    try:
        ds = Dataset(features, labels, groups)
    except InvalidMarketError as exc:
        raise InvalidMarketError("file", f"{exc.field}: {exc.message}") from None
    return _check_limits(ds, limits)


def _check_limits(ds: Dataset, limits: UploadLimits) -> Dataset:
    if ds.n_samples > limits.max_rows:
        raise InvalidMarketError("file", f"{ds.n_samples} rows exceed the limit of {limits.max_rows}")
    if ds.n_features > limits.max_columns:
        raise InvalidMarketError("file", f"{ds.n_features} columns exceed the limit of {limits.max_columns}")
    return ds


def _numeric(name: str, values: list[str]) -> np.ndarray:
    try:
        return np.array([float(v) for v in values], dtype=np.float64)
    except ValueError:
        for k, v in enumerate(values):
            try:
                float(v)
            except ValueError:
                raise InvalidMarketError(
                    "file", f"column {name!r} is not numeric (row {k + 1}: {v!r})"
                ) from None
        raise


def _read_csv(data: bytes) -> dict[str, np.ndarray]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidMarketError("file", "CSV must be UTF-8 text") from None
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise InvalidMarketError("file", f"malformed CSV: {exc}") from None
    rows = [r for r in rows if r]
    if len(rows) < 2:
        raise InvalidMarketError("file", "CSV needs a header row and at least one data row")
    header = [h.strip() for h in rows[0]]
    if len(set(header)) != len(header) or any(not h for h in header):
        raise InvalidMarketError("file", "CSV header must name every column once")
    for k, r in enumerate(rows[1:], start=1):
        if len(r) != len(header):
            raise InvalidMarketError("file", f"row {k} has {len(r)} cells, header has {len(header)}")
    return {h: _numeric(h, [r[j].strip() for r in rows[1:]]) for j, h in enumerate(header)}


def _read_parquet(data: bytes) -> dict[str, np.ndarray]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # an optional extra (pyproject.toml)
        raise InvalidMarketError(
            "format", "Parquet uploads need the 'parquet' extra: pip install 'datamarket[parquet]'"
        ) from None

    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InvalidMarketError("file", f"malformed Parquet: {exc}") from None
    out: dict[str, np.ndarray] = {}
    for name in table.column_names:
        col = table.column(name)
        if not (
            pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type)
        ):
            raise InvalidMarketError("file", f"column {name!r} is not numeric ({col.type})")
        if col.null_count:
            raise InvalidMarketError("file", f"column {name!r} has missing values")
        out[name] = np.asarray(col.to_numpy(), dtype=np.float64)
    if not out or table.num_rows == 0:
        raise InvalidMarketError("file", "Parquet table is empty")
    return out


def _read_npz(data: bytes) -> Dataset:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise InvalidMarketError("file", f"malformed NPZ: {exc}") from None
    extra = sorted(set(arrays) - {"features", "labels", "groups"})
    if "features" not in arrays or extra:
        raise InvalidMarketError("file", "NPZ must hold 'features' and optionally 'labels', 'groups'")
    for k, a in arrays.items():
        if a.dtype.kind not in "biuf":
            raise InvalidMarketError("file", f"array {k!r} must be numeric, got dtype {a.dtype}")
    try:
        return Dataset(arrays["features"], arrays.get("labels"), arrays.get("groups"))
    except InvalidMarketError as exc:
        raise InvalidMarketError("file", f"{exc.field}: {exc.message}") from None


def dataset_summary(ds: Dataset) -> dict[str, int | list[float]]:
    """Shape and label set of a dataset, stored as submission metadata."""
    out: dict[str, int | list[float]] = {"n_samples": ds.n_samples, "n_features": ds.n_features}
    if ds.labels is not None:
        out["labels"] = sorted({float(v) for v in np.asarray(ds.labels, dtype=float)})[:50]
    return out
