"""The Markdown report writes numbers for people with the one formatter; CSV keeps full precision."""

from __future__ import annotations

from datamarket.experiments import csv_text, markdown_table


def test_markdown_cells_use_the_formatter_and_csv_keeps_every_digit() -> None:
    rows = [{"n": 1234567, "x": 2.3519943519257707, "big": 12345.678901, "claim": None, "ok": True}]
    md = markdown_table(rows).splitlines()[2]
    assert md == "| 1,234,567 | 2.35199 | 12,345.7 | - | True |"
    assert "2.3519943519257707" in csv_text(rows) and "12345.678901" in csv_text(rows)
