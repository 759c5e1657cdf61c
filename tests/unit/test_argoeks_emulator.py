"""The AWS emulator's Glue UpdateCrawler (roles/aws_emulator/files/argoeks_emulator.py), through boto3: in-process
on moto's own crawler data, and once served by the emulator the way the aws_emulator role runs it."""

import importlib.util
import subprocess
import sys

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.budgets.responses import BudgetsResponse
from moto.glue.responses import GlueResponse

from tests.support import ROOT, free_ports, tool_env, wait_until

EMULATOR = ROOT / "roles" / "aws_emulator" / "files" / "argoeks_emulator.py"
_spec = importlib.util.spec_from_file_location("argoeks_emulator", EMULATOR)
argoeks_emulator = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(argoeks_emulator)

NAME = "mlops-dev-bronze"
CREATE = {
    "Name": NAME,
    "Role": "argoeks-dev-glue-crawler",
    "DatabaseName": "mlops_dev",
    "Description": "Raw data as it lands",
    "Targets": {"S3Targets": [{"Path": "s3://argoeks-dev-datalake/bronze/", "Exclusions": []}]},
    "Schedule": "cron(0 2 * * ? *)",
    "TablePrefix": "bronze_",
    "SchemaChangePolicy": {"UpdateBehavior": "UPDATE_IN_DATABASE", "DeleteBehavior": "DEPRECATE_IN_DATABASE"},
    "RecrawlPolicy": {"RecrawlBehavior": "CRAWL_EVERYTHING"},
    "Configuration": '{"Version":1.0}',
}
# What GetCrawler reports that UpdateCrawler changes or that changes by itself
VOLATILE = ("Version", "LastUpdated", "State", "LastCrawl", "CrawlElapsedTime")


@pytest.fixture
def glue(aws_env, monkeypatch):
    for name, handler in argoeks_emulator.GLUE_HANDLERS.items():
        monkeypatch.setattr(GlueResponse, name, handler, raising=False)
    with mock_aws():
        client = boto3.client("glue", region_name="us-east-1")
        client.create_crawler(**CREATE)
        yield client


def crawler(client):
    return client.get_crawler(Name=NAME)["Crawler"]


def stable(described):
    return {k: v for k, v in described.items() if k not in VOLATILE}


def test_update_sets_the_given_members_and_keeps_the_others(glue):
    before = crawler(glue)

    glue.update_crawler(
        Name=NAME,
        Schedule="cron(0 3 * * ? *)",
        Targets={"S3Targets": [{"Path": "s3://argoeks-dev-datalake/landing/", "Exclusions": ["**.crc"]}]},
    )

    after = crawler(glue)
    assert after["Schedule"] == {"ScheduleExpression": "cron(0 3 * * ? *)", "State": "SCHEDULED"}
    assert after["Targets"] == {"S3Targets": [{"Path": "s3://argoeks-dev-datalake/landing/", "Exclusions": ["**.crc"]}]}
    assert after["Version"] == before["Version"] + 1
    assert after["LastUpdated"] >= before["LastUpdated"]
    unchanged = {k: v for k, v in stable(after).items() if k not in ("Schedule", "Targets")}
    assert unchanged == {k: v for k, v in stable(before).items() if k not in ("Schedule", "Targets")}
    assert unchanged["Role"] == "argoeks-dev-glue-crawler"
    assert unchanged["Description"] == "Raw data as it lands"


def test_update_of_every_member_moto_keeps(glue):
    changes = {
        "Role": "arn:aws:iam::123456789012:role/other",
        "DatabaseName": "mlops_prod",
        "Description": "changed",
        "TablePrefix": "raw_",
        "SchemaChangePolicy": {"UpdateBehavior": "LOG", "DeleteBehavior": "LOG"},
        "RecrawlPolicy": {"RecrawlBehavior": "CRAWL_NEW_FOLDERS_ONLY"},
        "Configuration": '{"Version":1.0,"CrawlerOutput":{"Tables":{"AddOrUpdateBehavior":"MergeNewColumns"}}}',
        "Classifiers": ["csv-semicolon"],
        "LineageConfiguration": {"CrawlerLineageSettings": "ENABLE"},
        "CrawlerSecurityConfiguration": "argoeks-glue",
    }
    glue.update_crawler(Name=NAME, **changes)
    after = crawler(glue)
    for member, value in changes.items():
        assert after[member] == value, member


def test_empty_schedule_and_configuration_remove_them(glue):
    glue.update_crawler(Name=NAME, Schedule="", Configuration="")
    after = crawler(glue)
    assert "Schedule" not in after
    assert not after.get("Configuration")
    assert after["TablePrefix"] == "bronze_"


def test_unknown_crawler_is_entity_not_found(glue):
    with pytest.raises(ClientError) as raised:
        glue.update_crawler(Name="nope", Schedule="cron(0 3 * * ? *)")
    assert raised.value.response["Error"]["Code"] == "EntityNotFoundException"
    assert "nope" in raised.value.response["Error"]["Message"]


def test_running_crawler_is_not_updated(glue):
    glue.start_crawler(Name=NAME)  # moto's crawl stays RUNNING until ListCrawls advances it
    with pytest.raises(ClientError) as raised:
        glue.update_crawler(Name=NAME, Schedule="cron(0 3 * * ? *)")
    assert raised.value.response["Error"]["Code"] == "CrawlerRunningException"
    described = crawler(glue)
    assert described["Schedule"]["ScheduleExpression"] == "cron(0 2 * * ? *)"
    assert described["Version"] == 1

    glue.list_crawls(CrawlerName=NAME)  # the crawl completes
    assert crawler(glue)["State"] == "READY"
    glue.update_crawler(Name=NAME, Schedule="cron(0 3 * * ? *)")
    assert crawler(glue)["Schedule"]["ScheduleExpression"] == "cron(0 3 * * ? *)"


def test_install_adds_the_budgets_and_glue_handlers(monkeypatch):
    # Register every attribute with monkeypatch first so that what install() sets is undone afterwards.
    for response_class, handlers in argoeks_emulator.PATCHES.items():
        for name in handlers:
            monkeypatch.setattr(response_class, name, None, raising=False)

    argoeks_emulator.install()

    assert GlueResponse.update_crawler is argoeks_emulator.update_crawler
    assert BudgetsResponse.update_budget is argoeks_emulator.update_budget
    assert set(argoeks_emulator.PATCHES) == {BudgetsResponse, GlueResponse}


def test_served_emulator_answers_update_crawler():
    (port,) = free_ports(1, also_plus=0)
    proc = subprocess.Popen(
        [sys.executable, str(EMULATOR), "-H", "127.0.0.1", "-p", str(port)],
        env=tool_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        glue = boto3.client(
            "glue",
            region_name="us-east-1",
            endpoint_url=f"http://127.0.0.1:{port}",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        wait_until(lambda: answers(glue), timeout=30, what="the AWS emulator")
        glue.create_crawler(**CREATE)
        glue.update_crawler(Name=NAME, Schedule="cron(0 3 * * ? *)")
        assert crawler(glue)["Schedule"]["ScheduleExpression"] == "cron(0 3 * * ? *)"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def answers(client):
    try:
        client.list_crawlers()
    except Exception:  # any error means "not answering yet"
        return False
    return True
