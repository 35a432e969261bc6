"""Inputs of truthful payments to sellers with private costs (Fan, Rotello, Karimireddy).

``Params`` is shared by the scenario kind ``truthful_payments`` and the service: ``rule`` is the
payment rule whose payments make the outcome (the service books it; a scenario computes every rule and
reports this one's outcome, Myerson by default as before) and ``myerson_method`` how the Myerson
integral is computed. A buyer's ``Task`` (its target mean) and a seller's ``Cost`` (its private cost
factor) are the service's submissions; a scenario lists them as ``mean_estimation.buyer_means`` and
``costs``, with the field descriptions given here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, NonNegativeFloat

from datamarket.scenarios._base import StrictModel


class Params(StrictModel):
    """Parameters of a market."""

    rule: Literal["myerson", "vcg", "loo", "shapley"] = Field(
        default="myerson",
        title="payment rule",
        description="the payment rule of the outcome: Myerson, VCG, leave-one-out or Shapley",
        json_schema_extra={"symbol": "P"},
    )
    myerson_method: Literal["auto", "closed_form", "quad", "gauss", "envelope"] = Field(
        default="auto",
        title="Myerson integral",
        description="how the Myerson integral (eq. 9) is computed",
        json_schema_extra={"symbol": "P^MS"},
    )


def cost_field(**kw: Any) -> Any:
    """A seller's private cost factor."""
    return Field(
        title="private cost factor",
        json_schema_extra={"unit": "money per unit of f", "symbol": "c_j"},
        **kw,
    )


class Task(StrictModel):
    """A buyer's target mean (JSON submission ``task``)."""

    target: list[float] = Field(
        min_length=1,
        max_length=1000,
        title="mean to estimate",
        description="the buyer's target mean, one number per dimension",
        json_schema_extra={"unit": "data units", "symbol": "μ_i"},
    )


class Cost(StrictModel):
    """A seller's private cost factor (JSON submission ``cost``)."""

    cost: NonNegativeFloat = cost_field(description="private cost factor of the seller")


SUBMISSIONS: dict[str, type[StrictModel]] = {"task": Task, "cost": Cost}
