"""Experiments: one module per paper, one :class:`FigureSpec` per figure."""

from datamarket.experiments._figure import (
    FigureSpec,
    Records,
    available_experiments,
    figures,
    render,
    reproduce,
    write_records,
)
from datamarket.experiments._report import markdown_table

__all__ = [
    "FigureSpec",
    "Records",
    "available_experiments",
    "figures",
    "markdown_table",
    "render",
    "reproduce",
    "write_records",
]
