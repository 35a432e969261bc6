"""One plotting style for every figure: palette, integer ticks, legends outside the data.

* Colours: the Okabe-Ito palette (Okabe and Ito, "Color Universal Design", 2008), distinguishable under
  the common forms of colour blindness; :data:`PALETTE` is the default colour cycle of every figure.
* Axes whose quantity is a count (sellers, buyers, replicas, data points) get integer ticks only
  (:func:`integer_ticks`).
* Legends go outside the plotting area (:func:`legend_outside`), so they never cover data.
* Labels are plain statements for a reader of the figure: :func:`label_problems` lists legend entries and
  axis labels that are empty, repeated within one axes, or contain internal codes.

:func:`render` of :mod:`datamarket.experiments._figure` applies :func:`style` to every figure.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

PALETTE = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",  # black
)

INTERNAL_CODE = re.compile(r"\b(?:S\d+-[A-Z0-9.]+|FIX-?[\w.]*|AMBIG\w*|AMB-\w+|spec\b|issue\b)", re.I)
"""Codes that mean something only inside the project (labels of its working notes, of corrections and of
ambiguities, tracker references): never in a figure a reader sees."""


@contextmanager
def style() -> Iterator[None]:
    """Matplotlib settings of every figure (palette, grid, font sizes), restored on exit."""
    import matplotlib as mpl
    from cycler import cycler

    with mpl.rc_context(
        {
            "axes.prop_cycle": cycler(color=list(PALETTE)),
            "axes.grid": True,
            "grid.alpha": 0.3,
            "legend.fontsize": 8,
            "legend.framealpha": 0.9,
            "savefig.bbox": "tight",
        }
    ):
        yield


def integer_ticks(ax: Any, axis: str = "x") -> None:
    """Ticks at integers only on ``axis`` ("x" or "y") of ``ax`` (a count has no value 1.5)."""
    from matplotlib.ticker import MaxNLocator

    (ax.xaxis if axis == "x" else ax.yaxis).set_major_locator(MaxNLocator(integer=True))


def legend_outside(ax: Any, **kwargs: Any) -> Any:
    """A legend to the right of ``ax``, outside the data."""
    kwargs.setdefault("loc", "upper left")
    kwargs.setdefault("bbox_to_anchor", (1.02, 1.0))
    kwargs.setdefault("borderaxespad", 0.0)
    return ax.legend(**kwargs)


def label_problems(fig: Any) -> list[str]:
    """Empty, repeated (within one axes) or internal-code legend entries and axis labels of ``fig``."""
    problems: list[str] = []
    for n, ax in enumerate(fig.get_axes()):
        texts = {"x label": ax.get_xlabel(), "y label": ax.get_ylabel()}
        if not ax.get_visible() or not (ax.has_data() or ax.get_legend()):
            continue
        if getattr(ax, "_colorbar", None) is not None:  # a colorbar's axes: its label is optional
            continue
        # a twin axes (twinx / twiny) shares its other axis' label
        twins = [o for o in fig.get_axes() if o is not ax and o.bbox.bounds == ax.bbox.bounds]
        if any(o.get_xlabel().strip() for o in twins):
            texts.pop("x label")
        if any(o.get_ylabel().strip() for o in twins):
            texts.pop("y label")
        for what, text in texts.items():
            if not text.strip():
                problems.append(f"axes {n}: empty {what}")
            elif INTERNAL_CODE.search(text):
                problems.append(f"axes {n}: {what} {text!r} has an internal code")
        legend = ax.get_legend()
        if legend is None:
            continue
        labels = [t.get_text() for t in legend.get_texts()]
        title = legend.get_title().get_text()
        for label in labels + ([title] if title else []):
            if not label.strip():
                problems.append(f"axes {n}: empty legend entry")
            elif INTERNAL_CODE.search(label):
                problems.append(f"axes {n}: legend entry {label!r} has an internal code")
        repeated = sorted({lab for lab in labels if labels.count(lab) > 1})
        if repeated:
            problems.append(f"axes {n}: repeated legend entries {repeated}")
    return problems
