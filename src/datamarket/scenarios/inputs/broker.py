r"""Inputs of the broker for mean estimation (Chen, Clinton, Kandasamy): parameters, bids and costs.

``Params`` is shared by the scenario kind ``broker`` and by the service's broker markets, with one set
of defaults. Two points used to differ and are settled here:

* ``solver`` takes the same values everywhere, ``auto`` (the default: Algorithm 1 with the exact
  enumeration E1 while its pruned enumeration is small, else the exact MILP E2), ``E1``, ``E2``,
  ``E3`` or ``support``; the service used to default to ``E1`` and refuse ``auto``.
* ``delta`` is the grid ratio of the support restriction, the pricing oracle ``solver = "support"``:
  allocations are searched on :math:`Q_\delta = \{0\} \cup \{\lceil (1+\delta)^i \rceil\}
  \cup \{N\}` (``datamarket.pricing.solvers.support_grid``) and the certified revenue gap is
  reported. It is not a failure probability (the portal used to say so): mechanism M* is
  deterministic given the data, and no other solver reads ``delta``.

A buyer's ``Bid`` is the service's compact form of an error valuation (``width`` is the threshold
``t`` or the width ``tau``); the scenario's buyer table also offers piecewise and tabulated
valuations. A contributor's ``Cost`` is extended by the scenario's contributor table (with a name).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PositiveFloat

from datamarket.scenarios._base import StrictModel

SOLVERS = ("auto", "E1", "E2", "E3", "support")
VALUATIONS = ("gaussian", "threshold", "exponential")


class Params(StrictModel):
    """Parameters of a broker market."""

    sigma: PositiveFloat = Field(
        default=1.0,
        title="noise of a data point",
        description="standard deviation of the data distribution N(mu, sigma^2)",
        json_schema_extra={"unit": "data units", "symbol": "σ"},
    )
    solver: Literal["auto", "E1", "E2", "E3", "support"] = Field(
        default="auto",
        title="pricing oracle",
        description="pricing oracle of Algorithm 1: auto (E1 while small, else E2), enumeration E1, "
        "MILP E2, DP E3 or the support restriction",
    )
    delta: PositiveFloat = Field(
        default=0.1,
        title="support grid ratio",
        description="grid ratio of the support restriction: allocations on {0} U {ceil((1 + delta)^i)} "
        "U {N} (solver = support only)",
        json_schema_extra={"unit": "1", "symbol": "δ"},
    )


def scale_field() -> Any:
    """The value scale of a buyer's valuation (bid and scenario buyer table)."""
    return Field(
        default=1.0,
        gt=0.0,
        le=1.0,
        title="value scale",
        description="scale of the valuation: the value of a perfect estimate, in (0, 1]",
        json_schema_extra={"unit": "money", "symbol": "α_j"},
    )


class Bid(StrictModel):
    """A buyer's error valuation (JSON submission ``bid``)."""

    valuation: Literal["gaussian", "threshold", "exponential"] = Field(
        title="valuation of the estimate's error",
        description="how the value falls with the error: gaussian, threshold or exponential",
        json_schema_extra={"symbol": "v^e_j"},
    )
    width: PositiveFloat = Field(
        title="error width",
        description="the error scale of the valuation: t of the threshold, tau of the others",
        json_schema_extra={"unit": "data units", "symbol": "τ_j"},
    )
    scale: float = scale_field()


class Cost(StrictModel):
    """A contributor's per-sample cost (JSON submission ``cost``)."""

    cost: PositiveFloat = Field(
        title="cost per data point",
        description="cost of collecting one sample",
        json_schema_extra={"unit": "money per sample", "symbol": "c_i"},
    )


SUBMISSIONS: dict[str, type[StrictModel]] = {"bid": Bid, "cost": Cost}
