"""The files of ``datamarket value``: a Parquet table's columns in, a result table (CSV or Parquet) out.

Part of the CLI layer (only :mod:`datamarket.cli` imports it), kept out of ``cli.py``; the conversion
of the columns is the library's (:func:`datamarket.scenarios.dataset_from_columns`). pyarrow is the
``parquet`` extra, imported only when a Parquet file is read or written.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from datamarket.core.errors import InvalidMarketError

OUT_SUFFIXES = (".csv", ".parquet")


def parquet_columns(path: Path) -> dict[str, Any]:
    """The columns of a Parquet file by name: numbers without nulls as numpy arrays, others as lists."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise InvalidMarketError("dataset.parquet", f"cannot read {path.name}: {exc}") from None
    columns: dict[str, Any] = {}
    for name, col in zip(table.column_names, table.columns, strict=True):
        if name in columns:
            raise InvalidMarketError("dataset.parquet", f"duplicate column name {name!r}")
        t = col.type
        numeric = pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
        columns[name] = col.to_numpy() if numeric and col.null_count == 0 else col.to_pylist()
    return columns


def write_table(columns: Mapping[str, Sequence[Any]], path: Path) -> None:
    """Write equal-length named columns to ``path``: Parquet for a ``.parquet`` suffix, else CSV."""
    if path.suffix.lower() == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({k: list(v) for k, v in columns.items()}), path)
        return
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(list(columns))
        writer.writerows(zip(*columns.values(), strict=True))
