"""argoeks.mlops.elasticache_replication_group against moto's in-process ElastiCache, and against botocore's
Stubber for what moto does not model (the member clusters' security groups)."""

import boto3
import pytest
from moto import mock_aws

from ansible_collections.argoeks.mlops.plugins.modules import elasticache_replication_group as module
from tests.unit.conftest import ModuleFailed

NAME = "argoeks-dev-feast"
TOKEN = "a" * 20 + "B" * 12
ARGS = {
    "name": NAME,
    "description": "Feast online store",
    "node_type": "cache.t4g.small",
    "engine_version": "7.1",
    "replicas": 1,
    "subnet_group": "argoeks-dev-feast",
    "security_group_ids": ["sg-0123456789abcdef0"],
    "auth_token": TOKEN,
    "snapshot_retention_days": 7,
    "tags": {"Project": "argoeks", "Component": "feast"},
}


@pytest.fixture
def elasticache(aws_env, monkeypatch):
    monkeypatch.setattr(module, "POLL_SECONDS", 0.01)
    with mock_aws():
        client = boto3.client("elasticache", region_name="us-east-1")
        client.create_cache_subnet_group(
            CacheSubnetGroupName="argoeks-dev-feast", CacheSubnetGroupDescription="private", SubnetIds=["subnet-1"]
        )
        yield client


def group(client):
    return client.describe_replication_groups(ReplicationGroupId=NAME)["ReplicationGroups"][0]


def test_creates_an_encrypted_group_with_a_replica_and_failover(elasticache, run_module):
    result = run_module(module, ARGS)
    assert result["changed"] is True
    created = group(elasticache)
    assert created["CacheNodeType"] == "cache.t4g.small"
    assert len(created["MemberClusters"]) == 2
    assert created["AutomaticFailover"] == "enabled" and created["MultiAZ"] == "enabled"
    assert created["AtRestEncryptionEnabled"] and created["TransitEncryptionEnabled"] and created["AuthTokenEnabled"]
    assert created["SnapshotRetentionLimit"] == 7
    state = result["replication_group"]
    assert state["primary_endpoint"]["address"].startswith(f"master.{NAME}.")
    assert state["primary_endpoint"]["port"] == 6379
    assert state["replicas"] == 1 and state["tags"] == ARGS["tags"]
    assert TOKEN not in str(result), "the AUTH token was returned"


def test_a_second_run_changes_nothing(elasticache, run_module):
    run_module(module, ARGS)
    again = run_module(module, ARGS, diff=True)
    assert again["changed"] is False
    assert again["diff"]["before"] == again["diff"]["after"]


def test_check_mode_creates_nothing(elasticache, run_module):
    result = run_module(module, ARGS, check_mode=True)
    assert result["changed"] is True
    assert elasticache.describe_replication_groups()["ReplicationGroups"] == []


def test_changes_what_aws_changes_in_place(elasticache, run_module):
    run_module(module, ARGS)
    changed = dict(ARGS, node_type="cache.t4g.medium", snapshot_retention_days=14, tags={"Project": "argoeks"})
    planned = run_module(module, changed, check_mode=True, diff=True)
    assert planned["changed"] is True
    assert planned["diff"]["after"]["node_type"] == "cache.t4g.medium"
    assert group(elasticache)["CacheNodeType"] == "cache.t4g.small", "check mode changed the group"
    result = run_module(module, changed)
    assert result["changed"] is True
    updated = group(elasticache)
    assert updated["CacheNodeType"] == "cache.t4g.medium" and updated["SnapshotRetentionLimit"] == 14
    tags = elasticache.list_tags_for_resource(ResourceName=updated["ARN"])["TagList"]
    assert tags == [{"Key": "Project", "Value": "argoeks"}]
    assert run_module(module, changed)["changed"] is False


def test_what_cannot_change_in_place_fails_naming_it(elasticache, run_module):
    run_module(module, ARGS)
    with pytest.raises(ModuleFailed) as failed:
        run_module(module, dict(ARGS, transit_encryption=False, auth_token=None))
    assert "cannot change transit_encryption (True -> False) in place" in failed.value.result["msg"]
    assert group(elasticache)["TransitEncryptionEnabled"] is True


def test_deletes_and_a_second_delete_changes_nothing(elasticache, run_module):
    run_module(module, ARGS)
    assert run_module(module, {"name": NAME, "state": "absent"}, check_mode=True)["changed"] is True
    assert group(elasticache)["Status"] == "available"
    assert run_module(module, {"name": NAME, "state": "absent", "wait": False})["changed"] is True
    assert run_module(module, {"name": NAME, "state": "absent", "wait": False})["changed"] is False


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"name": "Bad_Name"}, "name 'Bad_Name' must be 1 to 40 lower-case letters"),
        ({"replicas": 6}, "replicas must be 0 to 5"),
        ({"replicas": 0, "multi_az": True}, "multi_az needs at least one replica"),
        ({"auth_token": "short"}, "auth_token must be 16 to 128 printable characters"),
        ({"transit_encryption": False}, "auth_token needs transit_encryption: true"),
        ({"snapshot_window": "5-6"}, "snapshot_window '5-6' must look like 05:00-06:00"),
    ],
)
def test_bad_settings_fail_before_any_call(elasticache, run_module, args, expected):
    with pytest.raises(ModuleFailed) as failed:
        run_module(module, dict(ARGS, **args))
    assert expected in failed.value.result["msg"]
    assert TOKEN not in failed.value.result["msg"]
    assert elasticache.describe_replication_groups()["ReplicationGroups"] == []


def test_creating_needs_a_node_type(elasticache, run_module):
    with pytest.raises(ModuleFailed) as failed:
        run_module(module, {"name": NAME, "description": "x"})
    assert "creating argoeks-dev-feast needs node_type" in failed.value.result["msg"]


def test_security_groups_are_compared_with_the_primary_cluster(stub_aws, run_module):
    stubber = stub_aws("elasticache")
    described = {
        "ReplicationGroupId": NAME,
        "Description": ARGS["description"],
        "Status": "available",
        "MemberClusters": [f"{NAME}-001", f"{NAME}-002"],
        "NodeGroups": [{"PrimaryEndpoint": {"Address": "master.x", "Port": 6379}}],
        "AutomaticFailover": "enabled",
        "MultiAZ": "enabled",
        "CacheNodeType": "cache.t4g.small",
        "AtRestEncryptionEnabled": True,
        "TransitEncryptionEnabled": True,
        "AuthTokenEnabled": True,
        "SnapshotRetentionLimit": 7,
        "SnapshotWindow": "05:00-06:00",
        "Engine": "redis",
        "ARN": f"arn:aws:elasticache:us-east-1:123456789012:replicationgroup:{NAME}",
    }
    tags = {"TagList": [{"Key": k, "Value": v} for k, v in ARGS["tags"].items()]}
    stubber.add_response(
        "describe_replication_groups", {"ReplicationGroups": [described]}, {"ReplicationGroupId": NAME}
    )
    stubber.add_response("list_tags_for_resource", tags, {"ResourceName": described["ARN"]})
    stubber.add_response(
        "describe_cache_clusters",
        {"CacheClusters": [{"CacheClusterId": f"{NAME}-001", "SecurityGroups": [{"SecurityGroupId": "sg-old"}]}]},
        {"CacheClusterId": f"{NAME}-001"},
    )
    stubber.add_response(
        "modify_replication_group",
        {"ReplicationGroup": described},
        {"ReplicationGroupId": NAME, "ApplyImmediately": True, "SecurityGroupIds": ARGS["security_group_ids"]},
    )
    # Read back after the change.
    stubber.add_response(
        "describe_replication_groups", {"ReplicationGroups": [described]}, {"ReplicationGroupId": NAME}
    )
    stubber.add_response("list_tags_for_resource", tags, {"ResourceName": described["ARN"]})
    result = run_module(module, dict(ARGS, wait=False))
    assert result["changed"] is True
    stubber.assert_no_pending_responses()


def test_a_group_whose_creation_failed_fails_at_once_naming_the_status(stub_aws, run_module):
    """AWS answers create-failed: the module stops polling and says so, instead of waiting out wait_timeout."""
    stubber = stub_aws("elasticache")
    stubber.add_client_error(
        "describe_replication_groups",
        "ReplicationGroupNotFoundFault",
        http_status_code=404,
        expected_params={"ReplicationGroupId": NAME},
    )
    stubber.add_response("create_replication_group", {"ReplicationGroup": {"ReplicationGroupId": NAME}})
    failed_group = {"ReplicationGroupId": NAME, "Status": "create-failed", "MemberClusters": []}
    # One answer only: a second poll would hit the Stubber with nothing queued.
    stubber.add_response(
        "describe_replication_groups", {"ReplicationGroups": [failed_group]}, {"ReplicationGroupId": NAME}
    )
    with pytest.raises(ModuleFailed) as failed:
        run_module(module, dict(ARGS, wait_timeout=1800))
    msg = failed.value.result["msg"]
    assert msg.startswith(f"replication group {NAME} is create-failed instead of available: AWS could not create it")
    assert "describe-events" in msg
    assert failed.value.result["replication_group"]["status"] == "create-failed"
    stubber.assert_no_pending_responses()
