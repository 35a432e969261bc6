"""Dataset uploads: CSV, NPZ and Parquet bytes -> a validated :class:`~datamarket.core.types.Dataset`.

Formats
-------
``csv``      a header row, numeric cells; the ``label`` column (name configurable) holds labels and an
             optional ``group`` column demographic groups; every other column is a feature.
``npz``      arrays ``features`` (2-d) and optionally ``labels`` and ``groups`` (``allow_pickle`` off).
``parquet``  the same columns as CSV (read with pyarrow).

Anything else, a non-numeric or non-finite feature, ragged rows or an empty table raises
:class:`~datamarket.core.errors.InvalidMarketError` naming ``file`` (the service answers 422 and
stores nothing). Size limits are enforced by the caller while reading the request body (413) and
here while decompressing (:class:`UploadLimits`: header-declared sizes are checked before a byte is
inflated). :func:`pack_dataset` is the parsed form the service stores with each upload, so that
rounds never parse an upload again.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
import zlib
from array import array
from dataclasses import dataclass
from typing import IO

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
    """Largest accepted upload: body bytes, rows, feature columns and cells (rows x columns).

    ``max_cells`` also bounds decompression: an NPZ member may not declare more than ``max_cells``
    elements (nor more bytes than that many float64 values), a Parquet file's footer more than
    ``max_cells`` values, so that a small compressed file cannot expand past the cap in memory
    (``docs/service.md`` reports the measured peak).
    """

    max_bytes: int = 10 * 1024 * 1024
    max_rows: int = 200_000
    max_columns: int = 1_000
    max_cells: int = 4_000_000

    @property
    def max_decompressed(self) -> int:
        """Bytes a decompressed member may hold: ``max_cells`` float64 values."""
        return 8 * self.max_cells


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
        columns = _read_csv(data, limits)
    elif fmt == "parquet":
        columns = _read_parquet(data, limits)
    elif fmt == "npz":
        return _check_limits(_read_npz(data, limits), limits)
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


def _check_shape(rows: int, columns: int, limits: UploadLimits) -> None:
    """Reject a table whose header (before any data is read) exceeds the limits."""
    if rows > limits.max_rows:
        raise InvalidMarketError("file", f"{rows} rows exceed the limit of {limits.max_rows}")
    if columns > limits.max_columns + 2:  # label and group columns come on top of the features
        raise InvalidMarketError("file", f"{columns} columns exceed the limit of {limits.max_columns}")
    if rows * columns > limits.max_cells:
        raise InvalidMarketError("file", f"{rows} x {columns} cells exceed the limit of {limits.max_cells}")


def _read_csv(data: bytes, limits: UploadLimits) -> dict[str, np.ndarray]:
    """Stream the rows into one float64 buffer (8 bytes a cell; no list of strings is kept)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidMarketError("file", "CSV must be UTF-8 text") from None
    rows = (r for r in csv.reader(io.StringIO(text)) if r)
    try:
        header = [h.strip() for h in next(rows, [])]
        if len(set(header)) != len(header) or any(not h for h in header):
            raise InvalidMarketError("file", "CSV header must name every column once")
        _check_shape(1, len(header), limits)
        values = array("d")
        n = 0
        for n, r in enumerate(rows, start=1):
            if len(r) != len(header):
                raise InvalidMarketError("file", f"row {n} has {len(r)} cells, header has {len(header)}")
            _check_shape(n, len(header), limits)
            try:
                if not all(map(_NUMBER.fullmatch, r)):
                    raise ValueError("not a plain decimal number")
                values.extend([float(c) for c in r])
            except ValueError:
                j = next(j for j, c in enumerate(r) if not _is_float(c))
                raise InvalidMarketError(
                    "file", f"column {header[j]!r} is not numeric (row {n}: {r[j].strip()!r})"
                ) from None
    except csv.Error as exc:
        raise InvalidMarketError("file", f"malformed CSV: {exc}") from None
    if not header or n == 0:
        raise InvalidMarketError("file", "CSV needs a header row and at least one data row")
    table = np.frombuffer(values, dtype=np.float64).reshape(n, len(header))
    return {h: table[:, j] for j, h in enumerate(header)}


# A CSV cell is a plain ASCII decimal number (or nan/inf, refused later as non-finite): Python's
# float() also takes digit-group underscores ("1_000") and non-ASCII digits, which no CSV writer
# means as numbers and which other readers would parse differently.
_NUMBER = re.compile(
    r"[ \t]*[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|nan|inf|infinity)[ \t]*", re.I
)


def _is_float(v: str) -> bool:
    """``v`` is a cell :func:`_read_csv` accepts.

    >>> [_is_float(v) for v in ("1e3", " -.5 ", "1_000", "１２", "0x10", "")]
    [True, True, False, False, False, False]
    """
    if _NUMBER.fullmatch(v) is None:
        return False
    try:
        float(v)
    except ValueError:
        return False
    return True


def _read_parquet(data: bytes, limits: UploadLimits) -> dict[str, np.ndarray]:
    """Check the footer (row and column counts, types, uncompressed sizes) before reading a value."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # an optional extra (pyproject.toml)
        raise InvalidMarketError(
            "format", "Parquet uploads need the 'parquet' extra: pip install 'datamarket[parquet]'"
        ) from None

    try:
        pf = pq.ParquetFile(io.BytesIO(data))
        md = pf.metadata
        _check_shape(md.num_rows, md.num_columns, limits)
        if sum(md.row_group(g).num_rows for g in range(md.num_row_groups)) != md.num_rows:
            raise InvalidMarketError("file", "malformed Parquet: row groups disagree with the row count")
        unpacked = sum(
            md.row_group(g).column(c).total_uncompressed_size
            for g in range(md.num_row_groups)
            for c in range(md.num_columns)
        )
        if unpacked > limits.max_decompressed:
            raise InvalidMarketError(
                "file", f"{unpacked} uncompressed bytes exceed the limit of {limits.max_decompressed}"
            )
        for f in pf.schema_arrow:
            if not (
                pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or pa.types.is_boolean(f.type)
            ):
                raise InvalidMarketError("file", f"column {f.name!r} is not numeric ({f.type})")
        table = pf.read(use_threads=False)
    except InvalidMarketError:
        raise
    except (pa.ArrowException, OSError, ValueError, IndexError) as exc:
        raise InvalidMarketError("file", f"malformed Parquet: {exc}") from None
    out: dict[str, np.ndarray] = {}
    for name in table.column_names:
        col = table.column(name)
        if col.null_count:
            raise InvalidMarketError("file", f"column {name!r} has missing values")
        out[name] = np.asarray(col.to_numpy(), dtype=np.float64)
    if not out or table.num_rows == 0:
        raise InvalidMarketError("file", "Parquet table is empty")
    return out


NPZ_ARRAYS = ("features", "labels", "groups")


def _read_npz(data: bytes, limits: UploadLimits) -> Dataset:
    """Read an NPZ member by member, each bounded by its header before it is decompressed.

    Only stored or deflated members named ``features.npy``, ``labels.npy``, ``groups.npy`` are read;
    each ``.npy`` header must declare a numeric dtype and at most ``limits.max_cells`` elements, and
    exactly that many bytes are decompressed (never more: the zip reader stops at the declared size,
    and a member that holds less or fails its CRC is malformed).
    """
    if not data.startswith(b"PK"):
        raise InvalidMarketError("file", "malformed NPZ: not a zip archive (a bare .npy must be zipped)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            names = [i.filename for i in infos]
            allowed = {f"{k}.npy" for k in NPZ_ARRAYS}
            if "features.npy" not in names or len(set(names)) != len(names) or not set(names) <= allowed:
                raise InvalidMarketError(
                    "file", "NPZ must hold 'features' and optionally 'labels', 'groups' (.npy members)"
                )
            arrays = {}
            for info in infos:
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    raise InvalidMarketError(
                        "file", f"NPZ member {info.filename!r}: compression {info.compress_type} unsupported"
                    )
                if info.file_size > limits.max_decompressed + 4096:
                    raise InvalidMarketError(
                        "file",
                        f"NPZ member {info.filename!r} expands to {info.file_size} bytes (limit "
                        f"{limits.max_decompressed})",
                    )
                with zf.open(info) as f:
                    arrays[info.filename[:-4]] = _read_npy(f, info.filename, limits)
    except InvalidMarketError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as exc:
        raise InvalidMarketError("file", f"malformed NPZ: {exc}") from None
    try:
        return Dataset(arrays["features"], arrays.get("labels"), arrays.get("groups"))
    except InvalidMarketError as exc:
        raise InvalidMarketError("file", f"{exc.field}: {exc.message}") from None


def _read_npy(f: IO[bytes], name: str, limits: UploadLimits) -> np.ndarray:
    fmt = np.lib.format
    version = fmt.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = fmt.read_array_header_1_0(f)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = fmt.read_array_header_2_0(f)
    else:
        raise ValueError(f"unsupported .npy version {version}")
    if dtype.hasobject or dtype.kind not in "biuf":
        raise InvalidMarketError("file", f"array {name[:-4]!r} must be numeric, got dtype {dtype}")
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if count > limits.max_cells:
        raise InvalidMarketError(
            "file", f"array {name[:-4]!r} has {count} elements (limit {limits.max_cells})"
        )
    nbytes = count * dtype.itemsize
    buf = f.read(nbytes)
    if len(buf) != nbytes or f.read(1):
        raise ValueError(f"member {name!r} does not hold the {nbytes} bytes its header declares")
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def pack_dataset(ds: Dataset) -> bytes:
    """The parsed form stored with an upload: an uncompressed NPZ of the validated arrays."""
    buf = io.BytesIO()
    arrays = (ds.features, ds.labels, ds.groups)
    np.savez(buf, **{k: v for k, v in zip(NPZ_ARRAYS, arrays, strict=True) if v is not None})  # type: ignore[arg-type]
    return buf.getvalue()


def unpack_dataset(data: bytes) -> Dataset:
    """The dataset :func:`pack_dataset` stored (no parsing: the arrays are read back as they are).

    >>> d = parse_dataset(b"x,label\\n1,0\\n2,1\\n", "csv", limits=UploadLimits())
    >>> unpack_dataset(pack_dataset(d)).features.tolist()
    [[1.0], [2.0]]
    """
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return Dataset(npz["features"], npz.get("labels"), npz.get("groups"))


def dataset_summary(ds: Dataset) -> dict[str, int | list[float]]:
    """Shape and label set of a dataset, stored as submission metadata."""
    out: dict[str, int | list[float]] = {"n_samples": ds.n_samples, "n_features": ds.n_features}
    if ds.labels is not None:
        out["labels"] = sorted({float(v) for v in np.asarray(ds.labels, dtype=float)})[:50]
    return out
