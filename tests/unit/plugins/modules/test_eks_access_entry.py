"""argoeks.mlops.eks_access_entry against botocore's Stubber: moto 5.2.5 has no EKS access entries."""

import pytest

from ansible_collections.argoeks.mlops.plugins.modules import eks_access_entry
from tests.unit.conftest import ModuleFailed

CLUSTER = "dev-mlops-cluster-01"
ROLE = "arn:aws:iam::123456789012:role/dev-mlops-cluster-01-karpenter-node"
ENTRY_ARN = "arn:aws:eks:us-east-1:123456789012:access-entry/dev-mlops-cluster-01/role/123456789012/x/abc"
KEY = {"clusterName": CLUSTER, "principalArn": ROLE}
ARGS = {"cluster_name": CLUSTER, "principal_arn": ROLE, "type": "EC2_LINUX", "tags": {"Project": "argoeks"}}


@pytest.fixture
def eks(stub_aws):
    return stub_aws("eks")


def entry(**overrides):
    found = {
        "clusterName": CLUSTER,
        "principalArn": ROLE,
        "kubernetesGroups": ["system:nodes"],
        "accessEntryArn": ENTRY_ARN,
        "username": "system:node:{{EC2PrivateDNSName}}",
        "type": "EC2_LINUX",
        "tags": {"Project": "argoeks"},
    }
    return {"accessEntry": dict(found, **overrides)}


def not_found(eks):
    eks.add_client_error(
        "describe_access_entry",
        service_error_code="ResourceNotFoundException",
        http_status_code=404,
        expected_params=KEY,
    )


def test_creates_the_node_entry_then_changes_nothing(eks, run_module):
    not_found(eks)
    eks.add_response("create_access_entry", entry(), dict(KEY, type="EC2_LINUX", tags={"Project": "argoeks"}))
    eks.add_response("describe_access_entry", entry(), KEY)
    result = run_module(eks_access_entry, ARGS)
    assert result["changed"] is True
    assert result["access_entry"]["type"] == "EC2_LINUX"
    assert result["access_entry"]["username"] == "system:node:{{EC2PrivateDNSName}}"

    eks.add_response("describe_access_entry", entry(), KEY)
    assert run_module(eks_access_entry, ARGS)["changed"] is False
    eks.assert_no_pending_responses()


def test_check_mode_reports_the_creation_without_making_it(eks, run_module):
    not_found(eks)
    result = run_module(eks_access_entry, ARGS, check_mode=True)
    assert result["changed"] is True
    eks.assert_no_pending_responses()  # no create_access_entry was stubbed: one would have failed


def test_a_different_type_fails_naming_both(eks, run_module):
    eks.add_response("describe_access_entry", entry(type="STANDARD", kubernetesGroups=[]), KEY)
    with pytest.raises(ModuleFailed) as failed:
        run_module(eks_access_entry, ARGS)
    assert "has type STANDARD, not EC2_LINUX" in failed.value.result["msg"]


def test_groups_on_a_node_entry_fail_before_any_call(eks, run_module):
    with pytest.raises(ModuleFailed) as failed:
        run_module(eks_access_entry, dict(ARGS, kubernetes_groups=["system:masters"]))
    assert "kubernetes_groups is not allowed with type EC2_LINUX" in failed.value.result["msg"]
    eks.assert_no_pending_responses()


def test_tags_are_brought_to_the_wanted_ones(eks, run_module):
    eks.add_response("describe_access_entry", entry(tags={"Project": "argoeks", "Old": "x"}), KEY)
    eks.add_response("untag_resource", {}, {"resourceArn": ENTRY_ARN, "tagKeys": ["Old"]})
    result = run_module(eks_access_entry, ARGS)
    assert result["changed"] is True
    assert result["access_entry"]["tags"] == {"Project": "argoeks"}
    eks.assert_no_pending_responses()


def test_absent_deletes_and_a_missing_entry_is_no_change(eks, run_module):
    eks.add_response("describe_access_entry", entry(), KEY)
    eks.add_response("delete_access_entry", {}, KEY)
    assert run_module(eks_access_entry, dict(ARGS, state="absent"))["changed"] is True
    not_found(eks)
    assert run_module(eks_access_entry, dict(ARGS, state="absent"))["changed"] is False
    eks.assert_no_pending_responses()
