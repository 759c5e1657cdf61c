#!/usr/bin/env python3
"""The roadmap's example pipeline (Phase 2, Weeks 8-9): train with MLflow logging, then deploy.

    train   trains a RandomForest on iris, logs params, metrics and the model to MLflow (the run tagged
            with the pipeline run's id) and registers a new version of iris-classifier;
    deploy  promotes that version (alias champion) when its accuracy reaches min_accuracy. Serving the
            promoted version is model serving's job: deploy_model.yml (run_pipeline.yml calls it when the
            platform serves models).

Written with the KFP v2 SDK. Compile it to a pipeline spec (what Kubeflow Pipelines runs):

    python examples/pipelines/iris_pipeline.py compile iris_pipeline.yaml

Run a compiled spec on this host with kfp.local (each step a subprocess of this Python, which needs the
packages of PACKAGES; the kubeflow_pipelines role's virtualenv has them):

    python examples/pipelines/iris_pipeline.py run iris_pipeline.yaml --tracking-uri http://127.0.0.1:5000

Prints, last, one JSON line: the pipeline run's id and the pipeline's outputs.
"""

import argparse
import json
import os
import sys
from typing import NamedTuple

from kfp import compiler, components, dsl

PIPELINE_NAME = "iris-train-deploy"
# What each step needs, pinned. On Kubernetes they are installed into BASE_IMAGE when a step starts;
# kfp.local runs the steps with the Python that runs the pipeline, which must have them already.
BASE_IMAGE = "python:3.11-slim"
PACKAGES = ["mlflow-skinny==3.17.2", "scikit-learn==1.9.1", "skops==0.16.0", "pandas==3.1.1"]
# The in-cluster tracking server (roles/mlflow on eks); standalone passes the platform's own.
IN_CLUSTER_MLFLOW = "http://mlflow-tracking.mlflow.svc.cluster.local:5000"


@dsl.component(base_image=BASE_IMAGE, packages_to_install=PACKAGES)
def train(
    tracking_uri: str,
    experiment: str,
    model_name: str,
    n_estimators: int,
    max_depth: int,
    seed: int,
    pipeline_run_id: str,
    pipeline_run_name: str,
) -> NamedTuple(
    "TrainOutputs",
    [("run_id", str), ("experiment_id", str), ("model_version", str), ("accuracy", float), ("pipeline_run_id", str)],
):
    """Train the iris RandomForest, log it to MLflow and register a new version of model_name."""
    from collections import namedtuple

    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import train_test_split

    mlflow.set_tracking_uri(tracking_uri)
    features, labels = load_iris(return_X_y=True, as_frame=True)
    x_train, x_test, y_train, y_test = train_test_split(
        features, labels, test_size=0.25, random_state=seed, stratify=labels
    )
    params = {"n_estimators": n_estimators, "max_depth": max_depth, "random_state": seed}

    mlflow.set_experiment(experiment)
    # The tags find the run from the pipeline run (and back): search "tags.`kfp.pipeline_run_id` = '<id>'".
    tags = {
        "kfp.pipeline": "iris-train-deploy",
        "kfp.pipeline_run_id": pipeline_run_id,
        "kfp.pipeline_run_name": pipeline_run_name,
    }
    with mlflow.start_run(run_name=f"{pipeline_run_name}-train", tags=tags) as run:
        model = RandomForestClassifier(**params).fit(x_train, y_train)
        predictions = model.predict(x_test)
        accuracy = float(accuracy_score(y_test, predictions))
        mlflow.log_params(params)
        mlflow.log_metrics({"accuracy": accuracy, "f1_macro": float(f1_score(y_test, predictions, average="macro"))})
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=model_name,
            signature=infer_signature(x_test, predictions),
            input_example=x_test.head(3),
            # skops (MLflow's safe format) loads only trusted types; a forest needs its trees.
            skops_trusted_types=["sklearn.tree._tree.Tree"],
        )
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    client.set_model_version_tag(model_name, version, "kfp.pipeline_run_id", pipeline_run_id)
    outputs = namedtuple("TrainOutputs", ["run_id", "experiment_id", "model_version", "accuracy", "pipeline_run_id"])
    return outputs(run.info.run_id, run.info.experiment_id, version, accuracy, pipeline_run_id)


@dsl.component(base_image=BASE_IMAGE, packages_to_install=PACKAGES)
def deploy(
    tracking_uri: str, model_name: str, model_version: str, accuracy: float, min_accuracy: float, alias: str
) -> NamedTuple("DeployOutputs", [("promoted", bool), ("message", str)]):
    """Promote the version (point the alias at it) when it is accurate enough; say what was done."""
    from collections import namedtuple

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    promoted = accuracy >= min_accuracy
    if promoted:
        client.set_registered_model_alias(model_name, alias, model_version)
        message = f"promoted: {model_name} version {model_version} is now models:/{model_name}@{alias}"
    else:
        message = f"not promoted: {model_name} version {model_version} has accuracy {accuracy:.3f} < {min_accuracy}"
    client.set_model_version_tag(model_name, model_version, "kfp.deploy", message)
    print(message)
    return namedtuple("DeployOutputs", ["promoted", "message"])(promoted, message)


class PipelineOutputs(NamedTuple):
    pipeline_run_id: str
    mlflow_run_id: str
    experiment_id: str
    model_version: str
    accuracy: float
    promoted: bool
    deploy: str


@dsl.pipeline(name=PIPELINE_NAME, description="Train the iris classifier with MLflow logging, then deploy it.")
def iris_pipeline(
    tracking_uri: str = IN_CLUSTER_MLFLOW,
    experiment: str = "iris-pipeline",
    model_name: str = "iris-classifier",
    n_estimators: int = 100,
    max_depth: int = 4,
    seed: int = 42,
    min_accuracy: float = 0.85,
    alias: str = "champion",
) -> PipelineOutputs:
    trained = train(
        tracking_uri=tracking_uri,
        experiment=experiment,
        model_name=model_name,
        n_estimators=n_estimators,
        max_depth=max_depth,
        seed=seed,
        pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        pipeline_run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
    )
    deployed = deploy(
        tracking_uri=tracking_uri,
        model_name=model_name,
        model_version=trained.outputs["model_version"],
        accuracy=trained.outputs["accuracy"],
        min_accuracy=min_accuracy,
        alias=alias,
    )
    return PipelineOutputs(
        trained.outputs["pipeline_run_id"],
        trained.outputs["run_id"],
        trained.outputs["experiment_id"],
        trained.outputs["model_version"],
        trained.outputs["accuracy"],
        deployed.outputs["promoted"],
        deployed.outputs["message"],
    )


def run(spec, pipeline_root, arguments):
    """Run a compiled pipeline spec with kfp.local, each step a subprocess of this Python."""
    from kfp import local

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=pipeline_root, raise_on_error=True)
    pipeline = components.load_component_from_file(spec)
    # Parameters come in as text: give each the type the spec declares.
    casts = {"Integer": int, "Float": float, "Boolean": lambda v: v.lower() in ("1", "true", "yes")}
    inputs = pipeline.component_spec.inputs or {}
    unknown = sorted(set(arguments) - set(inputs))
    if unknown:
        takes = ", ".join(sorted(inputs))
        raise SystemExit(f"unknown pipeline parameter(s) {', '.join(unknown)}; the pipeline takes {takes}")
    typed = {name: casts.get(inputs[name].type, str)(value) for name, value in arguments.items()}
    return pipeline(**typed)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    compile_parser = commands.add_parser("compile", help="write the pipeline spec (YAML)")
    compile_parser.add_argument("output")
    run_parser = commands.add_parser("run", help="run a compiled spec locally (kfp.local)")
    run_parser.add_argument("spec")
    run_parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", ""))
    run_parser.add_argument("--pipeline-root", default=os.path.abspath("kfp-runs"))
    run_parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="a pipeline parameter")
    args = parser.parse_args(argv)

    if args.command == "compile":
        compiler.Compiler().compile(iris_pipeline, package_path=args.output)
        return 0
    if not args.tracking_uri:
        parser.error("give --tracking-uri or set MLFLOW_TRACKING_URI (the platform's MLflow)")
    arguments = {"tracking_uri": args.tracking_uri}
    for item in args.param:
        name, _, value = item.partition("=")
        arguments[name] = value
    task = run(args.spec, args.pipeline_root, arguments)
    outputs = dict(task.outputs, model_name=arguments.get("model_name", "iris-classifier"))
    print(json.dumps({"pipeline_run_id": outputs["pipeline_run_id"], "outputs": outputs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
