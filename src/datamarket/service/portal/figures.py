"""A cleared round's key figure, drawn on the server (matplotlib, SVG) in the project's figure style.

What the figure shows is the family's: its adapter's optional ``round_figure(outcome, names, paid,
received)`` returns a title and the bar series per participant (the broker: each buyer's posted
expected price ``q_j+`` next to the amounts booked; the collaborative market: each party's fee
``A_i`` and the money ``t_i`` paid back). The adapter is found through the family registry
(:func:`datamarket.service.adapters.registered_adapter`); a kind without one shows the payments and
prices of the outcome, per participant.

Amounts are the ledger's receipts (major units of the market's currency), so the figure shows exactly
what was booked; names and values come from the round's outcome and receipts only.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from datamarket.service.adapters import registered_adapter


def _bars(ax: Any, names: Sequence[str], series: Mapping[str, Sequence[float]]) -> None:
    import numpy as np

    x = np.arange(len(names))
    width = 0.8 / max(1, len(series))
    for k, (label, values) in enumerate(series.items()):
        ax.bar(x + (k - (len(series) - 1) / 2) * width, values, width, label=label)
    ax.set_xticks(x, list(names), rotation=30, ha="right")
    ax.axhline(0.0, color="black", linewidth=0.6)


def series(
    kind: str, outcome: Mapping[str, Any] | None, receipts: Sequence[Mapping[str, Any]], scale: int
) -> tuple[str, list[str], dict[str, list[float]]]:
    """The title, participant names and bar series of a round's figure (amounts in major units)."""
    paid: dict[str, float] = {}
    got: dict[str, float] = {}
    for r in receipts:
        amounts = [int(e["amount_minor"]) for e in r["entries"]]
        paid[r["participant"]] = -sum(a for a in amounts if a < 0) / scale
        got[r["participant"]] = sum(a for a in amounts if a > 0) / scale
    names = sorted(set(paid) | set(got))
    paid = {n: paid.get(n, 0.0) for n in names}
    got = {n: got.get(n, 0.0) for n in names}
    adapter = registered_adapter(kind)
    family_figure = getattr(adapter, "round_figure", None)
    if family_figure is not None:
        title, bars = family_figure(outcome, names, paid, got)
        return title, names, bars
    return (
        f"{kind} round: amounts booked",
        names,
        {"paid": list(paid.values()), "received": list(got.values())},
    )


def draw(
    market: Mapping[str, Any], outcome: Mapping[str, Any] | None, receipts: Sequence[Mapping[str, Any]]
) -> str:
    """The SVG text of a round's figure (``market``, ``outcome``, ``receipts``: as the JSON API gives
    them)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from datamarket.experiments import legend_outside, style

    currency = str(market["currency"])
    title, names, bars = series(str(market["kind"]), outcome, receipts, int(market["scale"]))
    with style():
        fig = Figure(figsize=(6.4, 3.6))
        ax = fig.add_subplot()
        _bars(ax, names, bars)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("participant")
        ax.set_ylabel(f"amount ({currency})")
        legend_outside(ax)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", bbox_inches="tight")
    return buf.getvalue()


round_figure = draw
"""The name the portal's views import (:func:`draw`)."""
