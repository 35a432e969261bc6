"""Sampled estimators that need fewer fits, one module per estimator (pyDVL's ``methods`` layout).

* :mod:`.control_variates` — exact Shapley of a fitted learning-curve surrogate + sampled residual.
* :mod:`.regression` — KernelSHAP (paired) and leverage-score (Musco & Witter 2024) regression.
* :mod:`.semivalues` — stratified Shapley / Beta Shapley with sample reuse, MSR Banzhaf.

Every estimator switches to exact enumeration when its budget reaches ``2**M``.
"""

from datamarket.valuation.methods.control_variates import control_variate_shapley
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
    "msr_banzhaf",
    "regression_shapley",
    "semivalue_from_table",
    "stratified_semivalue",
]
