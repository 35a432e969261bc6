"""Inputs of the collaborative ML market with replication-robust payments (Ohrimenko, Tople, Tschiatschek).

``Round`` holds the round parameters shared by the scenario kind ``collaborative`` and the service
(the characteristic function, Shapley values, selection, the zero-element guard, customisation).
The fee constant ``c`` of the paper is ``c`` in a service market and ``fee`` in a scenario file (both
names are public); one field definition serves both. ``Learner`` is the learner of both; the service
also takes the MLP's ``alpha``, ``learning_rate`` and ``random_state`` (the scenario seeds the learner
with its own seed), and the two keep different MLP widths by default (a scenario's default network is
the small one of its figures, 64 hidden units; the service's is the paper's, 500, as markets already
stored expect). A party's ``FeeScale`` is extended by the scenario's party table.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveFloat

from datamarket.scenarios._base import StrictModel


class Learner(StrictModel):
    """The learner (``logreg``, ``mlp`` or ``knn1``) and its budget."""

    kind: Literal["logreg", "mlp", "knn1"] = Field(
        default="logreg",
        title="kind of model",
        description="logistic regression, a one-hidden-layer MLP or 1-nearest neighbour",
    )
    C: PositiveFloat = Field(
        default=1.0,
        title="inverse L2 strength",
        description="inverse L2 strength of logistic regression",
        json_schema_extra={"unit": "1", "symbol": "C"},
    )
    max_iter: int = Field(
        default=200,
        ge=1,
        le=10_000,
        title="learner iterations",
        description="optimiser iterations per fit",
        json_schema_extra={"unit": "iterations"},
    )
    tol: PositiveFloat = Field(
        default=1e-4,
        title="optimiser tolerance",
        description="optimiser tolerance",
        json_schema_extra={"unit": "1"},
    )
    hidden: int = Field(
        default=64,
        ge=1,
        le=2000,
        title="hidden units",
        description="hidden units of the MLP",
        json_schema_extra={"unit": "units"},
    )


class ServiceLearner(Learner):
    """The learner of a service market: the paper's MLP width by default, and the MLP's optimiser."""

    hidden: int = Field(
        default=500,
        ge=1,
        le=2000,
        title="hidden units",
        description="hidden units of the MLP",
        json_schema_extra={"unit": "units"},
    )
    alpha: PositiveFloat = Field(
        default=1e-4,
        title="MLP L2 penalty",
        description="L2 penalty of the MLP",
        json_schema_extra={"unit": "1"},
    )
    learning_rate: PositiveFloat = Field(
        default=1e-2, title="MLP step", description="Adam step of the MLP", json_schema_extra={"unit": "1"}
    )
    random_state: NonNegativeInt = Field(
        default=0, title="learner seed", description="seed of the MLP's initialisation"
    )


def fee_field() -> Any:
    """The fee constant c (Sec. 3 step 3)."""
    return Field(
        default=1.0,
        title="fee constant",
        description="fee constant: a party pays c (1 - g_i)",
        json_schema_extra={"unit": "money", "symbol": "c"},
    )


class Round(StrictModel):
    """Round parameters shared by scenario files and service markets."""

    characteristic: Literal["u", "v", "w"] = Field(
        default="v",
        title="characteristic function",
        description="characteristic function: u (accuracy), v (one task, Sec. 4.1), w (many tasks, Sec. 4.2)",
        json_schema_extra={"symbol": "u, v, w"},
    )
    shapley: Literal["auto", "exact", "monte_carlo"] = Field(
        default="auto",
        title="Shapley values",
        description="exact or Monte Carlo Shapley values (auto: exact up to max_exact parties)",
        json_schema_extra={"symbol": "ψ"},
    )
    n_permutations: int = Field(
        default=200,
        ge=2,
        le=100_000,
        title="Monte Carlo permutations",
        description="Monte Carlo permutations",
        json_schema_extra={"unit": "permutations", "symbol": "T"},
    )
    max_exact: int = Field(
        default=12,
        ge=1,
        le=20,
        title="exact Shapley up to",
        description="shapley = auto: exact Shapley values up to this many parties",
        json_schema_extra={"unit": "parties"},
    )
    tau: float | None = Field(
        default=None,
        ge=-1.0,
        le=1.0,
        title="data-selection threshold",
        description="data-selection threshold on normalised Shapley values (Sec. 5); unset: no selection",
        json_schema_extra={"unit": "share", "symbol": "τ"},
    )
    guard: bool = Field(
        default=True,
        title="zero-element guard",
        description="zero-element guard: the better of pooled and own model, negative shares clipped",
    )
    customise: Literal["none", "paper", "masked"] = Field(
        default="none",
        title="customised models",
        description="customised models for w (Sec. 5, eq. 2 corrected): none, paper or masked penalty",
    )
    lam: NonNegativeFloat = Field(
        default=0.0,
        title="customisation weight",
        description="weight of the customisation penalty",
        json_schema_extra={"unit": "1", "symbol": "λ"},
    )


class Params(Round):
    """Parameters of a service market: the round's, the fee constant ``c`` and the learner."""

    # the rule across fields the mechanism checks (CollaborativeConfig), stated in the JSON schema
    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"customise": {"enum": ["paper", "masked"]}}, "required": ["customise"]},
            "then": {
                "properties": {
                    "characteristic": {"const": "w"},
                    "model": {"properties": {"kind": {"const": "logreg"}}},
                },
                "required": ["characteristic"],
            },
        }
    )

    c: PositiveFloat = fee_field()
    model: ServiceLearner = Field(default_factory=ServiceLearner, title="learner", description="the learner")


def fee_scale_field(**kw: Any) -> Any:
    """A party's multiplier of the fee constant."""
    return Field(
        title="fee multiplier",
        description="multiplies the fee constant for this party",
        json_schema_extra={"unit": "1", "symbol": "c_i / c"},
        **kw,
    )


class FeeScale(StrictModel):
    """A party's fee multiplier (JSON submission ``fee_scale``)."""

    fee_scale: NonNegativeFloat = fee_scale_field()


SUBMISSIONS: dict[str, type[StrictModel]] = {"fee_scale": FeeScale}
