"""Phase 2 Week 10 (model serving) on the standalone target, as a user sees it.

The Phase 2 platform the Phase 2 modules share (tests/platform/conftest.py; own home and ports), brought up
from nothing by site.yml (what `./argoeks up` runs: Phase 1, every Phase 2 role, then a first model: the
example pipeline trains and registers iris-classifier@champion, it is served and the summary's curl
answers); this module runs first on it. A second run and check mode leave
everything unchanged. The example training registers a new champion and deploy_model.yml serves it; curl
gets a prediction on the KServe V1 protocol; the forest fast path answers exactly as the model's own
predict, and only where it does; Prometheus scrapes the server; a missing alias, model or version fails
naming it while the endpoint keeps answering with the old version; a new champion is rolled out under
load without a failed request; the load benchmark runs; verify.yml measures inference P99 and time to
deploy, reports a breach, and fails while the server is stopped; the eks render path resolves the
registered version's S3 location into an InferenceService that validates against KServe's CRD schema.
test_phase2_platform_teardown.py removes the server with the rest of the platform.
"""

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
import yaml

from tests.platform.standalone import (
    PHASE2_OTHER_SERVICES,
    PHASE2_SERVICES,
    SERVICES,
    SERVING_SERVICES,
    assert_ok,
)
from tests.support import ROOT, VENV_BIN, wait_until

sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "benchmarks"))
import model_load
import validate_manifests

pytestmark = pytest.mark.platform

PLATFORM_SERVICES = SERVICES + PHASE2_SERVICES + PHASE2_OTHER_SERVICES
ALL_SERVICES = PLATFORM_SERVICES + SERVING_SERVICES
TAGS = ["--tags", "postgresql,mlflow,model_serving"]
TRAIN = ROOT / "examples" / "mlflow" / "train_iris.py"
BENCHMARK = ROOT / "benchmarks" / "model_load.py"
CRDS = ROOT / "tests" / "k8s" / "data" / "crds"
MODEL = "iris-classifier"
BUCKET = "argoeks-mlflow-artifacts-dev"
PAYLOAD = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


@pytest.fixture(scope="module")
def platform(phase2_platform):
    # Not shared_platform: the first test asserts on the bring-up itself.
    return phase2_platform


def deploy(platform, *args, timed=None):
    return platform.run("deploy_model.yml", *args, timed=timed)


def endpoint(platform, model=MODEL):
    return f"http://127.0.0.1:{platform.vars['model_serving_port']}/v1/models/{model}:predict"


def predict(platform, payload=None):
    """(status, body, x-model-version) of one prediction."""
    url = endpoint(platform)
    assert url.startswith("http://127.0.0.1:"), url
    body = json.dumps(payload or PAYLOAD).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback http only (asserted)
            return response.status, json.loads(response.read()), response.headers.get("x-model-version")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}"), error.headers.get("x-model-version")


def get_json(url):
    assert url.startswith("http://127.0.0.1:"), url
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback http only (asserted)
        return json.loads(response.read())


def prometheus_query(platform, query):
    url = platform.url("prometheus", "/api/v1/query?" + urllib.parse.urlencode({"query": query}))
    return get_json(url)["data"]["result"]


def python(platform, code):
    """Run code with the MLflow virtualenv's python against the tracking server."""
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"http://127.0.0.1:{platform.vars['mlflow_port']}")
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        env.pop(var, None)
    proc = subprocess.run(
        [str(platform.home / "venvs/mlflow/bin/python"), "-"],
        input=code,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def train(platform):
    """examples/mlflow/train_iris.py with the MLflow virtualenv's python, as roles/mlflow/README.md says."""
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"http://127.0.0.1:{platform.vars['mlflow_port']}")
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        env.pop(var, None)
    proc = subprocess.run(
        [str(platform.home / "venvs/mlflow/bin/python"), str(TRAIN)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def record(platform):
    return json.loads((platform.home / "records/deploy.json").read_text())


def one_line(result):
    return " ".join(result.output.split())


def verify(platform, *args):
    result = platform.run("verify.yml", "-e", '{"verify_phases": [2]}', *args)
    report = json.loads((platform.home / "reports/success-metrics.json").read_text())
    return result, {r["metric"]: r for r in report["results"]}


# ---- bring-up --------------------------------------------------------------------------------------------


def test_site_yml_brings_the_whole_platform_up_from_nothing_and_serves_a_first_model(platform):
    result = platform.bring_up
    assert_ok(result, "site.yml")
    output = one_line(result)
    assert "PLAY [Phase 1: critical foundation]" in output and "PLAY [Phase 2: MLOps core]" in output
    for role in ("postgresql", "mlflow", "datalake", "feast", "jupyterhub", "kubeflow_pipelines", "model_serving"):
        assert f"TASK [{role} : " in output, f"phase2.yml did not run the {role} role"
    # The registry had no champion: the example pipeline trained, registered and promoted version 1, which is served.
    assert "pipeline run: " in output and f"model version: {MODEL} version 1" in output, result.tail()
    assert f"deployed {MODEL} version 1" in output, result.tail()
    assert platform.healthy(ALL_SERVICES), platform.ctl("status").stdout
    assert str(record(platform)["version"]) == "1"
    # The summary's curl, run as printed, answers with a prediction from that version.
    found = re.search(r"predict: (curl .*?:predict)", output)
    assert found, result.tail()
    assert f"127.0.0.1:{platform.vars['model_serving_port']}/v1/models/{MODEL}:predict" in found.group(1)
    proc = subprocess.run(["bash", "-c", found.group(1)], capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["predictions"] == [0], proc.stdout


def test_first_model_can_be_turned_off(platform):
    result = platform.run("site.yml", "--tags", "first_model", "-e", "kubeflow_pipelines_first_model=false")
    assert_ok(result, "site.yml --tags first_model with kubeflow_pipelines_first_model=false")
    assert "first model: turned off (kubeflow_pipelines_first_model: false)" in one_line(result), result.tail()
    assert result.changed == 0, f"changed tasks: {result.changed_tasks()}"


# ---- deploy ----------------------------------------------------------------------------------------------


def test_trained_model_is_deployed_and_the_deploy_recorded(platform):
    platform.first = train(platform)
    assert platform.first["model_uri"] == f"models:/{MODEL}@champion"
    assert str(platform.first["version"]) == "2"
    result = deploy(platform, "-e", f"model_name={MODEL}", "-e", "model_alias=champion", timed="first deploy")
    assert_ok(result, "deploy_model.yml")
    version = str(platform.first["version"])
    output = one_line(result)
    assert f"deployed {MODEL} version {version}" in output
    assert platform.healthy(ALL_SERVICES), platform.ctl("status").stdout
    deployed = record(platform)
    assert deployed["model"] == MODEL and str(deployed["version"]) == version
    assert 0 < deployed["duration_seconds"] < 15 * 60
    assert deployed["finished_at"].endswith("Z")
    assert f"last deploy took {deployed['duration_seconds']} s" in output
    platform.timings["first deploy (recorded)"] = deployed["duration_seconds"]


def test_curl_gets_a_prediction_on_the_v1_protocol(platform):
    proc = subprocess.run(
        ["curl", "-sS", "-H", "Content-Type: application/json", "-d", json.dumps(PAYLOAD), endpoint(platform)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"predictions": [0]}
    # Three species, rows in the order of the model's signature.
    status, body, version = predict(
        platform, {"instances": [[5.1, 3.5, 1.4, 0.2], [6.0, 2.7, 5.1, 1.6], [7.7, 3.0, 6.1, 2.3]]}
    )
    assert (status, body["predictions"], version) == (200, [0, 1, 2], str(platform.first["version"]))
    status, body, _ = predict(platform, {"instances": [[1.0, 2.0]]})
    assert status == 400 and "needs 4 values" in body.get("error", ""), body


# Rows around the iris forest's split thresholds and far outside them, as a client might send.
def probe_rows(count=400, seed=7):
    import random

    rng = random.Random(seed)  # noqa: S311 - test inputs, not a secret
    return [[round(rng.uniform(-1.0, 9.0), rng.choice((1, 2, 6))) for _ in range(4)] for _ in range(count)]


def test_the_forest_path_answers_exactly_as_the_model_itself(platform):
    """The server predicts the forest without scikit-learn's per-tree dispatch: same answers, checked here."""
    log = (platform.home / "logs" / "model-server.log").read_text()
    assert "forest path on: verified equal to predict" in log, log[-2000:]
    rows = probe_rows()
    status, body, _ = predict(platform, {"instances": rows})
    assert status == 200, body
    # The model's own predict (scikit-learn's, through MLflow) on the same rows, in the server's virtualenv.
    version = json.loads((platform.home / "model-serving/status.json").read_text())["version"]
    model_dir = platform.home / "model-serving/models" / MODEL / str(version)
    script = (
        "import json, sys, pandas, mlflow.pyfunc; m = mlflow.pyfunc.load_model(sys.argv[1]);"
        "cols = m.metadata.get_input_schema().input_names();"
        "print(json.dumps(m.predict(pandas.DataFrame(json.load(sys.stdin), columns=cols)).tolist()))"
    )
    own = subprocess.run(
        [str(platform.home / "venvs/model-server/bin/python"), "-c", script, str(model_dir)],
        input=json.dumps(rows),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    expected = json.loads(own.stdout.strip().splitlines()[-1])
    assert body["predictions"] == expected
    assert len(set(expected)) == 3, "the probe rows should reach every class"
    # Instances by column name answer the same; bad values fail naming the problem, as the pyfunc path did.
    columns = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
    status, body, _ = predict(platform, {"instances": [dict(zip(columns, row, strict=True)) for row in rows[:20]]})
    assert (status, body["predictions"]) == (200, expected[:20])
    status, body, _ = predict(platform, {"instances": [{"sepal length (cm)": 5.1}]})
    assert status == 400 and "missing columns" in body["error"] and "petal width (cm)" in body["error"], body
    status, body, _ = predict(platform, {"instances": [["five", 3.5, 1.4, 0.2]]})
    assert status == 400 and "could not convert string to float" in body["error"], body


def test_the_server_picks_the_forest_path_only_where_it_answers_the_same(platform):
    """Other forests and other model kinds, trained in the server's virtualenv: same answers on either path."""
    proc = subprocess.run(
        [
            str(platform.home / "venvs/model-server/bin/python"),
            str(ROOT / "tests/platform/model_server_paths.py"),
            str(ROOT / "roles/model_serving/files"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    kinds = {line["kind"]: line for line in map(json.loads, proc.stdout.strip().splitlines())}
    assert all(kind["same"] for kind in kinds.values()), kinds
    assert kinds["extra-trees classifier"]["forest"] and kinds["random-forest regressor"]["forest"], kinds
    assert not kinds["gradient boosting"]["forest"] and not kinds["logistic regression"]["forest"], kinds
    assert "not a single-output random/extra-trees forest" in kinds["logistic regression"]["reason"]


def test_server_listens_on_loopback_only(platform):
    port = platform.vars["model_serving_port"]
    listeners = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=False)
    addresses = {line.split()[3] for line in listeners.stdout.splitlines() if line.strip()}
    assert addresses == {f"127.0.0.1:{port}"}, listeners.stdout


def test_prometheus_scrapes_the_model_server(platform):
    metrics_url = f"http://127.0.0.1:{platform.vars['model_serving_port']}/metrics"
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    assert 'http_request_duration_seconds_bucket{handler="predict",le="0.1"}' in text
    assert 'http_requests_total{handler="predict",status="200"}' in text

    def scraped():
        up = prometheus_query(platform, 'up{job="model-server",component="model-serving"}')
        histogram = prometheus_query(platform, 'http_request_duration_seconds_count{component="model-serving"}')
        return up and up[0]["value"][1] == "1" and histogram

    wait_until(scraped, timeout=120, what="Prometheus scraping the model server's histogram")


# ---- idempotence and check mode ----------------------------------------------------------------------------


def test_second_runs_change_nothing(platform):
    # The idempotence test of every Phase 1 and Phase 2 role on standalone: no task changes, no process restarts.
    pids = platform.pids()
    assert set(pids) == set(ALL_SERVICES), platform.ctl("status").stdout
    before = record(platform)
    result = platform.run("site.yml", timed="site.yml rerun")
    assert_ok(result, "second site.yml")
    assert result.changed == 0, f"changed tasks: {result.changed_tasks()}"
    assert "first model: a model is served already" in one_line(result)
    result = deploy(platform, "-e", f"model_name={MODEL}", "-e", "model_alias=champion", timed="deploy rerun")
    assert_ok(result, "second deploy_model.yml")
    assert result.changed == 0, f"changed tasks: {result.changed_tasks()}"
    assert "already serving, nothing to deploy" in one_line(result)
    assert record(platform) == before
    restarted = sorted(name for name, pid in platform.pids().items() if pids.get(name) != pid)
    assert not restarted, f"a rerun restarted {restarted}"


def test_check_mode_changes_nothing(platform):
    for playbook_name, args in (("site.yml", []), ("deploy_model.yml", ["-e", f"model_name={MODEL}"])):
        result = platform.run(playbook_name, *args, "--check", "--diff")
        assert_ok(result, f"{playbook_name} --check --diff")
        assert result.changed == 0, f"{playbook_name} changed tasks: {result.changed_tasks()}"


# ---- what the registry does not hold -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["-e", f"model_name={MODEL}", "-e", "model_alias=no-such-alias"], f"model '{MODEL}' alias 'no-such-alias'"),
        (["-e", "model_name=no-such-model", "-e", "model_alias=champion"], "model 'no-such-model' alias 'champion'"),
        (["-e", f"model_name={MODEL}", "-e", "model_version=99"], f"model '{MODEL}' version 99 (models:/{MODEL}/99)"),
    ],
    ids=["alias", "model", "version"],
)
def test_a_reference_the_registry_lacks_fails_naming_it_and_the_old_version_keeps_serving(platform, args, named):
    before = (platform.home / "model-serving/deployment.json").read_text()
    result = deploy(platform, *args)
    assert result.rc != 0
    output = one_line(result)
    version = str(platform.first["version"])
    assert f"{named}" in output and "is not in the MLflow registry" in output, result.tail()
    assert f"Nothing was changed; the endpoint keeps serving {MODEL} version {version}" in output
    assert (platform.home / "model-serving/deployment.json").read_text() == before
    status, body, served = predict(platform)
    assert (status, served) == (200, version) and body["predictions"] == [0]


# ---- rolling to a new version ----------------------------------------------------------------------------------


def test_rolling_to_a_new_champion_answers_every_request(platform):
    second = train(platform)
    old, new = str(platform.first["version"]), str(second["version"])
    assert new != old
    load = model_load.LoadTest(endpoint(platform), PAYLOAD, clients=4)
    stop = threading.Event()
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.update(result=load.run(stop=stop)))
    worker.start()
    try:
        time.sleep(2)
        result = deploy(platform, "-e", f"model_name={MODEL}", "-e", "model_alias=champion", timed="rolling deploy")
        time.sleep(2)
    finally:
        stop.set()
        worker.join(timeout=60)
    assert_ok(result, "deploy_model.yml to the new champion")
    summary = outcome["result"].summary()
    print("requests during the roll:", json.dumps(summary))
    assert summary["failed"] == 0, summary
    assert summary["requests"] > 50, summary
    assert set(summary["versions"]) == {old, new}, summary
    # Once the new version answered, the old one never did again (allowing for requests in flight at the swap).
    timeline = outcome["result"].timeline
    first_new = next(i for i, (_, _, version) in enumerate(timeline) if version == new)
    assert sum(1 for _, _, version in timeline[first_new:] if version == old) <= load.clients, summary
    assert predict(platform)[2] == new
    deployed = record(platform)
    assert (str(deployed["version"]), str(deployed["previous_version"])) == (new, old)
    assert deployed["alias"] == "champion"
    platform.second = second
    platform.timings["rolling deploy (recorded)"] = deployed["duration_seconds"]


BROKEN_MODEL = """\
import mlflow, mlflow.pyfunc
class Broken(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        raise RuntimeError("this model version cannot load")
    def predict(self, context, model_input):
        return model_input
mlflow.set_experiment("broken")
with mlflow.start_run():
    info = mlflow.pyfunc.log_model(
        name="model", python_model=Broken(), registered_model_name="iris-classifier", pip_requirements=["mlflow"]
    )
print(info.registered_model_version)
"""


def test_a_version_that_fails_to_load_leaves_the_old_one_serving(platform):
    broken = python(platform, BROKEN_MODEL).strip().splitlines()[-1]
    serving = str(platform.second["version"])
    deployment = (platform.home / "model-serving/deployment.json").read_text()
    before = record(platform)
    result = deploy(platform, "-e", f"model_name={MODEL}", "-e", f"model_version={broken}")
    assert result.rc != 0
    output = one_line(result)
    assert f"the model server did not load {MODEL} version {broken}" in output, result.tail()
    assert "this model version cannot load" in output
    assert f"The endpoint keeps serving {MODEL} version {serving}" in output
    assert (platform.home / "model-serving/deployment.json").read_text() == deployment
    assert record(platform) == before
    status, _, served = predict(platform)
    assert (status, served) == (200, serving)


def test_a_version_can_be_deployed_by_number(platform):
    old = str(platform.first["version"])
    result = deploy(platform, "-e", f"model_name={MODEL}", "-e", f"model_version={old}")
    assert_ok(result, "deploy_model.yml -e model_version")
    assert predict(platform)[2] == old
    result = deploy(platform, "-e", f"model_name={MODEL}", "-e", "model_alias=champion")
    assert_ok(result, "deploy_model.yml back to champion")
    assert predict(platform)[2] == str(platform.second["version"])
    # Downloaded versions are pruned to model_serving_keep_versions (2).
    assert len(list((platform.home / "model-serving/models" / MODEL).iterdir())) <= 2


# ---- load benchmark ----------------------------------------------------------------------------------------------


def test_load_benchmark_runs(platform):
    proc = subprocess.run(
        [str(VENV_BIN / "python"), str(BENCHMARK), "--url", endpoint(platform), "--clients", "4", "--duration", "3"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "throughput:" in proc.stdout and "p99" in proc.stdout and "(0 failed)" in proc.stdout
    proc = subprocess.run(
        [str(VENV_BIN / "python"), str(BENCHMARK), "--url", endpoint(platform), "--duration", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    summary = json.loads(proc.stdout)
    assert summary["requests"] > 0 and summary["failed"] == 0 and summary["p99_ms"] > 0


# ---- success metrics -----------------------------------------------------------------------------------------------


def test_verify_reports_every_phase1_and_phase2_metric_with_a_measured_value(platform):
    """The roadmap's success metrics of Phases 1-2 on the whole platform, after a scripted onboarding."""
    onboarded = platform.run("onboard_user.yml", timed="onboard_user.yml")
    assert_ok(onboarded, "onboard_user.yml")
    result = platform.run("verify.yml", timed="verify.yml")
    assert_ok(result, "verify.yml")
    report = json.loads((platform.home / "reports/success-metrics.json").read_text())
    measured = {r["metric"]: r for r in report["results"] if r["phase"] in (1, 2)}
    assert sorted(measured) == [
        "alerts_firing",
        "costs_within_budget",
        "developer_onboarding",
        "inference_p99",
        "state_backup_automated",
        "time_to_deploy",
        "time_to_train",
        "uptime",
    ]
    # The emulator has no cost data: the check says so instead of inventing a number.
    cost = measured.pop("costs_within_budget")
    assert cost["status"] == "unavailable" and "emulator has no cost data" in cost["detail"], cost
    for name, found in measured.items():
        assert found["status"] == "pass", f"{name}: {found}"
        assert isinstance(found["value"], int | float) and found["source"], f"{name} has no measured value: {found}"
    assert measured["developer_onboarding"]["source"].startswith("onboarding record of ")
    assert 0 < measured["developer_onboarding"]["value"] < 1, "onboarding is measured in hours"
    assert f":{platform.vars['mlflow_port']}" in measured["time_to_train"]["source"]
    again = platform.run("verify.yml")
    assert_ok(again, "second verify.yml")
    assert again.changed == 0, f"changed tasks: {again.changed_tasks()}"


def test_verify_measures_inference_p99_and_time_to_deploy(platform):
    wait_until(
        lambda: prometheus_query(
            platform, 'sum(rate(http_request_duration_seconds_count{component="model-serving"}[5m])) > 0'
        ),
        timeout=120,
        what="the model server's requests in Prometheus",
    )
    result, metrics = verify(platform)
    assert_ok(result, "verify.yml")
    p99, deploy_time = metrics["inference_p99"], metrics["time_to_deploy"]
    assert p99["status"] == "pass" and 0 < p99["value"] < 100, p99
    assert "Prometheus" in p99["source"], p99
    assert deploy_time["status"] == "pass" and deploy_time["value"] == round(
        record(platform)["duration_seconds"] / 60, 3
    )
    print("inference_p99:", p99["value"], "ms;", "time_to_deploy:", deploy_time["value"], "min")
    platform.p99 = p99["value"]


def test_verify_reports_a_p99_breach_with_the_measured_value(platform):
    result, metrics = verify(platform, "-e", '{"verify_thresholds": {"inference_p99_ms": 0.1}}')
    assert result.rc != 0
    p99 = metrics["inference_p99"]
    assert p99["status"] == "fail" and p99["value"] > 0.1, p99
    output = one_line(result)
    assert "success metric(s) breached: inference_p99" in output, result.tail()
    # The table row: metric, status, the measured value and the threshold.
    assert f"inference_p99 fail {p99['value']:g} ms <= 0.1 ms" in output, result.tail()


def test_verify_fails_while_the_model_server_is_stopped_and_passes_once_it_runs(platform):
    stopped = platform.ctl("stop", "model-server")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    try:
        result, metrics = verify(platform)
        assert result.rc != 0
        assert metrics["inference_p99"]["status"] == "fail"
        assert "the model endpoint does not answer" in metrics["inference_p99"]["detail"]
        assert "the model endpoint does not answer" in one_line(result)
        # The user's repair is a rerun: the gate before Phase 2 counts Phase 1's services only, so the
        # stopped model server does not block the run that starts it again.
        # (The shared platform skips the gate on its other runs: ask for it here.)
        repaired = platform.run("phase2.yml", *TAGS, "-e", "verify_checkpoints_skip=false")
        assert_ok(repaired, "phase2.yml with the model server stopped")
        gate = re.search(r"TASK \[verify : Gate Phase 2\] \**\n(\w+):", repaired.output)
        assert gate and gate.group(1) == "ok", "the checkpoints before Phase 2 were not checked and met"
        assert "RUNNING" in platform.ctl("status", "model-server").stdout, "phase2.yml did not start the model server"
    finally:
        if "RUNNING" not in platform.ctl("status", "model-server").stdout:
            platform.ctl("start", "model-server")
    wait_until(lambda: _answers(platform), timeout=120, what="the model server answering again")
    result, metrics = verify(platform)
    assert_ok(result, "verify.yml after the restart")
    assert metrics["inference_p99"]["status"] == "pass"


def _answers(platform):
    try:
        return predict(platform)[0] == 200
    except OSError:
        return False


# ---- eks render path -------------------------------------------------------------------------------------------------


def test_eks_render_resolves_the_registered_version_into_a_valid_inference_service(platform):
    """deploy_model.yml on the eks inventory, in render mode, against this platform's real registry."""
    rendered = platform.base / "eks-rendered"
    extra = platform.base / "eks-vars.yml"
    extra.write_text(
        yaml.safe_dump(
            {
                "platform_home": str(platform.base / "eks-home"),
                "k8s_render_dir": str(rendered),
                "model_serving_mlflow_url": f"http://127.0.0.1:{platform.vars['mlflow_port']}",
                "model_serving_image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/argoeks/model-server:0.21.0",
            }
        )
    )
    from tests.support import playbook, tool_env

    result = playbook(
        "deploy_model.yml",
        "-i",
        "inventories/dev",
        "-e",
        f"@{extra}",
        "-e",
        f"model_name={MODEL}",
        env=tool_env(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing"),
    )
    assert_ok(result, "deploy_model.yml -i inventories/dev (render mode)")
    assert "nothing was applied" in one_line(result)
    assert not (platform.base / "eks-home/records/deploy.json").exists()

    objects, problems = validate_manifests.validate(rendered, "1.32", crd_dirs=[CRDS])
    assert problems == [], "\n".join(str(p) for p in problems)
    by_kind = {o["kind"]: o for _, _, o in objects}
    assert set(by_kind) == {"ServingRuntime", "InferenceService", "ServiceMonitor"}
    isvc = by_kind["InferenceService"]
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    assert (isvc["metadata"]["name"], isvc["metadata"]["namespace"]) == (MODEL, "kserve")
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    predictor = isvc["spec"]["predictor"]
    assert predictor["serviceAccountName"] == "model-server"
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (1, 3)
    assert (predictor["scaleMetric"], predictor["scaleTarget"]) == ("cpu", 70)
    assert predictor["model"]["modelFormat"] == {"name": "mlflow"}
    assert predictor["model"]["protocolVersion"] == "v1"
    # The champion's artifacts, where MLflow put them in the artifact bucket.
    version = str(platform.second["version"])
    assert isvc["metadata"]["annotations"]["argoeks.io/model-version"] == version
    storage = predictor["model"]["storageUri"]
    assert storage.startswith(f"s3://{BUCKET}/"), storage
    prefix = storage.removeprefix(f"s3://{BUCKET}/").rstrip("/") + "/"
    keys = [o["Key"] for o in platform.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]
    assert f"{prefix}MLmodel" in keys, (storage, keys)
    monitor = by_kind["ServiceMonitor"]
    relabel = monitor["spec"]["endpoints"][0]["relabelings"]
    assert {"action": "replace", "targetLabel": "component", "replacement": "model-serving"} in relabel

    # The schema catches what KServe would refuse.
    broken = rendered / "broken"
    broken.mkdir()
    isvc["spec"]["predictor"]["scaleMetric"] = "gpu"
    isvc["spec"]["predictor"]["model"]["storageURI"] = storage
    (broken / "isvc.yaml").write_text(yaml.safe_dump(isvc))
    _, problems = validate_manifests.validate(broken, "1.32", crd_dirs=[CRDS])
    messages = " ".join(str(p) for p in problems)
    assert "spec.predictor.scaleMetric" in messages and "storageURI" in messages, messages
