"""Phase 2 Week 3 (MLflow) on the standalone target, as a user sees it.

On the Phase 2 platform the Phase 2 modules share (tests/platform/conftest.py), last of them. Bad settings
fail in preflight and change nothing; phase2.yml limited to PostgreSQL and MLflow changes nothing on a
second run; the roadmap's tracking snippet logs a run that the REST API shows; the example training script registers
iris-classifier with the alias champion; artifacts come back through the server and are in the durable
object store; PostgreSQL and MLflow are scraped by Prometheus; every service restarts without losing a
run, an artifact or a model version; a second run and check mode change nothing; the database password
is never printed; teardown keeps the data, and a later bring-up finds it again
(test_phase2_platform_teardown.py then deletes everything).
"""

import json
import os
import stat
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.platform.standalone import (
    PHASE2_SERVICES,
    SERVICES,
    assert_ok,
    listening,
    runbook_block,
)
from tests.support import ROOT, tool_env, wait_until

pytestmark = pytest.mark.platform

ALL_SERVICES = SERVICES + PHASE2_SERVICES
# What this module tears down: the rest of the shared platform keeps running.
TAGS = ("--tags", "postgresql,mlflow")
TRAIN = ROOT / "examples" / "mlflow" / "train_iris.py"
BUCKET = "argoeks-mlflow-artifacts-dev"

# The roadmap's "Test MLflow tracking" step (Phase 2, Week 3), as written there; only the port differs.
ROADMAP_SNIPPET = """\
import mlflow
mlflow.set_tracking_uri("http://localhost:5000")
mlflow.set_experiment("test-experiment")
with mlflow.start_run():
    mlflow.log_param("test", "value")
    mlflow.log_metric("accuracy", 0.95)
print("MLflow tracking works!")
"""

# Loads the champion through the server and predicts three iris rows; downloads the model's files.
LOAD_CHAMPION = """\
import json, os, mlflow.artifacts, mlflow.pyfunc
from sklearn.datasets import load_iris
model = mlflow.pyfunc.load_model("models:/iris-classifier@champion")
features, _ = load_iris(return_X_y=True, as_frame=True)
files = os.listdir(mlflow.artifacts.download_artifacts(artifact_uri="models:/iris-classifier@champion"))
print(json.dumps({"predictions": [int(p) for p in model.predict(features.iloc[[0, 50, 100]])], "files": sorted(files)}))
"""


@pytest.fixture(scope="module")
def platform(shared_platform):
    return shared_platform


def run(platform, playbook_name, *args, timed=None):
    # Phase 2's other roles (data lake, serving, ...) have their own platform tests: phase2.yml runs here
    # limited to the roles of Week 3, as `--tags postgresql,mlflow` does for a user.
    if playbook_name == "phase2.yml":
        args = ("--tags", "postgresql,mlflow", *args)
    return platform.run(playbook_name, *args, timed=timed)


def mlflow_url(platform, path=""):
    return f"http://127.0.0.1:{platform.vars['mlflow_port']}{path}"


def api(platform, path, body=None, method=None):
    url = mlflow_url(platform, "/api/2.0/mlflow/" + path)
    assert url.startswith("http://127.0.0.1:"), url
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"}, method=method)  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback http only (asserted)
        return json.loads(response.read())


def get_json(url):
    assert url.startswith("http://127.0.0.1:"), url
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback http only (asserted)
        return json.loads(response.read())


def python(platform, code=None, script=None, timeout=300):
    """Run code (or a script) with the MLflow virtualenv's python against the tracking server."""
    command = [str(platform.home / "venvs/mlflow/bin/python"), str(script) if script else "-"]
    env = dict(os.environ, MLFLOW_TRACKING_URI=mlflow_url(platform))
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        env.pop(var, None)  # the server proxies artifacts: clients need no S3 credentials
    proc = subprocess.run(command, input=code, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def experiment_runs(platform, name):
    experiment = api(platform, "experiments/get-by-name?" + urllib.parse.urlencode({"experiment_name": name}))
    found = api(platform, "runs/search", {"experiment_ids": [experiment["experiment"]["experiment_id"]]})
    return found.get("runs", [])


def champion(platform):
    query = urllib.parse.urlencode({"name": "iris-classifier", "alias": "champion"})
    return api(platform, f"registered-models/alias?{query}")["model_version"]


def db_password(platform):
    return json.loads((platform.home / "secrets/postgresql-db-mlflow.json").read_text())["password"]


def healthy(platform):
    return platform.running(ALL_SERVICES)


# ---- bring-up --------------------------------------------------------------------------------------------


def test_bad_bucket_name_fails_in_preflight_and_changes_nothing(platform):
    before = platform.footprint()
    result = platform.run("phase2.yml", "-e", "mlflow_bucket_name=Not_A_Bucket")
    assert result.rc != 0
    assert "mlflow_bucket_name: 'Not_A_Bucket' is not a valid S3 bucket name" in result.output, result.tail()
    assert result.changed == 0, f"changed tasks: {result.changed_tasks()}"
    assert platform.footprint() == before, "preflight failed but the platform changed"


def test_postgresql_on_mlflows_port_fails_in_preflight(platform):
    before = platform.footprint()
    result = platform.run("phase2.yml", "-e", f"postgresql_port={platform.vars['mlflow_port']}")
    assert result.rc != 0
    output = " ".join(result.output.split())
    assert "Check that standalone services use distinct ports" in output
    assert f"postgresql_port ({platform.vars['mlflow_port']})" in output and "must differ" in output
    assert result.changed == 0 and platform.footprint() == before


def test_mlflow_is_up_and_a_rerun_of_its_tags_changes_nothing(platform):
    result = run(platform, "phase2.yml", timed="phase2 postgresql,mlflow (rerun)")
    assert_ok(result, "phase2.yml")
    assert result.changed == 0, f"changed tasks: {result.changed_tasks()}"
    assert healthy(platform), platform.ctl("status").stdout
    summary = " ".join(result.output.split())
    port = platform.vars["mlflow_port"]
    assert f"MLflow: http://127.0.0.1:{port}" in summary
    assert f"artifacts: s3://{BUCKET}" in summary
    assert f"PostgreSQL: 127.0.0.1:{platform.vars['postgresql_port']}" in summary
    with urllib.request.urlopen(mlflow_url(platform, "/health"), timeout=10) as response:  # noqa: S310 - loopback
        assert response.read().decode().strip() == "OK"


def test_postgresql_is_its_own_cluster_run_as_postgres_with_passwords_only(platform):
    data = platform.home / "data/postgresql"
    assert (data / "PG_VERSION").exists()
    info = data.stat()
    assert stat.S_IMODE(info.st_mode) == 0o700
    assert data.owner() == "postgres"
    pid = platform.ctl("pid", "postgresql").stdout.strip()
    assert Path(f"/proc/{pid}").owner() == "postgres"
    hba = (platform.home / "postgresql/pg_hba.conf").read_text()
    assert "scram-sha-256" in hba and "trust" not in hba
    for secret in ("postgresql.json", "postgresql-db-mlflow.json"):
        assert stat.S_IMODE((platform.home / "secrets" / secret).stat().st_mode) == 0o600


# ---- the roadmap's snippet and the example ---------------------------------------------------------------


def test_roadmap_snippet_logs_a_run_visible_through_the_rest_api(platform):
    snippet = ROADMAP_SNIPPET.replace("localhost:5000", f"localhost:{platform.vars['mlflow_port']}")
    assert "MLflow tracking works!" in python(platform, snippet)
    runs = experiment_runs(platform, "test-experiment")
    assert len(runs) == 1
    data = runs[0]["data"]
    assert {"key": "test", "value": "value"} in data["params"]
    assert [(m["key"], m["value"]) for m in data["metrics"]] == [("accuracy", 0.95)]
    assert runs[0]["info"]["status"] == "FINISHED"


def test_example_registers_iris_classifier_with_alias_champion(platform):
    result = json.loads(python(platform, script=TRAIN).strip().splitlines()[-1])
    assert result["model_uri"] == "models:/iris-classifier@champion"
    assert result["metrics"]["accuracy"] > 0.8
    version = champion(platform)
    assert version["version"] == str(result["version"])
    assert version["run_id"] == result["run_id"]
    assert version["status"] == "READY"
    platform.champion = version


def test_artifacts_come_back_through_the_server_and_live_in_the_object_store(platform):
    loaded = json.loads(python(platform, LOAD_CHAMPION).strip().splitlines()[-1])
    assert loaded["predictions"] == [0, 1, 2]
    assert "MLmodel" in loaded["files"] and "model.skops" in loaded["files"]
    s3 = platform.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert any(k.endswith("/MLmodel") for k in keys), keys
    assert s3.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
    rule = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


def test_prometheus_scrapes_mlflow_and_postgresql(platform):
    targets = sorted(p.stem for p in (platform.home / "observability/targets").glob("*.yml"))
    assert {"mlflow", "postgresql"} <= set(targets)
    prometheus = f"http://127.0.0.1:{platform.vars['observability_ports']['prometheus']}"

    def up(job):
        query = urllib.parse.urlencode({"query": f'up{{job="{job}"}}'})
        result = get_json(f"{prometheus}/api/v1/query?{query}")["data"]["result"]
        return result and result[0]["value"][1] == "1"

    wait_until(lambda: up("mlflow") and up("postgresql"), timeout=120, what="mlflow and postgresql scraped")
    query = urllib.parse.urlencode({"query": "pg_up"})
    assert get_json(f"{prometheus}/api/v1/query?{query}")["data"]["result"][0]["value"][1] == "1"
    with urllib.request.urlopen(mlflow_url(platform, "/metrics"), timeout=10) as response:  # noqa: S310 - loopback
        assert "mlflow_http_request_total" in response.read().decode()


# Idempotence and check mode of this role: test_phase2_serving_standalone.py reruns site.yml, and runs it
# in check mode, on the whole platform (every service keeps its process).


# ---- durability ---------------------------------------------------------------------------------------------


def test_restarting_every_service_keeps_runs_artifacts_and_models(platform):
    restarted = platform.ctl("restart", "all")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    wait_until(lambda: healthy(platform), timeout=120, what="every service RUNNING")
    wait_until(lambda: _answers(platform), timeout=120, what="MLflow healthy after the restart")
    runs = experiment_runs(platform, "test-experiment")
    assert len(runs) == 1 and [(m["key"], m["value"]) for m in runs[0]["data"]["metrics"]] == [("accuracy", 0.95)]
    assert champion(platform)["version"] == platform.champion["version"]
    loaded = json.loads(python(platform, LOAD_CHAMPION).strip().splitlines()[-1])
    assert loaded["predictions"] == [0, 1, 2]


def _answers(platform):
    try:
        with urllib.request.urlopen(mlflow_url(platform, "/health"), timeout=5) as response:  # noqa: S310 - loopback
            return response.status == 200
    except OSError:
        return False


# ---- the backup-restore runbook, as written -----------------------------------------------------------


def runbook(platform, marker, backup):
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", runbook_block(marker)],
        env=tool_env(DB="mlflow", BACKUP=backup, PGHOME=platform.home, PGPORT=platform.vars["postgresql_port"]),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def registered_models(platform):
    return sorted(m["name"] for m in api(platform, "registered-models/search").get("registered_models", []))


def test_runbook_restores_a_deleted_registered_model_from_a_postgresql_dump(platform, tmp_path):
    api(platform, "registered-models/create", {"name": "runbook-drill", "description": "kept by the dump"})
    before = registered_models(platform)
    assert "runbook-drill" in before

    backup = tmp_path / "mlflow.dump"
    printed = runbook(platform, "backup-postgresql", backup)
    assert printed.strip().splitlines()[-1] == str(backup)
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600, "the dump holds the registry: it must be private"

    # The accident: a registered model and its history deleted through the API (a hard delete in MLflow).
    api(platform, "registered-models/delete", {"name": "runbook-drill"}, method="DELETE")
    assert "runbook-drill" not in registered_models(platform)

    # The runbook: stop the writer, restore, start it again.
    assert platform.ctl("stop", "mlflow").returncode == 0
    try:
        tables = runbook(platform, "restore-postgresql", backup)
    finally:
        assert platform.ctl("start", "mlflow").returncode == 0
    assert int(tables.strip().splitlines()[-1]) > 10, tables  # MLflow's schema is back, not an empty database
    wait_until(lambda: _answers(platform), timeout=120, what="MLflow healthy after the restore")
    assert registered_models(platform) == before
    model = api(platform, "registered-models/get?name=runbook-drill")["registered_model"]
    assert model["description"] == "kept by the dump"
    assert champion(platform)["version"] == platform.champion["version"], "the rest of the registry is intact"


# ---- secrets ----------------------------------------------------------------------------------------------


def test_a_config_change_restarts_mlflow_and_the_password_is_never_shown(platform):
    pid = platform.ctl("pid", "mlflow").stdout.strip()
    (platform.home / "secrets/mlflow/pgpass").unlink()
    result = run(platform, "phase2.yml", "-v", "--diff")
    assert_ok(result, "phase2.yml -v --diff after the password file was removed")
    assert result.changed > 0
    assert platform.ctl("pid", "mlflow").stdout.strip() != pid, "MLflow was not restarted for its changed password file"
    assert stat.S_IMODE((platform.home / "secrets/mlflow/pgpass").stat().st_mode) == 0o600
    assert experiment_runs(platform, "test-experiment")

    stored = json.loads((platform.home / "secrets/postgresql.json").read_text())
    secrets = [db_password(platform), *stored.values()]
    for output in platform.outputs:
        for secret in secrets:
            assert secret not in output, "a PostgreSQL password was printed"
    mlflow_pid = platform.ctl("pid", "mlflow").stdout.strip()
    assert db_password(platform) not in Path(f"/proc/{mlflow_pid}/cmdline").read_text()
    assert db_password(platform) not in (platform.home / "supervisor/conf.d/mlflow.conf").read_text()


# ---- teardown --------------------------------------------------------------------------------------------


def test_teardown_keeps_the_data_and_a_new_bring_up_finds_it(platform):
    result = run(platform, "teardown.yml", *TAGS)
    assert_ok(result, "teardown.yml")
    output = " ".join(result.output.split())
    assert "set mlflow_delete_data=true to delete them" in output
    assert "set postgresql_delete_data=true to delete it" in output
    assert not listening(platform.vars["mlflow_port"]) and not listening(platform.vars["postgresql_port"])
    assert (platform.home / "data/postgresql/PG_VERSION").exists()
    assert not (platform.home / "venvs/mlflow").exists()

    assert_ok(run(platform, "phase2.yml"), "phase2.yml after teardown")
    assert [(m["key"], m["value"]) for m in experiment_runs(platform, "test-experiment")[0]["data"]["metrics"]] == [
        ("accuracy", 0.95)
    ]
    assert champion(platform)["version"] == platform.champion["version"]
    assert json.loads(python(platform, LOAD_CHAMPION).strip().splitlines()[-1])["predictions"] == [0, 1, 2]
