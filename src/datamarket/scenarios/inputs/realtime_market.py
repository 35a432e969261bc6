r"""Inputs of the real-time data marketplace (Agarwal, Dahleh, Sarkar): the market's functions and a bid.

``Params`` holds what the market fixes before any buyer arrives, flat as in a scenario file: AF* (the
degradation ``form``, ``sigma`` and the grid of ``levels``), RF* (nothing to set: eq. 3), PF*
(Algorithm 1's bid bound ``max_bid``, Lipschitz constant ``lipschitz`` and ``horizon``), PD* (``rule``,
``similarity``, ``lam`` and Algorithm 2's ``epsilon``, ``delta``), the ``gain`` and the ``learner``. A
buyer's ``Bid`` (its value per unit of gain and its bid) is the submission of a buyer; its task (the
labels) is data, not a parameter.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat

from datamarket.scenarios._base import StrictModel


class LearnerSpec(StrictModel):
    """The market's learner: any scikit-learn estimator, by import path, and its parameters."""

    name: str = Field(
        default="sklearn.linear_model:LinearRegression",
        title="learner",
        description="import path 'package.module:Class' of a scikit-learn regressor or classifier",
        json_schema_extra={"symbol": "M"},
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        title="learner parameters",
        description="keyword arguments of the learner (random_state defaults to the scenario's seed)",
    )


class Params(StrictModel):
    """Parameters of a real-time market."""

    form: Literal["noise", "mask"] = Field(
        default="noise",
        title="degradation",
        description="AF*: Gaussian noise scaled by the shortfall (Ex. 4.1) or masking bits (Ex. 4.2)",
        json_schema_extra={"symbol": "AF*"},
    )
    sigma: PositiveFloat = Field(
        default=1.0,
        title="noise scale",
        description="noise per unit of shortfall (p - b), in standard deviations of each stream",
        json_schema_extra={"unit": "standard deviations per unit of money", "symbol": "σ"},
    )
    levels: int = Field(
        default=16,
        ge=1,
        le=1000,
        title="levels of the gain curve",
        description="grid of degradation levels on which the gain curve h is measured (K + 1 fits)",
        json_schema_extra={"unit": "levels", "symbol": "K"},
    )
    monotone: bool = Field(
        default=True,
        title="monotone gain curve",
        description="deliver the best affordable level (h non-decreasing, truthful) or the least degraded",
    )
    max_bid: PositiveFloat = Field(
        default=1.0,
        title="largest bid",
        description="bids and prices lie in [0, max_bid] (Assumption 4)",
        json_schema_extra={"unit": "money per unit of gain", "symbol": "B_max"},
    )
    lipschitz: PositiveFloat = Field(
        default=1.0,
        title="Lipschitz constant",
        description="Lipschitz constant of RF* in the price, which sets the net: eps = 1 / (L sqrt(N))",
        json_schema_extra={"unit": "1", "symbol": "L"},
    )
    horizon: Literal["known", "doubling"] = Field(
        default="known",
        title="number of buyers",
        description="Algorithm 1 tuned for the known number of buyers, or the doubling trick",
        json_schema_extra={"symbol": "N"},
    )
    rule: Literal["pd_a", "pd_b"] = Field(
        default="pd_b",
        title="revenue division",
        description="PD*_A (Algorithm 2, Shapley) or PD*_B (Algorithm 3, penalised for similarity)",
        json_schema_extra={"symbol": "PD*"},
    )
    similarity: Literal["cosine", "pearson"] = Field(
        default="cosine",
        title="similarity",
        description="similarity of two streams in PD*_B: the paper's |cos| or the centred |Pearson|",
        json_schema_extra={"symbol": "SM"},
    )
    lam: NonNegativeFloat = Field(
        default=math.log(2.0),
        title="similarity penalty",
        description="lambda of Algorithm 3 (log 2 is Thm 5.4's)",
        json_schema_extra={"unit": "1", "symbol": "λ"},
    )
    shapley: Literal["auto", "exact", "sampled", "engine"] = Field(
        default="auto",
        title="Shapley values",
        description="exact values (2^M fits), Algorithm 2's samples, or the valuation engine stopped at "
        "the accuracy epsilon (a CLT confidence bound); auto: exact up to exact_up_to sellers, else engine",
        json_schema_extra={"symbol": "ψ"},
    )
    exact_up_to: int = Field(
        default=12,
        ge=1,
        le=16,
        title="exact up to",
        description="shapley = auto: exact Shapley values up to this many sellers",
        json_schema_extra={"unit": "sellers"},
    )
    epsilon: float = Field(
        default=0.1,
        gt=0.0,
        le=1.0,
        title="accuracy of sampled values",
        description="Algorithm 2's target accuracy (Thm 5.3; Thm 5.4 for PD*_B)",
        json_schema_extra={"unit": "1", "symbol": "ε"},
    )
    delta: float = Field(
        default=0.1,
        gt=0.0,
        lt=1.0,
        title="failure probability",
        description="probability that sampled values miss the accuracy epsilon (Thm 5.3)",
        json_schema_extra={"unit": "1", "symbol": "δ"},
    )
    samples: int | None = Field(
        default=None,
        ge=2,
        le=1_000_000,
        title="permutations per seller",
        description="Algorithm 2's K; unset: the theorem's count for epsilon and delta",
        json_schema_extra={"unit": "permutations", "symbol": "K"},
    )
    gain: Literal["baseline", "paper"] = Field(
        default="baseline",
        title="gain",
        description="gain against the no-data predictor (rescaled as Rem. 2.2) or as printed (fn. 3)",
        json_schema_extra={"symbol": "G"},
    )
    learner: LearnerSpec = Field(default_factory=LearnerSpec, title="learner", description="the learner")


class OnlineParams(Params):
    """Parameters of a market served online (``datamarket serve``): those of :class:`Params`, with
    Algorithm 1's doubling trick, since a service does not know how many buyers will come."""

    horizon: Literal["doubling"] = Field(  # type: ignore[assignment]
        default="doubling",
        title="number of buyers",
        description="unknown online: Algorithm 1 with the doubling trick",
        json_schema_extra={"symbol": "N"},
    )


class Bid(StrictModel):
    """A buyer's value per unit of gain and its bid (JSON submission ``bid``)."""

    value: NonNegativeFloat = Field(
        title="value of gain",
        description="what one unit of gain is worth to the buyer (private)",
        json_schema_extra={"unit": "money per unit of gain", "symbol": "μ_n"},
    )
    bid: NonNegativeFloat | None = Field(
        default=None,
        title="bid",
        description="the bid; unset: the value (truthful bidding is optimal, Thm 5.1)",
        json_schema_extra={"unit": "money per unit of gain", "symbol": "b_n"},
    )


MAX_ROWS = 100_000
"""Rows of a buyer's task the service takes in one order (the streams' length T)."""


class Order(Bid):
    """A buyer's bid with its task, as the service takes it (JSON submission ``bid``): the value and bid
    of :class:`Bid`, one label per row of the sellers' streams and which rows are test rows (the gain is
    measured there, and the predictions answered are for them)."""

    labels: list[float] = Field(
        min_length=2,
        max_length=MAX_ROWS,
        title="labels",
        description="the task Y_n: one label per row of the streams (classes as numbers for a classifier)",
        json_schema_extra={"symbol": "Y_n"},
    )
    test_rows: list[int] = Field(
        min_length=1,
        max_length=MAX_ROWS,
        title="test rows",
        description="0-based rows whose labels measure the gain; the learner trains on the others",
    )


SUBMISSIONS: dict[str, type[StrictModel]] = {"bid": Order}
