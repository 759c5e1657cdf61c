"""The GPU node pool on the eks target (inventories/dev), with the AWS side answered by the AWS emulator.

A GPU setting that is wrong fails in preflight before anything exists. Phase 1's network, cluster and Kubernetes
ground come first (only those roles); then phase3.yml --tags gpu_nodes makes the node role, the interruption queue
with its EventBridge rules and the Karpenter controller's IRSA role (least privilege), and renders the
EC2NodeClass and the GPU NodePool, which Karpenter's published v1 schemas accept (and which they would refuse if
wrong), and the values of the Karpenter, NVIDIA device plugin and DCGM exporter releases. Again with no change, in
check mode, then the gpu_test pod renders; teardown removes everything the role made. Every AWS call is allowed
by the documented IAM policy. (The emulator has no EKS access entries: that step is skipped here, and
eks_access_entry is unit-tested.)
"""

import json

import pytest
import yaml

from tests.aws import CREDENTIALS, assert_every_call_is_in_the_iam_policy, aws_emulator
from tests.k8s import crd_models
from tests.support import playbook, tool_env

pytestmark = pytest.mark.platform

PHASE1_ROLES = "network,eks_cluster,k8s_platform_base"
CLUSTER = "dev-mlops-cluster-01"
NODE_ROLE = f"{CLUSTER}-karpenter-node"
CONTROLLER_ROLE = f"{CLUSTER}-karpenter"
QUEUE = f"{CLUSTER}-karpenter"
RULES = {f"{QUEUE}-{name}" for name in ("scheduled-change", "spot-interruption", "rebalance", "instance-state-change")}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    with aws_emulator(tmp_path_factory.mktemp("aws")) as aws:
        yield aws


@pytest.fixture(scope="module")
def dev(emulator, tmp_path_factory):
    base = tmp_path_factory.mktemp("eks-gpu")
    extra = base / "vars.yml"
    extra.write_text(
        yaml.safe_dump(
            {
                "aws_endpoint_url": emulator.endpoint,
                "platform_home": str(base / "home"),
                "eks_cluster_addons": [],
                # No Kubernetes API here: the Kubernetes objects are rendered, not applied.
                "k8s_render_dir": str(base / "rendered"),
                "aws_unsupported_features": ["eks_access_entries"],
            }
        )
    )
    env = tool_env(**CREDENTIALS)

    def run(playbook_name="phase3.yml", *args):
        return playbook(playbook_name, "-i", "inventories/dev", "-e", f"@{extra}", *args, env=env)

    run.rendered = base / "rendered"
    return run


def assert_ok(run, what):
    assert run.rc == 0 and run.failed == 0, f"{what} failed:\n{run.tail()}"


def role_names(emulator):
    return {role["RoleName"] for role in emulator.client("iam").list_roles()["Roles"]}


def rendered(dev):
    return [o for o in yaml.safe_load_all((dev.rendered / "gpu-nodes.yaml").read_text()) if o]


def test_bad_gpu_settings_fail_in_preflight_creating_nothing(dev, emulator):
    result = dev("phase3.yml", "-e", '{"gpu_nodes_instance_types": ["m5.large"], "gpu_nodes_gpu_count": 0}')
    assert result.rc != 0
    assert "gpu_nodes_instance_types: 'm5.large' is not of an NVIDIA GPU instance family" in result.output, (
        result.tail()
    )
    assert "gpu_nodes_gpu_count: 0 is out of range" in result.output, result.tail()
    assert emulator.client("sqs").list_queues().get("QueueUrls", []) == []
    assert NODE_ROLE not in role_names(emulator)


def test_phase1_ground_then_the_gpu_pool(dev):
    assert_ok(dev("phase1.yml", "--tags", PHASE1_ROLES), "phase1.yml (network, cluster, Kubernetes ground)")
    result = dev("phase3.yml", "--tags", "gpu_nodes")
    assert_ok(result, "phase3.yml --tags gpu_nodes")
    words = " ".join(result.output.split())  # the YAML callback folds long messages
    assert f"access entry of {NODE_ROLE} skipped: the AWS endpoint" in words, result.tail()
    assert "GPU node pool: NodePool gpu (g5.xlarge, on-demand)" in words, result.tail()


def test_node_role_is_an_ec2_role_with_the_node_policies(emulator):
    iam = emulator.client("iam")
    trust = iam.get_role(RoleName=NODE_ROLE)["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    attached = {p["PolicyName"] for p in iam.list_attached_role_policies(RoleName=NODE_ROLE)["AttachedPolicies"]}
    assert attached == {
        "AmazonEKSWorkerNodePolicy",
        "AmazonEKS_CNI_Policy",
        "AmazonEC2ContainerRegistryReadOnly",
        "AmazonSSMManagedInstanceCore",
    }


def test_interruption_events_reach_an_encrypted_queue_only_eventbridge_may_send_to(emulator):
    sqs, events = emulator.client("sqs"), emulator.client("events")
    url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["MessageRetentionPeriod"] == "300"
    assert attributes["KmsMasterKeyId"] == "alias/aws/sqs"
    statements = {s["Sid"]: s for s in json.loads(attributes["Policy"])["Statement"]}
    assert statements["EventBridgeDelivers"]["Action"] == "sqs:SendMessage"
    assert "events.amazonaws.com" in statements["EventBridgeDelivers"]["Principal"]["Service"]
    assert statements["DenyHTTP"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    rules = {r["Name"]: r for r in events.list_rules(NamePrefix=QUEUE)["Rules"]}
    assert set(rules) == RULES
    for name in RULES:
        (target,) = events.list_targets_by_rule(Rule=name)["Targets"]
        assert target["Arn"] == attributes["QueueArn"]
    assert json.loads(rules[f"{QUEUE}-spot-interruption"]["EventPattern"])["detail-type"] == [
        "EC2 Spot Instance Interruption Warning"
    ]


def test_controller_role_is_assumed_by_karpenter_alone_and_is_scoped(emulator):
    iam = emulator.client("iam")
    role = iam.get_role(RoleName=CONTROLLER_ROLE)["Role"]
    assert "system:serviceaccount:kube-system:karpenter" in json.dumps(role["AssumeRolePolicyDocument"])
    (name,) = iam.list_role_policies(RoleName=CONTROLLER_ROLE)["PolicyNames"]
    statements = iam.get_role_policy(RoleName=CONTROLLER_ROLE, PolicyName=name)["PolicyDocument"]["Statement"]
    by_sid = {s["Sid"]: s for s in statements}
    for statement in statements:
        actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        assert all("*" not in action for action in actions), statement
    # Writes only on what carries this cluster's tag; the node role is the only role it may pass.
    for sid in ("AllowScopedEC2InstanceActionsWithTags", "AllowScopedDeletion", "AllowScopedInstanceProfileActions"):
        assert f"kubernetes.io/cluster/{CLUSTER}" in json.dumps(by_sid[sid]["Condition"]), sid
    assert by_sid["AllowPassingInstanceRole"]["Resource"].endswith(f":role/{NODE_ROLE}")
    assert by_sid["AllowInterruptionQueueActions"]["Resource"].endswith(f":{QUEUE}")
    unscoped = {s["Sid"] for s in statements if s["Resource"] == "*" and "Condition" not in s}
    assert unscoped == {"AllowPricingReadActions"}


def test_nodepool_and_nodeclass_pass_karpenters_v1_schemas(dev):
    objects = rendered(dev)
    assert {(o["apiVersion"], o["kind"]) for o in objects} == {
        ("karpenter.sh/v1", "NodePool"),
        ("karpenter.k8s.aws/v1", "EC2NodeClass"),
    }
    assert crd_models.problems(objects) == []
    pool = next(o for o in objects if o["kind"] == "NodePool")["spec"]
    requirements = {r["key"]: r for r in pool["template"]["spec"]["requirements"]}
    assert requirements["node.kubernetes.io/instance-type"]["values"] == ["g5.xlarge"]
    assert requirements["karpenter.sh/capacity-type"]["values"] == ["on-demand"]
    assert pool["template"]["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]
    assert pool["limits"]["nvidia.com/gpu"] == "4"
    node_class = next(o for o in objects if o["kind"] == "EC2NodeClass")["spec"]
    assert node_class["role"] == NODE_ROLE
    assert node_class["metadataOptions"]["httpTokens"] == "required"


def test_the_schemas_refuse_what_karpenter_would_refuse(dev):
    """The same objects with one mistake each: the validator is not a rubber stamp."""
    pool, node_class = sorted(rendered(dev), key=lambda o: o["kind"] != "NodePool")
    pool["spec"]["template"]["spec"]["requirements"][0]["operator"] = "Equals"
    del node_class["spec"]["amiSelectorTerms"]
    found = crd_models.problems([pool, node_class])
    assert len(found) == 2, found
    assert "operator must be equal to one of the allowed values" in found[0]
    assert found[1].startswith("EC2NodeClass/gpu:")


def test_release_values_wire_karpenter_to_its_role_and_queue_and_pin_nvidia_to_gpu_nodes(dev, emulator):
    values = dev.rendered / "values" / "gpu-nodes"
    karpenter = yaml.safe_load((values / "karpenter.yaml").read_text())
    assert karpenter["settings"] == {"clusterName": CLUSTER, "interruptionQueue": QUEUE}
    role_arn = emulator.client("iam").get_role(RoleName=CONTROLLER_ROLE)["Role"]["Arn"]
    assert karpenter["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"] == role_arn
    for release in ("nvidia-device-plugin", "dcgm-exporter"):
        chart = yaml.safe_load((values / f"{release}.yaml").read_text())
        assert chart["nodeSelector"] == {"argoeks.io/accelerator": "nvidia"}, release
        assert chart["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert yaml.safe_load((values / "dcgm-exporter.yaml").read_text())["serviceMonitor"]["enabled"] is True


def test_second_run_and_check_mode_change_nothing(dev):
    again = dev("phase3.yml", "--tags", "gpu_nodes")
    assert_ok(again, "second run")
    assert again.changed == 0, again.tail()
    check = dev("phase3.yml", "--tags", "gpu_nodes", "--check")
    assert_ok(check, "check mode")
    assert check.changed == 0, check.tail()


def test_gpu_test_pod_requests_a_gpu_and_tolerates_the_taint(dev):
    assert_ok(dev("phase3.yml", "--tags", "gpu_test"), "phase3.yml --tags gpu_test")
    (pod,) = [o for o in yaml.safe_load_all((dev.rendered / "gpu-test.yaml").read_text()) if o]
    (container,) = pod["spec"]["containers"]
    assert container["command"] == ["nvidia-smi"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert pod["spec"]["nodeSelector"] == {"karpenter.sh/nodepool": "gpu"}


def test_teardown_removes_the_pool_and_everything_it_made(dev, emulator):
    assert_ok(dev("teardown.yml", "--tags", "gpu_nodes"), "teardown.yml --tags gpu_nodes")
    assert not (dev.rendered / "gpu-nodes.yaml").exists()
    assert not (dev.rendered / "values" / "gpu-nodes").exists()
    assert {NODE_ROLE, CONTROLLER_ROLE}.isdisjoint(role_names(emulator))
    assert emulator.client("sqs").list_queues().get("QueueUrls", []) == []
    assert emulator.client("events").list_rules(NamePrefix=QUEUE)["Rules"] == []
    # The cluster itself stays.
    assert emulator.client("eks").describe_cluster(name=CLUSTER)["cluster"]["status"] == "ACTIVE"


def test_every_call_is_in_the_documented_iam_policy(emulator):
    assert_every_call_is_in_the_iam_policy(emulator)
