"""Experiments: one module per paper, one :class:`FigureSpec` per figure."""

from datamarket.experiments._figure import (
    FigureSpec,
    Records,
    available_experiments,
    columns,
    draw,
    figures,
    render,
    reproduce,
    write_records,
)
from datamarket.experiments._gallery import cached_pngs, figure_key
from datamarket.experiments._report import csv_text, markdown_table, write_scenario_report
from datamarket.experiments._style import PALETTE, integer_ticks, label_problems, legend_outside, style

__all__ = [
    "PALETTE",
    "FigureSpec",
    "Records",
    "available_experiments",
    "cached_pngs",
    "columns",
    "csv_text",
    "draw",
    "figure_key",
    "figures",
    "integer_ticks",
    "label_problems",
    "legend_outside",
    "markdown_table",
    "render",
    "reproduce",
    "style",
    "write_records",
    "write_scenario_report",
]
