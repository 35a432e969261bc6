"""A cleared round's key figure, drawn on the server (matplotlib, SVG) in the project's figure style.

* broker (Chen et al.): the posted expected price ``q_j+`` of each buyer (Algorithm 2, phase 1) next to
  each contributor's payment (its eq. (15));
* collaborative (Ohrimenko et al.): each party's fee ``A_i`` and the money ``t_i`` paid back to it
  (Section 4.1), whose difference is the Shapley-based net;
* any other kind: the payments and prices of the outcome, per participant.

Amounts are the ledger's receipts (major units of the market's currency), so the figure shows exactly
what was booked; names and values come from the round's outcome and receipts only.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any


def _bars(ax: Any, names: Sequence[str], series: Mapping[str, Sequence[float]]) -> None:
    import numpy as np

    x = np.arange(len(names))
    width = 0.8 / max(1, len(series))
    for k, (label, values) in enumerate(series.items()):
        ax.bar(x + (k - (len(series) - 1) / 2) * width, values, width, label=label)
    ax.set_xticks(x, list(names), rotation=30, ha="right")
    ax.axhline(0.0, color="black", linewidth=0.6)


def round_figure(
    market: Mapping[str, Any], outcome: Mapping[str, Any] | None, receipts: Sequence[Mapping[str, Any]]
) -> str:
    """The SVG text of a round's figure (``market``, ``outcome``, ``receipts``: as the JSON API gives
    them)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from datamarket.experiments import legend_outside, style

    kind, currency, scale = str(market["kind"]), str(market["currency"]), int(market["scale"])
    paid: dict[str, int] = {}
    got: dict[str, int] = {}
    for r in receipts:
        amounts = [int(e["amount_minor"]) for e in r["entries"]]
        paid[r["participant"]] = -sum(a for a in amounts if a < 0)
        got[r["participant"]] = sum(a for a in amounts if a > 0)
    names = sorted(set(paid) | set(got))
    with style():
        fig = Figure(figsize=(6.4, 3.6))
        ax = fig.add_subplot()
        if kind == "broker":
            title = "Broker round: posted prices and payments"
            buyers = [p["name"] for p in (outcome or {}).get("participants", []) if p.get("role") == "buyer"]
            posted = dict(
                zip(buyers, (outcome or {}).get("extra", {}).get("expected_prices", []), strict=False)
            )
            prices = [float(posted.get(n, 0.0)) for n in names]
            _bars(
                ax,
                names,
                {
                    "posted expected price q_j+": prices,
                    "paid (ledger)": [paid[n] / scale for n in names],
                    "received (ledger)": [got[n] / scale for n in names],
                },
            )
        elif kind == "collaborative":
            title = "Collaborative round: fees and Shapley-based payments"
            _bars(
                ax,
                names,
                {
                    "fee A_i paid": [paid[n] / scale for n in names],
                    "payment t_i received": [got[n] / scale for n in names],
                },
            )
        else:
            title = f"{kind} round: amounts booked"
            _bars(
                ax,
                names,
                {"paid": [paid[n] / scale for n in names], "received": [got[n] / scale for n in names]},
            )
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("participant")
        ax.set_ylabel(f"amount ({currency})")
        legend_outside(ax)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", bbox_inches="tight")
    return buf.getvalue()
