"""argoeks.mlops.eks_addon against botocore's Stubber: moto 5.2.5 does not implement EKS add-ons.

(moto answers DescribeAddon with HTTP 404 "Not yet implemented", which one test below checks the module explains.)
"""

import datetime

import pytest
from moto import mock_aws

from ansible_collections.argoeks.mlops.plugins.modules import eks_addon
from tests.unit.conftest import ModuleFailed

CLUSTER = "argoeks-dev"
NAME = "aws-ebs-csi-driver"
ARN = f"arn:aws:eks:us-east-1:123456789012:addon/{CLUSTER}/{NAME}/a1b2c3d4-0000-1111-2222-333344445555"
ROLE = "arn:aws:iam::123456789012:role/argoeks-dev-ebs-csi"
KEY = {"clusterName": CLUSTER, "addonName": NAME}
ARGS = {
    "cluster_name": CLUSTER,
    "name": NAME,
    "addon_version": "v1.35.0-eksbuild.1",
    "service_account_role_arn": ROLE,
    "tags": {"Project": "argoeks"},
}


def addon(status="ACTIVE", version="v1.35.0-eksbuild.1", role=ROLE, tags=None, issues=None, config=None):
    described = {
        "addonName": NAME,
        "clusterName": CLUSTER,
        "status": status,
        "addonVersion": version,
        "addonArn": ARN,
        "tags": {"Project": "argoeks"} if tags is None else tags,
        "health": {"issues": issues or []},
        "createdAt": datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC),
    }
    if role is not None:
        described["serviceAccountRoleArn"] = role
    if config is not None:
        described["configurationValues"] = config
    return {"addon": described}


@pytest.fixture
def sleeps(monkeypatch):
    """time.sleep (module polling and AWSRetry back-off) records instead of sleeping."""
    slept = []
    monkeypatch.setattr(eks_addon.time, "sleep", slept.append)
    return slept


@pytest.fixture
def eks(stub_aws, sleeps):
    return stub_aws("eks")


def not_found(eks):
    eks.add_client_error(
        "describe_addon",
        service_error_code="ResourceNotFoundException",
        service_message=f"No addon: {NAME} found in cluster: {CLUSTER}",
        http_status_code=404,
        expected_params=KEY,
    )


def test_creates_the_addon_and_waits_until_active(eks, run_module, sleeps):
    not_found(eks)
    eks.add_response(
        "create_addon",
        addon("CREATING"),
        {
            **KEY,
            "addonVersion": "v1.35.0-eksbuild.1",
            "serviceAccountRoleArn": ROLE,
            "resolveConflicts": "OVERWRITE",
            "tags": {"Project": "argoeks"},
        },
    )
    eks.add_response("describe_addon", addon("CREATING"), KEY)
    eks.add_response("describe_addon", addon("ACTIVE"), KEY)

    result = run_module(eks_addon, ARGS, diff=True)

    eks.assert_no_pending_responses()
    assert result["changed"] is True
    assert result["diff"]["before"] == {}
    assert result["addon"] == {
        "name": NAME,
        "cluster_name": CLUSTER,
        "version": "v1.35.0-eksbuild.1",
        "status": "ACTIVE",
        "service_account_role_arn": ROLE,
        "configuration_values": None,
        "arn": ARN,
        "tags": {"Project": "argoeks"},
    }
    assert sleeps == [eks_addon.POLL_SECONDS]


def test_create_without_version_lets_aws_choose_and_can_skip_waiting(eks, run_module):
    not_found(eks)
    eks.add_response(
        "create_addon",
        addon("CREATING", role=None, tags={}),
        {**KEY, "resolveConflicts": "NONE", "configurationValues": '{"controller": {"replicaCount": 2}}'},
    )
    result = run_module(
        eks_addon,
        {
            "cluster_name": CLUSTER,
            "name": NAME,
            "resolve_conflicts": "NONE",
            "configuration_values": '{"controller": {"replicaCount": 2}}',
            "wait": False,
        },
    )
    eks.assert_no_pending_responses()
    assert result["changed"] is True
    assert result["addon"]["status"] == "CREATING"


def test_matching_addon_changes_nothing(eks, run_module):
    eks.add_response("describe_addon", addon(config='{"controller":{"replicaCount":2}}'), KEY)
    result = run_module(eks_addon, dict(ARGS, configuration_values={"controller": {"replicaCount": 2}}), diff=True)
    eks.assert_no_pending_responses()
    assert result["changed"] is False
    assert result["diff"]["before"] == result["diff"]["after"]
    assert result["addon"]["status"] == "ACTIVE"


def test_empty_options_keep_what_the_addon_has(eks, run_module):
    eks.add_response("describe_addon", addon(version="v1.20.0-eksbuild.1", config='{"a": 1}'), KEY)
    result = run_module(eks_addon, {"cluster_name": CLUSTER, "name": NAME, "addon_version": ""})
    eks.assert_no_pending_responses()
    assert result["changed"] is False
    assert result["addon"]["version"] == "v1.20.0-eksbuild.1"


def test_version_update_is_applied_and_waited_for(eks, run_module, sleeps):
    eks.add_response("describe_addon", addon(version="v1.34.0-eksbuild.1"), KEY)
    eks.add_response(
        "update_addon",
        {"update": {"id": "u-1", "status": "InProgress", "type": "AddonUpdate"}},
        {**KEY, "addonVersion": "v1.35.0-eksbuild.1", "resolveConflicts": "OVERWRITE"},
    )
    eks.add_response("describe_addon", addon("UPDATING", version="v1.34.0-eksbuild.1"), KEY)
    eks.add_response("describe_addon", addon("ACTIVE"), KEY)

    result = run_module(eks_addon, ARGS, diff=True)

    eks.assert_no_pending_responses()
    assert result["changed"] is True
    assert result["diff"]["before"]["version"] == "v1.34.0-eksbuild.1"
    assert result["diff"]["after"]["version"] == "v1.35.0-eksbuild.1"
    assert result["addon"]["status"] == "ACTIVE"
    assert sleeps == [eks_addon.POLL_SECONDS]


def test_role_configuration_and_tags_are_updated(eks, run_module):
    eks.add_response("describe_addon", addon(role=None, tags={"Project": "argoeks", "Stale": "x"}), KEY)
    eks.add_response("untag_resource", {}, {"resourceArn": ARN, "tagKeys": ["Stale"]})
    eks.add_response("tag_resource", {}, {"resourceArn": ARN, "tags": {"Owner": "mlops"}})
    eks.add_response(
        "update_addon",
        {"update": {"id": "u-2", "status": "InProgress", "type": "AddonUpdate"}},
        {
            **KEY,
            "serviceAccountRoleArn": ROLE,
            "configurationValues": '{"node": {"tolerateAllTaints": true}}',
            "resolveConflicts": "PRESERVE",
        },
    )
    eks.add_response(
        "describe_addon",
        addon(tags={"Project": "argoeks", "Owner": "mlops"}, config='{"node": {"tolerateAllTaints": true}}'),
        KEY,
    )
    result = run_module(
        eks_addon,
        dict(
            ARGS,
            tags={"Project": "argoeks", "Owner": "mlops"},
            configuration_values='{"node": {"tolerateAllTaints": true}}',
            resolve_conflicts="PRESERVE",
        ),
    )
    eks.assert_no_pending_responses()
    assert result["changed"] is True
    assert result["addon"]["tags"] == {"Project": "argoeks", "Owner": "mlops"}
    assert result["addon"]["service_account_role_arn"] == ROLE


def test_check_mode_makes_no_write_call(eks, run_module):
    not_found(eks)
    created = run_module(eks_addon, ARGS, check_mode=True, diff=True)
    assert created["changed"] is True
    assert created["diff"]["after"]["version"] == "v1.35.0-eksbuild.1"

    eks.add_response("describe_addon", addon(version="v1.34.0-eksbuild.1", tags={"Stale": "x"}), KEY)
    updated = run_module(eks_addon, ARGS, check_mode=True, diff=True)
    assert updated["changed"] is True
    assert updated["diff"]["before"]["version"] == "v1.34.0-eksbuild.1"
    assert updated["diff"]["after"]["version"] == "v1.35.0-eksbuild.1"
    assert updated["diff"]["after"]["tags"] == {"Project": "argoeks"}

    eks.add_response("describe_addon", addon(), KEY)
    deleted = run_module(eks_addon, {"cluster_name": CLUSTER, "name": NAME, "state": "absent"}, check_mode=True)
    assert deleted["changed"] is True
    # any create/update/tag/delete call would have hit the Stubber with no response queued and failed
    eks.assert_no_pending_responses()


def test_degraded_addon_fails_with_its_health_issues(eks, run_module):
    not_found(eks)
    eks.add_response("create_addon", addon("CREATING"))
    eks.add_response(
        "describe_addon",
        addon(
            "DEGRADED",
            issues=[
                {
                    "code": "InsufficientNumberOfReplicas",
                    "message": "The add-on is unhealthy because it doesn't have the desired number of replicas.",
                    "resourceIds": ["ebs-csi-controller"],
                }
            ],
        ),
        KEY,
    )
    with pytest.raises(ModuleFailed) as failed:
        run_module(eks_addon, ARGS)
    msg = failed.value.result["msg"]
    assert f"EKS add-on {NAME} on cluster {CLUSTER} is DEGRADED" in msg
    assert "InsufficientNumberOfReplicas" in msg
    assert "doesn't have the desired number of replicas" in msg
    assert "ebs-csi-controller" in msg
    eks.assert_no_pending_responses()


def test_access_denied_names_cluster_and_addon(eks, run_module):
    eks.add_client_error(
        "describe_addon",
        service_error_code="AccessDeniedException",
        service_message="User is not authorized to perform: eks:DescribeAddon",
        http_status_code=403,
    )
    with pytest.raises(ModuleFailed) as failed:
        run_module(eks_addon, ARGS)
    msg = failed.value.result["msg"]
    assert CLUSTER in msg
    assert NAME in msg
    assert "AccessDeniedException" in msg


def test_throttling_is_retried(eks, run_module, sleeps):
    eks.add_client_error("describe_addon", service_error_code="ThrottlingException", http_status_code=400)
    eks.add_response("describe_addon", addon(), KEY)
    result = run_module(eks_addon, ARGS)
    eks.assert_no_pending_responses()
    assert result["changed"] is False
    assert len(sleeps) == 1  # one back-off before the second attempt


def test_delete_waits_until_gone_and_is_idempotent(eks, run_module, sleeps):
    absent = {"cluster_name": CLUSTER, "name": NAME, "state": "absent"}
    eks.add_response("describe_addon", addon(), KEY)
    eks.add_response("delete_addon", addon("DELETING"), KEY)
    eks.add_response("describe_addon", addon("DELETING"), KEY)
    not_found(eks)
    result = run_module(eks_addon, absent, diff=True)
    eks.assert_no_pending_responses()
    assert result["changed"] is True
    assert result["addon"] == {}
    assert result["diff"]["before"]["arn"] == ARN
    assert sleeps == [eks_addon.POLL_SECONDS]

    not_found(eks)
    assert run_module(eks_addon, absent)["changed"] is False
    eks.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("code", "status"), [("UnknownOperationException", 404), ("404", 404), ("NotImplemented", 501)]
)
def test_endpoint_without_addon_api_fails_clearly(eks, run_module, code, status):
    eks.add_client_error(
        "describe_addon", service_error_code=code, service_message="Not yet implemented", http_status_code=status
    )
    with pytest.raises(ModuleFailed) as failed:
        run_module(eks_addon, ARGS)
    msg = failed.value.result["msg"]
    assert "does not implement EKS add-ons" in msg
    assert f"EKS add-on {NAME} on cluster {CLUSTER}" in msg


def test_moto_without_addon_api_fails_clearly(aws_env, run_module):
    """The real thing: moto's in-process EKS answers DescribeAddon with a bare 404."""
    with mock_aws(), pytest.raises(ModuleFailed) as failed:
        run_module(eks_addon, ARGS)
    assert "does not implement EKS add-ons" in failed.value.result["msg"]
    assert "Not yet implemented" in failed.value.result["msg"]


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("configuration_values", "{not json", "configuration_values is not valid JSON"),
        ("configuration_values", "[1, 2]", "configuration_values must be a JSON object"),
        ("service_account_role_arn", "argoeks-dev-ebs-csi", "service_account_role_arn must be the ARN of an IAM role"),
        ("wait_timeout", 0, "wait_timeout must be a positive integer"),
    ],
)
def test_bad_options_fail_before_any_call(eks, run_module, option, value, message):
    with pytest.raises(ModuleFailed) as failed:
        run_module(eks_addon, dict(ARGS, **{option: value}))
    assert message in failed.value.result["msg"]
    eks.assert_no_pending_responses()
