"""The caps on an upload: body bytes, rows, feature columns, cells, and bytes after decompression."""

from __future__ import annotations

from dataclasses import dataclass

from datamarket.core.errors import UploadError
from datamarket.core.types import Dataset


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


def check_limits(ds: Dataset, limits: UploadLimits) -> Dataset:
    """``ds`` unchanged when its rows and feature columns are within ``limits``."""
    if ds.n_samples > limits.max_rows:
        raise UploadError("file", f"{ds.n_samples} rows exceed the limit of {limits.max_rows}")
    if ds.n_features > limits.max_columns:
        raise UploadError("file", f"{ds.n_features} columns exceed the limit of {limits.max_columns}")
    return ds


def check_shape(rows: int, columns: int, limits: UploadLimits) -> None:
    """Reject a table whose header (before any data is read) exceeds the limits."""
    if rows > limits.max_rows:
        raise UploadError("file", f"{rows} rows exceed the limit of {limits.max_rows}")
    if columns > limits.max_columns + 2:  # label and group columns come on top of the features
        raise UploadError("file", f"{columns} columns exceed the limit of {limits.max_columns}")
    if rows * columns > limits.max_cells:
        raise UploadError("file", f"{rows} x {columns} cells exceed the limit of {limits.max_cells}")
