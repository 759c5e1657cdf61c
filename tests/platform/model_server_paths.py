"""Run with the model server's virtualenv: which path the server picks for several model kinds, and its answers.

Prints one JSON object per model kind: whether the forest path is on, its reason, and whether the server's
answers equal the model's own pyfunc predict on rows that include missing values. Used by the serving test.
"""

import json
import sys
import tempfile
import warnings
from pathlib import Path

import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from sklearn.ensemble import ExtraTreesClassifier, GradientBoostingClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, sys.argv[1])  # roles/model_serving/files
import argoeks_model_server as server

warnings.filterwarnings("ignore")
rng = np.random.default_rng(3)
columns = ["a", "b", "c"]
features = pd.DataFrame(rng.normal(size=(300, 3)), columns=columns)
features.iloc[::11, 1] = np.nan  # forests learn where missing values go
labels = (features["a"].fillna(0) + features["c"] > 0).astype(int) + (features["b"].fillna(0) > 1).astype(int)
rows = rng.normal(size=(200, 3))
rows[::7, 1] = np.nan
kinds = {
    "extra-trees classifier": ExtraTreesClassifier(n_estimators=30, random_state=0),
    "random-forest regressor": RandomForestRegressor(n_estimators=30, random_state=0),
    "gradient boosting": GradientBoostingClassifier(n_estimators=10, random_state=0),
    "logistic regression": LogisticRegression(),
}
for kind, model in kinds.items():
    fit_features = features.fillna(0) if kind in ("gradient boosting", "logistic regression") else features
    target = features["a"].fillna(0) * 2 if "regressor" in kind else labels
    model.fit(fit_features, target)
    ask = np.nan_to_num(rows) if kind in ("gradient boosting", "logistic regression") else rows
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "model"
        signature = infer_signature(fit_features, model.predict(fit_features))
        trusted = ["sklearn.tree._tree.Tree", "sklearn._loss.loss.HalfBinomialLoss", "sklearn._loss.link.LogitLink"]
        trusted += ["sklearn._loss.link.Interval", "sklearn._loss._loss.CyHalfBinomialLoss"]
        trusted += ["sklearn.dummy.DummyClassifier"]
        mlflow.sklearn.save_model(model, path, signature=signature, skops_trusted_types=trusted)
        loaded = server.load(kind, 1, path)
        answers = loaded.predict([[None if np.isnan(v) else float(v) for v in row] for row in ask])
        own = mlflow.pyfunc.load_model(str(path)).predict(pd.DataFrame(ask, columns=columns))
    same = np.allclose(np.asarray(answers, dtype=float), np.asarray(own, dtype=float), rtol=0, atol=0)
    print(json.dumps({"kind": kind, "forest": loaded.forest is not None, "reason": loaded.forest_reason, "same": same}))
