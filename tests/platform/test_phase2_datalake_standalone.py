"""Phase 2's data lake on the standalone target: buckets in the durable object store, Glue
definitions in the AWS emulator, and the quality gate that decides what leaves bronze.

One platform for the module (own home and ports): Phase 1, then `phase2.yml --tags datalake`.
"""

import io
import json

import pyarrow.parquet as pq
import pytest

from tests.platform.standalone import Platform, assert_ok
from tests.support import wait_until

pytestmark = pytest.mark.platform

PREFIX = "argoeks-datalake-dev"
LAYERS = ("bronze", "silver", "gold")
HEADER = "user_id,age,country,event_timestamp\n"


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    platform = Platform(tmp_path_factory.mktemp("datalake"))
    yield platform
    platform.stop_everything()


def datalake(platform, *args):
    return platform.run("phase2.yml", "--tags", "datalake", *args)


def ingest(platform, path):
    return platform.run("ingest.yml", "-e", f"datalake_ingest_dataset=users datalake_ingest_file={path}")


def keys(s3, bucket, prefix=""):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


def gold_table(s3):
    body = s3.get_object(Bucket=f"{PREFIX}-gold", Key="users_by_country/part-0.parquet")["Body"].read()
    return pq.read_table(io.BytesIO(body)).to_pydict()


def test_bad_schedule_fails_in_preflight_and_creates_nothing(platform):
    run = platform.run("phase2.yml", "-e", '{"datalake_crawler_schedules": {"bronze": "cron(0 2 * *)"}}')
    assert run.rc != 0
    assert "datalake_crawler_schedules:" in run.output
    assert "accepted: cron() with six fields" in " ".join(run.output.split())
    assert not platform.home.exists()


def test_phase1_then_the_data_lake_from_nothing(platform):
    assert_ok(platform.run(), "phase1.yml")
    run = datalake(platform)
    assert_ok(run, "phase2.yml --tags datalake")
    summary = " ".join(run.output.split())
    assert "users batch" in summary and ": promoted" in summary
    assert "lifecycle transitions (bronze, silver)" in summary, "the skipped features are not named"
    status = platform.ctl("status").stdout
    assert "postgresql" not in status and "mlflow" not in status, "the tag must install the data lake alone"


def test_buckets_are_encrypted_and_gold_is_versioned(platform):
    s3 = platform.client("s3")
    for layer in LAYERS:
        rules = s3.get_bucket_encryption(Bucket=f"{PREFIX}-{layer}")["ServerSideEncryptionConfiguration"]["Rules"]
        assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    versioning = {layer: s3.get_bucket_versioning(Bucket=f"{PREFIX}-{layer}").get("Status") for layer in LAYERS}
    assert versioning == {"bronze": None, "silver": None, "gold": "Enabled"}


def test_lifecycle_expires_bronze_and_keeps_silver_and_gold(platform):
    s3 = platform.client("s3")
    rules = {layer: s3.get_bucket_lifecycle_configuration(Bucket=f"{PREFIX}-{layer}")["Rules"] for layer in LAYERS}
    assert rules["bronze"][0]["Expiration"] == {"Days": 365}
    assert "Expiration" not in rules["silver"][0] and "Expiration" not in rules["gold"][0]
    for layer in LAYERS:
        assert rules[layer][0]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}


def test_glue_database_and_crawlers_with_schedules(platform):
    glue = platform.client("glue")
    assert glue.get_database(Name="mlops_dev")["Database"]["Name"] == "mlops_dev"
    crawlers = {layer: glue.get_crawler(Name=f"{PREFIX}-{layer}")["Crawler"] for layer in LAYERS}
    schedules = {layer: crawler["Schedule"]["ScheduleExpression"] for layer, crawler in crawlers.items()}
    assert schedules == {"bronze": "cron(0 * * * ? *)", "silver": "cron(15 */6 * * ? *)", "gold": "cron(30 2 * * ? *)"}


def test_changing_a_schedule_in_the_inventory_updates_the_crawler(platform):
    schedules = {"bronze": "cron(5 3 * * ? *)", "silver": "", "gold": "cron(30 2 * * ? *)"}
    extra = json.dumps({"datalake_crawler_schedules": schedules})
    run = datalake(platform, "-e", extra)
    assert_ok(run, "phase2.yml with new schedules")
    glue = platform.client("glue")
    assert glue.get_crawler(Name=f"{PREFIX}-bronze")["Crawler"]["Schedule"]["ScheduleExpression"] == "cron(5 3 * * ? *)"
    silver = glue.get_crawler(Name=f"{PREFIX}-silver")["Crawler"]
    assert not silver.get("Schedule", {}).get("ScheduleExpression"), "an empty schedule must remove it"
    assert_ok(datalake(platform), "phase2.yml back to the inventory's schedules")
    assert glue.get_crawler(Name=f"{PREFIX}-bronze")["Crawler"]["Schedule"]["ScheduleExpression"] == "cron(0 * * * ? *)"


def test_sample_batch_reached_silver_and_gold_with_its_report(platform):
    s3 = platform.client("s3")
    [report_key] = keys(s3, f"{PREFIX}-bronze", "_reports/users/")
    report = json.loads(s3.get_object(Bucket=f"{PREFIX}-bronze", Key=report_key)["Body"].read())
    assert report["status"] == "promoted" and report["rows"] == 200 and report["failures"] == []
    assert keys(s3, f"{PREFIX}-silver", "users/") == [f"users/batch={report['batch']}/part-0.parquet"]
    assert sum(gold_table(s3)["users"]) == 200
    assert (platform.home / "data/datalake-reports/users" / f"{report['batch']}.json").exists()


def test_a_batch_with_a_null_key_and_an_out_of_range_age_is_rejected_and_not_promoted(platform, tmp_path):
    s3 = platform.client("s3")
    silver_before = keys(s3, f"{PREFIX}-silver")
    gold_versions_before = s3.list_object_versions(Bucket=f"{PREFIX}-gold", Prefix="users_by_country/")["Versions"]
    bad = tmp_path / "bad.csv"
    rows = ["2001,30,US,2026-11-20T10:00:00Z", ",40,DE,2026-11-20T10:00:00Z", "2003,150,FI,2026-11-20T10:00:00Z"]
    bad.write_text(HEADER + "\n".join(rows) + "\n")

    run = ingest(platform, bad)
    assert run.rc != 0, "a failing batch must fail the run"
    text = " ".join(run.output.split())
    assert "was REJECTED by the quality checks and not promoted to silver" in text
    assert "user_id: not_nullable failed for 1 row(s)" in text
    assert "age: less_than_or_equal_to(120) failed for 1 row(s) (rows 2; values 150)" in text

    assert keys(s3, f"{PREFIX}-silver") == silver_before
    after = s3.list_object_versions(Bucket=f"{PREFIX}-gold", Prefix="users_by_country/")["Versions"]
    assert len(after) == len(gold_versions_before)
    reports = [
        json.loads(s3.get_object(Bucket=f"{PREFIX}-bronze", Key=key)["Body"].read())
        for key in keys(s3, f"{PREFIX}-bronze", "_reports/users/")
    ]
    rejected = [r for r in reports if r["status"] == "rejected"]
    assert len(rejected) == 1 and rejected[0]["silver"] is None
    assert {(f["column"], f["check"]) for f in rejected[0]["failures"]} == {
        ("user_id", "not_nullable"),
        ("age", "less_than_or_equal_to(120)"),
    }

    again = ingest(platform, bad)
    assert again.rc != 0 and "REJECTED" in again.output, "the same bad batch must stay rejected"


def test_a_good_batch_reaches_gold(platform, tmp_path):
    s3 = platform.client("s3")
    good = tmp_path / "good.csv"
    good.write_text(HEADER + "3001,30,US,2026-11-21T10:00:00Z\n3002,41,FI,2026-11-21T11:00:00Z\n")
    run = ingest(platform, good)
    assert_ok(run, "ingest.yml with a good batch")
    assert run.changed > 0
    assert sum(gold_table(s3)["users"]) == 202
    versions = s3.list_object_versions(Bucket=f"{PREFIX}-gold", Prefix="users_by_country/")["Versions"]
    assert len(versions) == 2, "gold keeps the previous aggregate as a version"

    again = ingest(platform, good)
    assert_ok(again, "ingest.yml with the same batch again")
    assert again.changed == 0
    assert "already-promoted" in again.output


def test_restart_keeps_every_layer(platform):
    s3 = platform.client("s3")
    before = {layer: keys(s3, f"{PREFIX}-{layer}") for layer in LAYERS}
    restarted = platform.ctl("restart", "object-store")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    wait_until(platform.healthy, what="services RUNNING after restart")
    wait_until(lambda: _answers(platform), what="S3 answering")
    assert {layer: keys(platform.client("s3"), f"{PREFIX}-{layer}") for layer in LAYERS} == before


def _answers(platform):
    try:
        platform.client("s3").head_bucket(Bucket=f"{PREFIX}-gold")
    except Exception:  # any error means "not answering yet"
        return False
    return True


def test_teardown_removes_glue_and_keeps_the_buckets(platform):
    run = platform.run("teardown.yml", "-e", "state_backend_force_destroy=true", "--tags", "datalake")
    assert_ok(run, "teardown.yml --tags datalake")
    glue = platform.client("glue")
    assert [c for c in glue.get_crawlers()["Crawlers"] if c["Name"].startswith(PREFIX)] == []
    assert "mlops_dev" not in [d["Name"] for d in glue.get_databases()["DatabaseList"]]
    assert keys(platform.client("s3"), f"{PREFIX}-gold"), "teardown deleted the data without being asked"
    assert "set datalake_delete_data=true to delete them" in " ".join(run.output.split())
