"""Model serving on the eks target (inventories/dev), with the AWS side answered by the AWS emulator.

Phase 1's network, cluster and Kubernetes ground come first (only those roles). Then phase2.yml --tags
model_serving makes the IRSA role of kserve/model-server (read-only on the MLflow artifact bucket) and renders
the serving namespace's NetworkPolicies, which pass strict offline validation; again with no change and in
check mode; a deploy on eks without the server's image fails before anything; teardown removes the role.
(The InferenceService itself, resolved from a real registry, is rendered and validated against KServe's CRD
schema in test_phase2_serving_standalone.py.)
"""

import json
import sys

import pytest
import yaml

from tests.aws import CREDENTIALS, assert_every_call_is_in_the_iam_policy, aws_emulator
from tests.support import ROOT, playbook, tool_env

sys.path.insert(0, str(ROOT / "tools"))
import validate_manifests

from tests.k8s import cluster_rules

pytestmark = pytest.mark.platform

PHASE1_ROLES = "network,eks_cluster,k8s_platform_base"
ROLE = "dev-mlops-cluster-01-kserve"
BUCKET = "argoeks-mlflow-artifacts-dev"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    with aws_emulator(tmp_path_factory.mktemp("aws")) as aws:
        yield aws


@pytest.fixture(scope="module")
def dev(emulator, tmp_path_factory):
    endpoint, session = emulator.endpoint, emulator.session
    base = tmp_path_factory.mktemp("eks-serving")
    extra = base / "vars.yml"
    extra.write_text(
        yaml.safe_dump(
            {
                "aws_endpoint_url": endpoint,
                "platform_home": str(base / "home"),
                "eks_cluster_addons": [],
                # No Kubernetes API here: the Kubernetes objects are rendered, not applied.
                "k8s_render_dir": str(base / "rendered"),
                # Only Phase 1's ground runs here (no monitoring, no state backend): the gate would refuse.
                "verify_checkpoints_skip": True,
            }
        )
    )
    env = tool_env(**CREDENTIALS)

    def run(playbook_name="phase2.yml", *args):
        return playbook(playbook_name, "-i", "inventories/dev", "-e", f"@{extra}", *args, env=env)

    run.rendered = base / "rendered"
    run.client = lambda name: session.client(name, endpoint_url=endpoint)
    return run


def assert_ok(run, what):
    assert run.rc == 0 and run.failed == 0, f"{what} failed:\n{run.tail()}"


def test_phase1_ground_then_model_serving(dev):
    assert_ok(dev("phase1.yml", "--tags", PHASE1_ROLES), "phase1.yml (network, cluster, Kubernetes ground)")
    assert_ok(dev("phase2.yml", "--tags", "model_serving"), "phase2.yml --tags model_serving")


def test_irsa_role_trusts_kserve_model_server_and_only_reads_the_bucket(dev):
    iam = dev.client("iam")
    role = iam.get_role(RoleName=ROLE)["Role"]
    assert "system:serviceaccount:kserve:model-server" in json.dumps(role["AssumeRolePolicyDocument"])
    (policy_name,) = iam.list_role_policies(RoleName=ROLE)["PolicyNames"]
    document = iam.get_role_policy(RoleName=ROLE, PolicyName=policy_name)["PolicyDocument"]
    actions, resources = set(), set()
    for statement in document["Statement"]:
        for key, found in (("Action", actions), ("Resource", resources)):
            value = statement[key]
            found.update([value] if isinstance(value, str) else value)
    assert resources == {f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"}
    assert actions == {"s3:ListBucket", "s3:GetBucketLocation", "s3:GetObject"}


def test_rendered_network_policies_pass_strict_validation(dev):
    objects, problems = validate_manifests.validate(dev.rendered, "1.32")
    assert problems == [], "\n".join(str(p) for p in problems)
    names = {o["metadata"]["name"] for _, _, o in objects if o["metadata"].get("namespace") == "kserve"}
    assert {"model-serving-ingress", "model-serving-egress"} <= names


API_SERVER = "10.0.1.25"  # an EKS control-plane address: a cross-account ENI in the cluster's subnets
KSERVE_CONTROLLER = {"control-plane": "kserve-controller-manager", "controller-tools.k8s.io": "1.0"}
PREDICTOR = {"serving.kserve.io/inferenceservice": "iris-classifier", "app": "isvc.iris-classifier-predictor"}


def test_kserve_controller_reaches_the_api_server_and_its_webhook_is_reached_behind_default_deny(dev):
    files = ("platform-base.yaml", "model-serving.yaml")
    policies = cluster_rules.network_policies([dev.rendered / name for name in files])
    allows, namespace = cluster_rules.allows, cluster_rules.namespace_peer
    assert allows(policies, "kserve", KSERVE_CONTROLLER, "Egress", API_SERVER, 443), "controller -> API server"
    assert allows(policies, "kserve", KSERVE_CONTROLLER, "Ingress", API_SERVER, 9443), "API server -> webhook"
    # Exactly these: other pods of the namespace get neither, and the controller nothing more.
    assert not allows(policies, "kserve", {"app": "other"}, "Egress", API_SERVER, 443)
    assert not allows(policies, "kserve", {"app": "other"}, "Ingress", API_SERVER, 9443)
    assert not allows(policies, "kserve", KSERVE_CONTROLLER, "Egress", API_SERVER, 5432)
    # Predictors: clients of the platform's namespaces in on 8080, S3 out on 443, nothing from elsewhere.
    jupyter = namespace("jupyter", {"app.kubernetes.io/part-of": "argoeks"})
    assert allows(policies, "kserve", PREDICTOR, "Ingress", jupyter, 8080)
    assert not allows(policies, "kserve", PREDICTOR, "Ingress", namespace("default"), 8080)
    assert allows(policies, "kserve", PREDICTOR, "Egress", "52.216.0.10", 443)


def test_model_serving_again_changes_nothing(dev):
    result = dev("phase2.yml", "--tags", "model_serving")
    assert_ok(result, "second phase2.yml --tags model_serving")
    assert result.changed == 0, f"changed tasks: {result.changed_tasks()}"
    result = dev("phase2.yml", "--tags", "model_serving", "--check", "--diff")
    assert_ok(result, "phase2.yml --tags model_serving --check --diff")
    assert result.changed == 0, f"changed tasks: {result.changed_tasks()}"


def test_deploy_without_the_image_fails_before_anything(dev):
    result = playbook(
        "deploy_model.yml",
        "-i",
        "inventories/dev",
        "-e",
        "k8s_render_dir=",
        "-e",
        "model_serving_mlflow_url=http://127.0.0.1:9",
        env=tool_env(**CREDENTIALS),
    )
    assert result.rc != 0
    assert "model_serving_image is empty" in " ".join(result.output.split()), result.tail()


def test_teardown_removes_the_irsa_role_and_the_rendered_policies(dev):
    result = dev("teardown.yml", "--tags", "model_serving")
    assert_ok(result, "teardown.yml --tags model_serving")
    assert ROLE not in [r["RoleName"] for r in dev.client("iam").list_roles()["Roles"]]
    assert not (dev.rendered / "model-serving.yaml").exists()


def test_every_aws_call_of_the_run_is_in_the_documented_iam_policy(emulator):
    assert_every_call_is_in_the_iam_policy(emulator)
