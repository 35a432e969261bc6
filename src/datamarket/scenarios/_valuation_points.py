"""Point-level valuation for ``datamarket value``: every data point (row) is a player, not a seller.

* ``knn_shapley`` (:func:`datamarket.valuation.methods.knn_shapley`, Jia et al. 2019): the exact
  Shapley value of each *training* row in the K-NN classification utility on the test rows. The rows
  are split as for the seller game (``dataset.test_size``, ``dataset.max_rows``, stratified by label,
  standardised on the training rows when ``model.standardize``); the model itself is not used.
* ``data_oob`` (:func:`datamarket.valuation.methods.data_oob`, Kwon & Zou 2023): the out-of-bag score
  of a seeded bagging ensemble, for *every* row (after ``dataset.max_rows``); no test split. The weak
  learner is the config's model when the file names one (``model.name``), else the paper's decision
  tree; the task (classification or regression) is the learner's.

Both value the rows in table order, and :class:`PointValuation` keeps each value's row (its position
among the table's data rows, from 0), label and source. :func:`point_table` and :func:`seller_table`
are the columns that ``datamarket value --out FILE`` writes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from datamarket.core.errors import ConfigurationError
from datamarket.core.random import make_rng
from datamarket.scenarios._valuation_config import POINT_METHODS, ValuationConfig, _estimator
from datamarket.scenarios._valuation_data import TabularData, split_rows, standardized, subsample
from datamarket.valuation import ValuationResult
from datamarket.valuation.methods import data_oob, knn_shapley


@dataclass(frozen=True)
class PointValuation:
    """A point-level result: ``result.names[i]`` is ``row_<rows[i]>``, with its label and source."""

    result: ValuationResult
    rows: NDArray[np.intp]
    labels: NDArray[Any]
    sources: tuple[str, ...] | None = None


def is_point_method(name: str) -> bool:
    """Whether ``method.name`` values data points rather than sellers."""
    return name in POINT_METHODS


def value_points(config: ValuationConfig, data: TabularData) -> PointValuation:
    """Run the configured point-level method on ``data`` (see the module docstring)."""
    if not is_point_method(config.method.name):
        raise ConfigurationError("method.name", f"{config.method.name} values sellers, not data points")
    if config.backend.name != "serial":
        raise ConfigurationError("backend", f"{config.method.name} runs in this process: no backend")
    rng = make_rng(config.seed)
    if config.method.name == "knn_shapley":
        result, rows = _knn(config, data, rng)
    else:
        result, rows = _oob(config, data, rng)
    result = replace(result, names=tuple(f"row_{r}" for r in rows.tolist()))
    sources = None if data.sources is None else tuple(data.sources[r] for r in rows.tolist())
    return PointValuation(result, rows, data.y[rows], sources)


def _knn(
    config: ValuationConfig, data: TabularData, rng: np.random.Generator
) -> tuple[ValuationResult, NDArray[np.intp]]:
    split = split_rows(
        data,
        seed=config.seed,
        rng=rng,
        test_size=config.dataset.test_size,
        max_rows=config.dataset.max_rows,
        stratify=True,
        standardize=config.model.standardize,
    )
    order = np.argsort(split.train_rows, kind="stable")  # table order
    x, y = split.x_train[order], split.y_train[order]
    result = knn_shapley(x, y, split.x_test, split.y_test, k=config.method.k)
    return result, split.train_rows[order]


def _oob(
    config: ValuationConfig, data: TabularData, rng: np.random.Generator
) -> tuple[ValuationResult, NDArray[np.intp]]:
    from sklearn.base import is_classifier

    rows = subsample(data.x.shape[0], config.dataset.max_rows, rng)
    x = data.x[rows]
    if config.model.standardize:
        x, _ = standardized(x, x[:0])
    named = "name" in config.model.model_fields_set
    learner = _estimator(config.model, config.seed) if named else None
    task = "classification" if learner is None or is_classifier(learner) else "regression"
    m = config.method
    kw: dict[str, Any] = {"n_estimators": m.n_estimators, "estimator": learner, "score": m.score}
    result = data_oob(x, data.y[rows], seed=config.seed, task=task, **kw)
    return result, rows


def point_table(points: PointValuation) -> dict[str, list[Any]]:
    """Columns of the per-point file: row, value, stderr, label (and source, when the table has one)."""
    r = points.result
    table: dict[str, list[Any]] = {
        "row": points.rows.tolist(),
        "value": r.values.tolist(),
        "stderr": r.stderr.tolist(),
        "label": points.labels.tolist(),
    }
    if points.sources is not None:
        table["source"] = list(points.sources)
    return table


def seller_table(result: ValuationResult, rows: list[int]) -> dict[str, list[Any]]:
    """Columns of the per-seller file: seller, value, stderr, rows (training rows of each seller)."""
    return {
        "seller": list(result.names),
        "value": result.values.tolist(),
        "stderr": result.stderr.tolist(),
        "rows": list(rows),
    }
