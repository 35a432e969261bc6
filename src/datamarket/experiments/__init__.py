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

__all__ = [
    "FigureSpec",
    "Records",
    "available_experiments",
    "figures",
    "render",
    "reproduce",
    "write_records",
]
