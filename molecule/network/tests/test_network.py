"""The VPC the network role made, read back from the AWS emulator."""

import json
import os
from pathlib import Path

import boto3
import pytest

HOME = Path(os.environ.get("ARGOEKS_TEST_HOME", "/tmp/argoeks-molecule"))
CLUSTER_TAG = "kubernetes.io/cluster/molecule-cluster"


@pytest.fixture(scope="module")
def ec2():
    endpoint = f"http://127.0.0.1:{os.environ.get('ARGOEKS_TEST_AWS_PORT', '24598')}"
    return boto3.client(
        "ec2",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


@pytest.fixture(scope="module")
def info():
    return json.loads((HOME / "network_info.json").read_text())


def tags(resource):
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def test_vpc_has_dns_and_the_platform_tags(ec2, info):
    vpc = ec2.describe_vpcs(VpcIds=[info["vpc_id"]])["Vpcs"][0]
    assert vpc["CidrBlock"] == "10.20.0.0/16"
    assert tags(vpc)["Project"] == "argoeks"
    assert ec2.describe_vpc_attribute(VpcId=info["vpc_id"], Attribute="enableDnsHostnames")["EnableDnsHostnames"][
        "Value"
    ]


def test_subnets_span_two_zones_with_load_balancer_and_karpenter_tags(ec2, info):
    public = ec2.describe_subnets(SubnetIds=info["public_subnet_ids"])["Subnets"]
    private = ec2.describe_subnets(SubnetIds=info["private_subnet_ids"])["Subnets"]
    assert sorted(s["AvailabilityZone"] for s in public) == ["us-east-1a", "us-east-1b"]
    assert sorted(s["AvailabilityZone"] for s in private) == ["us-east-1a", "us-east-1b"]
    for subnet in public:
        assert tags(subnet)["kubernetes.io/role/elb"] == "1"
        assert tags(subnet)[CLUSTER_TAG] == "shared"
        assert subnet["MapPublicIpOnLaunch"] is True
    for subnet in private:
        assert tags(subnet)["kubernetes.io/role/internal-elb"] == "1"
        assert tags(subnet)["karpenter.sh/discovery"] == "molecule-cluster"
        assert subnet["MapPublicIpOnLaunch"] is False


def test_one_nat_gateway_per_zone_in_the_public_subnets(ec2, info):
    nats = ec2.describe_nat_gateways(NatGatewayIds=info["nat_gateway_ids"])["NatGateways"]
    assert len(nats) == 2
    assert {n["SubnetId"] for n in nats} == set(info["public_subnet_ids"])


def test_private_subnets_route_to_their_zone_nat_and_public_to_the_igw(ec2, info):
    igw = ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [info["vpc_id"]]}])
    igw_id = igw["InternetGateways"][0]["InternetGatewayId"]
    nat_by_subnet = {
        n["SubnetId"]: n["NatGatewayId"]
        for n in ec2.describe_nat_gateways(NatGatewayIds=info["nat_gateway_ids"])["NatGateways"]
    }
    tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [info["vpc_id"]]}])["RouteTables"]

    def default_route(subnet_id):
        for table in tables:
            if any(a.get("SubnetId") == subnet_id for a in table["Associations"]):
                return next(r for r in table["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0")
        raise AssertionError(f"{subnet_id} has no route table")

    for subnet_id in info["public_subnet_ids"]:
        assert default_route(subnet_id)["GatewayId"] == igw_id
    for index, subnet_id in enumerate(info["private_subnet_ids"]):
        assert default_route(subnet_id)["NatGatewayId"] == nat_by_subnet[info["public_subnet_ids"][index]]
