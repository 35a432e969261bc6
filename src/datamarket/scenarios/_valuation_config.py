"""Configuration of ``datamarket value``: a data-valuation run over sellers.

A TOML/JSON file names a model, a dataset (a scikit-learn bundled set, a CSV or a Parquet file), how
the training rows are split among sellers (equal or Dirichlet shares, or one seller per value of a
source column), the method, the stopping rule and the backend::

    seed = 0
    [model]
    name = "logistic_regression"
    params = { max_iter = 500 }
    [dataset]
    name = "breast_cancer"
    [sellers]
    n = 10
    [method]
    name = "regression_adjusted_shapley"
    [stopping]
    max_evaluations = 1000

The point-level methods (``knn_shapley``, ``data_oob``) value every row instead of sellers
(:mod:`._valuation_points`). The leading underscore keeps this module out of the scenario kinds. No
file is read here: the CLI reads the file and passes its columns to
:func:`~._valuation_data.dataset_from_columns`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
from datamarket.scenarios._valuation_data import Split, TabularData, source_parts, split_rows
from datamarket.scenarios._valuation_data import bundled_dataset as bundled_dataset  # re-exported
from datamarket.scenarios._valuation_data import dataset_from_csv_text as dataset_from_csv_text
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
    regression_adjusted_shapley,
    regression_shapley,
    stratified_semivalue,
)

BUNDLED = ("breast_cancer", "iris", "wine", "digits", "diabetes")
MODELS = ("logistic_regression", "knn", "decision_tree", "gaussian_nb", "ridge", "linear_regression")
Param = int | float | str | bool | None
POINT_METHODS = ("knn_shapley", "data_oob")
"""Methods that value every data point (row) instead of sellers."""
MAX_EXACT_SELLERS = 20
"""Exact Shapley and Banzhaf fit a model on each of the 2^M coalitions: 2^20 is about a million fits."""


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
    parquet: str | None = Field(
        default=None, min_length=1, description="Parquet path, relative to the config (the 'parquet' extra)"
    )
    target: str | None = Field(
        default=None,
        min_length=1,
        description="label column of the CSV/Parquet file (default: the last one other than sellers.column)",
    )
    test_size: float = Field(default=0.3, gt=0.0, lt=1.0)
    max_rows: PositiveInt | None = None

    @model_validator(mode="after")
    def _one_source(self) -> DatasetSpec:
        given = [k for k in ("name", "csv", "parquet") if k in self.model_fields_set and getattr(self, k)]
        if len(given) > 1:
            raise ValueError("give one of a bundled dataset name, a csv path or a parquet path, not several")
        if self.csv is not None and self.csv.lower().endswith((".parquet", ".pq")):
            raise ValueError(f"{self.csv!r} is a Parquet file: give it as dataset.parquet")
        return self

    @property
    def file(self) -> str | None:
        """The CSV or Parquet path, if the dataset is a file."""
        return self.csv if self.csv is not None else self.parquet


class SellersSpec(StrictModel):
    n: int = Field(default=10, ge=1, description="number of sellers (at most the training rows)")
    split: Literal["equal", "dirichlet"] = "equal"
    alpha: PositiveFloat = Field(default=1.0, description="Dirichlet concentration of seller shares")
    column: str | None = Field(
        default=None,
        min_length=1,
        description="column of the CSV/Parquet file naming each row's seller (one seller per value, in "
        "order of first appearance; the column is not a feature); replaces n, split and alpha",
    )

    @model_validator(mode="after")
    def _column_or_split(self) -> SellersSpec:
        given = sorted(self.model_fields_set & {"n", "split", "alpha"})
        if self.column is not None and given:
            raise ValueError(
                f"sellers.column makes one seller per source: drop {', '.join('sellers.' + g for g in given)}"
            )
        return self


SAMPLED = (
    "regression_adjusted_shapley",
    "control_variate_shapley",
    "regression_shapley",
    "stratified_shapley",
    "beta_shapley",
    "msr_banzhaf",
)


class MethodSpec(StrictModel):
    name: Literal[
        "regression_adjusted_shapley",
        "exact_shapley",
        "monte_carlo_shapley",
        "loo",
        "banzhaf",
        "control_variate_shapley",
        "regression_shapley",
        "stratified_shapley",
        "beta_shapley",
        "msr_banzhaf",
        "knn_shapley",
        "data_oob",
    ] = Field(
        default="regression_adjusted_shapley",
        description="the estimator (the default was monte_carlo_shapley until December 2026; "
        "see docs/valuation.md)",
    )
    antithetic: bool = True
    sampler: Literal["cyclic", "random", "leverage", "kernel"] = "cyclic"
    truncation_tol: NonNegativeFloat | None = None
    alpha: PositiveFloat = Field(default=16.0, description="Beta Shapley alpha")
    beta: PositiveFloat = Field(default=1.0, description="Beta Shapley beta")
    k: PositiveInt = Field(default=5, description="knn_shapley: neighbours of the K-NN utility")
    n_estimators: PositiveInt = Field(default=200, description="data_oob: bootstrap learners")
    score: Literal["accuracy", "probability", "squared_error"] | None = Field(
        default=None, description="data_oob: score of an out-of-bag prediction (default: the task's)"
    )

    @model_validator(mode="after")
    def _sampler_fits_method(self) -> MethodSpec:
        for param, method in (("k", "knn_shapley"), ("n_estimators", "data_oob"), ("score", "data_oob")):
            if param in self.model_fields_set and self.name != method:
                raise ValueError(f"method.{param} is a parameter of {method}, not of {self.name}")
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
        if self.method.name in POINT_METHODS:
            return self._point_checks()
        if self.sellers.column is not None and self.dataset.file is None:
            raise ValueError("sellers.column needs a dataset.csv or dataset.parquet file")
        problem = None if self.sellers.column is not None else seller_problem(self, self.sellers.n)
        if problem is not None:
            raise ValueError(problem[1])
        if self.backend.name == "dask" and self.backend.scheduler is None:
            raise ValueError("the dask backend needs backend.scheduler (or --scheduler)")
        s = self.stopping
        if self.method.name == "monte_carlo_shapley" and not any(
            x is not None for x in (s.max_evaluations, s.max_time, s.stderr_target, s.rank_stability)
        ):
            raise ValueError("monte_carlo_shapley needs at least one stopping criterion")
        if self.method.name in SAMPLED and s.max_evaluations is None:
            raise ValueError(f"{self.method.name} needs stopping.max_evaluations (its budget)")
        if self.method.name in SAMPLED:
            extra = [f"stopping.{k}" for k in ("max_time", "rank_stability") if getattr(s, k) is not None]
            if extra:
                raise ValueError(
                    f"{self.method.name} runs to its budget (stopping.max_evaluations) and does not take "
                    f'{", ".join(extra)}: drop it, or use method.name = "monte_carlo_shapley"'
                )
        return self

    def _point_checks(self) -> ValuationConfig:
        """A point-level method values every row, in this process, without coalitions."""
        name = self.method.name
        unused = [f"sellers.{k}" for k in sorted(self.sellers.model_fields_set - {"column"})]
        unused += [f"stopping.{k}" for k in sorted(self.stopping.model_fields_set)]
        unused += ["backend"] * ("backend" in self.model_fields_set) + ["cache"] * (self.cache is not None)
        if name == "data_oob" and "test_size" in self.dataset.model_fields_set:
            unused.append("dataset.test_size")
        if unused:
            raise ValueError(
                f"{name} values every data point (no sellers, coalitions or test split to configure): "
                f"drop {', '.join(unused)}"
            )
        if self.sellers.column is not None and self.dataset.file is None:
            raise ValueError("sellers.column needs a dataset.csv or dataset.parquet file")
        return self


def seller_problem(config: ValuationConfig, m: int) -> tuple[str, str] | None:
    """Why the configured method cannot value ``m`` sellers, as ``(field, message)``; ``None`` if it can.

    The caps and their reasons: exact Shapley and Banzhaf fit a model on each of the 2^M coalitions
    (at most :data:`MAX_EXACT_SELLERS` sellers). An untruncated Monte Carlo run needs a budget that
    holds one sampling unit, a permutation and its reverse (2M evaluations; M + 1 without
    ``antithetic``): with less it samples nothing. The default, regression-adjusted sampling, needs 2M + 4
    (the exact ends and one pair). The other methods take any M (each seller needs a
    training row); the estimators check their own minimum budgets (control variates: two antithetic
    pairs; stratified and Beta Shapley: 2M + 2).
    """
    method, budget = config.method, config.stopping.max_evaluations
    if method.name in ("exact_shapley", "banzhaf") and m > MAX_EXACT_SELLERS:
        return "sellers", (
            f"{method.name} fits a model on each of the 2^M coalitions: use at most {MAX_EXACT_SELLERS} "
            f"sellers (got {m}), or a sampled method"
        )
    need = 2 * m if method.antithetic else m + 1
    unit = "a permutation and its reverse" if method.antithetic else "one permutation"
    if method.name == "regression_adjusted_shapley" and budget is not None and budget < 2 * m + 4 < (1 << m):
        return "stopping.max_evaluations", (
            f"regression_adjusted_shapley needs at least 2M + 4 = {2 * m + 4} evaluations for {m} sellers "
            f"(the empty and full coalitions, each seller alone, each left out, and one sampled pair; "
            f"got {budget})"
        )
    if method.name == "monte_carlo_shapley" and method.truncation_tol is None and (budget or need) < need:
        return "stopping.max_evaluations", (
            f"monte_carlo_shapley needs at least {need} evaluations to sample {unit} of {m} sellers "
            f"(got {budget})"
        )
    return None


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


def build_game(
    config: ValuationConfig,
    x: NDArray[np.float64],
    y: NDArray[Any],
    sources: Sequence[str] | None = None,
) -> ModelGame:
    """Seeded train/test split, standardisation on the training rows, the sellers, the game.

    The sellers are ``sellers.n`` equal or Dirichlet shares of the shuffled training rows or, with
    ``sellers.column``, one per distinct value of ``sources`` (each row's source; sellers in order of
    first appearance, each with its training rows in table order).
    """
    from sklearn.base import is_classifier

    rng = make_rng(config.seed)
    estimator = _estimator(config.model, config.seed)
    data = TabularData(np.asarray(x, dtype=np.float64), np.asarray(y))
    split = split_rows(
        data,
        seed=config.seed,
        rng=rng,
        test_size=config.dataset.test_size,
        max_rows=config.dataset.max_rows,
        stratify=is_classifier(estimator),
        standardize=config.model.standardize,
    )
    names, parts = _seller_parts(config, split, sources, rng)
    problem = seller_problem(config, len(parts))
    if problem is not None:
        raise InvalidMarketError(*problem)
    return ModelGame(
        estimator,
        [Dataset(split.x_train[p], split.y_train[p]) for p in parts],
        Dataset(split.x_test, split.y_test),
        scorer=config.scorer,
        empty_score=config.empty_score,
        names=names,
        on_fit_error=config.on_fit_error,
    )


def _seller_parts(
    config: ValuationConfig, split: Split, sources: Sequence[str] | None, rng: np.random.Generator
) -> tuple[Sequence[str], list[NDArray[np.intp]]]:
    """Seller names and each seller's positions in the training arrays."""
    if config.sellers.column is not None:
        if sources is None or len(sources) <= int(split.train_rows.max(initial=0)):
            raise InvalidMarketError("sellers.column", "needs the source of every row of the table")
        return source_parts(sources, split.train_rows)
    n, n_train = config.sellers.n, split.x_train.shape[0]
    if n_train < n:
        raise InvalidMarketError("sellers.n", f"{n} sellers but only {n_train} training rows")
    perm = rng.permutation(n_train)
    if config.sellers.split == "equal":
        parts = np.array_split(perm, n)
    else:
        shares = rng.dirichlet(np.full(n, config.sellers.alpha))
        # no training row is dropped: the rounding remainder goes to the largest fractions
        raw = shares * (n_train - n)
        sizes = 1 + np.floor(raw).astype(int)
        rest = n_train - int(sizes.sum())
        sizes[np.argsort(np.floor(raw) - raw, kind="stable")[:rest]] += 1
        parts = np.split(perm, np.cumsum(sizes)[:-1])
    return [f"seller_{i}" for i in range(n)], parts


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
    if m.name == "regression_adjusted_shapley":
        return regression_adjusted_shapley(game, **kw)
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
