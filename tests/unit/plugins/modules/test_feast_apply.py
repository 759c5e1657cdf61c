"""argoeks.mlops.feast_apply against a real Feast, offline: the role's example repository with a local SQLite
registry, a file offline store and a SQLite online store in a temporary directory.

The module runs here in-process, as Ansible runs it (no Feast in this interpreter); it drives Feast through the
interpreter of a virtualenv holding the role's Feast release, made once under .venv/tools/feast (the layout
`./argoeks setup test` uses for test tools) and reused afterwards.
"""

import json
import shutil
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest
import yaml

from ansible_collections.argoeks.mlops.plugins.modules import feast_apply
from tests.support import ROOT
from tests.unit.conftest import ModuleFailed

ROLE = ROOT / "roles" / "feast"
FEAST_VERSION = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())["feast_version"]
TOOL_VENV = ROOT / ".venv" / "tools" / "feast"
SPEC = f"feast=={FEAST_VERSION}"
USERS = ROOT / "roles" / "datalake" / "files" / "sample" / "users.csv"

FEATURE_STORE_YAML = """\
project: mlops_test
provider: local
registry: data/registry.db
online_store:
  type: sqlite
  path: data/online.db
offline_store:
  type: file
entity_key_serialization_version: 3
"""
TTL_CHANGE = {
    "type": "feature view",
    "name": "user_features",
    "action": "update",
    "changes": [{"property": "ttl", "before": "86400s", "after": "172800s"}],
}


@pytest.fixture(scope="session")
def feast_python():
    """The Feast virtualenv's interpreter: made on first use, reused while its .spec matches."""
    python = TOOL_VENV / "bin" / "python"
    spec_file = TOOL_VENV / ".spec"
    if not (python.exists() and spec_file.exists() and spec_file.read_text().strip() == SPEC):
        shutil.rmtree(TOOL_VENV, ignore_errors=True)
        venv.create(TOOL_VENV, with_pip=True)
        proc = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", SPEC],
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        assert proc.returncode == 0, f"could not install {SPEC} into {TOOL_VENV}:\n{proc.stderr[-3000:]}"
        spec_file.write_text(SPEC + "\n")
    return str(python)


@pytest.fixture(scope="session")
def sample_parquet(feast_python, tmp_path_factory):
    """The role's sample data (written by its own generator), once per session."""
    path = tmp_path_factory.mktemp("feast-sample") / "user_features.parquet"
    proc = subprocess.run(
        [feast_python, str(ROLE / "files" / "feast_sample_data.py"), "--source", str(USERS), "--dest", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    written = json.loads(proc.stdout)
    assert written["changed"] and written["rows"] == 220, written  # 200 users, 20 of them with an older row
    return path


@pytest.fixture
def repo(tmp_path, sample_parquet):
    """The role's example repository with local stores; the registry starts empty."""
    repo = tmp_path / "feature_repo"
    shutil.copytree(ROLE / "files" / "feature_repo", repo)
    (repo / "feature_store.yaml").write_text(FEATURE_STORE_YAML)
    (repo / "data").mkdir()
    shutil.copy(sample_parquet, repo / "data" / "user_features.parquet")
    return repo


@pytest.fixture
def feast(run_module, feast_python, repo, monkeypatch):
    """feast(check_mode=False, diff=False, **args) -> the module's result for the example repository."""
    for var in ("ARGOEKS_FEAST_USER_FEATURES", "ARGOEKS_FEAST_S3_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)

    def run(check_mode=False, diff=False, **args):
        return run_module(
            feast_apply,
            dict({"repo_path": str(repo), "python": feast_python}, **args),
            check_mode=check_mode,
            diff=diff,
        )

    return run


def edit(repo, old, new):
    path = repo / "features.py"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def registry_bytes(repo):
    return (repo / "data" / "registry.db").read_bytes()


def test_first_apply_creates_the_example_and_a_rerun_changes_nothing(feast):
    first = feast()
    assert first["changed"] is True
    assert first["feast_version"] == FEAST_VERSION and first["project"] == "mlops_test"
    created = {(o["type"], o["name"]) for o in first["plan"]["objects"] if o["action"] == "create"}
    assert {("project", "mlops_test"), ("entity", "user_id"), ("feature view", "user_features")} <= created
    assert first["registry"]["entities"] == ["user_id"]
    assert first["registry"]["feature_views"] == ["user_features"]
    assert first["registry"]["data_sources"] == ["user_features_source"]

    again = feast()
    assert again["changed"] is False
    assert again["plan"] == {"objects": [], "infra": []}
    assert "diff" not in again


def test_check_mode_shows_the_plan_and_applies_nothing(feast, repo):
    planned = feast(check_mode=True, diff=True)
    assert planned["changed"] is True
    assert "+ feature view user_features" in planned["diff"]["prepared"]
    assert "+ entity user_id" in planned["diff"]["prepared"]
    assert planned["registry"]["feature_views"] == []
    assert feast(check_mode=True)["changed"] is True, "check mode applied the plan"


def test_a_ttl_change_reports_exactly_that_change(feast, repo):
    feast()
    before = registry_bytes(repo)
    edit(repo, "ttl=timedelta(days=1)", "ttl=timedelta(days=2)")

    planned = feast(check_mode=True, diff=True)
    assert planned["changed"] is True
    assert planned["plan"] == {"objects": [TTL_CHANGE], "infra": []}
    assert planned["diff"]["prepared"] == (
        "registry of Feast project mlops_test:\n~ feature view user_features\n    ttl: 86400s -> 172800s\n"
    )
    assert registry_bytes(repo) == before, "check mode wrote the registry"

    applied = feast(diff=True)
    assert applied["changed"] is True and applied["plan"] == {"objects": [TTL_CHANGE], "infra": []}
    assert feast()["changed"] is False


def test_a_python_error_in_a_definition_fails_with_its_message_and_leaves_the_registry(feast, repo):
    feast()
    before = registry_bytes(repo)
    edit(repo, "entities=[user],", "entities=[usr],")
    with pytest.raises(ModuleFailed) as failed:
        feast()
    msg = failed.value.result["msg"]
    assert "NameError: name 'usr' is not defined" in msg
    assert "(at features.py:" in msg and "Nothing was applied: the registry is as it was." in msg
    assert failed.value.result["stage"] == "load"
    assert registry_bytes(repo) == before


def test_an_invalid_repository_fails_with_feasts_message_and_leaves_the_registry(feast, repo):
    feast()
    before = registry_bytes(repo)
    duplicate = textwrap.dedent(
        """

        user_features_copy = FeatureView(
            name="user_features",
            entities=[user],
            ttl=timedelta(days=7),
            schema=[Field(name="age", dtype=Int64)],
            source=user_source,
        )
        """
    )
    (repo / "features.py").write_text((repo / "features.py").read_text() + duplicate)
    with pytest.raises(ModuleFailed) as failed:
        feast()
    msg = failed.value.result["msg"]
    assert "ConflictingFeatureViewNames: Multiple FeatureViews with name 'user_features' found" in msg
    assert "Nothing was applied" in msg
    assert registry_bytes(repo) == before
    # The same in check mode: a failure, not a plan.
    with pytest.raises(ModuleFailed):
        feast(check_mode=True)


def test_materialize_incremental_reports_the_rows_it_wrote(feast):
    first = feast(materialize_incremental=True)
    assert first["changed"] is True
    materialized = first["materialized"]
    # The sample's newer rows are within the last day (the TTL); the older rows are 30 hours older.
    assert materialized["rows"] == 200
    assert [(v["name"], v["rows"]) for v in materialized["views"]] == [("user_features", 200)]

    again = feast(materialize_incremental=True)
    assert again["changed"] is False, "nothing new: no change"
    assert again["materialized"]["rows"] == 0


def test_materialize_up_to_a_date_as_the_roadmap_types_it(feast):
    feast()
    result = feast(materialize_incremental=True, end_time="2000-01-01")
    assert result["materialized"]["end_time"] == "2000-01-01T00:00:00+00:00"
    assert result["materialized"]["rows"] == 0 and result["changed"] is False


def test_check_mode_does_not_materialize(feast):
    feast()
    result = feast(check_mode=True, materialize_incremental=True)
    assert result["changed"] is False and "materialized" not in result


def test_state_absent_tears_the_registry_down(feast, repo):
    feast()
    planned = feast(state="absent", check_mode=True, diff=True)
    assert planned["changed"] is True and planned["removed_projects"] == ["mlops_test"]
    assert "- feature view user_features" in planned["diff"]["prepared"]
    assert feast(check_mode=True)["changed"] is False, "check mode tore the registry down"

    removed = feast(state="absent")
    assert removed["changed"] is True
    assert removed["registry"]["feature_views"] == ["user_features"], "what was removed"
    assert feast(state="absent")["changed"] is False
    assert feast(check_mode=True)["plan"]["objects"], "the registry should be empty again"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"end_time": "yesterday"}, "end_time 'yesterday' is not an ISO 8601 date"),
        ({"state": "absent", "materialize_incremental": True}, "go with state=present"),
        ({"timeout": 0}, "timeout 0 must be at least 1 second"),
        ({"environment": {"NOT A NAME": "x"}}, "'NOT A NAME' is not a variable name"),
    ],
)
def test_bad_arguments_fail_before_feast_runs(feast, args, expected):
    with pytest.raises(ModuleFailed) as failed:
        feast(**args)
    assert expected in failed.value.result["msg"]


def test_a_missing_repository_or_interpreter_is_named(run_module, tmp_path, feast_python):
    with pytest.raises(ModuleFailed) as failed:
        run_module(feast_apply, {"repo_path": str(tmp_path / "nowhere"), "python": feast_python})
    assert f"repo_path {tmp_path / 'nowhere'} is not a directory" in failed.value.result["msg"]
    with pytest.raises(ModuleFailed) as failed:
        run_module(feast_apply, {"repo_path": str(tmp_path), "python": feast_python})
    assert "feature_store.yaml does not exist" in failed.value.result["msg"]


def test_an_interpreter_without_feast_is_named(run_module, repo):
    with pytest.raises(ModuleFailed) as failed:
        run_module(feast_apply, {"repo_path": str(repo), "python": sys.executable})
    assert f"Feast is not installed for {sys.executable}" in failed.value.result["msg"]


def test_passwords_come_from_the_environment_option(feast, repo):
    """feature_store.yaml may refer to ${VARS}; the module passes its environment option to Feast."""
    store = repo / "feature_store.yaml"
    store.write_text(store.read_text().replace("path: data/online.db", "path: ${ONLINE_DB}"))
    result = feast(environment={"ONLINE_DB": str(repo / "data" / "online-from-env.db")})
    assert result["changed"] is True
    assert (repo / "data" / "online-from-env.db").exists()


def test_the_documentation_names_the_interpreter_it_drives():
    documentation = yaml.safe_load(feast_apply.DOCUMENTATION)
    assert "python" in documentation["options"]
    assert any("Ansible's Python" in line for line in documentation["description"])
    assert Path(feast_apply.__file__).name == "feast_apply.py"
