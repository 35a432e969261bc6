"""Experiments: one module per paper, one :class:`FigureSpec` per figure."""

from datamarket.experiments._figure import (
    FigureSpec,
    Records,
    available_experiments,
    columns,
    figures,
    render,
    reproduce,
    write_records,
)
from datamarket.experiments._report import csv_text, markdown_table, write_scenario_report

__all__ = [
    "FigureSpec",
    "Records",
    "available_experiments",
    "columns",
    "csv_text",
    "figures",
    "markdown_table",
    "render",
    "reproduce",
    "write_records",
    "write_scenario_report",
]
