"""argoeks.mlops.eks_cluster against moto's in-process EKS, and botocore's Stubber where moto has no operation.

moto 5.2.5 creates, describes, deletes and tags clusters (with an OIDC issuer) and stores logging and
encryptionConfig as sent, but UpdateClusterVersion, DescribeUpdate and AssociateEncryptionConfig answer
"(404) ... Not yet implemented", and UpdateClusterConfig returns no update and replaces the whole
resourcesVpcConfig; those paths are tested with a stubbed client.
"""

import json

import boto3
import pytest
from botocore.stub import ANY
from moto import mock_aws

from ansible_collections.argoeks.mlops.plugins.modules import eks_cluster
from tests.unit.conftest import ModuleFailed

ALL_LOGS = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
ASSUME_EKS = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "eks.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


# ---- moto ------------------------------------------------------------------------------------
@pytest.fixture
def aws(aws_env):
    """moto with the cluster's IAM role and a VPC with two subnets in different zones."""
    with mock_aws():
        iam = boto3.client("iam")
        role = iam.create_role(RoleName="argoeks-dev-cluster", AssumeRolePolicyDocument=json.dumps(ASSUME_EKS))
        ec2 = boto3.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"us-east-1{zone}")["Subnet"][
                "SubnetId"
            ]
            for i, zone in enumerate("ab")
        ]
        yield {
            "eks": boto3.client("eks"),
            "args": {
                "name": "argoeks-dev",
                "version": "1.31",
                "role_arn": role["Role"]["Arn"],
                "subnets": subnets,
                "endpoint_public_access": True,
                "endpoint_private_access": True,
                "public_access_cidrs": ["203.0.113.0/24"],
                "secrets_kms_key_arn": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                "authentication_mode": "API",
                "tags": {"Project": "argoeks"},
            },
        }


def test_creates_cluster_as_asked(aws, run_module):
    result = run_module(eks_cluster, aws["args"])

    assert result["changed"] is True
    cluster = aws["eks"].describe_cluster(name="argoeks-dev")["cluster"]
    assert cluster["version"] == "1.31"
    assert cluster["roleArn"] == aws["args"]["role_arn"]
    assert cluster["identity"]["oidc"]["issuer"].startswith("https://oidc.eks.us-east-1.amazonaws.com/id/")
    vpc = cluster["resourcesVpcConfig"]
    assert sorted(vpc["subnetIds"]) == sorted(aws["args"]["subnets"])
    assert vpc["endpointPublicAccess"] is True
    assert vpc["endpointPrivateAccess"] is True
    assert vpc["publicAccessCidrs"] == ["203.0.113.0/24"]
    assert cluster["logging"]["clusterLogging"] == [{"types": ALL_LOGS, "enabled": True}]
    assert cluster["encryptionConfig"] == [
        {"resources": ["secrets"], "provider": {"keyArn": aws["args"]["secrets_kms_key_arn"]}}
    ]
    assert cluster["tags"] == {"Project": "argoeks"}

    returned = result["cluster"]
    assert returned["arn"] == cluster["arn"]
    assert returned["oidc_issuer"] == cluster["identity"]["oidc"]["issuer"]
    assert returned["certificate_authority"] == cluster["certificateAuthority"]["data"]
    assert returned["endpoint"] == cluster["endpoint"]
    assert returned["logging"] == ALL_LOGS
    assert returned["secrets_kms_key_arn"] == aws["args"]["secrets_kms_key_arn"]
    assert returned["status"] == "ACTIVE"


def test_second_run_changes_nothing(aws, run_module):
    run_module(eks_cluster, aws["args"])
    again = run_module(eks_cluster, aws["args"], diff=True)
    assert again["changed"] is False
    assert again["diff"]["before"] == again["diff"]["after"]


def test_check_mode_reports_creation_and_creates_nothing(aws, run_module):
    result = run_module(eks_cluster, aws["args"], check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["diff"]["before"] == {}
    assert result["diff"]["after"]["version"] == "1.31"
    assert result["diff"]["after"]["logging"] == ALL_LOGS
    assert aws["eks"].list_clusters()["clusters"] == []


def test_invalid_version_fails_naming_version_and_creates_nothing(aws, run_module):
    with pytest.raises(ModuleFailed) as failed:
        run_module(eks_cluster, dict(aws["args"], version="latest"))
    assert failed.value.result["msg"].startswith("version must be")
    assert "'latest'" in failed.value.result["msg"]
    assert aws["eks"].list_clusters()["clusters"] == []


def test_one_subnet_fails_naming_subnets_and_creates_nothing(aws, run_module):
    with pytest.raises(ModuleFailed) as failed:
        run_module(eks_cluster, dict(aws["args"], subnets=aws["args"]["subnets"][:1]))
    assert "subnets must name at least two subnets" in failed.value.result["msg"]
    assert aws["eks"].list_clusters()["clusters"] == []


def test_create_without_role_fails_naming_role_arn(aws, run_module):
    args = {k: v for k, v in aws["args"].items() if k != "role_arn"}
    with pytest.raises(ModuleFailed) as failed:
        run_module(eks_cluster, args)
    assert "role_arn is required to create" in failed.value.result["msg"]
    assert aws["eks"].list_clusters()["clusters"] == []


def test_subnet_change_fails_and_keeps_the_cluster(aws, run_module):
    run_module(eks_cluster, aws["args"])
    with pytest.raises(ModuleFailed) as failed:
        run_module(eks_cluster, dict(aws["args"], subnets=["subnet-1", "subnet-2"]))
    assert "subnets: cluster has" in failed.value.result["msg"]
    assert "cannot be changed in place" in failed.value.result["msg"]


def test_logging_and_tag_drift_is_repaired(aws, run_module):
    """moto stores UpdateClusterConfig's logging and returns no update id (nothing to wait on)."""
    run_module(eks_cluster, aws["args"])
    aws["eks"].update_cluster_config(
        name="argoeks-dev", logging={"clusterLogging": [{"types": ["scheduler"], "enabled": False}]}
    )
    arn = aws["eks"].describe_cluster(name="argoeks-dev")["cluster"]["arn"]
    aws["eks"].tag_resource(resourceArn=arn, tags={"stray": "x"})

    fixed = run_module(eks_cluster, aws["args"], diff=True)
    assert fixed["changed"] is True
    assert fixed["diff"]["before"]["logging"] == []
    assert fixed["cluster"]["logging"] == ALL_LOGS
    assert fixed["cluster"]["tags"] == {"Project": "argoeks"}
    assert run_module(eks_cluster, aws["args"])["changed"] is False


def test_absent_deletes_and_is_idempotent(aws, run_module):
    run_module(eks_cluster, aws["args"])
    checked = run_module(eks_cluster, {"name": "argoeks-dev", "state": "absent"}, check_mode=True)
    assert checked["changed"] is True
    assert aws["eks"].list_clusters()["clusters"] == ["argoeks-dev"]

    gone = run_module(eks_cluster, {"name": "argoeks-dev", "state": "absent"})
    assert gone["changed"] is True
    assert gone["cluster"] == {}
    assert aws["eks"].list_clusters()["clusters"] == []
    assert run_module(eks_cluster, {"name": "argoeks-dev", "state": "absent"})["changed"] is False


# ---- stubbed client ----------------------------------------------------------------------------
ARGS = {
    "name": "argoeks-dev",
    "version": "1.31",
    "role_arn": "arn:aws:iam::123456789012:role/argoeks-dev-cluster",
    "subnets": ["subnet-a", "subnet-b"],
}
KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def cluster(version="1.31", status="ACTIVE", logging=None, encryption=None, **vpc):
    """A DescribeCluster answer matching ARGS with the module's defaults, changed as asked."""
    answer = {
        "name": "argoeks-dev",
        "arn": "arn:aws:eks:us-east-1:123456789012:cluster/argoeks-dev",
        "version": version,
        "status": status,
        "endpoint": "https://ABCDEF.gr7.us-east-1.eks.amazonaws.com",
        "roleArn": ARGS["role_arn"],
        "certificateAuthority": {"data": "Y2VydA=="},
        "identity": {"oidc": {"issuer": "https://oidc.eks.us-east-1.amazonaws.com/id/ABCDEF"}},
        "resourcesVpcConfig": dict(
            {
                "subnetIds": ["subnet-a", "subnet-b"],
                "securityGroupIds": [],
                "endpointPublicAccess": True,
                "endpointPrivateAccess": True,
                "publicAccessCidrs": ["0.0.0.0/0"],
            },
            **vpc,
        ),
        "logging": {"clusterLogging": logging or [{"types": ALL_LOGS, "enabled": True}]},
        "tags": {},
    }
    if encryption:
        answer["encryptionConfig"] = [{"resources": ["secrets"], "provider": {"keyArn": encryption}}]
    return {"cluster": answer}


def update(status="InProgress", update_type="VersionUpdate", errors=None):
    return {"update": {"id": "u-1", "status": status, "type": update_type, "errors": errors or []}}


@pytest.fixture
def stub(stub_aws, monkeypatch):
    """An eks client answering from a Stubber queue; polling does not sleep."""
    monkeypatch.setattr(eks_cluster.time, "sleep", lambda seconds: None)
    return stub_aws("eks")


def describe(stub, answer):
    stub.add_response("describe_cluster", answer, {"name": "argoeks-dev"})


def test_version_upgrade_waits_for_the_update(stub, run_module):
    describe(stub, cluster("1.31"))
    stub.add_response("update_cluster_version", update(), {"name": "argoeks-dev", "version": "1.32"})
    stub.add_response("describe_update", update(), {"name": "argoeks-dev", "updateId": "u-1"})
    stub.add_response("describe_update", update("Successful"), {"name": "argoeks-dev", "updateId": "u-1"})
    describe(stub, cluster("1.32", status="UPDATING"))
    describe(stub, cluster("1.32"))
    describe(stub, cluster("1.32"))

    result = run_module(eks_cluster, dict(ARGS, version="1.32"), diff=True)
    assert result["changed"] is True
    assert result["diff"]["before"]["version"] == "1.31"
    assert result["cluster"]["version"] == "1.32"
    stub.assert_no_pending_responses()


def test_version_upgrade_in_check_mode_calls_nothing(stub, run_module):
    describe(stub, cluster("1.31"))
    result = run_module(eks_cluster, dict(ARGS, version="1.32"), check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["diff"]["after"]["version"] == "1.32"
    stub.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("current", "wanted", "words"),
    [("1.30", "1.32", "skips minor versions"), ("1.32", "1.31", "cannot downgrade"), ("1.32", "2.0", "skips")],
)
def test_version_jumps_are_refused_naming_version(stub, run_module, current, wanted, words):
    describe(stub, cluster(current))
    with pytest.raises(ModuleFailed) as failed:
        run_module(eks_cluster, dict(ARGS, version=wanted))
    assert failed.value.result["msg"].startswith(f"version {wanted}")
    assert words in failed.value.result["msg"]
    stub.assert_no_pending_responses()


def test_logging_change_sends_enabled_and_disabled_types(stub, run_module):
    describe(stub, cluster())
    wanted = {
        "clusterLogging": [
            {"types": ["api", "audit"], "enabled": True},
            {"types": ["authenticator", "controllerManager", "scheduler"], "enabled": False},
        ]
    }
    stub.add_response(
        "update_cluster_config", update(update_type="LoggingUpdate"), {"name": "argoeks-dev", "logging": wanted}
    )
    stub.add_response(
        "describe_update", update("Successful", "LoggingUpdate"), {"name": "argoeks-dev", "updateId": "u-1"}
    )
    describe(stub, cluster(logging=wanted["clusterLogging"]))
    describe(stub, cluster(logging=wanted["clusterLogging"]))

    result = run_module(eks_cluster, dict(ARGS, logging=["audit", "api"]))
    assert result["changed"] is True
    assert result["cluster"]["logging"] == ["api", "audit"]
    stub.assert_no_pending_responses()


def test_logging_change_in_check_mode_calls_nothing(stub, run_module):
    describe(stub, cluster())
    result = run_module(eks_cluster, dict(ARGS, logging=["audit"]), check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["diff"]["before"]["logging"] == ALL_LOGS
    assert result["diff"]["after"]["logging"] == ["audit"]
    stub.assert_no_pending_responses()


def test_endpoint_change_sends_access_and_cidrs(stub, run_module):
    describe(stub, cluster())
    stub.add_response(
        "update_cluster_config",
        update(update_type="EndpointAccessUpdate"),
        {
            "name": "argoeks-dev",
            "resourcesVpcConfig": {
                "endpointPublicAccess": True,
                "endpointPrivateAccess": True,
                "publicAccessCidrs": ["203.0.113.0/24"],
            },
        },
    )
    stub.add_response("describe_update", update("Successful"), {"name": "argoeks-dev", "updateId": "u-1"})
    describe(stub, cluster(publicAccessCidrs=["203.0.113.0/24"]))
    describe(stub, cluster(publicAccessCidrs=["203.0.113.0/24"]))

    result = run_module(eks_cluster, dict(ARGS, public_access_cidrs=["203.0.113.0/24"]))
    assert result["changed"] is True
    assert result["cluster"]["public_access_cidrs"] == ["203.0.113.0/24"]
    stub.assert_no_pending_responses()


def test_missing_optional_fields_read_as_defaults(stub, run_module):
    """No logging, encryptionConfig, accessConfig, tags or identity in the answer: no KeyError."""
    bare = cluster()
    for field in ("logging", "tags", "identity"):
        del bare["cluster"][field]
    describe(stub, bare)
    result = run_module(eks_cluster, dict(ARGS, logging=[]), check_mode=True)
    assert result["changed"] is False
    assert result["cluster"]["oidc_issuer"] is None
    assert result["cluster"]["secrets_kms_key_arn"] is None
    assert result["cluster"]["authentication_mode"] == "CONFIG_MAP"


def test_encryption_is_associated_when_the_cluster_has_none(stub, run_module):
    describe(stub, cluster())
    stub.add_response(
        "associate_encryption_config",
        update(update_type="AssociateEncryptionConfig"),
        {"clusterName": "argoeks-dev", "encryptionConfig": [{"resources": ["secrets"], "provider": {"keyArn": KEY}}]},
    )
    stub.add_response("describe_update", update("Successful"), {"name": "argoeks-dev", "updateId": "u-1"})
    describe(stub, cluster(encryption=KEY))
    describe(stub, cluster(encryption=KEY))

    result = run_module(eks_cluster, dict(ARGS, secrets_kms_key_arn=KEY))
    assert result["changed"] is True
    assert result["cluster"]["secrets_kms_key_arn"] == KEY
    stub.assert_no_pending_responses()


def test_a_different_encryption_key_is_refused(stub, run_module):
    describe(stub, cluster(encryption=KEY.replace("1234abcd", "99999999")))
    with pytest.raises(ModuleFailed) as failed:
        run_module(eks_cluster, dict(ARGS, secrets_kms_key_arn=KEY))
    assert "secrets_kms_key_arn" in failed.value.result["msg"]
    assert "cannot be changed" in failed.value.result["msg"]
    stub.assert_no_pending_responses()


def test_two_updates_run_one_after_the_other(stub, run_module):
    """With wait=false the module still waits for the first update before starting the second."""
    describe(stub, cluster("1.31"))
    stub.add_response("update_cluster_version", update(), {"name": "argoeks-dev", "version": "1.32"})
    stub.add_response("describe_update", update("Successful"), {"name": "argoeks-dev", "updateId": "u-1"})
    describe(stub, cluster("1.32"))
    stub.add_response(
        "update_cluster_config", update(update_type="LoggingUpdate"), {"name": "argoeks-dev", "logging": ANY}
    )
    describe(stub, cluster("1.32", status="UPDATING"))

    result = run_module(eks_cluster, dict(ARGS, version="1.32", logging=["audit"], wait=False))
    assert result["changed"] is True
    assert result["cluster"]["status"] == "UPDATING"
    stub.assert_no_pending_responses()


def test_access_denied_names_the_cluster(stub, run_module):
    stub.add_client_error("describe_cluster", "AccessDeniedException", "User is not authorized", 403)
    with pytest.raises(ModuleFailed) as failed:
        run_module(eks_cluster, ARGS)
    assert "Failed to describe EKS cluster argoeks-dev" in failed.value.result["msg"]
    assert "not authorized" in failed.value.result["msg"]


def test_throttling_is_retried(stub, run_module):
    stub.add_client_error("describe_cluster", "ThrottlingException", "Rate exceeded", 429)
    stub.add_client_error("describe_cluster", "ThrottlingException", "Rate exceeded", 429)
    describe(stub, cluster())
    describe(stub, cluster())
    result = run_module(eks_cluster, ARGS)
    assert result["changed"] is False
    stub.assert_no_pending_responses()


def test_failed_update_reports_its_errors(stub, run_module):
    describe(stub, cluster("1.31"))
    stub.add_response("update_cluster_version", update(), {"name": "argoeks-dev", "version": "1.32"})
    errors = [
        {"errorCode": "InsufficientFreeAddresses", "errorMessage": "Subnet subnet-a has no free addresses"},
        {"errorCode": "AccessDenied", "errorMessage": "Role cannot be assumed"},
    ]
    stub.add_response("describe_update", update("Failed", errors=errors), {"name": "argoeks-dev", "updateId": "u-1"})
    with pytest.raises(ModuleFailed) as failed:
        run_module(eks_cluster, dict(ARGS, version="1.32"))
    msg = failed.value.result["msg"]
    assert "version upgrade" in msg
    assert "Failed" in msg
    assert "InsufficientFreeAddresses: Subnet subnet-a has no free addresses" in msg
    assert "AccessDenied: Role cannot be assumed" in msg
    stub.assert_no_pending_responses()


def test_failed_creation_reports_health_issues(stub, run_module):
    stub.add_client_error("describe_cluster", "ResourceNotFoundException", "No cluster found", 404)
    stub.add_response("create_cluster", cluster(status="CREATING"))
    failed_cluster = cluster(status="FAILED")
    failed_cluster["cluster"]["health"] = {"issues": [{"code": "IamRoleNotFound", "message": "Role not found"}]}
    describe(stub, failed_cluster)
    with pytest.raises(ModuleFailed) as failed:
        run_module(eks_cluster, ARGS)
    assert "EKS cluster argoeks-dev is FAILED" in failed.value.result["msg"]
    assert "IamRoleNotFound: Role not found" in failed.value.result["msg"]
    stub.assert_no_pending_responses()


def test_create_request_has_every_setting(stub, run_module):
    stub.add_client_error("describe_cluster", "ResourceNotFoundException", "No cluster found", 404)
    stub.add_response(
        "create_cluster",
        cluster(status="CREATING"),
        {
            "name": "argoeks-dev",
            "version": "1.31",
            "roleArn": ARGS["role_arn"],
            "resourcesVpcConfig": {
                "subnetIds": ["subnet-a", "subnet-b"],
                "securityGroupIds": ["sg-1"],
                "endpointPublicAccess": False,
                "endpointPrivateAccess": True,
            },
            "logging": {
                "clusterLogging": [
                    {"types": ["audit"], "enabled": True},
                    {"types": ["api", "authenticator", "controllerManager", "scheduler"], "enabled": False},
                ]
            },
            "encryptionConfig": [{"resources": ["secrets"], "provider": {"keyArn": KEY}}],
            "accessConfig": {"authenticationMode": "API"},
            "tags": {"Project": "argoeks"},
        },
    )
    describe(stub, cluster(status="CREATING"))
    describe(stub, cluster())
    describe(stub, cluster())
    args = dict(
        ARGS,
        security_groups=["sg-1"],
        endpoint_public_access=False,
        logging=["audit"],
        secrets_kms_key_arn=KEY,
        authentication_mode="API",
        tags={"Project": "argoeks"},
    )
    assert run_module(eks_cluster, args)["changed"] is True
    stub.assert_no_pending_responses()


def test_unquoted_yaml_version_gets_a_hint(stub, run_module):
    """version: 1.30 unquoted in YAML reaches the module as "1.3"."""
    describe(stub, cluster("1.30"))
    with pytest.raises(ModuleFailed) as failed:
        run_module(eks_cluster, dict(ARGS, version=1.30))
    assert failed.value.result["msg"].startswith("version 1.3 is older")
    assert "quote the version" in failed.value.result["msg"]


def test_security_groups_are_changed_in_place(stub, run_module):
    describe(stub, cluster())
    stub.add_response(
        "update_cluster_config",
        update(update_type="VpcConfigUpdate"),
        {
            "name": "argoeks-dev",
            "resourcesVpcConfig": {"subnetIds": ["subnet-a", "subnet-b"], "securityGroupIds": ["sg-1"]},
        },
    )
    stub.add_response("describe_update", update("Successful"), {"name": "argoeks-dev", "updateId": "u-1"})
    describe(stub, cluster(securityGroupIds=["sg-1"]))
    describe(stub, cluster(securityGroupIds=["sg-1"]))

    result = run_module(eks_cluster, dict(ARGS, security_groups=["sg-1"]))
    assert result["changed"] is True
    assert result["cluster"]["security_groups"] == ["sg-1"]
    stub.assert_no_pending_responses()
