#!/usr/bin/env python3
"""Train a RandomForest on iris, track it in MLflow and register it as iris-classifier@champion.

    export MLFLOW_TRACKING_URI=http://127.0.0.1:5000     # standalone (the Phase 2 summary prints it)
    /var/lib/argoeks/venvs/mlflow/bin/python examples/mlflow/train_iris.py

On eks, port-forward first (kubectl port-forward -n mlflow svc/mlflow-tracking 5000:5000) and use
http://localhost:5000. The tracking server proxies artifacts, so this needs no S3 credentials.
Prints one JSON line: the run, the model version and its metrics.
"""

import argparse
import json
import os

import mlflow
import mlflow.sklearn
from mlflow import MlflowClient
from mlflow.models import infer_signature
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

MODEL_NAME = "iris-classifier"
ALIAS = "champion"
# skops (MLflow's safe default format) loads only types it is told to trust; a forest needs its trees.
TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="iris", help="experiment name (default: iris)")
    parser.add_argument("--n-estimators", type=int, default=100)
    parser.add_argument("--max-depth", type=int, default=4)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    if not os.environ.get("MLFLOW_TRACKING_URI"):
        parser.error("set MLFLOW_TRACKING_URI to the tracking server, e.g. http://127.0.0.1:5000")

    features, labels = load_iris(return_X_y=True, as_frame=True)
    x_train, x_test, y_train, y_test = train_test_split(
        features, labels, test_size=0.25, random_state=args.seed, stratify=labels
    )
    params = {"n_estimators": args.n_estimators, "max_depth": args.max_depth, "random_state": args.seed}

    mlflow.set_experiment(args.experiment)
    with mlflow.start_run(run_name="random-forest") as run:
        model = RandomForestClassifier(**params).fit(x_train, y_train)
        predictions = model.predict(x_test)
        metrics = {
            "accuracy": accuracy_score(y_test, predictions),
            "f1_macro": f1_score(y_test, predictions, average="macro"),
        }
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=MODEL_NAME,
            signature=infer_signature(x_test, predictions),
            input_example=x_test.head(3),
            skops_trusted_types=TRUSTED_TYPES,
        )

    version = info.registered_model_version
    MlflowClient().set_registered_model_alias(MODEL_NAME, ALIAS, version)
    print(
        json.dumps(
            {
                "run_id": run.info.run_id,
                "model_uri": f"models:/{MODEL_NAME}@{ALIAS}",
                "version": int(version),
                "metrics": metrics,
            }
        )
    )


if __name__ == "__main__":
    main()
