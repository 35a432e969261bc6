"""Sampled estimators that need fewer fits, one module per estimator (pyDVL's ``methods`` layout).

* :mod:`.adjusted` — size-stratified paired sampling adjusted by a fitted additive model (the default).
* :mod:`.control_variates` — exact Shapley of a fitted learning-curve surrogate + sampled residual.
* :mod:`.regression` — KernelSHAP (paired) and leverage-score (Musco & Witter 2024) regression.
* :mod:`.semivalues` — stratified Shapley / Beta Shapley with sample reuse, MSR Banzhaf.
* :mod:`.knn_shapley` — exact K-NN Shapley of training points (Jia et al. 2019), O(N log N) per test point.
* :mod:`.data_oob` — Data-OOB (Kwon & Zou 2023), a seeded bagging ensemble's out-of-bag accuracy.

Every coalition-game estimator switches to exact enumeration when its budget reaches ``2**M``.
"""

from datamarket.valuation.methods.adjusted import regression_adjusted_shapley
from datamarket.valuation.methods.control_variates import control_variate_shapley
from datamarket.valuation.methods.data_oob import data_oob
from datamarket.valuation.methods.knn_shapley import knn_shapley
from datamarket.valuation.methods.regression import regression_shapley
from datamarket.valuation.methods.semivalues import (
    beta_shapley,
    beta_size_weights,
    msr_banzhaf,
    semivalue_from_table,
    stratified_semivalue,
)

__all__ = [
    "beta_shapley",
    "beta_size_weights",
    "control_variate_shapley",
    "data_oob",
    "knn_shapley",
    "msr_banzhaf",
    "regression_adjusted_shapley",
    "regression_shapley",
    "semivalue_from_table",
    "stratified_semivalue",
]
