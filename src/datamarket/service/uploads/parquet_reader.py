"""Parquet uploads (the optional ``parquet`` extra): the footer is checked before a value is read."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from datamarket.core.errors import UploadError
from datamarket.service.uploads.limits import UploadLimits, check_shape


def read_parquet(data: bytes, limits: UploadLimits) -> dict[str, np.ndarray]:
    """Column name -> values, after checking the footer (row and column counts, types, uncompressed
    sizes) against ``limits``."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # an optional extra (pyproject.toml)
        raise UploadError(
            "format", "Parquet uploads need the 'parquet' extra: pip install 'datamarket[parquet]'"
        ) from None

    try:
        pf = pq.ParquetFile(io.BytesIO(data))
        _check_footer(pf, limits)
        table = pf.read(use_threads=False)
    except UploadError:
        raise
    except (pa.ArrowException, OSError, ValueError, IndexError) as exc:
        raise UploadError("file", f"malformed Parquet: {exc}") from None
    out: dict[str, np.ndarray] = {}
    for name in table.column_names:
        col = table.column(name)
        if col.null_count:
            raise UploadError("file", f"column {name!r} has missing values")
        out[name] = np.asarray(col.to_numpy(), dtype=np.float64)
    if not out or table.num_rows == 0:
        raise UploadError("file", "Parquet table is empty")
    return out


def _check_footer(pf: Any, limits: UploadLimits) -> None:
    import pyarrow as pa

    md = pf.metadata
    check_shape(md.num_rows, md.num_columns, limits)
    if sum(md.row_group(g).num_rows for g in range(md.num_row_groups)) != md.num_rows:
        raise UploadError("file", "malformed Parquet: row groups disagree with the row count")
    unpacked = sum(
        md.row_group(g).column(c).total_uncompressed_size
        for g in range(md.num_row_groups)
        for c in range(md.num_columns)
    )
    if unpacked > limits.max_decompressed:
        raise UploadError(
            "file", f"{unpacked} uncompressed bytes exceed the limit of {limits.max_decompressed}"
        )
    for f in pf.schema_arrow:
        if not (pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or pa.types.is_boolean(f.type)):
            raise UploadError("file", f"column {f.name!r} is not numeric ({f.type})")
