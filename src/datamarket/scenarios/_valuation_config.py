"""Configuration of ``datamarket value``: a data-valuation run over sellers.

A TOML/JSON file names a model, a dataset (a scikit-learn bundled set or a CSV file), how the training
rows are split among sellers, the method, the stopping rule and the backend::

    seed = 0
    [model]
    name = "logistic_regression"
    params = { max_iter = 500 }
    [dataset]
    name = "breast_cancer"
    [sellers]
    n = 10
    [method]
    name = "monte_carlo_shapley"
    [stopping]
    max_evaluations = 1000

The leading underscore keeps this module out of the scenario kinds. No file is read here: the CLI
reads a CSV and passes its text to :func:`dataset_from_csv_text`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Literal

import numpy as np
import pydantic
from numpy.typing import NDArray
from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, model_validator

from datamarket.core.errors import InvalidMarketError
from datamarket.core.random import make_rng
from datamarket.core.types import Dataset
from datamarket.scenarios._base import StrictModel
from datamarket.scenarios._loader import ScenarioError, format_validation_error, load_mapping
from datamarket.valuation import (
    MaxEvaluations,
    MaxTime,
    ModelGame,
    ProgressInfo,
    RankStability,
    StderrTarget,
    StoppingRule,
    ValuationResult,
    beta_shapley,
    control_variate_shapley,
    exact_banzhaf,
    exact_shapley,
    leave_one_out,
    monte_carlo_shapley,
    msr_banzhaf,
    regression_shapley,
    stratified_semivalue,
)

BUNDLED = ("breast_cancer", "iris", "wine", "digits", "diabetes")
MODELS = ("logistic_regression", "knn", "decision_tree", "gaussian_nb", "ridge", "linear_regression")
Param = int | float | str | bool | None


class ModelSpec(StrictModel):
    name: str = Field(
        default="logistic_regression",
        description="one of MODELS, or any scikit-learn-compatible estimator by import path "
        "'package.module:ClassName' (e.g. 'sklearn.ensemble:RandomForestClassifier')",
    )
    params: dict[str, Param] = Field(default_factory=dict)
    standardize: bool = True

    @model_validator(mode="after")
    def _known_or_path(self) -> ModelSpec:
        import re

        from datamarket.learning.models import IMPORT_PATH

        if self.name not in MODELS and not re.match(IMPORT_PATH, self.name):
            raise ValueError(
                f"unknown model {self.name!r}: use one of {', '.join(MODELS)} or an import path "
                "'package.module:ClassName'"
            )
        return self


class DatasetSpec(StrictModel):
    name: Literal["breast_cancer", "iris", "wine", "digits", "diabetes"] | None = "breast_cancer"
    csv: str | None = Field(default=None, min_length=1, description="CSV path, relative to the config")
    target: str | None = Field(default=None, min_length=1, description="CSV label column (default: last)")
    test_size: float = Field(default=0.3, gt=0.0, lt=1.0)
    max_rows: PositiveInt | None = None

    @model_validator(mode="after")
    def _one_source(self) -> DatasetSpec:
        if self.csv is not None and "name" in self.model_fields_set:
            raise ValueError("give either a bundled dataset name or a csv path, not both")
        return self


class SellersSpec(StrictModel):
    n: int = Field(default=10, ge=1, le=60)
    split: Literal["equal", "dirichlet"] = "equal"
    alpha: PositiveFloat = Field(default=1.0, description="Dirichlet concentration of seller shares")


SAMPLED = (
    "control_variate_shapley",
    "regression_shapley",
    "stratified_shapley",
    "beta_shapley",
    "msr_banzhaf",
)


class MethodSpec(StrictModel):
    name: Literal[
        "exact_shapley",
        "monte_carlo_shapley",
        "loo",
        "banzhaf",
        "control_variate_shapley",
        "regression_shapley",
        "stratified_shapley",
        "beta_shapley",
        "msr_banzhaf",
    ] = "monte_carlo_shapley"
    antithetic: bool = True
    sampler: Literal["cyclic", "random", "leverage", "kernel"] = "cyclic"
    truncation_tol: NonNegativeFloat | None = None
    alpha: PositiveFloat = Field(default=16.0, description="Beta Shapley alpha")
    beta: PositiveFloat = Field(default=1.0, description="Beta Shapley beta")

    @model_validator(mode="after")
    def _sampler_fits_method(self) -> MethodSpec:
        if self.name == "monte_carlo_shapley" and self.sampler not in ("cyclic", "random"):
            raise ValueError("monte_carlo_shapley samplers are 'cyclic' and 'random'")
        if self.name == "regression_shapley" and "sampler" in self.model_fields_set:
            if self.sampler not in ("leverage", "kernel"):
                raise ValueError("regression_shapley samplers are 'leverage' and 'kernel'")
        return self


class StoppingSpec(StrictModel):
    max_evaluations: PositiveInt | None = 1000
    max_time: PositiveFloat | None = None
    stderr_target: PositiveFloat | None = None
    rank_stability: PositiveInt | None = None


class BackendSpec(StrictModel):
    name: Literal["serial", "processes", "dask"] = "serial"
    n_workers: PositiveInt = 2
    scheduler: str | None = Field(default=None, pattern=r"^[a-z]+://.+")


class ValuationConfig(StrictModel):
    """A data-valuation run (``datamarket value``)."""

    name: str = ""
    description: str = ""
    seed: int = Field(default=0, ge=0)
    model: ModelSpec = Field(default_factory=ModelSpec)
    dataset: DatasetSpec = Field(default_factory=DatasetSpec)
    sellers: SellersSpec = Field(default_factory=SellersSpec)
    method: MethodSpec = Field(default_factory=MethodSpec)
    stopping: StoppingSpec = Field(default_factory=StoppingSpec)
    backend: BackendSpec = Field(default_factory=BackendSpec)
    scorer: str = Field(default="accuracy", min_length=1)
    empty_score: float = 0.0
    on_fit_error: Literal["raise", "default"] = "default"
    cache: str | None = Field(
        default=None,
        min_length=1,
        description="directory of a persistent coalition cache (relative to the config); "
        "an interrupted run resumes, a repeated run refits nothing",
    )

    @model_validator(mode="before")
    @classmethod
    def _model_shorthand(cls, data: Any) -> Any:
        # `model = "sklearn.ensemble:RandomForestClassifier"` with `model_params = {...}`
        if isinstance(data, dict) and isinstance(data.get("model"), str):
            data = dict(data)
            data["model"] = {"name": data["model"], "params": data.pop("model_params", {})}
        elif isinstance(data, dict) and "model_params" in data:
            raise ValueError("model_params goes with model = 'package.module:ClassName'")
        return data

    @model_validator(mode="after")
    def _checks(self) -> ValuationConfig:
        if self.method.name in ("exact_shapley", "banzhaf") and self.sellers.n > 20:
            raise ValueError("exact methods enumerate 2^n coalitions: use at most 20 sellers")
        if self.backend.name == "dask" and self.backend.scheduler is None:
            raise ValueError("the dask backend needs backend.scheduler (or --scheduler)")
        s = self.stopping
        if self.method.name == "monte_carlo_shapley" and not any(
            x is not None for x in (s.max_evaluations, s.max_time, s.stderr_target, s.rank_stability)
        ):
            raise ValueError("monte_carlo_shapley needs at least one stopping criterion")
        if self.method.name in SAMPLED and s.max_evaluations is None:
            raise ValueError(f"{self.method.name} needs stopping.max_evaluations (its budget)")
        return self


def parse_valuation_config(text: str, fmt: str = "toml", *, seed: int | None = None) -> ValuationConfig:
    """Parse and validate a valuation config (one-line :class:`ScenarioError` on bad input).

    >>> parse_valuation_config('[sellers]\\nn = 0')
    Traceback (most recent call last):
    ...
    datamarket.scenarios._loader.ScenarioError: sellers.n: Input should be greater than or equal to 1
    """
    data = load_mapping(text, fmt, "config")
    if seed is not None:
        data["seed"] = seed
    try:
        return ValuationConfig.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ScenarioError(format_validation_error(exc, ValuationConfig)) from None


def bundled_dataset(name: str) -> tuple[NDArray[np.float64], NDArray[Any]]:
    """Features and labels of a scikit-learn bundled dataset."""
    import sklearn.datasets as skd

    loader: Callable[..., Any] = getattr(skd, f"load_{name}")
    x, y = loader(return_X_y=True)
    return np.asarray(x, dtype=np.float64), np.asarray(y)


def dataset_from_csv_text(text: str, target: str | None) -> tuple[NDArray[np.float64], NDArray[Any]]:
    """Parse a CSV with a header row; ``target`` names the label column (default: the last one)."""
    rows = list(csv.reader(io.StringIO(text)))
    if len(rows) < 2:
        raise InvalidMarketError("dataset.csv", "needs a header row and at least one data row")
    header = [h.strip() for h in rows[0]]
    col = len(header) - 1 if target is None else (header.index(target) if target in header else -1)
    if col < 0:
        raise InvalidMarketError("dataset.target", f"no column {target!r} in the CSV header")
    try:
        body = np.array([[float(v) for v in r] for r in rows[1:] if r], dtype=np.float64)
    except ValueError as exc:
        raise InvalidMarketError("dataset.csv", f"non-numeric value ({exc})") from None
    if body.ndim != 2 or body.shape[1] != len(header):
        raise InvalidMarketError("dataset.csv", "every row must have as many values as the header")
    if not np.all(np.isfinite(body)):
        raise InvalidMarketError("dataset.csv", "must be finite (no NaN or inf)")
    return np.delete(body, col, axis=1), body[:, col]


def _estimator(spec: ModelSpec, seed: int) -> Any:
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.tree import DecisionTreeClassifier

    cls: dict[str, Any] = {
        "logistic_regression": LogisticRegression,
        "knn": KNeighborsClassifier,
        "decision_tree": DecisionTreeClassifier,
        "gaussian_nb": GaussianNB,
        "ridge": Ridge,
        "linear_regression": LinearRegression,
    }
    params = dict(spec.params)
    if spec.name not in cls:
        from datamarket.learning.models import estimator_from_path

        return estimator_from_path(spec.name, params, seed=seed)
    if spec.name == "decision_tree":
        params.setdefault("random_state", seed)
    try:
        return cls[spec.name](**params)
    except TypeError as exc:
        raise InvalidMarketError("model.params", str(exc)) from None


def build_game(config: ValuationConfig, x: NDArray[np.float64], y: NDArray[Any]) -> ModelGame:
    """Seeded train/test split, standardisation on the training rows, sellers' shares, the game."""
    from sklearn.model_selection import train_test_split

    rng = make_rng(config.seed)
    if config.dataset.max_rows is not None and x.shape[0] > config.dataset.max_rows:
        keep = np.sort(rng.choice(x.shape[0], config.dataset.max_rows, replace=False))
        x, y = x[keep], y[keep]
    from sklearn.base import is_classifier

    estimator = _estimator(config.model, config.seed)
    classify = is_classifier(estimator)
    try:
        xtr, xte, ytr, yte = train_test_split(
            x,
            y,
            test_size=config.dataset.test_size,
            random_state=config.seed,
            stratify=y if classify else None,
        )
    except ValueError as exc:
        raise InvalidMarketError("dataset", str(exc)) from None
    if config.model.standardize:
        mu, sd = xtr.mean(axis=0), xtr.std(axis=0)
        sd[sd == 0] = 1.0
        xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    n = config.sellers.n
    if xtr.shape[0] < n:
        raise InvalidMarketError("sellers.n", f"{n} sellers but only {xtr.shape[0]} training rows")
    perm = rng.permutation(xtr.shape[0])
    if config.sellers.split == "equal":
        parts = np.array_split(perm, n)
    else:
        shares = rng.dirichlet(np.full(n, config.sellers.alpha))
        # no training row is dropped: the rounding remainder goes to the largest fractions
        raw = shares * (xtr.shape[0] - n)
        sizes = 1 + np.floor(raw).astype(int)
        rest = xtr.shape[0] - int(sizes.sum())
        sizes[np.argsort(np.floor(raw) - raw, kind="stable")[:rest]] += 1
        parts = np.split(perm, np.cumsum(sizes)[:-1])
    datasets = [Dataset(xtr[p], ytr[p]) for p in parts]
    return ModelGame(
        estimator,
        datasets,
        Dataset(xte, yte),
        scorer=config.scorer,
        empty_score=config.empty_score,
        names=[f"seller_{i}" for i in range(n)],
        on_fit_error=config.on_fit_error,
    )


def stopping_rule(spec: StoppingSpec) -> StoppingRule | None:
    """The "any of" combination of the configured criteria (``None`` if there is none)."""
    rules: list[StoppingRule] = []
    if spec.max_evaluations is not None:
        rules.append(MaxEvaluations(spec.max_evaluations))
    if spec.max_time is not None:
        rules.append(MaxTime(spec.max_time))
    if spec.stderr_target is not None:
        rules.append(StderrTarget(spec.stderr_target))
    if spec.rank_stability is not None:
        rules.append(RankStability(spec.rank_stability))
    rule: StoppingRule | None = None
    for r in rules:
        rule = r if rule is None else rule | r
    return rule


def run_valuation(
    config: ValuationConfig,
    game: ModelGame,
    backend: Any,
    progress: Callable[[ProgressInfo], None] | None = None,
) -> ValuationResult:
    """Run the configured method on ``game`` with ``backend``; the result is certified against the game.

    For Shapley-type methods ``v(N)`` and ``v(empty)`` are recorded (read from the game's memo, where
    the run put them; evaluated if absent), and for every method the configured
    ``stopping.stderr_target``, so ``result.certificate`` checks efficiency and the standard errors
    (:mod:`datamarket.valuation.certificate`).
    """
    from datamarket.valuation.certificate import certify, is_efficient

    result = _dispatch(config, game, backend, progress)
    target = config.stopping.stderr_target
    if not is_efficient(result.method):  # efficiency is not a claim of these: no extra evaluation
        return replace(result, stderr_target=target) if target is not None else result
    return certify(result, game, stderr_target=target)


def _dispatch(
    config: ValuationConfig,
    game: ModelGame,
    backend: Any,
    progress: Callable[[ProgressInfo], None] | None,
) -> ValuationResult:
    m = config.method
    if m.name == "exact_shapley":
        return exact_shapley(game, backend=backend, progress=progress)
    if m.name == "banzhaf":
        return exact_banzhaf(game, backend=backend, progress=progress)
    if m.name == "loo":
        return leave_one_out(game, backend=backend, progress=progress)
    if m.name in SAMPLED:
        return _run_sampled(config, game, backend)
    return monte_carlo_shapley(
        game,
        seed=config.seed,
        stopping=stopping_rule(config.stopping),
        antithetic=m.antithetic,
        truncation_tol=m.truncation_tol,
        sampler=m.sampler,
        backend=backend,
        progress=progress,
    )


def _run_sampled(config: ValuationConfig, game: ModelGame, backend: Any) -> ValuationResult:
    """The estimators of :mod:`datamarket.valuation.methods` (budget = ``stopping.max_evaluations``)."""
    m = config.method
    budget = config.stopping.max_evaluations
    assert budget is not None  # checked by the config validator
    kw: dict[str, Any] = {"seed": config.seed, "max_evaluations": budget, "backend": backend}
    if m.name == "control_variate_shapley":
        return control_variate_shapley(game, **kw)
    if m.name == "regression_shapley":
        sampler = m.sampler if m.sampler in ("leverage", "kernel") else "leverage"
        return regression_shapley(game, sampler=sampler, **kw)
    if m.name == "stratified_shapley":
        return stratified_semivalue(game, **kw)
    if m.name == "beta_shapley":
        return beta_shapley(game, alpha=m.alpha, beta=m.beta, **kw)
    return msr_banzhaf(game, **kw)
