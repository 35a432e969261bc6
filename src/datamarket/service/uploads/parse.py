"""Upload bytes in a known format -> a validated dataset within the limits (one entry point)."""

from __future__ import annotations

import numpy as np

from datamarket.core.errors import InvalidInputError, UploadError
from datamarket.core.types import Dataset
from datamarket.service.uploads.csv_reader import read_csv
from datamarket.service.uploads.formats import FORMATS
from datamarket.service.uploads.limits import UploadLimits, check_limits
from datamarket.service.uploads.npz_reader import read_npz
from datamarket.service.uploads.parquet_reader import read_parquet


def parse_dataset(
    data: bytes, fmt: str, *, label_column: str = "label", group_column: str = "group", limits: UploadLimits
) -> Dataset:
    """Parse ``data`` in format ``fmt`` into a validated dataset (:mod:`datamarket.service.uploads`).

    >>> d = parse_dataset(b"x1,x2,label\\n1,2,0\\n3,4,1\\n", "csv", limits=UploadLimits())
    >>> d.features.tolist(), d.labels.tolist()
    ([[1.0, 2.0], [3.0, 4.0]], [0.0, 1.0])
    >>> parse_dataset(b"x1,label\\n1,0\\nfoo,1\\n", "csv", limits=UploadLimits())
    Traceback (most recent call last):
    ...
    datamarket.core.errors.UploadError: file: column 'x1' is not numeric (row 2: 'foo')
    """
    if fmt == "csv":
        columns = read_csv(data, limits)
    elif fmt == "parquet":
        columns = read_parquet(data, limits)
    elif fmt == "npz":
        return check_limits(read_npz(data, limits), limits)
    else:
        raise UploadError("format", f"must be one of {', '.join(FORMATS)}, got {fmt!r}")
    labels = columns.pop(label_column, None)
    groups = columns.pop(group_column, None)
    if not columns:
        raise UploadError("file", "no feature columns")
    features = np.column_stack(list(columns.values()))
    try:
        ds = Dataset(features, labels, groups)
    except InvalidInputError as exc:
        raise UploadError("file", f"{exc.field}: {exc.message}") from None
    return check_limits(ds, limits)
