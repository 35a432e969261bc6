"""Price of anarchy: the social cost of a strategic outcome relative to the cost of the truthful or
optimal one (Koutsoupias and Papadimitriou's ratio), used by the families that report it.
"""

from __future__ import annotations

__all__ = ["price_of_anarchy"]


def price_of_anarchy(cost_at_report: float, cost_at_truth: float) -> float:
    """:math:`SC(\\text{report}) / SC(\\text{truth})`, both social costs at the true costs.

    (errata: price of anarchy is a ratio of true-cost social costs)

    It is >= 1 when the social cost is positive. For any sign it is the literal ratio of the definition:
    a data-mixture loss with ``b < 0`` can make SC negative, and then the ratio is <= 1 (not clipped to
    1). If SC at the truth is exactly 0, the ratio is 1 when the report's SC is 0 too, else ``inf``.

    >>> price_of_anarchy(10.2, 10.0)
    1.02
    >>> round(price_of_anarchy(-0.9, -1.0), 12)
    0.9
    """
    if cost_at_truth == 0:
        return 1.0 if cost_at_report == 0 else float("inf")
    return cost_at_report / cost_at_truth
