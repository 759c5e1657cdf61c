"""Phase 2 Week 5 (Feast) on the standalone target, as a user sees it.

On the Phase 2 platform the Phase 2 modules share (tests/platform/conftest.py), after the JupyterHub module.
A bad setting fails in preflight and changes nothing; the bring-up materialised the sample's last day into
Redis, and phase2.yml limited to what Feast needs (`--tags postgresql,feast`: the registry's database server
and the feature store) changes nothing on a second run. Online features
for known users come back from the feature server and from the SDK; a historical retrieval joins point in time
within the TTL; the roadmap's `feast materialize-incremental $(date +%Y-%m-%d)` works in the deployed
repository; a rerun and check mode change nothing; a TTL change in the repository is reported as exactly that
change; a broken definition fails with Feast's message and leaves the registry as it was; Redis keeps its data
across a restart; the metrics are scraped; teardown keeps the data unless asked.
"""

import csv
import json
import re
import shutil
import subprocess
import urllib.request

import pytest
import yaml

from tests.platform.standalone import assert_ok
from tests.support import ROOT, read_env_file, wait_until

pytestmark = pytest.mark.platform

TAGS = "postgresql,feast"
BUCKET = "argoeks-feast-offline-dev"
EXAMPLE_REPO = ROOT / "roles" / "feast" / "files" / "feature_repo"
USERS = {
    int(row["user_id"]): {"age": int(row["age"]), "country": row["country"]}
    for row in csv.DictReader((ROOT / "roles" / "datalake" / "files" / "sample" / "users.csv").open())
}
KNOWN = [1001, 1010, 1200]

ONLINE = """\
import json, sys
from feast import FeatureStore
store = FeatureStore(repo_path=sys.argv[1])
rows = [{"user_id": int(u)} for u in sys.argv[2:]]
features = ["user_features:age", "user_features:country"]
print(json.dumps(store.get_online_features(features=features, entity_rows=rows).to_dict()))
"""

# Reads user 1010's two offline rows, then asks for its features at four moments: before any row, an hour
# after the older row, 25 hours after it (beyond the 1-day TTL, before the newer row) and after the newer row.
HISTORICAL = """\
import json, sys
import pandas as pd
from feast import FeatureStore
store = FeatureStore(repo_path=sys.argv[1])
source = store.get_data_source("user_features_source")
offline = pd.read_parquet(source.path, storage_options={"client_kwargs": {"endpoint_url": source.s3_endpoint_override}})
rows = offline[offline.user_id == 1010].sort_values("event_timestamp")
old, new = rows.event_timestamp.iloc[0], rows.event_timestamp.iloc[1]
hour = pd.Timedelta(hours=1)
moments = {"before": old - hour, "after_old": old + hour, "beyond_ttl": old + 25 * hour, "after_new": new + hour}
entity_df = pd.DataFrame({"user_id": [1010] * 4, "event_timestamp": list(moments.values())})
features = ["user_features:age", "user_features:country"]
joined = store.get_historical_features(entity_df=entity_df, features=features).to_df()
found = {}
for name, moment in moments.items():
    match = joined[joined.event_timestamp == moment]
    if match.empty or pd.isna(match.age.iloc[0]):
        found[name] = None
    else:
        found[name] = {"age": int(match.age.iloc[0]), "country": match.country.iloc[0]}
print(json.dumps({"rows": rows[["age", "country"]].to_dict("records"), "found": found, "offline_rows": len(offline)}))
"""

REGISTRY = """\
import json, sys
from feast import FeatureStore
store = FeatureStore(repo_path=sys.argv[1])
views = {v.name: v.ttl.total_seconds() for v in store.list_feature_views(allow_cache=False)}
print(json.dumps({"views": views, "entities": sorted(e.name for e in store.list_entities(allow_cache=False))}))
"""


@pytest.fixture(scope="module")
def platform(shared_platform):
    return shared_platform


def feast_play(platform, *args, timed=None):
    return platform.run("phase2.yml", "--tags", TAGS, *args, timed=timed)


def repo(platform):
    return platform.home / "feast" / "feature_repo"


def feast_env(platform):
    return read_env_file(platform.home / "feast" / "feast.env")


def python(platform, script, *args):
    """A script with the Feast virtualenv's python, with the platform's feast.env loaded (as the README says)."""
    proc = subprocess.run(
        [str(platform.home / "venvs" / "feast" / "bin" / "python"), "-c", script, str(repo(platform)), *map(str, args)],
        env=feast_env(platform) | {"PATH": "/usr/bin:/bin", "HOME": str(platform.base)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def server(platform, path="", body=None):
    url = f"http://127.0.0.1:{platform.vars['feast_server_port']}{path}"
    assert url.startswith("http://127.0.0.1:"), url
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback http only (asserted)
        return response.status, response.read().decode()


def online_from_server(platform, users):
    _, text = server(
        platform,
        "/get-online-features",
        {"features": ["user_features:age", "user_features:country"], "entities": {"user_id": users}},
    )
    answer = json.loads(text)
    columns = {
        name: result["values"]
        for name, result in zip(answer["metadata"]["feature_names"], answer["results"], strict=True)
    }
    return {u: {"age": columns["age"][i], "country": columns["country"][i]} for i, u in enumerate(columns["user_id"])}


def changed_repo(tmp_path, old, new=None, append=""):
    copy = tmp_path / "feature_repo"
    shutil.copytree(EXAMPLE_REPO, copy)
    definitions = copy / "features.py"
    text = definitions.read_text()
    if new is not None:
        assert old in text
        text = text.replace(old, new)
    definitions.write_text(text + append)
    return copy


def diff_block(output):
    """The feast_apply plan printed by --diff: its heading, then one line per object and per changed property."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("registry of Feast project"))
    block = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith(("+ ", "~ ", "- ", "    ")):
            break
        block.append(line)
    return block


# --- bring-up ------------------------------------------------------------------------------------
def test_a_bad_online_store_fails_in_preflight_changing_nothing(platform):
    before = platform.footprint()
    result = platform.run("phase2.yml", "-e", "feast_online_store=memcached")
    assert result.rc != 0
    assert "feast_online_store: 'memcached'" in result.output and "redis" in result.output
    assert result.changed == 0, f"changed tasks: {result.changed_tasks()}"
    assert platform.footprint() == before


def test_the_bring_up_materialised_the_sample_and_a_rerun_of_feasts_tags_changes_nothing(platform):
    assert "feast: materialised 200 row(s)" in " ".join(platform.bring_up.output.split()), (
        "the sample's rows of the last day reach Redis"
    )
    result = feast_play(platform, timed=f"phase2 {TAGS} (rerun)")
    assert_ok(result, f"phase2.yml --tags {TAGS}")
    assert result.changed == 0, f"changed tasks: {result.changed_tasks()}"
    summary = " ".join(result.output.split())
    assert f"Feast server: http://127.0.0.1:{platform.vars['feast_server_port']} (project mlops_dev)" in summary
    assert f"offline s3://{BUCKET}/" in summary
    assert "feast: materialised 0 row(s)" in summary, "the watermark is kept: nothing new to materialise"
    for service in ("feast-redis", "feast-server", "postgresql"):
        assert platform.running([service]), f"{platform.ctl('status').stdout}\n{platform.log_tail(service)}"


def test_the_repository_is_deployed_with_no_secret_in_it(platform):
    deployed = repo(platform)
    assert (deployed / "features.py").read_text() == (EXAMPLE_REPO / "features.py").read_text()
    store = yaml.safe_load((deployed / "feature_store.yaml").read_text())
    assert store["project"] == "mlops_dev"
    registry = store["registry"]
    assert registry["registry_type"] == "sql" and registry["path"].startswith("postgresql+psycopg://feast@127.0.0.1:")
    assert store["online_store"]["type"] == "redis"
    assert store["online_store"]["connection_string"].endswith("password=${ARGOEKS_FEAST_REDIS_PASSWORD}")
    env_file = platform.home / "feast" / "feast.env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    settings = feast_env(platform)
    assert settings["ARGOEKS_FEAST_USER_FEATURES"] == f"s3://{BUCKET}/user_features.parquet"
    assert settings["PGPASSFILE"] == str(platform.home / "feast" / "pgpass"), "the registry's password is in a file"
    assert (platform.home / "feast" / "pgpass").stat().st_mode & 0o777 == 0o600


def test_offline_data_is_parquet_in_the_durable_object_store(platform):
    s3 = platform.client("s3")
    head = s3.head_object(Bucket=BUCKET, Key="user_features.parquet")
    assert head["ContentLength"] > 0
    assert s3.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"


# --- reading features ----------------------------------------------------------------------------
def test_online_features_for_known_users_from_the_feature_server(platform):
    status, _ = server(platform, "/health")
    assert status == 200
    found = online_from_server(platform, [*KNOWN, 99999])
    for user in KNOWN:
        assert found[user] == USERS[user], user
    assert found[99999] == {"age": None, "country": None}


def test_online_features_for_known_users_from_the_sdk(platform):
    answer = python(platform, ONLINE, *KNOWN)
    assert answer["user_id"] == KNOWN
    assert answer["age"] == [USERS[u]["age"] for u in KNOWN]
    assert answer["country"] == [USERS[u]["country"] for u in KNOWN]


def test_historical_retrieval_joins_point_in_time_within_the_ttl(platform):
    answer = python(platform, HISTORICAL)
    assert answer["offline_rows"] == 220  # 200 users, 20 of them also with a row 30 hours older
    older, newer = answer["rows"]
    assert newer == USERS[1010] and older == {"age": USERS[1010]["age"] - 1, "country": USERS[1010]["country"]}
    found = answer["found"]
    assert found["after_old"] == older, "the row in force then is the older one"
    assert found["after_new"] == newer
    assert found["before"] is None, "nothing was known before the first row"
    assert found["beyond_ttl"] is None, "the older row is past the 1-day TTL there"


def test_the_roadmaps_materialize_incremental_works_in_the_deployed_repository(platform):
    env = platform.home / "feast" / "feast.env"
    script = (
        f"set -a; . {env}; set +a; . {platform.home}/venvs/feast/bin/activate; cd {repo(platform)} && "
        "feast materialize-incremental $(date +%Y-%m-%d)"
    )
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    printed = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout)  # Feast colours its output
    assert "Materializing 1 feature views to" in printed and "into the redis online store" in printed, printed


# Idempotence and check mode of this role: test_phase2_serving_standalone.py reruns site.yml, and runs it
# in check mode, on the whole platform (every service keeps its process).


# --- changing the repository -----------------------------------------------------------------------
def test_a_ttl_change_in_the_repository_is_reported_as_exactly_that_change(platform, tmp_path):
    two_days = changed_repo(tmp_path, "ttl=timedelta(days=1)", "ttl=timedelta(days=2)")
    result = platform.run("phase2.yml", "--tags", "feast", "--diff", "-e", f"feast_feature_repo={two_days}")
    assert_ok(result, "phase2.yml with a 2-day TTL")
    assert diff_block(result.output) == [
        "registry of Feast project mlops_dev:",
        "~ feature view user_features",
        "    ttl: 86400s -> 172800s",
    ]
    assert python(platform, REGISTRY)["views"] == {"user_features": 172800.0}


def test_a_broken_definition_fails_with_feasts_message_and_leaves_the_registry(platform, tmp_path):
    before = python(platform, REGISTRY)
    duplicate = (
        "\n\nuser_features_copy = FeatureView(name='user_features', entities=[user], ttl=timedelta(days=7),\n"
        "                                 schema=[Field(name='age', dtype=Int64)], source=user_source)\n"
    )
    broken = changed_repo(tmp_path, "", append=duplicate)
    result = platform.run("phase2.yml", "--tags", "feast", "-e", f"feast_feature_repo={broken}")
    assert result.rc != 0
    text = " ".join(result.output.split())
    assert "ConflictingFeatureViewNames: Multiple FeatureViews with name 'user_features' found" in text
    assert "Nothing was applied: the registry is as it was." in text
    assert python(platform, REGISTRY) == before
    found = online_from_server(platform, KNOWN)
    assert all(found[u] == USERS[u] for u in KNOWN), "the feature server kept serving"


def test_the_example_repository_again_reverts_the_ttl(platform):
    result = platform.run("phase2.yml", "--tags", "feast", "--diff")
    assert_ok(result, "phase2.yml with the example repository")
    assert diff_block(result.output)[1:] == ["~ feature view user_features", "    ttl: 172800s -> 86400s"]
    assert python(platform, REGISTRY)["views"] == {"user_features": 86400.0}


# --- operations ----------------------------------------------------------------------------------
def test_the_feature_servers_metrics_are_scraped(platform):
    metrics_url = f"http://127.0.0.1:{platform.vars['feast_metrics_port']}/metrics"
    with urllib.request.urlopen(metrics_url, timeout=30) as response:
        assert "feast_feature_server" in response.read().decode()
    targets = yaml.safe_load((platform.home / "observability" / "targets" / "feast.yml").read_text())
    assert targets[0]["targets"] == [f"127.0.0.1:{platform.vars['feast_metrics_port']}"]

    def feast_target_up():
        targets_url = platform.url("prometheus", "/api/v1/targets")
        assert targets_url.startswith("http://127.0.0.1:"), targets_url
        with urllib.request.urlopen(targets_url, timeout=10) as response:  # noqa: S310 - loopback http only (asserted)
            active = json.loads(response.read())["data"]["activeTargets"]
        return any(t["labels"].get("job") == "feast" and t["health"] == "up" for t in active)

    wait_until(feast_target_up, timeout=120, interval=3, what="Prometheus scraping the feast target")


def test_redis_keeps_the_features_across_a_restart(platform):
    assert (platform.home / "data" / "redis" / "appendonlydir").is_dir()
    restarted = platform.ctl("restart", "feast-redis", "feast-server")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr

    def serving():
        try:
            return server(platform, "/health")[0] == 200
        except OSError:
            return False

    wait_until(serving, timeout=120, what="the feature server after the restart")
    found = online_from_server(platform, KNOWN)
    assert all(found[u] == USERS[u] for u in KNOWN), found


def test_the_benchmark_runs(platform):
    proc = subprocess.run(
        [
            str(platform.home / "venvs" / "feast" / "bin" / "python"),
            str(ROOT / "benchmarks" / "feast_online.py"),
            "--url",
            f"http://127.0.0.1:{platform.vars['feast_server_port']}",
            "--repo",
            str(repo(platform)),
            "--iterations",
            "20",
            "--warmup",
            "2",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(proc.stdout)["results"]
    assert {(r["path"], r["entities"]) for r in results} == {("http", 1), ("http", 100), ("sdk", 1), ("sdk", 100)}
    assert all(r["requests"] == 20 and 0 < r["p50_ms"] <= r["p99_ms"] for r in results)


def test_no_password_is_printed(platform):
    secrets = platform.home / "secrets"
    passwords = [
        json.loads((secrets / "feast.json").read_text())["redis_password"],
        json.loads((secrets / "postgresql-db-feast.json").read_text())["password"],
    ]
    for output in platform.outputs:
        for password in passwords:
            assert password not in output


# --- teardown ------------------------------------------------------------------------------------
def test_teardown_keeps_the_data_and_a_later_bring_up_serves_it_again(platform):
    result = platform.run("teardown.yml", "--tags", "feast")
    assert_ok(result, "teardown.yml --tags feast")
    assert "set feast_delete_data=true to delete them" in " ".join(result.output.split())
    status = platform.ctl("status").stdout
    assert "feast-server" not in status and "feast-redis" not in status
    assert not (platform.home / "feast").exists() and not (platform.home / "venvs" / "feast").exists()
    assert (platform.home / "data" / "redis" / "appendonlydir").is_dir()
    assert BUCKET in [b["Name"] for b in platform.client("s3").list_buckets()["Buckets"]]

    again = feast_play(platform, timed="phase2 postgresql,feast (after teardown)")
    assert_ok(again, "phase2.yml after teardown")
    assert "feast: materialised 0 row(s)" in " ".join(again.output.split()), "the registry and its watermark were kept"
    found = online_from_server(platform, KNOWN)
    assert all(found[u] == USERS[u] for u in KNOWN), "Redis' data was kept"


def test_teardown_with_delete_data_removes_the_registry_the_offline_data_and_redis_data(platform):
    result = platform.run("teardown.yml", "--tags", "feast", "-e", "feast_delete_data=true")
    assert_ok(result, "teardown.yml --tags feast -e feast_delete_data=true")
    assert not (platform.home / "data" / "redis").exists()
    assert not (platform.home / "secrets" / "postgresql-db-feast.json").exists()
    assert BUCKET not in [b["Name"] for b in platform.client("s3").list_buckets()["Buckets"]]
