"""argoeks.mlops.dynamodb_table against moto's in-process DynamoDB."""

import boto3
import pytest
from moto import mock_aws

from ansible_collections.argoeks.mlops.plugins.modules import dynamodb_table
from tests.unit.conftest import ModuleFailed

LOCK_TABLE = {
    "name": "argoeks-terraform-locks",
    "hash_key_name": "LockID",
    "hash_key_type": "S",
    "billing_mode": "PAY_PER_REQUEST",
    "sse_enabled": True,
    "point_in_time_recovery": True,
    "tags": {"Project": "argoeks", "Environment": "dev"},
}


@pytest.fixture
def dynamodb(aws_env):
    with mock_aws():
        yield boto3.client("dynamodb")


def test_creates_lock_table_as_terraform_needs_it(dynamodb, run_module):
    result = run_module(dynamodb_table, LOCK_TABLE)

    assert result["changed"] is True
    table = dynamodb.describe_table(TableName="argoeks-terraform-locks")["Table"]
    assert table["KeySchema"] == [{"AttributeName": "LockID", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "LockID", "AttributeType": "S"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSEDescription"]["Status"] == "ENABLED"
    backups = dynamodb.describe_continuous_backups(TableName="argoeks-terraform-locks")
    assert backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == (
        "ENABLED"
    )
    tags = dynamodb.list_tags_of_resource(ResourceArn=table["TableArn"])["Tags"]
    assert {t["Key"]: t["Value"] for t in tags} == LOCK_TABLE["tags"]
    assert result["table"]["arn"] == table["TableArn"]
    assert result["table"]["point_in_time_recovery"] is True


def test_second_run_changes_nothing(dynamodb, run_module):
    run_module(dynamodb_table, LOCK_TABLE)
    again = run_module(dynamodb_table, LOCK_TABLE)
    assert again["changed"] is False
    assert again["diff"]["before"] == again["diff"]["after"]


def test_check_mode_reports_creation_and_creates_nothing(dynamodb, run_module):
    result = run_module(dynamodb_table, LOCK_TABLE, check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["diff"]["before"] == {}
    assert result["diff"]["after"]["hash_key_name"] == "LockID"
    assert dynamodb.list_tables()["TableNames"] == []


def test_drift_is_repaired_and_reported(dynamodb, run_module):
    run_module(dynamodb_table, LOCK_TABLE)
    dynamodb.update_continuous_backups(
        TableName="argoeks-terraform-locks",
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": False},
    )
    arn = dynamodb.describe_table(TableName="argoeks-terraform-locks")["Table"]["TableArn"]
    dynamodb.tag_resource(ResourceArn=arn, Tags=[{"Key": "stray", "Value": "x"}])

    checked = run_module(dynamodb_table, LOCK_TABLE, check_mode=True, diff=True)
    assert checked["changed"] is True
    assert checked["diff"]["before"]["point_in_time_recovery"] is False
    assert checked["diff"]["after"]["point_in_time_recovery"] is True
    # check mode left the drift in place
    backups = dynamodb.describe_continuous_backups(TableName="argoeks-terraform-locks")
    assert backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == (
        "DISABLED"
    )

    fixed = run_module(dynamodb_table, LOCK_TABLE)
    assert fixed["changed"] is True
    assert fixed["table"]["point_in_time_recovery"] is True
    assert fixed["table"]["tags"] == LOCK_TABLE["tags"]
    assert run_module(dynamodb_table, LOCK_TABLE)["changed"] is False


def test_billing_mode_change_is_applied(dynamodb, run_module):
    run_module(dynamodb_table, LOCK_TABLE)
    provisioned = dict(LOCK_TABLE, billing_mode="PROVISIONED", read_capacity=2, write_capacity=3)
    result = run_module(dynamodb_table, provisioned)
    assert result["changed"] is True
    table = dynamodb.describe_table(TableName="argoeks-terraform-locks")["Table"]
    assert table["ProvisionedThroughput"]["ReadCapacityUnits"] == 2
    assert table["ProvisionedThroughput"]["WriteCapacityUnits"] == 3
    assert run_module(dynamodb_table, provisioned)["changed"] is False


def test_key_schema_change_fails_and_keeps_the_table(dynamodb, run_module):
    run_module(dynamodb_table, LOCK_TABLE)
    with pytest.raises(ModuleFailed) as failed:
        run_module(dynamodb_table, dict(LOCK_TABLE, hash_key_name="Id"))
    assert "hash_key_name" in failed.value.result["msg"]
    assert "cannot be changed" in failed.value.result["msg"]
    assert dynamodb.describe_table(TableName="argoeks-terraform-locks")["Table"]["KeySchema"][0]["AttributeName"] == (
        "LockID"
    )


def test_create_without_hash_key_fails_with_the_option_name(dynamodb, run_module):
    with pytest.raises(ModuleFailed) as failed:
        run_module(dynamodb_table, {"name": "t"})
    assert "hash_key_name is required" in failed.value.result["msg"]
    assert dynamodb.list_tables()["TableNames"] == []


def test_bad_capacity_fails_before_any_call(dynamodb, run_module):
    with pytest.raises(ModuleFailed) as failed:
        run_module(dynamodb_table, dict(LOCK_TABLE, billing_mode="PROVISIONED", read_capacity=0))
    assert "read_capacity must be a positive integer" in failed.value.result["msg"]
    assert dynamodb.list_tables()["TableNames"] == []


def test_absent_deletes_and_is_idempotent(dynamodb, run_module):
    run_module(dynamodb_table, LOCK_TABLE)
    checked = run_module(dynamodb_table, {"name": LOCK_TABLE["name"], "state": "absent"}, check_mode=True)
    assert checked["changed"] is True
    assert dynamodb.list_tables()["TableNames"] == ["argoeks-terraform-locks"]

    gone = run_module(dynamodb_table, {"name": LOCK_TABLE["name"], "state": "absent"})
    assert gone["changed"] is True
    assert dynamodb.list_tables()["TableNames"] == []
    assert run_module(dynamodb_table, {"name": LOCK_TABLE["name"], "state": "absent"})["changed"] is False
