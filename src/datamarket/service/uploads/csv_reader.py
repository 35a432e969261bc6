"""CSV uploads: a header row and plain decimal cells, streamed into one float64 buffer.

A cell is checked in linear time, without a regular expression: its characters must all be among
those of an ASCII decimal number, ``nan``, ``inf`` or ``infinity`` (any case) and the blanks around
it (:data:`CELL_CHARS`, one set lookup per character), then :func:`float` reads it (linear in its
length: CPython's correctly rounded ``strtod``). Over that alphabet, :func:`float` accepts exactly
the grammar ``[ \\t]*[+-]?(digits[.digits?]|.digits)([eE][+-]?digits)?[ \\t]*`` plus ``nan``, ``inf``
and ``infinity``: it refuses blanks inside a number, and what it would also accept elsewhere
(digit-group underscores ``1_000``, non-ASCII digits, other white space) is outside the alphabet, as
no CSV writer means those as numbers and other readers would parse them differently. nan and inf
pass here and are refused later as non-finite. (The regular expression used before,
``[0-9]+\\.?[0-9]*...``, split a run of digits in every possible way before failing: 20,000 digits
and a letter held the GIL for about 18 s.)

The csv module refuses a cell longer than its ``field_size_limit`` (131,072 characters) as malformed.
"""

from __future__ import annotations

import csv
import io
from array import array

import numpy as np

from datamarket.core.errors import UploadError
from datamarket.service.uploads.limits import UploadLimits, check_shape

CELL_CHARS = frozenset("0123456789+-.eE" + "nNaAiIfFtTyY" + " \t")
"""Every character a numeric cell may hold: decimal digits, sign, point, exponent, the letters of
``nan``/``inf``/``infinity`` and the blanks around the number."""

SHOWN = 40
"""Characters of a refused cell quoted in the error message."""


def is_float(v: str) -> bool:
    """``v`` is a cell :func:`read_csv` accepts (in time linear in ``len(v)``).

    >>> [is_float(v) for v in ("1e3", " -.5 ", "1_000", "１２", "0x10", "")]
    [True, True, False, False, False, False]
    >>> [is_float(v) for v in ("NaN", "-Infinity", "1 2", "1e", "\\n1", "1" * 20_000 + "a")]
    [True, True, False, False, False, False]
    """
    if not CELL_CHARS.issuperset(v):
        return False
    try:
        float(v)
    except ValueError:
        return False
    return True


def read_csv(data: bytes, limits: UploadLimits) -> dict[str, np.ndarray]:
    """Column name -> values; the rows are streamed into one float64 buffer (8 bytes a cell; no list
    of strings is kept). Linear in ``len(data)``."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UploadError("file", "CSV must be UTF-8 text") from None
    reader = csv.reader(io.StringIO(text))
    rows = (r for r in reader if r)
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
        raise UploadError("file", f"malformed CSV (line {reader.line_num}): {exc}") from None
    if not header or n == 0:
        raise UploadError("file", "CSV needs a header row and at least one data row")
    table = np.frombuffer(values, dtype=np.float64).reshape(n, len(header))
    return {h: table[:, j] for j, h in enumerate(header)}


def _cells(r: list[str], header: list[str], n: int) -> list[float]:
    """Row ``n``'s cells as floats; an error names the first cell that is not a number (quoting at
    most :data:`SHOWN` of its characters)."""
    try:
        if not CELL_CHARS.issuperset("".join(r)):
            raise ValueError("not a plain decimal number")
        return [float(c) for c in r]
    except ValueError:
        j = next(j for j, c in enumerate(r) if not is_float(c))
        cell = r[j].strip()
        shown = repr(cell[:SHOWN]) + (f"... ({len(cell)} characters)" if len(cell) > SHOWN else "")
        raise UploadError("file", f"column {header[j]!r} is not numeric (row {n}: {shown})") from None
