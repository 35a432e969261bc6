"""OpenDataVal side of ``noisy_label_vs_opendataval.py``; runs under the OpenDataVal interpreter.

Usage: ``<odv-python> _odv_worker.py DATA.npz OUT.npz SEED [METHOD ...]``. Loads the split written by
the benchmark, builds an OpenDataVal ``DataFetcher`` from it (one-hot labels), runs each evaluator
and saves ``values_<name>`` and ``seconds_<name>`` arrays to OUT.npz (plus ``error_<name>`` when an
evaluator fails). This file imports nothing from datamarket: OpenDataVal cannot share its environment.
"""

from __future__ import annotations

import sys
import time
import traceback
import warnings

import numpy as np
import torch
from opendataval.dataloader import DataFetcher
from opendataval.dataval import (
    AME,
    DVRL,
    DataBanzhaf,
    DataOob,
    InfluenceSubsample,
    KNNShapley,
    LavaEvaluator,
    LeaveOneOut,
)
from opendataval.metrics import Metrics
from opendataval.model import ClassifierSkLearnWrapper
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier


def one_hot(y: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((y.size, k), dtype=np.float32)
    out[np.arange(y.size), y] = 1.0
    return out


def lr(k: int) -> ClassifierSkLearnWrapper:
    return ClassifierSkLearnWrapper(LogisticRegression, k, max_iter=200)


def tree(k: int) -> ClassifierSkLearnWrapper:
    return ClassifierSkLearnWrapper(DecisionTreeClassifier, k)


def svc(k: int) -> ClassifierSkLearnWrapper:
    # Platt-scaled RBF SVM (the wrapper predicts with predict_proba), built exactly as on our side
    return ClassifierSkLearnWrapper(CalibratedClassifierCV, k, estimator=SVC(), ensemble=False)


# name -> (factory(seed), model factory or None, configuration text[, metric])
METHODS: dict[str, tuple] = {
    "KNNShapley (k=5)": (lambda s: KNNShapley(k_neighbors=5, random_state=s), None, "k_neighbors=5"),
    "KNNShapley (k=10, default)": (lambda s: KNNShapley(random_state=s), None, "k_neighbors=10"),
    "DataOob (trees)": (
        lambda s: DataOob(num_models=400, random_state=s),
        tree,
        "num_models=400, DecisionTreeClassifier",
    ),
    "DataOob (SVM)": (
        lambda s: DataOob(num_models=200, random_state=s),
        svc,
        "num_models=200, CalibratedClassifierCV(SVC(), ensemble=False), accuracy",
    ),
    "DataOob (SVM, neg_mse)": (
        lambda s: DataOob(num_models=200, random_state=s),
        svc,
        "num_models=200, the same SVC, metric NEG_MSE (a probability score)",
        Metrics.NEG_MSE,
    ),
    "LavaEvaluator": (lambda s: LavaEvaluator(random_state=s), None, "defaults (geomloss OT, CPU)"),
    "DataOob (LR)": (
        lambda s: DataOob(num_models=200, random_state=s),
        lr,
        "num_models=200, LogisticRegression",
    ),
    "LeaveOneOut": (lambda s: LeaveOneOut(random_state=s), lr, "exact (n + 1 fits), LR"),
    "AME": (lambda s: AME(num_models=50, random_state=s), lr, "num_models=50 per proportion x4, LR"),
    "InfluenceSubsample": (
        lambda s: InfluenceSubsample(num_models=200, random_state=s),
        lr,
        "num_models=200, proportion=0.7, LR",
    ),
    "DataBanzhaf": (lambda s: DataBanzhaf(num_models=200, random_state=s), lr, "num_models=200, LR"),
    "DVRL": (
        lambda s: DVRL(random_state=s),
        lr,
        "defaults (rl_epochs=1000), LR",
    ),
}


def main() -> None:
    data_path, out_path, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    wanted = sys.argv[4:] or list(METHODS)
    d = np.load(data_path)
    k = int(max(d["ytr"].max(), d["yva"].max(), d["yte"].max())) + 1
    fetcher = DataFetcher.from_data_splits(
        d["xtr"].astype(np.float32),
        one_hot(d["ytr"], k),
        d["xva"].astype(np.float32),
        one_hot(d["yva"], k),
        d["xte"].astype(np.float32),
        one_hot(d["yte"], k),
        one_hot=True,
        random_state=seed,
    )
    out: dict[str, np.ndarray] = {}
    for name in wanted:
        make, model, _, *metric = METHODS[name]
        np.random.seed(seed)  # noqa: NPY002 -- some OpenDataVal code draws from the global RNG
        torch.manual_seed(seed)
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ev = make(seed).train(fetcher, model(k) if model else None, *metric)
                values = np.asarray(ev.data_values, dtype=float).reshape(-1)
        except Exception:  # report, keep going with the other evaluators
            out[f"error_{name}"] = np.array(traceback.format_exc().strip().splitlines()[-1])
            continue
        out[f"values_{name}"] = values
        out[f"seconds_{name}"] = np.array(time.perf_counter() - t0)
        print(f"  [odv] {name}: {out[f'seconds_{name}']:.1f} s", file=sys.stderr, flush=True)
    np.savez(out_path, **out)


if __name__ == "__main__":
    main()
