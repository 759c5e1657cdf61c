"""Phase 1 on the eks target (inventories/dev), with the AWS side answered by the AWS emulator.

The same playbook and roles as against a real account: state backend, VPC, EKS cluster with
IRSA, cost controls. From nothing, again with no change, in check mode, then teardown, after
which nothing of the environment is left. (EKS add-ons are switched off: the emulator has no
add-on API; the eks_addon unit tests cover them.)
"""

import pytest
import yaml

from tests.aws import CREDENTIALS, assert_every_call_is_in_the_iam_policy, aws_emulator
from tests.support import playbook, tool_env

pytestmark = pytest.mark.platform


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    with aws_emulator(tmp_path_factory.mktemp("aws")) as aws:
        yield aws


@pytest.fixture(scope="module")
def dev(emulator, tmp_path_factory):
    endpoint, session = emulator.endpoint, emulator.session
    base = tmp_path_factory.mktemp("eks-contract")
    extra = base / "vars.yml"
    extra.write_text(
        yaml.safe_dump(
            {
                "aws_endpoint_url": endpoint,
                # The AWS emulator has no EKS access entries (gpu_nodes skips them with a line).
                "aws_unsupported_features": ["eks_access_entries"],
                "platform_home": str(base / "home"),
                "eks_cluster_addons": [],
                # No Kubernetes API here: the Kubernetes objects are rendered, not applied.
                "k8s_render_dir": str(base / "rendered"),
            }
        )
    )
    env = tool_env(**CREDENTIALS)

    def run(playbook_name="phase1.yml", *args):
        return playbook(playbook_name, "-i", "inventories/dev", "-e", f"@{extra}", *args, env=env)

    run.rendered = base / "rendered"
    return run, session, endpoint


def assert_ok(run, what):
    assert run.rc == 0 and run.failed == 0, f"{what} failed:\n{run.tail()}"


def test_bad_network_and_budget_input_fails_in_preflight_creating_nothing(dev):
    run, session, endpoint = dev
    result = run(
        "phase1.yml",
        "-e",
        '{"vpc_azs": ["us-east-1a"], "vpc_public_subnets": ["10.0.0.0/20", "10.0.8.0/21"],'
        ' "budget_monthly_limit_usd": 0, "budget_emails": ["ops.example.com"]}',
    )
    assert result.rc != 0
    for problem in (
        "vpc_azs: ['us-east-1a'] has 1 distinct zone(s)",
        "vpc_public_subnets: 10.0.0.0/20 overlaps 10.0.8.0/21",
        "budget_monthly_limit_usd: 0 is out of range",
        "budget_emails: 'ops.example.com' is not an email address",
    ):
        assert problem in result.output, result.tail()
    assert session.client("s3", endpoint_url=endpoint).list_buckets()["Buckets"] == []
    assert session.client("eks", endpoint_url=endpoint).list_clusters()["clusters"] == []


def test_phase1_on_dev_from_nothing(dev):
    run, session, endpoint = dev
    result = run()
    assert_ok(result, "phase1.yml -i inventories/dev")
    assert "EKS cluster:     dev-mlops-cluster-01 1.32" in result.output
    cluster = session.client("eks", endpoint_url=endpoint).describe_cluster(name="dev-mlops-cluster-01")["cluster"]
    assert cluster["status"] == "ACTIVE"
    s3 = session.client("s3", endpoint_url=endpoint)
    assert s3.get_bucket_versioning(Bucket="argoeks-terraform-state")["Status"] == "Enabled"
    assert s3.get_public_access_block(Bucket="argoeks-terraform-state")["PublicAccessBlockConfiguration"][
        "RestrictPublicBuckets"
    ]
    objects = list(yaml.safe_load_all((run.rendered / "platform-base.yaml").read_text()))
    namespaces = sorted(o["metadata"]["name"] for o in objects if o["kind"] == "Namespace")
    assert namespaces == sorted(["monitoring", "mlflow", "feast", "jupyter", "kubeflow", "kserve", "vllm", "rag"])
    accounts = {
        o["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].split(":")[4]
        for o in objects
        if o["kind"] == "ServiceAccount"
    }
    assert accounts == {session.client("sts", endpoint_url=endpoint).get_caller_identity()["Account"]}


def test_phase1_on_dev_again_changes_nothing(dev):
    result = dev[0]()
    assert_ok(result, "second phase1.yml -i inventories/dev")
    assert result.changed == 0, f"changed tasks: {result.changed_tasks()}"


def test_the_cluster_alone_finds_its_subnets_by_their_tags(dev):
    # `--tags eks_cluster` skips the network role: the cluster role looks its subnets up by their tags.
    result = dev[0]("phase1.yml", "--tags", "eks_cluster")
    assert_ok(result, "phase1.yml -i inventories/dev --tags eks_cluster")
    assert result.changed == 0, f"changed tasks: {result.changed_tasks()}"
    assert "Find the cluster's subnets when the network role did not run in this play" in result.output


def test_phase1_on_dev_in_check_mode_changes_nothing(dev):
    result = dev[0]("phase1.yml", "--check", "--diff")
    assert_ok(result, "phase1.yml -i inventories/dev --check --diff")
    assert result.changed == 0, f"changed tasks: {result.changed_tasks()}"


def test_teardown_on_dev_leaves_nothing(dev):
    run, session, endpoint = dev
    result = run("teardown.yml", "-e", "state_backend_force_destroy=true")
    assert_ok(result, "teardown.yml -i inventories/dev")
    client = lambda name: session.client(name, endpoint_url=endpoint)  # noqa: E731
    assert client("eks").list_clusters()["clusters"] == []
    assert client("iam").list_open_id_connect_providers()["OpenIDConnectProviderList"] == []
    assert [v for v in client("ec2").describe_vpcs()["Vpcs"] if v["CidrBlock"] == "10.0.0.0/16"] == []
    assert client("ec2").describe_nat_gateways(Filter=[{"Name": "state", "Values": ["available"]}])["NatGateways"] == []
    assert "argoeks-terraform-state" not in [b["Name"] for b in client("s3").list_buckets()["Buckets"]]
    assert client("dynamodb").list_tables()["TableNames"] == []
    account = client("sts").get_caller_identity()["Account"]
    assert client("budgets").describe_budgets(AccountId=account).get("Budgets", []) == []
    assert not (run.rendered / "platform-base.yaml").exists()


def test_every_aws_call_of_the_run_is_in_the_documented_iam_policy(emulator):
    assert_every_call_is_in_the_iam_policy(emulator)
