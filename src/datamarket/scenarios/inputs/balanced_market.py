"""Inputs of the online data market with Shapley revenue division (Chaintreau, Maio, Ziani).

``Market`` (the reserve price's tie-break) is shared by the scenario kind ``balanced_market`` and the
service. ``groups`` means the same thing in both (the demographic groups, in order) but is written
differently: a scenario names its groups, a service market (``Params``) lists the integers of its
data's ``group`` column. A seller's ``Cost`` and a
buyer's ``Bid`` (one number per group) are extended by the scenario's seller and buyer tables.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat, StrictInt, field_validator

from datamarket.scenarios._base import StrictModel


def tie_field() -> Any:
    """The reserve price's tie-break (Fact 4.2)."""
    return Field(
        default="lowest",
        title="tie-break",
        description="reserve price on ties of rho_g(p) (Fact 4.2): the lowest or highest maximiser",
        json_schema_extra={"symbol": "p_g"},
    )


class Market(StrictModel):
    """Market parameters shared by scenario files and service markets."""

    tie: Literal["lowest", "highest"] = tie_field()


class Params(Market):
    """Parameters of a service market: the shared ones and its groups (integers of the group column)."""

    groups: list[StrictInt] = Field(
        default_factory=lambda: [0, 1],
        min_length=1,
        max_length=20,
        title="groups",
        description="the demographic groups: distinct integers of the data's group column",
        json_schema_extra={"symbol": "g", "uniqueItems": True},
    )

    @field_validator("groups")
    @classmethod
    def _distinct(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("groups must be distinct")
        return v


class Cost(StrictModel):
    """A seller's unit production cost per group (JSON submission ``cost``)."""

    costs: list[PositiveFloat] = Field(
        min_length=1,
        title="unit cost per group",
        description="unit production cost per group, in the order of the groups",
        json_schema_extra={"unit": "money per sample", "symbol": "κ^(j)_g"},
    )


class Bid(StrictModel):
    """A buyer's value of accuracy per group (JSON submission ``bid``)."""

    values: list[NonNegativeFloat] = Field(
        min_length=1,
        title="value per group",
        description="value of accuracy per group (the buyer's truthful bid, Fact 4.1)",
        json_schema_extra={"unit": "money per unit of accuracy", "symbol": "μ_{i,g}"},
    )


SUBMISSIONS: dict[str, type[StrictModel]] = {"cost": Cost, "bid": Bid}
