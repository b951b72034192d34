#!/usr/bin/env python3
"""Fits scikit-learn's logistic regression and gradient boosting on the training table that
`farsight model train --export` writes, and prints their test AUC as JSON.

For comparison in benchmarks only; Farsight never runs Python. Needs scikit-learn
(`pip install scikit-learn`). Usage: compare_sklearn.py TABLE.csv
"""
import csv
import json
import sys
import time

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def load(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    split = np.array([r[0] for r in body])
    x = np.array([[float(v) for v in r[2:-1]] for r in body])
    y = np.array([int(r[-1]) for r in body])
    return header[2:-1], split, x, y


def main():
    names, split, x, y = load(sys.argv[1])
    # The same rows Farsight fits on; its "calibrate" rows only rescale probabilities, which
    # leaves the ranking (and so the AUC) unchanged.
    fit = split == "train"
    test = split == "test"
    results = {"features": len(names), "fit_rows": int(fit.sum()), "test_rows": int(test.sum())}
    models = {
        "logistic_regression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        "gradient_boosting": HistGradientBoostingClassifier(random_state=0),
    }
    for name, model in models.items():
        started = time.perf_counter()
        model.fit(x[fit], y[fit])
        seconds = time.perf_counter() - started
        auc = roc_auc_score(y[test], model.predict_proba(x[test])[:, 1])
        results[name] = {"auc": float(auc), "fit_seconds": seconds}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
