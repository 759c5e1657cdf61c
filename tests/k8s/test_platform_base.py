"""k8s_platform_base through the harness: phase1.yml on the dev inventory, its Kubernetes part
(--tags k8s_platform_base) applied to the Kubernetes API emulator as it would be to EKS."""

import json

import pytest

from tests.support import playbook, tool_env

NAMESPACES = ["monitoring", "mlflow", "feast", "jupyter", "kubeflow", "kserve", "vllm", "rag"]


@pytest.fixture
def phase1(cluster):
    env = tool_env(KUBECACHEDIR=str(cluster.tmp / "kubecache"))

    def run(*args):
        return playbook(
            "phase1.yml",
            "-i",
            "inventories/dev",
            "--tags",
            "k8s_platform_base",
            "-e",
            f"k8s_kubeconfig={cluster.kubeconfig}",
            "-e",
            "k8s_platform_base_account_id=123456789012",
            *args,
            env=env,
        )

    return run


def get(cluster, *args):
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def test_platform_base_applies_idempotently_and_checks_clean(cluster, phase1):
    first = phase1()
    assert first.rc == 0, first.tail()
    assert first.changed > 0

    namespaces = {n["metadata"]["name"]: n for n in get(cluster, "namespaces")["items"]}
    for name in NAMESPACES:
        level = "privileged" if name == "monitoring" else "baseline"  # node exporter and promtail read the node
        assert namespaces[name]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == level
    storage = get(cluster, "storageclass", "gp3")
    assert storage["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert (storage["provisioner"], storage["parameters"]["encrypted"]) == ("ebs.csi.aws.com", "true")
    policies = {p["metadata"]["name"] for p in get(cluster, "networkpolicies", "-n", "mlflow")["items"]}
    assert policies == {"default-deny-all", "allow-dns", "allow-same-namespace", "allow-monitoring-scrape"}
    deny = get(cluster, "networkpolicy", "default-deny-all", "-n", "rag")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    quota = get(cluster, "resourcequota", "platform-quota", "-n", "vllm")["spec"]["hard"]
    assert quota["requests.nvidia.com/gpu"] == "2"
    account = get(cluster, "serviceaccount", "mlflow-tracking", "-n", "mlflow")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == (
        "arn:aws:iam::123456789012:role/dev-mlops-cluster-01-mlflow"
    )

    second = phase1()
    assert second.rc == 0, second.tail()
    assert second.changed == 0, f"changed tasks: {second.changed_tasks()}"

    checked = phase1("--check", "--diff")
    assert checked.rc == 0, checked.tail()
    assert checked.changed == 0, f"changed tasks: {checked.changed_tasks()}"


def test_check_mode_reports_a_change_without_making_it(cluster, phase1):
    assert phase1().rc == 0
    checked = phase1("--check", "-e", '{"k8s_platform_base_quota": {"requests.cpu": "4"}}')
    assert checked.rc == 0, checked.tail()
    assert checked.changed > 0
    assert get(cluster, "resourcequota", "platform-quota", "-n", "rag")["spec"]["hard"]["requests.cpu"] == "8"


def test_teardown_removes_the_platform_base(cluster, phase1):
    assert phase1().rc == 0
    down = playbook(
        "teardown.yml",
        "-i",
        "inventories/dev",
        "--tags",
        "k8s_platform_base",
        "-e",
        f"k8s_kubeconfig={cluster.kubeconfig}",
        env=tool_env(KUBECACHEDIR=str(cluster.tmp / "kubecache")),
    )
    assert down.rc == 0, down.tail()
    left = {n["metadata"]["name"] for n in get(cluster, "namespaces")["items"]}
    assert left.isdisjoint(NAMESPACES)
    assert "gp3" not in {c["metadata"]["name"] for c in get(cluster, "storageclasses")["items"]}


def test_invalid_namespace_is_rejected_before_any_change(cluster, phase1):
    run = phase1("-e", '{"k8s_platform_base_namespaces": ["Bad_Name", "mlflow"]}')
    assert run.rc != 0
    assert "k8s_platform_base_namespaces must be DNS labels" in run.output
    left = {n["metadata"]["name"] for n in get(cluster, "namespaces")["items"]}
    assert "mlflow" not in left
