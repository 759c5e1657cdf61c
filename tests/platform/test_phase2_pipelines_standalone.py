"""Phase 2 Weeks 8-9 (Kubeflow Pipelines) on the standalone target, as a user sees it.

On the Phase 2 platform the Phase 2 modules share (tests/platform/conftest.py), after the serving module. A
bad setting fails in preflight, naming it, and changes nothing; phase2.yml with PostgreSQL, MLflow and
kubeflow_pipelines has installed the KFP SDK and compiled the example pipeline into a KFP pipeline spec with
the train and deploy steps, and a rerun changes nothing; the user can compile it the same way;
run_pipeline.yml runs it with kfp.local and its MLflow run (tagged with the pipeline run's id) holds the
params, metrics and model, with a registered version promoted to champion and rolled out on the model
server; the promoted version loads and predicts; a run below the accuracy bar registers a version but
promotes and deploys nothing; an unknown parameter fails naming it; teardown removes the SDK and the specs,
keeps the run outputs unless asked.
"""

import json
import os
import re
import subprocess
import urllib.parse
import urllib.request

import pytest
import yaml

from tests.platform.standalone import assert_ok
from tests.support import ROOT

pytestmark = pytest.mark.platform

TAGS = ["--tags", "postgresql,mlflow,kubeflow_pipelines"]
PIPELINE = ROOT / "examples" / "pipelines" / "iris_pipeline.py"
MODEL = "iris-classifier"


@pytest.fixture(scope="module")
def platform(shared_platform):
    return shared_platform


def one_line(result):
    return " ".join(result.output.split())


def api(platform, path, body=None):
    url = f"http://127.0.0.1:{platform.vars['mlflow_port']}/api/2.0/mlflow/{path}"
    assert url.startswith("http://127.0.0.1:"), url
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback http only (asserted)
        return json.loads(response.read())


def runs_of(platform, pipeline_run_id):
    """MLflow runs tagged with the pipeline run's id, found through MLflow's REST API."""
    experiment = api(platform, "experiments/get-by-name?experiment_name=iris-pipeline")["experiment"]
    found = api(
        platform,
        "runs/search",
        {
            "experiment_ids": [experiment["experiment_id"]],
            "filter": f"tags.`kfp.pipeline_run_id` = '{pipeline_run_id}'",
        },
    )
    return found.get("runs", [])


def versions(platform):
    query = urllib.parse.urlencode({"filter": f"name='{MODEL}'"})
    return api(platform, f"model-versions/search?{query}").get("model_versions", [])


def champion(platform):
    query = urllib.parse.urlencode({"name": MODEL, "alias": "champion"})
    return api(platform, f"registered-models/alias?{query}")["model_version"]


def run_pipeline(platform, *args):
    """run_pipeline.yml; the pipeline run's id as its summary prints it."""
    result = platform.run("run_pipeline.yml", *args, timed=f"run_pipeline.yml {' '.join(args)}".strip())
    assert_ok(result, "run_pipeline.yml")
    found = re.search(r"pipeline run: (\S+) \(iris_pipeline\)", one_line(result))
    assert found, result.tail()
    return result, found[1]


def run_and_version(platform, pipeline_run_id):
    """The pipeline run's MLflow run and the model version it registered, found through MLflow's REST API."""
    (mlflow_run,) = runs_of(platform, pipeline_run_id)
    (version,) = [v for v in versions(platform) if v["run_id"] == mlflow_run["info"]["run_id"]]
    return mlflow_run, version


def tags_of(entity):
    return {t["key"]: t["value"] for t in entity.get("tags", entity.get("data", {}).get("tags", []))}


# ---- bring-up --------------------------------------------------------------------------------------------


def test_a_bad_bucket_name_fails_in_preflight_changing_nothing(platform):
    before = platform.footprint()
    result = platform.run("phase2.yml", *TAGS, "-e", "kubeflow_pipelines_bucket_name=Pipelines_Bucket")
    assert result.rc != 0
    assert "kubeflow_pipelines_bucket_name: 'Pipelines_Bucket'" in one_line(result), result.tail()
    assert result.changed == 0, f"changed tasks: {result.changed_tasks()}"
    assert platform.footprint() == before


def test_phase2_installed_the_sdk_and_compiled_the_example_and_a_rerun_changes_nothing(platform):
    result = platform.run("phase2.yml", *TAGS, timed="phase2 (postgresql, mlflow, kubeflow_pipelines) rerun")
    assert_ok(result, "phase2.yml")
    assert result.changed == 0, f"changed tasks: {result.changed_tasks()}"
    assert "pipelines: ansible-playbook run_pipeline.yml" in one_line(result)
    version = subprocess.run(
        [str(platform.home / "venvs/kfp/bin/python"), "-c", "import kfp; print(kfp.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version == "2.17.3"


def spec_documents(path):
    """The compiled file: the pipeline spec (and, with platform settings, a second document)."""
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_the_compiled_spec_is_a_kfp_pipeline_with_the_train_and_deploy_steps(platform):
    compiled = platform.home / "kfp/compiled/iris_pipeline.yaml"
    spec = spec_documents(compiled)[0]
    assert spec["pipelineInfo"]["name"] == "iris-train-deploy"
    assert spec["sdkVersion"] == "kfp-2.17.3"
    assert spec["schemaVersion"] == "2.1.0"
    assert set(spec["components"]) == {"comp-train", "comp-deploy"}
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"train", "deploy"}
    assert tasks["deploy"]["dependentTasks"] == ["train"], "deploy runs after train, on its registered version"
    assert tasks["deploy"]["inputs"]["parameters"]["model_version"]["taskOutputParameter"] == {
        "outputParameterKey": "model_version",
        "producerTask": "train",
    }
    train_inputs = tasks["train"]["inputs"]["parameters"]
    assert train_inputs["pipeline_run_id"]["runtimeValue"]["constant"] == "{{$.pipeline_job_uuid}}"
    executor = spec["deploymentSpec"]["executors"]["exec-train"]["container"]
    assert executor["image"] == "python:3.11-slim"
    assert "mlflow.log_params" in " ".join(executor["command"])
    # the SDK itself accepts the file as a pipeline (what a KFP server or kfp.local loads)
    check = subprocess.run(
        [
            str(platform.home / "venvs/kfp/bin/python"),
            "-c",
            "import sys; from kfp import components; c = components.load_component_from_file(sys.argv[1]);"
            " print(sorted(c.component_spec.inputs))",
            str(compiled),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    assert "'tracking_uri'" in check.stdout and "'min_accuracy'" in check.stdout


def test_the_example_compiles_the_same_for_a_user(platform, tmp_path):
    out = tmp_path / "pipeline.yaml"
    subprocess.run(
        [str(platform.home / "venvs/kfp/bin/python"), str(PIPELINE), "compile", str(out)], check=True, timeout=120
    )
    assert out.read_text() == (platform.home / "kfp/compiled/iris_pipeline.yaml").read_text()


def test_the_steps_pin_what_the_virtualenv_holds():
    defaults = yaml.safe_load((ROOT / "roles/kubeflow_pipelines/defaults/main.yml").read_text())
    text = PIPELINE.read_text()
    packages = text[text.index("PACKAGES = [") : text.index("]", text.index("PACKAGES = ["))]
    for pin in [p.strip(' "') for p in packages.removeprefix("PACKAGES = [").split(",")]:
        assert pin in defaults["kubeflow_pipelines_venv_packages"], pin


# ---- runs --------------------------------------------------------------------------------------------


def test_a_local_run_logs_to_mlflow_and_promotes_the_registered_version(platform):
    result, run_id = run_pipeline(platform)
    output = one_line(result)

    mlflow_run, version = run_and_version(platform, run_id)
    assert mlflow_run["info"]["status"] == "FINISHED"
    assert f"/runs/{mlflow_run['info']['run_id']}" in output, "the summary links the MLflow run"
    params = {p["key"]: p["value"] for p in mlflow_run["data"]["params"]}
    assert params == {"n_estimators": "100", "max_depth": "4", "random_state": "42"}
    metrics = {m["key"]: m["value"] for m in mlflow_run["data"]["metrics"]}
    assert 0.85 <= metrics["accuracy"] <= 1 and 0 < metrics["f1_macro"] <= 1
    assert tags_of(mlflow_run)["kfp.pipeline"] == "iris-train-deploy"

    assert version["status"] == "READY"
    assert f"model version: {MODEL} version {version['version']}" in output
    assert tags_of(version)["kfp.pipeline_run_id"] == run_id
    assert (
        tags_of(version)["kfp.deploy"]
        == f"promoted: {MODEL} version {version['version']} is now models:/{MODEL}@champion"
    )
    assert champion(platform)["version"] == version["version"]
    # The platform's model server now serves it (the pipeline's deploy step).
    assert f"deployed {MODEL} version {version['version']}" in output, result.tail()
    deployment = json.loads((platform.home / "model-serving/deployment.json").read_text())
    assert str(deployment["version"]) == version["version"]
    platform.first_version = version["version"]
    # kfp.local kept each step's outputs under the pipeline root
    assert list((platform.home / "kfp/runs").glob("iris-train-deploy-*/train/executor_output.json"))


def test_the_promoted_version_loads_and_predicts(platform):
    # The model's signature names the iris columns: predict on a frame with them, as a client does.
    code = (
        "import json, mlflow, pandas; from sklearn.datasets import load_iris;"
        " rows = pandas.DataFrame([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], columns=load_iris().feature_names);"
        " m = mlflow.pyfunc.load_model('models:/iris-classifier@champion');"
        " print(json.dumps([int(x) for x in m.predict(rows)]))"
    )
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"http://127.0.0.1:{platform.vars['mlflow_port']}")
    proc = subprocess.run(
        [str(platform.home / "venvs/kfp/bin/python"), "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [0, 2], "setosa and virginica"


def test_a_run_below_the_accuracy_bar_registers_but_does_not_promote(platform):
    before = champion(platform)["version"]
    result, run_id = run_pipeline(platform, "-e", '{"pipeline_params": {"min_accuracy": 1.01, "n_estimators": 20}}')
    mlflow_run, version = run_and_version(platform, run_id)
    assert {p["key"]: p["value"] for p in mlflow_run["data"]["params"]}["n_estimators"] == "20"
    assert int(version["version"]) > int(before)
    assert tags_of(version)["kfp.deploy"].startswith(f"not promoted: {MODEL} version {version['version']} has accuracy")
    assert champion(platform)["version"] == before
    assert f"deployed {MODEL}" not in one_line(result), "nothing was promoted, nothing deployed"
    assert str(json.loads((platform.home / "model-serving/deployment.json").read_text())["version"]) == before


def test_an_unknown_parameter_fails_naming_it(platform):
    result = platform.run("run_pipeline.yml", "-e", '{"pipeline_params": {"n_trees": 5}}')
    assert result.rc != 0
    assert "unknown pipeline parameter(s) n_trees" in one_line(result), result.tail()


# Idempotence and check mode of this role: test_phase2_serving_standalone.py reruns site.yml, and runs it
# in check mode, on the whole platform (every service keeps its process).


# ---- teardown ------------------------------------------------------------------------------------------


def test_teardown_removes_the_sdk_and_keeps_the_run_outputs(platform):
    result = platform.run("teardown.yml", "--tags", "kubeflow_pipelines")
    assert_ok(result, "teardown.yml --tags kubeflow_pipelines")
    assert "set kubeflow_pipelines_delete_data=true to delete them" in one_line(result)
    assert not (platform.home / "venvs/kfp").exists()
    assert not (platform.home / "kfp/compiled").exists()
    assert (platform.home / "kfp/runs").is_dir()
    assert champion(platform)["version"] == platform.first_version, "MLflow keeps the runs and the registry"

    again = platform.run("teardown.yml", "--tags", "kubeflow_pipelines", "-e", "kubeflow_pipelines_delete_data=true")
    assert_ok(again, "teardown.yml -e kubeflow_pipelines_delete_data=true")
    assert not (platform.home / "kfp").exists()
