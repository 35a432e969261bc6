"""The portal's figures, drawn on the server (matplotlib's Agg backend, SVG with its text kept as text)
in the project's figure style: a cleared round as the operator sees it, a cleared round as one
participant sees it, and the operator's activity over time.

**A round, for the operator** (:func:`draw`): above, each participant's allocation (the outcome's
``allocated``); below, what the family chose to show of the amounts booked: its adapter's optional
``round_figure(outcome, names, paid, received)`` returns a title and the bar series per participant
(the broker: each buyer's posted expected price ``q_j+`` next to the amounts booked; the collaborative
market: each party's fee ``A_i`` and the money ``t_i`` paid back); a kind without one shows what each
participant paid and received. Under the axes the figure states the certificate's verdict and the
outcome's audits (individual rationality, budget balance, envy-freeness when the outcome has a menu),
each read against the mechanism's declared guarantees where the mechanism is registered.

**A round, for one participant** (:func:`draw_participant`): its own allocation and net amount next
to the mean over the round's participants of the same role. The figure is drawn from a
:class:`Standing` only, which :func:`standing` builds from the round's outcome and receipts and which
holds nothing of another participant but those means; a mean is left out (and the figure says why)
when fewer than :data:`MIN_GROUP` participants share the role, since the mean of two and one's own
value give the other's.

**Activity** (:func:`draw_activity`): per day (UTC) of the last :data:`DAYS`, the rounds opened that
day by their status now, and the money volume booked that day (the sum of the ledger's credits: each
round balances, so it is what changed hands), one series per currency, in major units of it.

Amounts come from the ledger (receipts and entries) and are written by the service's one formatter
(:class:`~datamarket.core.display.Formatter`), so the figures show exactly what was booked.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from datamarket.core.display import Formatter
from datamarket.ledger.money import Currency
from datamarket.service.adapters import registered_adapter

MIN_GROUP = 3
"""Fewest participants of a role whose mean a participant's figure shows."""
DAYS = 30
"""Days the activity figure covers, ending today (UTC)."""
STATUSES = ("cleared", "unverified", "failed", "running", "pending")
_DRAWING = threading.Lock()
"""Held while a figure is drawn: matplotlib's settings (``rc_context``) are global to the process, and
the portal draws on a thread pool."""
PLURAL = {"party": "parties"}


@contextmanager
def _figure(width: float, height: float, rows: int, cols: int = 1) -> Iterator[tuple[Any, list[Any]]]:
    """A matplotlib figure (Agg, the project's style, SVG text as text) and its axes, row by row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib as mpl
    from matplotlib.figure import Figure

    from datamarket.experiments import style

    with style(), mpl.rc_context({"svg.fonttype": "none"}):
        fig = Figure(figsize=(width, height), layout="constrained")
        yield fig, list(fig.subplots(rows, cols, squeeze=False).ravel())


def svg(fig: Any) -> str:
    """The SVG text of ``fig`` (its text as ``<text>`` elements: ``svg.fonttype`` none)."""
    import matplotlib as mpl

    buf = io.StringIO()
    with mpl.rc_context({"svg.fonttype": "none", "svg.hashsalt": "datamarket"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    return buf.getvalue()


def _scale(code: str) -> int:
    return Currency.parse(str(code), stored=True).scale


def _unit(code: str) -> str:
    """The name of a currency on an axis: its code (a named unit ``NAME:e`` as ``NAME``)."""
    return str(code).split(":", 1)[0]


def _bars(ax: Any, names: Sequence[str], series: Mapping[str, Sequence[float]]) -> None:
    import numpy as np

    x = np.arange(len(names))
    width = 0.8 / max(1, len(series))
    for k, (label, values) in enumerate(series.items()):
        ax.bar(x + (k - (len(series) - 1) / 2) * width, values, width, label=label)
    ax.set_xticks(x, list(names), rotation=30, ha="right")
    ax.axhline(0.0, color="black", linewidth=0.6)


# -- a round, for the operator ---------------------------------------------------------------------


def _participants(outcome: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    return list((outcome or {}).get("participants", []))


def series(
    kind: str, outcome: Mapping[str, Any] | None, receipts: Sequence[Mapping[str, Any]], scale: int
) -> tuple[str, list[str], dict[str, list[float]]]:
    """The title, participant names and bar series of a round's amounts (major units): the family's
    ``round_figure`` where its adapter has one, else what each participant paid and received."""
    paid: dict[str, float] = {}
    got: dict[str, float] = {}
    for r in receipts:
        amounts = [int(e["amount_minor"]) for e in r["entries"]]
        paid[r["participant"]] = -sum(a for a in amounts if a < 0) / scale
        got[r["participant"]] = sum(a for a in amounts if a > 0) / scale
    names = sorted(set(paid) | set(got) | {str(p["name"]) for p in _participants(outcome)})
    paid = {n: paid.get(n, 0.0) for n in names}
    got = {n: got.get(n, 0.0) for n in names}
    family_figure = getattr(registered_adapter(kind), "round_figure", None)
    if family_figure is not None:
        title, bars = family_figure(outcome, names, paid, got)
        return title, names, bars
    return (
        f"{kind} round: amounts booked",
        names,
        {"paid": list(paid.values()), "received": list(got.values())},
    )


def certificate_line(rnd: Mapping[str, Any]) -> str:
    """The certificate's verdict in words (``rnd``: the round as the operator's API gives it)."""
    cert = rnd.get("certificate") or {}
    checks = cert.get("checks") or {}
    if rnd.get("certificate_passed") is None:
        return "certificate: none recorded"
    if rnd["certificate_passed"]:
        return f"certificate: every check passed ({len(checks)})"
    failed = sorted(n for n, c in checks.items() if not c.get("passed"))
    return f"certificate: FAILED ({', '.join(failed) or 'a check'})"


def _verdict(a: Any, fmt: Formatter) -> str:
    """An audit in words: holds, or fails by how much and how that stands with the declaration."""
    if a.holds:
        return "holds"
    by = fmt.quantity(float(a.violation))
    return {
        "fails_guaranteed": f"FAILS by {by} although guaranteed",
        "fails_as_predicted": f"fails by {by} (as the paper predicts)",
    }.get(a.status.value, f"fails by {by} (no claim)")


def audit_line(outcome: Mapping[str, Any] | None, fmt: Formatter) -> str:
    """The outcome's audits (:func:`~datamarket.core.audits.audit_outcome`), each judged against the
    declared guarantees of its mechanism when that is registered, in one line."""
    from datamarket.core.audits import audit_outcome, judge
    from datamarket.core.errors import DatamarketError
    from datamarket.core.types import Outcome
    from datamarket.mechanisms import registered_mechanisms

    if not outcome:
        return "audits: no outcome"
    try:
        o = Outcome.from_dict(outcome)
    except (DatamarketError, KeyError, TypeError, ValueError):
        return "audits: the outcome cannot be read"
    info = next((m for m in registered_mechanisms() if m.name == o.mechanism), None)
    parts = [
        f"{name.replace('_', ' ')} {_verdict(judge(a, info), fmt)}" for name, a in audit_outcome(o).items()
    ]
    return "audits: " + "; ".join(parts)


def operator_figure(
    market: Mapping[str, Any], rnd: Mapping[str, Any], receipts: Sequence[Mapping[str, Any]], fmt: Formatter
) -> Any:
    """The operator's figure of a cleared round (module docstring); ``market``, ``rnd`` and
    ``receipts`` as the operator's JSON API gives them."""
    from datamarket.experiments import legend_outside

    outcome = rnd.get("outcome")
    currency = str(market["currency"])
    name = market.get("name") or f"market {market['id']}"
    title, names, bars = series(str(market["kind"]), outcome, receipts, int(market["scale"]))
    allocated = {str(p["name"]): float(p.get("allocated", 0.0)) for p in _participants(outcome)}
    with _figure(7.2, 6.0, rows=2) as (fig, (top, bottom)):
        _bars(top, names, {"allocation": [allocated.get(n, 0.0) for n in names]})
        top.set_ylabel("allocated (outcome)")
        top.set_xlabel("participant")
        top.set_title(f"Round {rnd['id']} of {name}", fontsize=10)
        _bars(bottom, names, bars)
        bottom.set_title(title, fontsize=10)
        bottom.set_xlabel("participant")
        bottom.set_ylabel(f"amount ({_unit(currency)})")
        legend_outside(bottom)
        fig.text(0.0, -0.02, certificate_line(rnd), fontsize=8, ha="left", va="top", wrap=True)
        fig.text(0.0, -0.07, audit_line(outcome, fmt), fontsize=8, ha="left", va="top", wrap=True)
    return fig


def draw(
    market: Mapping[str, Any],
    rnd: Mapping[str, Any],
    receipts: Sequence[Mapping[str, Any]],
    fmt: Formatter | None = None,
) -> str:
    """The SVG text of the operator's figure of a cleared round (:func:`operator_figure`)."""
    with _DRAWING:
        return svg(operator_figure(market, rnd, receipts, fmt or Formatter()))


round_figure = draw
"""The name the portal's views import (:func:`draw`)."""


# -- a round, for one participant ------------------------------------------------------------------


@dataclass(frozen=True)
class Standing:
    """One participant's place in a cleared round: its own allocation and net amount, and the means
    over the ``group`` participants of its ``role`` (``None`` when fewer than :data:`MIN_GROUP`
    share it). Nothing else of another participant is in it."""

    role: str | None
    allocated: float | None
    net_minor: int
    currency: str
    group: int
    mean_allocated: float | None
    mean_net_minor: float | None


def standing(
    outcome: Mapping[str, Any] | None, receipts: Sequence[Mapping[str, Any]], me: Mapping[str, Any]
) -> Standing:
    """``me`` (the participant's own receipt) against the round's ``outcome`` and every receipt of
    it, reduced to a :class:`Standing` (on the server: only the standing reaches the figure)."""
    rows = {str(p["name"]): p for p in _participants(outcome)}
    name = str(me["participant"])
    own = rows.get(name)
    role = None if own is None else str(own.get("role"))
    peers = [n for n, p in rows.items() if own is not None and str(p.get("role")) == role]
    net = {str(r["participant"]): int(r["net_minor"]) for r in receipts}
    means: tuple[float | None, float | None] = (None, None)
    if len(peers) >= MIN_GROUP:
        alloc = sum(float(rows[n].get("allocated", 0.0)) for n in peers)
        means = (alloc / len(peers), sum(net.get(n, 0) for n in peers) / len(peers))
    return Standing(
        role=role,
        allocated=None if own is None else float(own.get("allocated", 0.0)),
        net_minor=int(me["net_minor"]),
        currency=str(me["currency"]),
        group=len(peers),
        mean_allocated=means[0],
        mean_net_minor=means[1],
    )


def _pair(ax: Any, mine: float, mean: float | None, texts: tuple[str, str | None], label: str) -> None:
    """Two bars, "you" and the mean, each with its value written above it."""
    names = ["you"] + ([label] if mean is not None else [])
    values = [mine] + ([mean] if mean is not None else [])
    bars = ax.bar(range(len(values)), values, 0.6, color=["#0072B2", "#E69F00"][: len(values)])
    ax.set_xticks(range(len(values)), names)
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.bar_label(bars, labels=[t for t in texts if t is not None], fontsize=8, padding=2)
    ax.margins(y=0.2)


def _mean_money(s: Standing, fmt: Formatter) -> str | None:
    """The mean net amount: exact when it is a whole number of minor units, else in major units with
    two more decimals (:meth:`~datamarket.core.display.Formatter.major`)."""
    if s.mean_net_minor is None:
        return None
    scale = _scale(s.currency)
    if float(s.mean_net_minor).is_integer():
        return fmt.money(int(s.mean_net_minor), s.currency, scale)
    return fmt.major(s.mean_net_minor / scale, s.currency, scale)


def participant_figure(market: Mapping[str, Any], rid: int, s: Standing, fmt: Formatter) -> Any:
    """A participant's figure of round ``rid`` (module docstring), from its :class:`Standing` only."""
    scale = _scale(s.currency)
    role = s.role or "participant"
    roles = PLURAL.get(role, role + "s")
    label = f"mean of the {s.group} {roles}"
    with _figure(7.2, 3.4, rows=1, cols=2) as (fig, (left, right)):
        if s.allocated is not None:
            mean = None if s.mean_allocated is None else fmt.quantity(s.mean_allocated)
            _pair(left, s.allocated, s.mean_allocated, (fmt.quantity(s.allocated), mean), label)
        left.set_ylabel("allocated (outcome)")
        left.set_xlabel(f"your allocation ({role})")
        mean_net = None if s.mean_net_minor is None else s.mean_net_minor / scale
        nets = (fmt.money(s.net_minor, s.currency, scale), _mean_money(s, fmt))
        _pair(right, s.net_minor / scale, mean_net, nets, label)
        right.set_ylabel(f"net amount ({_unit(s.currency)})")
        right.set_xlabel("your net amount (received minus paid)")
        name = market.get("name") or f"market {market['id']}"
        fig.suptitle(f"Round {rid} of {name}: you against the round's {roles}", fontsize=10)
        if s.mean_net_minor is None:
            note = f"fewer than {MIN_GROUP} {roles}: no mean is shown (it would reveal another's amounts)"
            fig.text(0.0, -0.02, note, fontsize=8, ha="left", va="top")
    return fig


def draw_participant(market: Mapping[str, Any], rid: int, s: Standing, fmt: Formatter | None = None) -> str:
    """The SVG text of a participant's figure of round ``rid`` (:func:`participant_figure`)."""
    with _DRAWING:
        return svg(participant_figure(market, rid, s, fmt or Formatter()))


# -- activity over time (operator) -----------------------------------------------------------------


def _day(stamp: Any) -> date:
    """The UTC day of a ``datetime`` or an ISO 8601 text (naive ones are UTC, as the ledger's)."""
    t = stamp if isinstance(stamp, datetime) else datetime.fromisoformat(str(stamp))
    return (t if t.tzinfo is None else t.astimezone(UTC)).date()


def activity(
    rounds: Sequence[Mapping[str, Any]],
    entries: Sequence[Mapping[str, Any]],
    days: int = DAYS,
    today: date | None = None,
) -> list[dict[str, Any]]:
    """One row per day of the ``days`` ending ``today`` (UTC): ``day``, the rounds opened that day per
    status (their status now), and ``volume``: per currency, the minor units credited that day.

    >>> e = [{"created_at": "2026-01-02T10:00:00Z", "amount_minor": a, "currency": "USD"} for a in (-5, 5)]
    >>> r = [{"created_at": "2026-01-02T09:00:00", "status": "cleared"}]
    >>> rows = activity(r, e, days=2, today=date(2026, 1, 2))
    >>> [(r["day"], r["cleared"], r["volume"]) for r in rows]
    [('2026-01-01', 0, {}), ('2026-01-02', 1, {'USD': 5})]
    """
    end = today or datetime.now(UTC).date()
    span = [end - timedelta(days=k) for k in range(days - 1, -1, -1)]
    rows: dict[date, dict[str, Any]] = {
        d: {"day": d.isoformat(), **dict.fromkeys(STATUSES, 0), "volume": {}} for d in span
    }
    for r in rounds:
        row = rows.get(_day(r["created_at"]))
        if row is not None and r["status"] in STATUSES:
            row[r["status"]] += 1
    for e in entries:
        row = rows.get(_day(e["created_at"]))
        if row is not None and int(e["amount_minor"]) > 0:
            vol = row["volume"]
            vol[e["currency"]] = vol.get(e["currency"], 0) + int(e["amount_minor"])
    return list(rows.values())


def busy_days(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The rows of :func:`activity` with a round opened or money booked."""
    return [r for r in rows if r["volume"] or any(r[s] for s in STATUSES)]


def activity_figure(rows: Sequence[Mapping[str, Any]], fmt: Formatter) -> Any:
    """Rounds per day by status (stacked) and money booked per day per currency (module docstring)."""
    import numpy as np

    from datamarket.experiments import integer_ticks, legend_outside

    days = [str(r["day"])[5:] for r in rows]  # MM-DD: the year is in the axis label
    x = np.arange(len(rows))
    with _figure(7.2, 5.2, rows=2) as (fig, (top, bottom)):
        base = np.zeros(len(rows))
        for status in STATUSES:
            counts = np.array([r[status] for r in rows], dtype=float)
            if counts.any():
                top.bar(x, counts, 0.8, bottom=base, label=status)
                base += counts
        integer_ticks(top, "y")
        top.set_ylabel("rounds opened")
        currencies = sorted({c for r in rows for c in r["volume"]})
        width = 0.8 / max(1, len(currencies))
        for k, code in enumerate(currencies):
            scale = _scale(code)
            vol = [r["volume"].get(code, 0) / scale for r in rows]
            label = f"booked in {_unit(code)}"
            bottom.bar(x + (k - (len(currencies) - 1) / 2) * width, vol, width, label=label)
        bottom.set_ylabel("money booked (major units)")
        empty = {top: "no round opened in these days", bottom: "no money booked in these days"}
        span = f"{rows[0]['day']} to {rows[-1]['day']}" if rows else "no days"
        for ax in (top, bottom):
            ax.set_xticks(x, days, rotation=90, fontsize=7)
            ax.set_xlabel(f"day (UTC, {span})")
            ax.set_xlim(-0.5, len(rows) - 0.5)
            if ax.has_data():
                legend_outside(ax)
            else:
                ax.text(0.5, 0.5, empty[ax], transform=ax.transAxes, ha="center", va="center")
        top.set_title(f"Activity over the last {len(rows)} days", fontsize=10)
    return fig


def draw_activity(rows: Sequence[Mapping[str, Any]], fmt: Formatter | None = None) -> str:
    """The SVG text of the activity figure (:func:`activity_figure`)."""
    with _DRAWING:
        return svg(activity_figure(rows, fmt or Formatter()))
