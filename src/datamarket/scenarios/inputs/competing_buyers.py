"""Inputs of competing buyers and strategic data sources (Westenbroek, Dong, Ratliff, Sastry).

``Params`` (the competition level: one level for every pair of buyers, or a symmetric matrix of
levels, one row and column per buyer) is shared by the scenario kind ``competing_buyers`` and the
service (the portal's form takes the scalar; the JSON API also the matrix, whose size is checked
against the buyers when a round is opened). A source's ``Source`` is extended by the
scenario's source table (with a name); a buyer's ``Estimator`` is the service's compact form of the
scenario's buyer table (polynomial regression evaluated on a uniform interval).
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from pydantic import Field, PositiveFloat, ValidationInfo, field_validator

from datamarket.scenarios._base import StrictModel

Level = Annotated[float, Field(ge=0, le=1)]


class Params(StrictModel):
    """Parameters of a market: the competition between its buyers."""

    competition: Level | Annotated[list[Annotated[list[Level], Field(min_length=1)]], Field(min_length=1)] = (
        Field(
            default=0.0,
            title="competition",
            description="competition level in [0, 1]: a scalar for every pair or a symmetric matrix (square, "
            "entry (j, k) equal to entry (k, j): a rule JSON Schema cannot state)",
            json_schema_extra={"unit": "1", "symbol": "δ_k^j"},
        )
    )

    @field_validator("competition")
    @classmethod
    def _delta_range(cls, v: float | list[list[float]]) -> float | list[list[float]]:
        try:
            comp = np.asarray(v, dtype=float)
        except ValueError:
            raise ValueError("must be a scalar or a square matrix (rows of equal length)") from None
        if comp.ndim not in (0, 2):
            raise ValueError("must be a scalar or a square matrix")
        # every entry, the unused diagonal included, must be a competition level in [0, 1] (paper
        # after (2); a delta outside [0, 1] is a clear error)
        if not np.all(np.isfinite(comp)) or np.any((comp < 0) | (comp > 1)):
            raise ValueError(f"delta must lie in [0, 1], got {v}")
        if comp.ndim == 2 and (comp.shape[0] != comp.shape[1] or not np.allclose(comp, comp.T)):
            raise ValueError("delta must be a symmetric square matrix")
        return v


class Source(StrictModel):
    """A data source (JSON submission ``source``)."""

    location: float = Field(
        title="location",
        description="the source's location, common knowledge",
        json_schema_extra={"unit": "location", "symbol": "x_i"},
    )
    effort_alpha: PositiveFloat = Field(
        default=1.0,
        title="effort cost",
        description="effort sensitivity of the noise, sigma_i(e) = exp(-alpha_i e) (eq. 16)",
        json_schema_extra={"unit": "1 / effort", "symbol": "α_i"},
    )


def eta_field() -> Any:
    """A buyer's conversion between loss and money."""
    return Field(
        default=1.0,
        title="conversion of loss to money",
        description="conversion between the buyer's loss and money",
        json_schema_extra={"unit": "money per unit of loss", "symbol": "η^j"},
    )


class Estimator(StrictModel):
    """A buyer: polynomial regression of ``degree`` evaluated on U[low, high] (submission ``estimator``)."""

    degree: int = Field(
        default=1,
        ge=0,
        le=5,
        title="polynomial degree",
        description="degree of the polynomial regression (Assumption 3; 1 is the paper's Section IV)",
        json_schema_extra={"symbol": "d"},
    )
    low: float = Field(
        default=-1.0,
        title="domain low end",
        description="lower end of the uniform evaluation interval",
        json_schema_extra={"unit": "location", "symbol": "a"},
    )
    high: float = Field(
        default=1.0,
        title="domain high end",
        description="upper end of the uniform evaluation interval, above low",
        json_schema_extra={"unit": "location", "symbol": "b"},
    )
    eta: PositiveFloat = eta_field()

    @field_validator("high")
    @classmethod
    def _above_low(cls, v: float, info: ValidationInfo) -> float:
        low = info.data.get("low")
        if low is not None and not v > low:
            raise ValueError("must exceed low")
        return v


SUBMISSIONS: dict[str, type[StrictModel]] = {"source": Source, "estimator": Estimator}
