"""The CLI's table cells: numbers by the one formatter (6 significant digits, grouping), no ``None``."""

from __future__ import annotations

from datamarket.cli import _cell


def test_cells_write_numbers_with_the_formatter_and_none_as_a_dash() -> None:
    assert [_cell(v) for v in (2.3519943519257707, 1234567.891, 1e-7, 42, 12345, None, False, "a")] == [
        "2.35199",
        "1,234,570",
        "1E-7",
        "42",
        "12,345",
        "-",
        "False",
        "a",
    ]
