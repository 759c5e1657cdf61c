"""The cluster eks_cluster made, read back from the AWS emulator; the cleanup play then deletes it."""

import json
import os
from pathlib import Path

import boto3
import pytest
import yaml

CLUSTER = "molecule-cluster"
HOME = Path(os.environ.get("ARGOEKS_TEST_HOME", "/tmp/argoeks-molecule"))


@pytest.fixture(scope="module")
def aws():
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
    endpoint = f"http://127.0.0.1:{os.environ.get('ARGOEKS_TEST_AWS_PORT', '24598')}"
    return {n: session.client(n, endpoint_url=endpoint) for n in ("eks", "iam", "kms", "logs")}


@pytest.fixture(scope="module")
def cluster(aws):
    return aws["eks"].describe_cluster(name=CLUSTER)["cluster"]


def test_cluster_is_active_with_version_logging_and_endpoint_access(cluster):
    assert cluster["status"] == "ACTIVE"
    assert cluster["version"] == "1.32"
    vpc = cluster["resourcesVpcConfig"]
    assert vpc["endpointPublicAccess"] is True
    assert vpc["endpointPrivateAccess"] is True
    assert vpc["publicAccessCidrs"] == ["203.0.113.0/24"]
    assert len(vpc["subnetIds"]) == 4
    enabled = [t for setup in cluster["logging"]["clusterLogging"] if setup["enabled"] for t in setup["types"]]
    assert sorted(enabled) == ["api", "audit", "authenticator", "controllerManager", "scheduler"]


def test_control_plane_logs_expire(aws):
    groups = aws["logs"].describe_log_groups(logGroupNamePrefix=f"/aws/eks/{CLUSTER}/cluster")["logGroups"]
    assert [(g["logGroupName"], g["retentionInDays"]) for g in groups] == [(f"/aws/eks/{CLUSTER}/cluster", 30)]


def test_secrets_are_envelope_encrypted_with_the_created_key(cluster, aws):
    key = aws["kms"].describe_key(KeyId=f"alias/{CLUSTER}-secrets")["KeyMetadata"]
    assert cluster["encryptionConfig"] == [{"resources": ["secrets"], "provider": {"keyArn": key["Arn"]}}]


def test_oidc_provider_matches_the_issuer_with_sts_audience_and_thumbprint(cluster, aws):
    issuer = cluster["identity"]["oidc"]["issuer"]
    arns = [p["Arn"] for p in aws["iam"].list_open_id_connect_providers()["OpenIDConnectProviderList"]]
    match = [a for a in arns if a.endswith(issuer.removeprefix("https://"))]
    assert len(match) == 1
    provider = aws["iam"].get_open_id_connect_provider(OpenIDConnectProviderArn=match[0])
    assert provider["ClientIDList"] == ["sts.amazonaws.com"]
    assert provider["ThumbprintList"] == ["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"]


def test_system_node_group_sizes_and_labels(aws):
    nodegroup = aws["eks"].describe_nodegroup(clusterName=CLUSTER, nodegroupName="system")["nodegroup"]
    assert nodegroup["scalingConfig"] == {"minSize": 2, "maxSize": 4, "desiredSize": 2}
    assert nodegroup["instanceTypes"] == ["m5.large"]
    assert nodegroup["labels"] == {"workload": "system"}
    assert nodegroup["nodeRole"].endswith(f":role/{CLUSTER}-node")


def test_irsa_role_trusts_only_its_service_account(cluster, aws):
    issuer = cluster["identity"]["oidc"]["issuer"].removeprefix("https://")
    role = aws["iam"].get_role(RoleName=f"{CLUSTER}-mlflow")["Role"]
    document = role["AssumeRolePolicyDocument"]
    if isinstance(document, str):
        document = json.loads(document)
    (statement,) = document["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"]["Federated"].endswith(f"oidc-provider/{issuer}")
    assert statement["Condition"]["StringEquals"] == {
        f"{issuer}:sub": "system:serviceaccount:mlflow:mlflow-tracking",
        f"{issuer}:aud": "sts.amazonaws.com",
    }
    attached = aws["iam"].list_attached_role_policies(RoleName=f"{CLUSTER}-mlflow")["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == ["arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"]


def test_kubeconfig_points_at_the_cluster_and_uses_aws_eks_get_token(cluster):
    path = HOME / "kube" / f"{CLUSTER}.kubeconfig"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    config = yaml.safe_load(path.read_text())
    assert config["clusters"][0]["cluster"]["server"] == cluster["endpoint"]
    assert config["users"][0]["user"]["exec"]["command"] == "aws"
    assert "get-token" in config["users"][0]["user"]["exec"]["args"]
