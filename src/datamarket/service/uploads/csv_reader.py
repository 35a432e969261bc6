"""CSV uploads: a header row and plain decimal cells, streamed into one float64 buffer."""

from __future__ import annotations

import csv
import io
import re
from array import array

import numpy as np

from datamarket.core.errors import UploadError
from datamarket.service.uploads.limits import UploadLimits, check_shape

# A CSV cell is a plain ASCII decimal number (or nan/inf, refused later as non-finite): Python's
# float() also takes digit-group underscores ("1_000") and non-ASCII digits, which no CSV writer
# means as numbers and which other readers would parse differently.
NUMBER = re.compile(
    r"[ \t]*[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|nan|inf|infinity)[ \t]*", re.I
)


def is_float(v: str) -> bool:
    """``v`` is a cell :func:`read_csv` accepts.

    >>> [is_float(v) for v in ("1e3", " -.5 ", "1_000", "１２", "0x10", "")]
    [True, True, False, False, False, False]
    """
    if NUMBER.fullmatch(v) is None:
        return False
    try:
        float(v)
    except ValueError:
        return False
    return True


def read_csv(data: bytes, limits: UploadLimits) -> dict[str, np.ndarray]:
    """Column name -> values; the rows are streamed into one float64 buffer (8 bytes a cell; no list
    of strings is kept)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UploadError("file", "CSV must be UTF-8 text") from None
    rows = (r for r in csv.reader(io.StringIO(text)) if r)
    try:
        header = [h.strip() for h in next(rows, [])]
        if len(set(header)) != len(header) or any(not h for h in header):
            raise UploadError("file", "CSV header must name every column once")
        check_shape(1, len(header), limits)
        values = array("d")
        n = 0
        for n, r in enumerate(rows, start=1):
            if len(r) != len(header):
                raise UploadError("file", f"row {n} has {len(r)} cells, header has {len(header)}")
            check_shape(n, len(header), limits)
            values.extend(_cells(r, header, n))
    except csv.Error as exc:
        raise UploadError("file", f"malformed CSV: {exc}") from None
    if not header or n == 0:
        raise UploadError("file", "CSV needs a header row and at least one data row")
    table = np.frombuffer(values, dtype=np.float64).reshape(n, len(header))
    return {h: table[:, j] for j, h in enumerate(header)}


def _cells(r: list[str], header: list[str], n: int) -> list[float]:
    """Row ``n``'s cells as floats; an error names the first cell that is not a number."""
    try:
        if not all(map(NUMBER.fullmatch, r)):
            raise ValueError("not a plain decimal number")
        return [float(c) for c in r]
    except ValueError:
        j = next(j for j, c in enumerate(r) if not is_float(c))
        raise UploadError(
            "file", f"column {header[j]!r} is not numeric (row {n}: {r[j].strip()!r})"
        ) from None
