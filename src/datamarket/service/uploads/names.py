"""The names that come with an upload: its file name and the label and group column names.

One check for the JSON API (``?filename=``, ``?label_column=``...) and the portal's upload form
(the multipart part's ``filename``, which the API's query validation never sees): a name is stored
with the submission and shown back on its pages, so a name that the database cannot store or that
would mislead a reader is refused (:class:`~datamarket.core.errors.UploadError`, a 422 naming the
field; nothing is stored), never normalised:

* longer than its column allows: a file name over :data:`MAX_FILENAME` characters (the
  ``submissions.filename`` column is ``VARCHAR(255)``: PostgreSQL refused a longer one with an error,
  a 500, and SQLite stored it whole), a column name over :data:`MAX_COLUMN_NAME`;
* a control character: NUL (PostgreSQL cannot store it in text), C0 and C1 controls such as CR and
  LF, format characters such as the bidirectional overrides that display ``"evil\\u202egpj.exe"`` as
  ``evilexe.jpg``, line and paragraph separators, and lone surrogates (Unicode categories ``Cc``,
  ``Cf``, ``Cs``, ``Zl``, ``Zp``).
"""

from __future__ import annotations

import unicodedata

from datamarket.core.errors import UploadError

MAX_FILENAME = 255
"""Characters of a file name: the length of ``submissions.filename`` (``ledger/models.py``)."""

MAX_COLUMN_NAME = 100
"""Characters of a label or group column name (as the JSON API's query parameters)."""

FORBIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
"""Unicode categories refused in a name: control, format, surrogate, line and paragraph separators."""


def check_name(field: str, value: str, max_length: int) -> str:
    """``value`` unchanged when it is at most ``max_length`` characters without a control character.

    >>> check_name("filename", "data.csv", 255)
    'data.csv'
    >>> check_name("filename", "evil\\u202egpj.exe", 255)
    Traceback (most recent call last):
    ...
    datamarket.core.errors.UploadError: filename: must not contain control characters (U+202E at 5)
    >>> check_name("filename", "a" * 304, 255)
    Traceback (most recent call last):
    ...
    datamarket.core.errors.UploadError: filename: 304 characters exceed the limit of 255
    """
    if len(value) > max_length:
        raise UploadError(field, f"{len(value)} characters exceed the limit of {max_length}")
    for i, ch in enumerate(value):
        if unicodedata.category(ch) in FORBIDDEN:
            raise UploadError(field, f"must not contain control characters (U+{ord(ch):04X} at {i + 1})")
    return value


def check_filename(name: str | None) -> str | None:
    """An upload's file name as it is stored: None when absent or empty, else checked
    (:func:`check_name`, field ``filename``)."""
    return check_name("filename", name, MAX_FILENAME) if name else None


def check_columns(label_column: str, group_column: str) -> None:
    """The label and group column names (:func:`check_name`, fields ``label_column``, ``group_column``)."""
    check_name("label_column", label_column, MAX_COLUMN_NAME)
    check_name("group_column", group_column, MAX_COLUMN_NAME)


def _escape(cp: int) -> str:
    return f"\\u{cp:04X}" if cp <= 0xFFFF else f"\\U{cp:08X}"


def _forbidden_ranges() -> list[tuple[int, int]]:
    """The code points of :data:`FORBIDDEN` categories as ranges (surrogates left out: a name arrives
    as UTF-8, which cannot carry one, and regular-expression engines refuse them in a class)."""
    ranges: list[tuple[int, int]] = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF or unicodedata.category(chr(cp)) not in FORBIDDEN:
            continue
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    return ranges


NAME_PATTERN = (
    "^[^"
    + "".join(_escape(a) if a == b else f"{_escape(a)}-{_escape(b)}" for a, b in _forbidden_ranges())
    + "]*$"
)
"""A regular expression (Python, Rust and ECMAScript syntax for the basic plane) matching exactly the
names :func:`check_name` accepts, apart from the length: the JSON API's query parameters declare it, so
the OpenAPI schema promises no name the service refuses.

>>> import re
>>> names = ("data.csv", "\\u00cd\\u0080", "evil\\u202egpj", "\\u00e9t\\u00e9")
>>> [bool(re.fullmatch(NAME_PATTERN, s)) for s in names]
[True, False, False, True]
"""
