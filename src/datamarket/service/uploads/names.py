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
