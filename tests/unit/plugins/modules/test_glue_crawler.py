"""argoeks.mlops.glue_crawler against moto's in-process Glue (with the emulator's UpdateCrawler), and against
botocore's Stubber for exact requests, crawl states moto does not produce and error paths.

moto 5.2.5 has no UpdateCrawler; the platform's emulator adds it (roles/aws_emulator/files/argoeks_emulator.py)
and these tests use the same handler. moto's crawls only advance when ListCrawls is called, so by default a
started crawler stays RUNNING; the tests that need a crawl to finish on moto set moto's documented
"glue::crawl" state transition to time-based.
"""

import datetime
import importlib.util
import json
from pathlib import Path

import boto3
import pytest
from ansible_collections.amazon.aws.plugins.module_utils import cloud
from ansible_collections.amazon.aws.plugins.module_utils import modules as aws_modules
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from botocore.stub import Stubber
from moto import mock_aws
from moto.glue.responses import GlueResponse
from moto.moto_api import state_manager

from ansible_collections.argoeks.mlops.plugins.modules import glue_crawler
from tests.unit.conftest import ModuleFailed

EMULATOR = Path(__file__).resolve().parents[4] / "roles" / "aws_emulator" / "files" / "argoeks_emulator.py"
_spec = importlib.util.spec_from_file_location("argoeks_emulator", EMULATOR)
argoeks_emulator = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(argoeks_emulator)

ACCOUNT = "123456789012"  # moto's account
NAME = "mlops-dev-bronze"
DB = "mlops_dev"
ROLE = "argoeks-dev-glue-crawler"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ROLE}"
ARN = f"arn:aws:glue:us-east-1:{ACCOUNT}:crawler/{NAME}"
BRONZE = "s3://argoeks-dev-datalake/bronze/"
ARGS = {
    "name": NAME,
    "role": ROLE,
    "database_name": DB,
    "description": "Raw data as it lands",
    "s3_targets": [{"path": BRONZE, "exclusions": ["**/_temporary/**"]}],
    "schedule": "cron(0 2 * * ? *)",
    "schema_change_policy": {"update_behavior": "UPDATE_IN_DATABASE", "delete_behavior": "DEPRECATE_IN_DATABASE"},
    "recrawl_policy": "CRAWL_EVERYTHING",
    "table_prefix": "bronze_",
    "configuration": {"Version": 1.0, "Grouping": {"TableGroupingPolicy": "CombineCompatibleSchemas"}},
    "tags": {"Project": "argoeks", "Layer": "bronze"},
}


# ---- moto ------------------------------------------------------------------------------------
@pytest.fixture
def glue(aws_env, monkeypatch):
    for name, handler in argoeks_emulator.GLUE_HANDLERS.items():
        monkeypatch.setattr(GlueResponse, name, handler, raising=False)
    monkeypatch.setattr(glue_crawler, "POLL_SECONDS", 0.05)
    with mock_aws():
        client = boto3.client("glue", region_name="us-east-1")
        client.create_database(DatabaseInput={"Name": DB})
        yield client


@pytest.fixture
def crawls_finish_after_a_second():
    """moto's crawls finish one second after they start (or are asked to stop)."""
    state_manager.set_transition("glue::crawl", {"progression": "time", "seconds": 1})
    yield
    state_manager.unset_transition("glue::crawl")


def in_aws(client):
    return client.get_crawler(Name=NAME)["Crawler"]


def crawler_names(client):
    return client.list_crawlers()["CrawlerNames"]


def test_creates_the_crawler(glue, run_module):
    result = run_module(glue_crawler, ARGS)

    assert result["changed"] is True
    crawler = in_aws(glue)
    assert crawler["Role"] == ROLE
    assert crawler["DatabaseName"] == DB
    assert crawler["Description"] == "Raw data as it lands"
    assert crawler["Targets"]["S3Targets"] == [{"Path": BRONZE, "Exclusions": ["**/_temporary/**"]}]
    assert crawler["Schedule"]["ScheduleExpression"] == "cron(0 2 * * ? *)"
    assert crawler["SchemaChangePolicy"] == {
        "UpdateBehavior": "UPDATE_IN_DATABASE",
        "DeleteBehavior": "DEPRECATE_IN_DATABASE",
    }
    assert crawler["RecrawlPolicy"] == {"RecrawlBehavior": "CRAWL_EVERYTHING"}
    assert crawler["TablePrefix"] == "bronze_"
    assert json.loads(crawler["Configuration"]) == ARGS["configuration"]
    assert glue.get_tags(ResourceArn=ARN)["Tags"] == {"Project": "argoeks", "Layer": "bronze"}

    reported = result["crawler"]
    assert reported["name"] == NAME
    assert reported["role"] == ROLE
    assert reported["database_name"] == DB
    assert reported["targets"] == {
        "s3_targets": [{"path": BRONZE, "exclusions": ["**/_temporary/**"], "sample_size": None}]
    }
    assert reported["schedule"] == "cron(0 2 * * ? *)"
    assert reported["state"] == "READY"
    assert reported["last_crawl"] == {}
    assert reported["tags"] == {"Project": "argoeks", "Layer": "bronze"}
    assert reported["arn"] == ARN
    assert result["crawl_started"] is False


def test_second_run_changes_nothing(glue, run_module):
    created = run_module(glue_crawler, ARGS)
    again = run_module(glue_crawler, ARGS, diff=True)
    assert again["changed"] is False
    assert again["diff"]["before"] == again["diff"]["after"]
    assert again["crawler"] == created["crawler"]  # what the first run reported is what AWS holds
    assert in_aws(glue)["Version"] == 1  # never updated


def test_check_mode_reports_creation_and_creates_nothing(glue, run_module):
    result = run_module(glue_crawler, dict(ARGS, run=True, wait=True), check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["crawl_started"] is True
    assert result["diff"]["before"] == {}
    after = result["diff"]["after"]
    assert after["schedule"] == "cron(0 2 * * ? *)"
    assert after["tags"] == ARGS["tags"]
    assert after["targets"]["s3_targets"][0]["path"] == BRONZE
    assert crawler_names(glue) == []


def test_schedule_change_updates_only_the_schedule(glue, run_module):
    run_module(glue_crawler, ARGS)
    before = in_aws(glue)
    changed = dict(ARGS, schedule="cron(0 3 * * ? *)")

    checked = run_module(glue_crawler, changed, check_mode=True, diff=True)
    assert checked["changed"] is True
    assert in_aws(glue)["Schedule"]["ScheduleExpression"] == "cron(0 2 * * ? *)"

    result = run_module(glue_crawler, changed, diff=True)
    assert result["changed"] is True
    diff = result["diff"]
    assert {k for k in diff["after"] if diff["after"][k] != diff["before"][k]} == {"schedule"}
    assert diff["after"]["schedule"] == "cron(0 3 * * ? *)"
    after = in_aws(glue)
    assert after["Schedule"]["ScheduleExpression"] == "cron(0 3 * * ? *)"
    assert after["Version"] == 2
    ignored = ("Schedule", "Version", "LastUpdated")
    assert {k: v for k, v in after.items() if k not in ignored} == {k: v for k, v in before.items() if k not in ignored}
    assert checked["crawler"]["schedule"] == result["crawler"]["schedule"]
    assert run_module(glue_crawler, changed)["changed"] is False


def test_schedule_casing_and_spacing_are_no_change(glue, run_module):
    run_module(glue_crawler, ARGS)
    result = run_module(glue_crawler, dict(ARGS, schedule="  CRON( 0  2 * *  ? * ) "))
    assert result["changed"] is False
    assert in_aws(glue)["Version"] == 1


def test_empty_schedule_removes_it(glue, run_module):
    run_module(glue_crawler, ARGS)
    result = run_module(glue_crawler, dict(ARGS, schedule=""))
    assert result["changed"] is True
    assert "Schedule" not in in_aws(glue)
    assert result["crawler"]["schedule"] == ""
    assert run_module(glue_crawler, dict(ARGS, schedule=""))["changed"] is False


def test_target_change_is_applied_and_other_target_kinds_are_kept(glue, run_module):
    jdbc = [{"ConnectionName": "warehouse", "Path": "warehouse/%", "Exclusions": []}]
    glue.create_crawler(
        Name=NAME,
        Role=ROLE,
        DatabaseName=DB,
        Targets={"S3Targets": [{"Path": BRONZE}], "JdbcTargets": jdbc},
    )
    targets = [
        {"path": BRONZE, "exclusions": ["**/_temporary/**", "**.crc"]},
        {"path": "s3://argoeks-dev-datalake/landing/", "sample_size": 10},
    ]
    args = {"name": NAME, "role": ROLE, "s3_targets": targets}

    result = run_module(glue_crawler, args, diff=True)

    assert result["changed"] is True
    crawler = in_aws(glue)
    assert sorted(crawler["Targets"]["S3Targets"], key=lambda t: t["Path"]) == [
        {"Path": BRONZE, "Exclusions": ["**.crc", "**/_temporary/**"]},
        {"Path": "s3://argoeks-dev-datalake/landing/", "Exclusions": [], "SampleSize": 10},
    ]
    assert crawler["Targets"]["JdbcTargets"] == jdbc
    assert result["diff"]["before"]["targets"]["s3_targets"] == [
        {"path": BRONZE, "exclusions": [], "sample_size": None}
    ]
    # the same targets in another order, exclusions too, are no change
    reordered = [dict(targets[1]), dict(targets[0], exclusions=["**.crc", "**/_temporary/**"])]
    assert run_module(glue_crawler, dict(args, s3_targets=reordered))["changed"] is False


def test_role_by_name_or_arn_is_the_same_role(glue, run_module):
    run_module(glue_crawler, ARGS)
    assert run_module(glue_crawler, dict(ARGS, role=ROLE_ARN))["changed"] is False
    assert (
        run_module(glue_crawler, dict(ARGS, role=f"arn:aws:iam::{ACCOUNT}:role/service-role/{ROLE}"))["changed"]
        is False
    )
    assert in_aws(glue)["Version"] == 1

    other = run_module(glue_crawler, dict(ARGS, role="argoeks-dev-glue-other"))
    assert other["changed"] is True
    assert in_aws(glue)["Role"] == "argoeks-dev-glue-other"


def test_configuration_is_compared_as_json(glue, run_module):
    run_module(glue_crawler, ARGS)
    as_text = '{ "Grouping": {"TableGroupingPolicy": "CombineCompatibleSchemas"},  "Version": 1.0 }'
    assert run_module(glue_crawler, dict(ARGS, configuration=as_text))["changed"] is False

    changed = run_module(glue_crawler, dict(ARGS, configuration='{"Version": 1.0}'))
    assert changed["changed"] is True
    assert json.loads(in_aws(glue)["Configuration"]) == {"Version": 1.0}

    removed = run_module(glue_crawler, dict(ARGS, configuration=""))
    assert removed["changed"] is True
    assert not in_aws(glue).get("Configuration")
    assert removed["crawler"]["configuration"] == {}


def test_tags_are_added_and_removed(glue, run_module):
    run_module(glue_crawler, ARGS)

    result = run_module(glue_crawler, dict(ARGS, tags={"Project": "argoeks", "Owner": "data"}), diff=True)
    assert result["changed"] is True
    assert glue.get_tags(ResourceArn=ARN)["Tags"] == {"Project": "argoeks", "Owner": "data"}
    assert result["diff"]["before"]["tags"] == {"Project": "argoeks", "Layer": "bronze"}
    assert result["diff"]["after"]["tags"] == {"Project": "argoeks", "Owner": "data"}
    assert in_aws(glue)["Version"] == 1  # tags are not part of the crawler's definition

    kept = run_module(glue_crawler, dict(ARGS, tags={"CostCenter": "42"}, purge_tags=False))
    assert kept["changed"] is True
    assert glue.get_tags(ResourceArn=ARN)["Tags"] == {"Project": "argoeks", "Owner": "data", "CostCenter": "42"}

    assert run_module(glue_crawler, dict(ARGS, tags={"Project": "argoeks"}), check_mode=True)["changed"] is True
    assert len(glue.get_tags(ResourceArn=ARN)["Tags"]) == 3
    assert run_module(glue_crawler, dict(ARGS, tags={}))["changed"] is True
    assert glue.get_tags(ResourceArn=ARN)["Tags"] == {}


def test_new_folders_only_gets_the_log_only_policy_aws_requires(glue, run_module):
    args = {k: v for k, v in ARGS.items() if k != "schema_change_policy"}
    run_module(glue_crawler, dict(args, recrawl_policy="CRAWL_NEW_FOLDERS_ONLY"))
    crawler = in_aws(glue)
    assert crawler["RecrawlPolicy"] == {"RecrawlBehavior": "CRAWL_NEW_FOLDERS_ONLY"}
    assert crawler["SchemaChangePolicy"] == {"UpdateBehavior": "LOG", "DeleteBehavior": "LOG"}


def test_absent_deletes_and_is_idempotent(glue, run_module):
    run_module(glue_crawler, ARGS)
    absent = {"name": NAME, "state": "absent"}

    checked = run_module(glue_crawler, absent, check_mode=True, diff=True)
    assert checked["changed"] is True
    assert checked["diff"]["before"]["schedule"] == "cron(0 2 * * ? *)"
    assert crawler_names(glue) == [NAME]

    gone = run_module(glue_crawler, absent)
    assert gone["changed"] is True
    assert gone["crawler"] == {}
    assert crawler_names(glue) == []
    assert run_module(glue_crawler, absent)["changed"] is False


def test_run_starts_a_crawl_once(glue, run_module):
    args = dict(ARGS, run=True, wait_timeout=5)  # a wrong update of the running crawler fails fast
    created = run_module(glue_crawler, args)
    assert created["crawl_started"] is True
    assert in_aws(glue)["State"] == "RUNNING"  # moto's crawl does not finish by itself

    # unchanged and it has crawled: nothing to start
    again = run_module(glue_crawler, args)
    assert again["changed"] is False
    assert again["crawl_started"] is False
    assert again["crawler"]["state"] == "RUNNING"


def test_run_on_a_running_crawler_does_not_fail(glue, run_module):
    run_module(glue_crawler, {k: v for k, v in ARGS.items() if k != "tags"})
    glue.start_crawler(Name=NAME)
    result = run_module(
        glue_crawler, {"name": NAME, "role": ROLE, "s3_targets": ARGS["s3_targets"], "run": True, "wait_timeout": 5}
    )
    assert result["changed"] is False
    assert result["crawl_started"] is False
    assert result["crawler"]["state"] == "RUNNING"


def test_update_of_a_running_crawler_times_out_clearly(glue, run_module):
    """The emulator, like AWS, refuses to update a running crawler; the module waits, then says why."""
    run_module(glue_crawler, ARGS)
    glue.start_crawler(Name=NAME)
    with pytest.raises(ModuleFailed) as failed:
        run_module(glue_crawler, dict(ARGS, schedule="cron(0 3 * * ? *)", wait_timeout=1))
    msg = failed.value.result["msg"]
    assert f"waiting for Glue crawler {NAME} to be READY" in msg
    assert "AWS does not update a running crawler" in msg
    assert "it is RUNNING" in msg
    assert in_aws(glue)["Schedule"]["ScheduleExpression"] == "cron(0 2 * * ? *)"


def test_run_and_wait_until_the_crawl_finishes(glue, run_module, crawls_finish_after_a_second):
    run_module(glue_crawler, ARGS)
    glue.start_crawler(Name=NAME)  # a scheduled crawl is running

    result = run_module(glue_crawler, dict(ARGS, schedule="cron(0 3 * * ? *)", run=True, wait=True))

    # the update waited for the running crawl, then the new definition was crawled to the end
    assert result["changed"] is True
    assert result["crawl_started"] is True
    assert result["crawler"]["state"] == "READY"
    assert result["crawler"]["schedule"] == "cron(0 3 * * ? *)"
    assert result["crawler"]["last_crawl"]["status"] == "COMPLETED"  # moto's word for SUCCEEDED
    crawls = glue.list_crawls(CrawlerName=NAME)["Crawls"]
    assert len(crawls) == 2


def test_absent_deletes_a_running_crawler(glue, run_module):
    """moto deletes a running crawler outright (AWS refuses; see the Stubber test of stopping it first)."""
    run_module(glue_crawler, ARGS)
    glue.start_crawler(Name=NAME)
    assert run_module(glue_crawler, {"name": NAME, "state": "absent"})["changed"] is True
    assert crawler_names(glue) == []


# ---- validation --------------------------------------------------------------------------------
@pytest.fixture
def no_aws(aws_env, monkeypatch):
    """Any AWS client the module asks for fails the test: validation must come first."""

    def no_client(*args, **kwargs):
        raise AssertionError("the module asked for an AWS client")

    monkeypatch.setattr(AnsibleAWSModule, "client", no_client)


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("0 2 * * ? *", "schedule must be a cron(...) expression"),
        ("rate(1 day)", "schedule must be a cron(...) expression"),
        ("cron()", "schedule must be a cron(...) expression"),
        ("cron(0 2 * * *)", "schedule must have 6 fields"),
        ("cron(0 2 1 * MON *)", "schedule: one of day-of-month and day-of-week must be '?'"),
    ],
)
def test_bad_schedule_fails_before_any_call(no_aws, run_module, schedule, message):
    with pytest.raises(ModuleFailed) as failed:
        run_module(glue_crawler, dict(ARGS, schedule=schedule))
    assert message in failed.value.result["msg"]
    assert repr(schedule) in failed.value.result["msg"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"s3_targets": [{"path": "/data/bronze/"}]}, "s3_targets[0].path must be an S3 location"),
        ({"s3_targets": [{"path": "s3:/bucket/x"}]}, "s3_targets[0].path must be an S3 location"),
        (
            {"s3_targets": [{"path": BRONZE}, {"path": "https://bucket.s3.amazonaws.com/x"}]},
            "s3_targets[1].path must be an S3 location",
        ),
        ({"s3_targets": [{"path": BRONZE}, {"path": BRONZE}]}, "s3_targets[1].path 's3://argoeks-dev-datalake"),
        ({"s3_targets": []}, "s3_targets must list at least one S3 location"),
        ({"s3_targets": [{"path": BRONZE, "sample_size": 250}]}, "s3_targets[0].sample_size must be between 1 and 249"),
        ({"configuration": "{not json"}, "configuration is not valid JSON"),
        ({"configuration": "[1, 2]"}, "configuration must be a JSON object"),
        ({"role": "arn:aws:iam::123456789012:user/someone"}, "role must be an IAM role name or a role ARN"),
        ({"table_prefix": "x" * 129}, "table_prefix must be at most 128 characters"),
        ({"wait_timeout": 0}, "wait_timeout must be a positive integer"),
        (
            {"recrawl_policy": "CRAWL_NEW_FOLDERS_ONLY"},
            "schema_change_policy must be update_behavior=LOG and delete_behavior=LOG",
        ),
    ],
)
def test_bad_options_fail_before_any_call(no_aws, run_module, override, message):
    with pytest.raises(ModuleFailed) as failed:
        run_module(glue_crawler, dict(ARGS, **override))
    assert message in failed.value.result["msg"]


def test_role_and_targets_are_required_when_present(no_aws, run_module):
    with pytest.raises(ModuleFailed) as failed:
        run_module(glue_crawler, {"name": NAME, "schedule": "cron(0 2 * * ? *)"})
    assert "role" in failed.value.result["msg"]
    assert "s3_targets" in failed.value.result["msg"]


# ---- Stubber -----------------------------------------------------------------------------------
START = datetime.datetime(2026, 11, 26, 2, 0, tzinfo=datetime.UTC)
MINIMAL = {"name": NAME, "role": ROLE, "database_name": DB, "s3_targets": [{"path": BRONZE}]}


def described(state="READY", schedule="cron(0 2 * * ? *)", last_crawl=None, **extra):
    crawler = {
        "Name": NAME,
        "Role": ROLE_ARN,
        "DatabaseName": DB,
        "Targets": {"S3Targets": [{"Path": BRONZE, "Exclusions": []}], "JdbcTargets": []},
        "SchemaChangePolicy": {"UpdateBehavior": "UPDATE_IN_DATABASE", "DeleteBehavior": "DEPRECATE_IN_DATABASE"},
        "RecrawlPolicy": {"RecrawlBehavior": "CRAWL_EVERYTHING"},
        "State": state,
        "Version": 1,
    }
    if schedule:
        crawler["Schedule"] = {"ScheduleExpression": schedule, "State": "SCHEDULED"}
    if last_crawl:
        crawler["LastCrawl"] = last_crawl
    crawler.update(extra)
    return {"Crawler": crawler}


def last_crawl(status, prefix, error=None):
    crawl = {
        "Status": status,
        "LogGroup": "/aws-glue/crawlers",
        "LogStream": NAME,
        "MessagePrefix": prefix,
        "StartTime": START,
    }
    if error:
        crawl["ErrorMessage"] = error
    return crawl


class Clock:
    """time for the module: sleeping moves the clock on instead of waiting."""

    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(glue_crawler, "time", fake)
    return fake


@pytest.fixture
def stubbed(stub_aws, clock):
    return stub_aws("glue")


KEY = {"Name": NAME}


def test_schedule_change_sends_exactly_the_schedule(stubbed, run_module):
    stubbed.add_response("get_crawler", described(), KEY)
    stubbed.add_response("update_crawler", {}, {"Name": NAME, "Schedule": "cron(0 3 * * ? *)"})
    stubbed.add_response("get_crawler", described(schedule="cron(0 3 * * ? *)"), KEY)

    # the role by name matches the ARN AWS reports; targets, policies match: only the schedule differs
    result = run_module(glue_crawler, dict(MINIMAL, schedule="cron(0 3 * * ? *)"), diff=True)

    stubbed.assert_no_pending_responses()
    assert result["changed"] is True
    assert result["diff"]["before"]["schedule"] == "cron(0 2 * * ? *)"
    assert result["diff"]["after"]["schedule"] == "cron(0 3 * * ? *)"


def running_error(stubbed, method="update_crawler"):
    stubbed.add_client_error(
        method,
        service_error_code="CrawlerRunningException",
        service_message=f"Crawler with name {NAME} has already started",
    )


def test_update_waits_for_the_running_crawl_then_applies(stubbed, run_module, clock):
    stubbed.add_response("get_crawler", described("RUNNING"), KEY)
    running_error(stubbed)
    stubbed.add_response("get_crawler", described("RUNNING"), KEY)
    stubbed.add_response("get_crawler", described("READY"), KEY)
    stubbed.add_response("update_crawler", {}, {"Name": NAME, "Schedule": "cron(0 3 * * ? *)"})
    stubbed.add_response("get_crawler", described(schedule="cron(0 3 * * ? *)"), KEY)

    result = run_module(glue_crawler, dict(MINIMAL, schedule="cron(0 3 * * ? *)"))

    stubbed.assert_no_pending_responses()
    assert result["changed"] is True
    assert result["crawler"]["schedule"] == "cron(0 3 * * ? *)"
    assert clock.sleeps == [glue_crawler.POLL_SECONDS] * 2


def test_update_refused_as_running_while_ready_gives_up_at_the_timeout(stubbed, run_module, clock):
    stubbed.add_response("get_crawler", described(), KEY)
    for _ in range(2):
        running_error(stubbed)
        stubbed.add_response("get_crawler", described("READY"), KEY)
    running_error(stubbed)

    with pytest.raises(ModuleFailed) as failed:
        run_module(glue_crawler, dict(MINIMAL, schedule="cron(0 3 * * ? *)", wait_timeout=15))

    stubbed.assert_no_pending_responses()
    assert "Timed out after 15s: AWS still reports Glue crawler" in failed.value.result["msg"]
    assert "AWS does not update a running crawler" in failed.value.result["msg"]


def test_run_and_wait_reports_the_new_crawl(stubbed, run_module, clock):
    stubbed.add_response("get_crawler", described(), KEY)  # never crawled
    stubbed.add_response("start_crawler", {}, KEY)
    stubbed.add_response("get_crawler", described(), KEY)  # not RUNNING yet: still no new crawl
    stubbed.add_response("get_crawler", described("RUNNING"), KEY)
    stubbed.add_response("get_crawler", described(last_crawl=last_crawl("SUCCEEDED", "crawl-1")), KEY)

    result = run_module(glue_crawler, dict(MINIMAL, run=True, wait=True))

    stubbed.assert_no_pending_responses()
    assert result["changed"] is True
    assert result["crawl_started"] is True
    assert result["crawler"]["state"] == "READY"
    assert result["crawler"]["last_crawl"]["status"] == "SUCCEEDED"
    assert result["crawler"]["last_crawl"]["start_time"] == START.isoformat()
    assert clock.sleeps == [glue_crawler.POLL_SECONDS] * 2


def test_wait_does_not_take_the_previous_crawl_for_the_new_one(stubbed, run_module):
    old = last_crawl("SUCCEEDED", "crawl-1")
    stubbed.add_response("get_crawler", described(schedule="cron(0 2 * * ? *)", last_crawl=old), KEY)
    stubbed.add_response("update_crawler", {}, {"Name": NAME, "Schedule": "cron(0 3 * * ? *)"})
    stubbed.add_response("get_crawler", described(schedule="cron(0 3 * * ? *)", last_crawl=old), KEY)
    stubbed.add_response("start_crawler", {}, KEY)
    stubbed.add_response("get_crawler", described(schedule="cron(0 3 * * ? *)", last_crawl=old), KEY)
    new = last_crawl("FAILED", "crawl-2", error="Insufficient Lake Formation permission(s) on mlops_dev")
    stubbed.add_response("get_crawler", described(schedule="cron(0 3 * * ? *)", last_crawl=new), KEY)

    with pytest.raises(ModuleFailed) as failed:
        run_module(glue_crawler, dict(MINIMAL, schedule="cron(0 3 * * ? *)", run=True, wait=True))

    stubbed.assert_no_pending_responses()
    result = failed.value.result
    assert f"The crawl of Glue crawler {NAME} failed" in result["msg"]
    assert "Insufficient Lake Formation permission(s) on mlops_dev" in result["msg"]
    assert "/aws-glue/crawlers" in result["msg"]
    assert result["changed"] is True
    assert result["crawler"]["last_crawl"]["status"] == "FAILED"


def test_wait_times_out_naming_the_state(stubbed, run_module, clock):
    stubbed.add_response("get_crawler", described(), KEY)
    stubbed.add_response("start_crawler", {}, KEY)
    for _ in range(4):
        stubbed.add_response("get_crawler", described("RUNNING"), KEY)

    with pytest.raises(ModuleFailed) as failed:
        run_module(glue_crawler, dict(MINIMAL, run=True, wait=True, wait_timeout=25))

    stubbed.assert_no_pending_responses()
    assert "Timed out after 25s waiting for Glue crawler" in failed.value.result["msg"]
    assert "it is RUNNING" in failed.value.result["msg"]
    assert clock.now == 30  # polled at 0, 10, 20 and 30 s, then gave up


def test_start_race_with_a_scheduled_crawl_does_not_fail(stubbed, run_module):
    stubbed.add_response("get_crawler", described(), KEY)
    running_error(stubbed, "start_crawler")
    stubbed.add_response("get_crawler", described(last_crawl=last_crawl("SUCCEEDED", "crawl-1")), KEY)

    result = run_module(glue_crawler, dict(MINIMAL, run=True, wait=True))

    stubbed.assert_no_pending_responses()
    assert result["crawl_started"] is False
    assert result["crawler"]["last_crawl"]["status"] == "SUCCEEDED"


def test_running_crawler_is_stopped_before_it_is_deleted(stubbed, run_module, clock):
    stubbed.add_response("get_crawler", described("RUNNING"), KEY)
    stubbed.add_client_error(
        "delete_crawler",
        service_error_code="CrawlerRunningException",
        service_message="Crawler is running",
        expected_params=KEY,
    )
    stubbed.add_response("stop_crawler", {}, KEY)
    stubbed.add_response("get_crawler", described("STOPPING"), KEY)
    stubbed.add_response("get_crawler", described("READY"), KEY)
    stubbed.add_response("delete_crawler", {}, KEY)

    result = run_module(glue_crawler, {"name": NAME, "state": "absent"})

    stubbed.assert_no_pending_responses()
    assert result["changed"] is True
    assert clock.sleeps == [glue_crawler.POLL_SECONDS]


def test_new_role_is_retried_until_glue_can_assume_it(stubbed, run_module, clock):
    stubbed.add_client_error("get_crawler", service_error_code="EntityNotFoundException", expected_params=KEY)
    request = {
        "Name": NAME,
        "Role": ROLE,
        "DatabaseName": DB,
        "Targets": {"S3Targets": [{"Path": BRONZE, "Exclusions": []}]},
    }
    stubbed.add_client_error(
        "create_crawler",
        service_error_code="InvalidInputException",
        service_message="Service is unable to assume provided role. Please verify role's TrustPolicy",
        expected_params=request,
    )
    stubbed.add_response("create_crawler", {}, request)
    stubbed.add_response("get_crawler", described(schedule=None, Role=ROLE), KEY)

    result = run_module(glue_crawler, MINIMAL)

    stubbed.assert_no_pending_responses()
    assert result["changed"] is True
    assert result["crawler"]["role"] == ROLE
    assert clock.sleeps == [glue_crawler.POLL_SECONDS]


def test_access_denied_names_the_crawler_and_the_permission(stubbed, run_module):
    stubbed.add_client_error(
        "get_crawler",
        service_error_code="AccessDeniedException",
        service_message="User is not authorized to perform: glue:GetCrawler",
        http_status_code=400,
        expected_params=KEY,
    )
    with pytest.raises(ModuleFailed) as failed:
        run_module(glue_crawler, MINIMAL)
    msg = failed.value.result["msg"]
    assert f"Failed to read Glue crawler {NAME}" in msg
    assert "the credentials in use need glue:GetCrawler" in msg
    assert "AccessDeniedException" in msg
    stubbed.assert_no_pending_responses()


def test_access_denied_on_update_names_update_crawler(stubbed, run_module):
    stubbed.add_response("get_crawler", described(), KEY)
    stubbed.add_client_error(
        "update_crawler",
        service_error_code="AccessDeniedException",
        service_message="User is not authorized to perform: glue:UpdateCrawler",
        http_status_code=400,
    )
    with pytest.raises(ModuleFailed) as failed:
        run_module(glue_crawler, dict(MINIMAL, schedule=""))
    assert f"Failed to update Glue crawler {NAME}" in failed.value.result["msg"]
    assert "glue:UpdateCrawler" in failed.value.result["msg"]
    stubbed.assert_no_pending_responses()


# ---- tags with the STS account -----------------------------------------------------------------
def test_tags_use_the_glue_arn_of_the_account_and_partition(aws_env, monkeypatch, run_module):
    glue = boto3.client("glue", region_name="us-east-1")
    sts = boto3.client("sts", region_name="us-east-1")
    clients = {"glue": glue, "sts": sts}
    monkeypatch.setattr(aws_modules, "boto3_conn", lambda module, conn_type=None, resource=None, **_: clients[resource])
    monkeypatch.setattr(cloud.time, "sleep", lambda seconds: None)
    arn = "arn:aws-cn:glue:us-east-1:210987654321:crawler/" + NAME
    with Stubber(glue) as glue_stub, Stubber(sts) as sts_stub:
        glue_stub.add_response("get_crawler", described(), KEY)
        sts_stub.add_response(
            "get_caller_identity",
            {"Account": "210987654321", "Arn": "arn:aws-cn:iam::210987654321:user/ops", "UserId": "AIDA"},
        )
        glue_stub.add_response("get_tags", {"Tags": {"Project": "argoeks", "Old": "x"}}, {"ResourceArn": arn})
        glue_stub.add_response("untag_resource", {}, {"ResourceArn": arn, "TagsToRemove": ["Old"]})
        glue_stub.add_response("tag_resource", {}, {"ResourceArn": arn, "TagsToAdd": {"Layer": "bronze"}})
        glue_stub.add_response("get_crawler", described(), KEY)
        glue_stub.add_response("get_tags", {"Tags": {"Project": "argoeks", "Layer": "bronze"}}, {"ResourceArn": arn})

        result = run_module(glue_crawler, dict(MINIMAL, tags={"Project": "argoeks", "Layer": "bronze"}))

        glue_stub.assert_no_pending_responses()
        sts_stub.assert_no_pending_responses()
    assert result["changed"] is True
    assert result["crawler"]["arn"] == arn
    assert result["crawler"]["tags"] == {"Project": "argoeks", "Layer": "bronze"}
