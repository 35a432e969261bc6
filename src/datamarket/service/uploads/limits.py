"""The caps on an upload (body bytes, rows, feature columns, cells, bytes after decompression) and on
the uploads parsed at once (how many, holding how many bytes)."""

from __future__ import annotations

from dataclasses import dataclass

from datamarket.core.errors import UploadError
from datamarket.core.types import Dataset

VALUE_BYTES = 48
"""Bytes a parse may hold per value it produces: the decompressed member or column (at most 8),
the float64 columns and features (8 each), the packed copy stored with the upload (8, twice while
it is written), growth of the CSV buffer; the peak growth of a process's resident memory measured
at the limits was 16-35 bytes a value for CSV and NPZ, 45 for Parquet of int8 columns (pyarrow's
own buffers), 19-33 allocated (tracemalloc plus pyarrow's pool)."""

TEXT_BYTES = 4
"""Bytes the decoded text of a CSV may take per body byte (a Python string of characters beyond
Latin-1 takes 4 bytes each)."""


@dataclass(frozen=True)
class UploadLimits:
    """Largest accepted upload: body bytes, rows, feature columns and cells (rows x columns); and how
    many uploads may be parsed at once, holding how much memory together.

    ``max_cells`` also bounds decompression: an NPZ member may not declare more than ``max_cells``
    elements (``labels`` and ``groups`` not more than ``max_rows``; nor more bytes than that many
    float64 values), a Parquet file's footer more than ``max_cells`` values, so that a small
    compressed file cannot expand past the cap in memory (``docs/service.md`` reports the measured
    peak).

    Each upload is capped alone; together, at most ``max_parallel_parses`` uploads are parsed and
    stored at once, and the bytes they may hold (:func:`~datamarket.service.uploads.budget.parse_cost`
    of each, from its size and declared sizes) add up to at most ``parse_memory``
    (:mod:`datamarket.service.uploads.budget`); beyond either, an upload is refused at once (503,
    ``Retry-After: busy_retry_after`` seconds) and nothing is stored. The defaults fit a 2-core machine
    with a few GB: two worst-case uploads (about 240 MB each) or many small ones, 512 MiB in all,
    on top of the process's own ~120 MB. ``parse_memory`` must cover one worst-case upload
    (:attr:`max_parse_cost`), or a valid upload could never be admitted.

    >>> UploadLimits(parse_memory=10**6)
    Traceback (most recent call last):
    ...
    ValueError: parse_memory (1000000 bytes) must cover one upload at the limits (244428800 bytes)
    """

    max_bytes: int = 10 * 1024 * 1024
    max_rows: int = 200_000
    max_columns: int = 1_000
    max_cells: int = 4_000_000
    max_parallel_parses: int = 4
    parse_memory: int = 512 * 1024 * 1024
    busy_retry_after: int = 2

    def __post_init__(self) -> None:
        if self.max_parallel_parses < 1 or self.busy_retry_after < 1:
            raise ValueError("max_parallel_parses and busy_retry_after must be at least 1")
        if self.parse_memory < self.max_parse_cost:
            raise ValueError(
                f"parse_memory ({self.parse_memory} bytes) must cover one upload at the limits "
                f"({self.max_parse_cost} bytes)"
            )

    @property
    def max_parse_cost(self) -> int:
        """The most bytes one upload within these limits may hold while it is parsed and stored:
        the largest CSV (:data:`TEXT_BYTES` per body byte, a value per two bytes), NPZ (``max_cells``
        features, ``max_rows`` labels and groups) or Parquet (``max_cells`` values), at
        :data:`VALUE_BYTES` a value."""
        csv = (1 + TEXT_BYTES) * self.max_bytes + VALUE_BYTES * min(self.max_cells, self.max_bytes // 2 + 1)
        npz = self.max_bytes + VALUE_BYTES * (self.max_cells + 2 * self.max_rows)
        return max(csv, npz)  # Parquet: at most max_cells values, fewer than NPZ's

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
