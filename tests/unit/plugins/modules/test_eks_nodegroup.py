"""argoeks.mlops.eks_nodegroup against moto's in-process EKS, and botocore's Stubber where moto falls short.

moto 5.2.5 answers create/describe/update_nodegroup_config/delete for node groups, but its TagResource and
UntagResource only know clusters (a node group ARN gives ResourceNotFoundException), so tag changes are
tested with the Stubber. moto also omits updateConfig from DescribeNodegroup until an update sets it, which
is exactly the answer community.aws.eks_nodegroup trips over.
"""

import json
from types import SimpleNamespace

import boto3
import pytest
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from moto import mock_aws

from ansible_collections.argoeks.mlops.plugins.modules import eks_nodegroup
from tests.unit.conftest import ModuleFailed

CLUSTER = "argoeks-dev"
NAME = "general"
ARN = f"arn:aws:eks:us-east-1:123456789012:nodegroup/{CLUSTER}/{NAME}/6ec6d7a4-0d2c-4c6b-9b7e-000000000000"
ROLE_ARN = "arn:aws:iam::123456789012:role/argoeks-dev-node"
SUBNETS = ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"]


@pytest.fixture
def eks(aws_env):
    """An IAM role, a VPC with subnets in two AZs and an EKS cluster, all in moto."""
    with mock_aws():
        iam = boto3.client("iam")
        role_arn = iam.create_role(
            RoleName="argoeks-dev-node",
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
                    ],
                }
            ),
        )["Role"]["Arn"]
        ec2 = boto3.client("ec2")
        vpc_id = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=f"us-east-1{az}")["Subnet"][
                "SubnetId"
            ]
            for i, az in ((1, "a"), (2, "b"))
        ]
        client = boto3.client("eks")
        client.create_cluster(name=CLUSTER, roleArn=role_arn, resourcesVpcConfig={"subnetIds": subnets})
        args = {
            "cluster_name": CLUSTER,
            "name": NAME,
            "node_role_arn": role_arn,
            "subnets": subnets,
            "instance_types": ["m5.large"],
            "min_size": 1,
            "desired_size": 2,
            "max_size": 3,
            "labels": {"workload": "general"},
            "taints": [{"key": "dedicated", "value": "ml", "effect": "NO_SCHEDULE"}],
            "tags": {"Project": "argoeks"},
        }
        yield SimpleNamespace(client=client, args=args, subnets=subnets, role_arn=role_arn)


def describe(eks):
    return eks.client.describe_nodegroup(clusterName=CLUSTER, nodegroupName=NAME)["nodegroup"]


def nodegroups(eks):
    return eks.client.list_nodegroups(clusterName=CLUSTER)["nodegroups"]


# ---- moto ------------------------------------------------------------------------------------


def test_creates_node_group(eks, run_module):
    result = run_module(eks_nodegroup, eks.args)

    assert result["changed"] is True
    ng = describe(eks)
    assert ng["scalingConfig"] == {"minSize": 1, "maxSize": 3, "desiredSize": 2}
    assert ng["instanceTypes"] == ["m5.large"]
    assert ng["labels"] == {"workload": "general"}
    assert ng["taints"] == [{"key": "dedicated", "value": "ml", "effect": "NO_SCHEDULE"}]
    assert ng["amiType"] == "AL2023_x86_64_STANDARD"
    assert ng["capacityType"] == "ON_DEMAND"
    assert ng["diskSize"] == 50
    assert ng["nodeRole"] == eks.role_arn
    assert sorted(ng["subnets"]) == sorted(eks.subnets)
    assert ng["tags"] == {"Project": "argoeks"}
    returned = result["nodegroup"]
    assert returned["arn"] == ng["nodegroupArn"]
    assert returned["status"] == "ACTIVE"
    assert returned["scaling"] == {"min_size": 1, "max_size": 3, "desired_size": 2}
    assert returned["cluster_name"] == CLUSTER
    assert returned["labels"] == {"workload": "general"}
    assert returned["tags"] == {"Project": "argoeks"}


def test_second_run_changes_nothing_although_update_config_is_absent(eks, run_module):
    run_module(eks_nodegroup, eks.args)
    assert "updateConfig" not in describe(eks)  # the answer community.aws.eks_nodegroup 10.0.0 fails on
    again = run_module(eks_nodegroup, eks.args, diff=True)
    assert again["changed"] is False
    assert again["diff"]["before"] == again["diff"]["after"]
    assert again["nodegroup"]["max_unavailable"] == 1


def test_check_mode_reports_creation_and_creates_nothing(eks, run_module):
    result = run_module(eks_nodegroup, eks.args, check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["diff"]["before"] == {}
    assert result["diff"]["after"]["scaling"] == {"min_size": 1, "max_size": 3, "desired_size": 2}
    assert result["diff"]["after"]["instance_types"] == ["m5.large"]
    assert nodegroups(eks) == []


def test_check_mode_on_unchanged_node_group_reports_no_change(eks, run_module):
    run_module(eks_nodegroup, eks.args)
    checked = run_module(eks_nodegroup, eks.args, check_mode=True, diff=True)
    assert checked["changed"] is False
    assert checked["diff"]["before"] == checked["diff"]["after"]


def test_scaling_change_is_applied_and_check_mode_leaves_it(eks, run_module):
    run_module(eks_nodegroup, eks.args)
    scaled = dict(eks.args, desired_size=3, max_size=4)

    checked = run_module(eks_nodegroup, scaled, check_mode=True, diff=True)
    assert checked["changed"] is True
    assert checked["diff"]["before"]["scaling"]["desired_size"] == 2
    assert checked["diff"]["after"]["scaling"] == {"min_size": 1, "max_size": 4, "desired_size": 3}
    assert describe(eks)["scalingConfig"] == {"minSize": 1, "maxSize": 3, "desiredSize": 2}

    applied = run_module(eks_nodegroup, scaled)
    assert applied["changed"] is True
    assert describe(eks)["scalingConfig"] == {"minSize": 1, "maxSize": 4, "desiredSize": 3}
    assert applied["nodegroup"]["scaling"] == {"min_size": 1, "max_size": 4, "desired_size": 3}
    assert run_module(eks_nodegroup, scaled)["changed"] is False


def test_omitted_sizes_keep_current_values(eks, run_module):
    run_module(eks_nodegroup, eks.args)
    args = {k: v for k, v in eks.args.items() if k not in ("min_size", "desired_size", "max_size")}
    assert run_module(eks_nodegroup, args)["changed"] is False
    assert run_module(eks_nodegroup, dict(args, max_size=5))["changed"] is True
    assert describe(eks)["scalingConfig"] == {"minSize": 1, "maxSize": 5, "desiredSize": 2}


def test_labels_taints_and_max_unavailable_are_updated_in_place(eks, run_module):
    run_module(eks_nodegroup, eks.args)
    changed = dict(
        eks.args,
        labels={"workload": "ml", "tier": "gpu"},
        taints=[{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_EXECUTE"}],
        max_unavailable=2,
    )
    result = run_module(eks_nodegroup, changed)
    assert result["changed"] is True
    ng = describe(eks)
    assert ng["labels"] == {"workload": "ml", "tier": "gpu"}
    assert ng["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_EXECUTE"}]
    assert ng["updateConfig"] == {"maxUnavailable": 2}
    assert ng["nodegroupArn"] == result["nodegroup"]["arn"]  # the same node group, not a replacement
    assert run_module(eks_nodegroup, changed)["changed"] is False

    cleared = run_module(eks_nodegroup, dict(changed, labels={}, taints=[]))
    assert cleared["changed"] is True
    assert describe(eks)["labels"] == {}
    assert describe(eks)["taints"] == []


def test_immutable_change_fails_and_keeps_the_node_group(eks, run_module):
    run_module(eks_nodegroup, eks.args)
    with pytest.raises(ModuleFailed) as failed:
        run_module(eks_nodegroup, dict(eks.args, instance_types=["m5.xlarge"], desired_size=3))
    msg = failed.value.result["msg"]
    assert "instance_types" in msg
    assert "m5.xlarge" in msg
    assert "must be replaced" in msg
    ng = describe(eks)
    assert ng["instanceTypes"] == ["m5.large"]
    assert ng["scalingConfig"]["desiredSize"] == 2  # nothing else was applied either


def test_every_immutable_difference_is_listed(eks, run_module):
    run_module(eks_nodegroup, eks.args)
    with pytest.raises(ModuleFailed) as failed:
        run_module(eks_nodegroup, dict(eks.args, capacity_type="SPOT", disk_size=100, subnets=eks.subnets[:1]))
    msg = failed.value.result["msg"]
    for option in ("capacity_type", "disk_size", "subnets"):
        assert option in msg
    assert "instance_types" not in msg


def test_subnet_order_does_not_matter(eks, run_module):
    run_module(eks_nodegroup, eks.args)
    assert run_module(eks_nodegroup, dict(eks.args, subnets=eks.subnets[::-1]))["changed"] is False


@pytest.mark.parametrize(
    ("sizes", "named"),
    [
        ({"min_size": 3, "desired_size": 3, "max_size": 2}, ("min_size", "max_size")),
        ({"min_size": 1, "desired_size": 5, "max_size": 3}, ("desired_size", "max_size")),
        ({"min_size": 0, "desired_size": 0, "max_size": 0}, ("max_size",)),
        ({"min_size": -1, "desired_size": 1, "max_size": 2}, ("min_size",)),
    ],
)
def test_invalid_sizes_fail_before_any_aws_call(eks, run_module, monkeypatch, sizes, named):
    def no_client(*args, **kwargs):
        raise AssertionError("AnsibleAWSModule.client was called before the sizes were checked")

    monkeypatch.setattr(AnsibleAWSModule, "client", no_client)
    with pytest.raises(ModuleFailed) as failed:
        run_module(eks_nodegroup, dict(eks.args, **sizes))
    msg = failed.value.result["msg"]
    for option in named:
        assert option in msg
    assert nodegroups(eks) == []


def test_sizes_that_clash_with_current_values_fail_without_change(eks, run_module):
    run_module(eks_nodegroup, eks.args)
    args = {k: v for k, v in eks.args.items() if k not in ("min_size", "desired_size", "max_size")}
    with pytest.raises(ModuleFailed) as failed:
        run_module(eks_nodegroup, dict(args, desired_size=5))
    assert "desired_size (5) must not be greater than max_size (3)" in failed.value.result["msg"]
    assert describe(eks)["scalingConfig"] == {"minSize": 1, "maxSize": 3, "desiredSize": 2}


def test_create_without_role_or_subnets_fails_naming_the_option(eks, run_module):
    for missing in ("node_role_arn", "subnets"):
        args = {k: v for k, v in eks.args.items() if k != missing}
        with pytest.raises(ModuleFailed) as failed:
            run_module(eks_nodegroup, args)
        assert f"{missing} is required to create" in failed.value.result["msg"]
    assert nodegroups(eks) == []


def test_absent_deletes_and_is_idempotent(eks, run_module):
    run_module(eks_nodegroup, eks.args)
    absent = {"cluster_name": CLUSTER, "name": NAME, "state": "absent"}

    checked = run_module(eks_nodegroup, absent, check_mode=True, diff=True)
    assert checked["changed"] is True
    assert checked["diff"]["after"] == {}
    assert nodegroups(eks) == [NAME]

    gone = run_module(eks_nodegroup, absent)
    assert gone["changed"] is True
    assert gone["nodegroup"] == {}
    assert nodegroups(eks) == []
    assert run_module(eks_nodegroup, absent)["changed"] is False


# ---- Stubber ---------------------------------------------------------------------------------


@pytest.fixture
def stubbed(stub_aws, monkeypatch):
    """An EKS client answering from a Stubber; sleeps are recorded, not slept."""
    sleeps = []
    monkeypatch.setattr(eks_nodegroup.time, "sleep", sleeps.append)
    stubber = stub_aws("eks")
    yield SimpleNamespace(stubber=stubber, sleeps=sleeps)
    stubber.assert_no_pending_responses()


def answer(**overrides):
    """A DescribeNodegroup answer without any of the optional fields (updateConfig, labels, taints, tags, diskSize)."""
    nodegroup = {
        "nodegroupName": NAME,
        "nodegroupArn": ARN,
        "clusterName": CLUSTER,
        "status": "ACTIVE",
        "capacityType": "ON_DEMAND",
        "scalingConfig": {"minSize": 1, "maxSize": 3, "desiredSize": 2},
        "instanceTypes": ["m5.large"],
        "subnets": SUBNETS,
        "amiType": "AL2023_x86_64_STANDARD",
        "nodeRole": ROLE_ARN,
    }
    nodegroup.update(overrides)
    return {"nodegroup": nodegroup}


DESCRIBE = {"clusterName": CLUSTER, "nodegroupName": NAME}
ARGS = {
    "cluster_name": CLUSTER,
    "name": NAME,
    "node_role_arn": ROLE_ARN,
    "subnets": SUBNETS,
    "min_size": 1,
    "desired_size": 2,
    "max_size": 3,
}


def test_access_denied_names_cluster_and_node_group(stubbed, run_module):
    stubbed.stubber.add_client_error(
        "describe_nodegroup",
        service_error_code="AccessDeniedException",
        service_message="User is not authorized to perform: eks:DescribeNodegroup",
        http_status_code=403,
        expected_params=DESCRIBE,
    )
    with pytest.raises(ModuleFailed) as failed:
        run_module(eks_nodegroup, ARGS)
    msg = failed.value.result["msg"]
    assert CLUSTER in msg
    assert NAME in msg
    assert "not authorized" in msg


def test_throttling_is_retried(stubbed, run_module):
    stubbed.stubber.add_client_error(
        "describe_nodegroup",
        service_error_code="ThrottlingException",
        service_message="Rate exceeded",
        http_status_code=400,
        expected_params=DESCRIBE,
    )
    stubbed.stubber.add_response("describe_nodegroup", answer(), DESCRIBE)
    stubbed.stubber.add_response("describe_nodegroup", answer(), DESCRIBE)
    result = run_module(eks_nodegroup, ARGS)
    assert result["changed"] is False
    assert len(stubbed.sleeps) == 1  # one back-off between the throttled call and its retry


def test_answer_without_optional_fields_is_read_as_defaults(stubbed, run_module):
    stubbed.stubber.add_response("describe_nodegroup", answer(), DESCRIBE)
    stubbed.stubber.add_response("describe_nodegroup", answer(), DESCRIBE)
    result = run_module(eks_nodegroup, ARGS)
    assert result["changed"] is False
    assert result["nodegroup"]["disk_size"] == 50
    assert result["nodegroup"]["max_unavailable"] == 1
    assert result["nodegroup"]["labels"] == {}
    assert result["nodegroup"]["taints"] == []
    assert result["nodegroup"]["tags"] == {}


def test_create_failed_reports_health_issues(stubbed, run_module):
    issue = "One or more Amazon EC2 Subnets of [subnet-0a1b2c3d4e5f60001] does not automatically assign public IPs"
    stubbed.stubber.add_client_error(
        "describe_nodegroup",
        service_error_code="ResourceNotFoundException",
        service_message=f"No node group found for name: {NAME}.",
        http_status_code=404,
        expected_params=DESCRIBE,
    )
    stubbed.stubber.add_response(
        "create_nodegroup",
        answer(status="CREATING"),
        {
            "clusterName": CLUSTER,
            "nodegroupName": NAME,
            "nodeRole": ROLE_ARN,
            "subnets": SUBNETS,
            "instanceTypes": ["m5.large"],
            "amiType": "AL2023_x86_64_STANDARD",
            "capacityType": "ON_DEMAND",
            "diskSize": 50,
            "scalingConfig": {"minSize": 1, "maxSize": 3, "desiredSize": 2},
            "updateConfig": {"maxUnavailable": 1},
        },
    )
    stubbed.stubber.add_response("describe_nodegroup", answer(status="CREATING"), DESCRIBE)
    stubbed.stubber.add_response(
        "describe_nodegroup",
        answer(
            status="CREATE_FAILED",
            health={
                "issues": [
                    {
                        "code": "Ec2SubnetInvalidConfiguration",
                        "message": issue,
                        "resourceIds": ["subnet-0a1b2c3d4e5f60001"],
                    }
                ]
            },
        ),
        DESCRIBE,
    )
    with pytest.raises(ModuleFailed) as failed:
        run_module(eks_nodegroup, ARGS)
    msg = failed.value.result["msg"]
    assert "CREATE_FAILED" in msg
    assert issue in msg
    assert "Ec2SubnetInvalidConfiguration" in msg
    assert stubbed.sleeps == [eks_nodegroup.POLL_SECONDS]  # waited once while CREATING


def test_tags_are_set_and_purged(stubbed, run_module):
    current = answer(tags={"Project": "old", "stray": "x"})
    stubbed.stubber.add_response("describe_nodegroup", current, DESCRIBE)
    stubbed.stubber.add_response("untag_resource", {}, {"resourceArn": ARN, "tagKeys": ["stray"]})
    stubbed.stubber.add_response("tag_resource", {}, {"resourceArn": ARN, "tags": {"Project": "argoeks"}})
    stubbed.stubber.add_response("describe_nodegroup", answer(tags={"Project": "argoeks"}), DESCRIBE)
    result = run_module(eks_nodegroup, dict(ARGS, tags={"Project": "argoeks"}), diff=True)
    assert result["changed"] is True
    assert result["diff"]["before"]["tags"] == {"Project": "old", "stray": "x"}
    assert result["nodegroup"]["tags"] == {"Project": "argoeks"}


def test_tags_in_check_mode_call_nothing_and_purge_tags_false_keeps_others(stubbed, run_module):
    stubbed.stubber.add_response("describe_nodegroup", answer(tags={"stray": "x"}), DESCRIBE)
    result = run_module(
        eks_nodegroup, dict(ARGS, tags={"Project": "argoeks"}, purge_tags=False), check_mode=True, diff=True
    )
    assert result["changed"] is True
    assert result["diff"]["after"]["tags"] == {"stray": "x", "Project": "argoeks"}
