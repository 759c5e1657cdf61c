"""Phase 2 Week 5 (Feast) on the eks target (inventories/dev), with the AWS side answered by the AWS emulator.

Phase 1's network, cluster and Kubernetes ground come first (only those roles), then `phase2.yml --tags feast`:
the offline bucket (which also holds the registry), the IRSA role of feast/feast, Redis on ElastiCache (a
replication group with a replica, encrypted, an AUTH token from Secrets Manager, reachable from the VPC only),
and the Kubernetes objects rendered and strictly validated offline. Again with no change, in check mode; the
in-cluster Redis renders instead of ElastiCache; teardown keeps the data unless asked.
"""

import json
import sys

import pytest
import yaml

from tests.aws import CREDENTIALS, assert_every_call_is_in_the_iam_policy, aws_emulator
from tests.support import ROOT, playbook, tool_env

sys.path.insert(0, str(ROOT / "tools"))
import validate_manifests

pytestmark = pytest.mark.platform

PHASE1_ROLES = "network,eks_cluster,k8s_platform_base"
BUCKET = "argoeks-feast-offline-dev"
GROUP = "argoeks-dev-feast"
SECRET = "argoeks/dev/feast-redis"
ROLE = "dev-mlops-cluster-01-feast"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    with aws_emulator(tmp_path_factory.mktemp("aws")) as aws:
        yield aws


@pytest.fixture(scope="module")
def dev(emulator, tmp_path_factory):
    endpoint, session = emulator.endpoint, emulator.session
    base = tmp_path_factory.mktemp("eks-feast")
    extra = base / "vars.yml"
    extra.write_text(
        yaml.safe_dump(
            {
                "aws_endpoint_url": endpoint,
                "platform_home": str(base / "home"),
                "eks_cluster_addons": [],
                # No Kubernetes API here: the Kubernetes objects are rendered, not applied.
                "k8s_render_dir": str(base / "rendered"),
                "verify_checkpoints_skip": True,
            }
        )
    )
    env = tool_env(**CREDENTIALS)

    def run(playbook_name="phase2.yml", *args):
        return playbook(playbook_name, "-i", "inventories/dev", "-e", f"@{extra}", *args, env=env)

    run.base = base
    run.rendered = base / "rendered"
    run.client = lambda name: session.client(name, endpoint_url=endpoint)
    return run


def feast(dev, *args):
    return dev("phase2.yml", "--tags", "feast", *args)


def assert_ok(run, what):
    assert run.rc == 0 and run.failed == 0, f"{what} failed:\n{run.tail()}"


def objects(path):
    return [o for o in yaml.safe_load_all(path.read_text()) if o]


def test_phase1_ground_then_feast_from_nothing(dev):
    assert_ok(dev("phase1.yml", "--tags", PHASE1_ROLES), "phase1.yml (network, cluster, Kubernetes ground)")
    result = feast(dev)
    assert_ok(result, "phase2.yml --tags feast -i inventories/dev")
    summary = " ".join(result.output.split())
    assert "Feast server: http://feast-feature-server.feast.svc.cluster.local:6566 (project mlops_dev)" in summary
    assert "kubectl port-forward -n feast svc/feast-feature-server 6566:6566" in summary


def test_redis_is_an_encrypted_replication_group_reachable_from_the_vpc_only(dev):
    elasticache = dev.client("elasticache")
    (group,) = elasticache.describe_replication_groups(ReplicationGroupId=GROUP)["ReplicationGroups"]
    assert group["AtRestEncryptionEnabled"] and group["TransitEncryptionEnabled"] and group["AuthTokenEnabled"]
    assert len(group["MemberClusters"]) == 2, "a primary and a replica"
    assert group["AutomaticFailover"] == "enabled" and group["MultiAZ"] == "enabled"
    assert group["SnapshotRetentionLimit"] == 7
    (sg,) = dev.client("ec2").describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"{GROUP}-redis"]}])[
        "SecurityGroups"
    ]
    ingress = [(p["FromPort"], [r["CidrIp"] for r in p["IpRanges"]]) for p in sg["IpPermissions"]]
    assert ingress == [(6379, ["10.0.0.0/16"])]


def test_the_redis_password_is_in_secrets_manager_and_in_no_rendered_file(dev):
    value = json.loads(dev.client("secretsmanager").get_secret_value(SecretId=SECRET)["SecretString"])
    assert len(value["password"]) == 32
    rendered = "".join(p.read_text() for p in dev.rendered.glob("feast*.yaml"))
    assert value["password"] not in rendered
    (secret,) = objects(dev.rendered / "feast-secrets.yaml")
    assert secret["stringData"]["ARGOEKS_FEAST_REDIS_PASSWORD"].startswith("REDACTED")


def test_the_bucket_and_the_irsa_role(dev):
    s3 = dev.client("s3")
    assert s3.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
    assert all(s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"].values())
    assert "aws:SecureTransport" in s3.get_bucket_policy(Bucket=BUCKET)["Policy"]  # HTTPS only
    iam = dev.client("iam")
    trust = json.dumps(iam.get_role(RoleName=ROLE)["Role"]["AssumeRolePolicyDocument"])
    assert "system:serviceaccount:feast:feast" in trust
    (policy_name,) = iam.list_role_policies(RoleName=ROLE)["PolicyNames"]
    document = iam.get_role_policy(RoleName=ROLE, PolicyName=policy_name)["PolicyDocument"]
    resources = {
        r for s in document["Statement"] for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])
    }
    assert resources == {f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"}


def test_the_rendered_objects_pass_strict_validation_and_run_the_repository(dev):
    _, problems = validate_manifests.validate(dev.rendered, "1.32")
    assert problems == [], "\n".join(str(p) for p in problems)
    feast_objects = objects(dev.rendered / "feast.yaml")
    kinds = {o["kind"]: o for o in feast_objects}
    assert {"ConfigMap", "Job", "CronJob", "Deployment", "Service", "NetworkPolicy"} <= set(kinds)
    repo = kinds["ConfigMap"]["data"]
    assert set(repo) == {"features.py", "feature_store.yaml"}
    store = yaml.safe_load(repo["feature_store.yaml"])
    assert store["registry"]["path"] == f"s3://{BUCKET}/registry/registry.db"
    assert store["online_store"]["connection_string"].startswith(f"master.{GROUP}.")
    assert "ssl=true,password=${ARGOEKS_FEAST_REDIS_PASSWORD}" in store["online_store"]["connection_string"]
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "feastdev/feature-server:0.67.0"
    assert pod["serviceAccountName"] == "feast" and pod["securityContext"]["runAsNonRoot"] is True
    assert "serve" in container["args"] and "--metrics" in container["args"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert kinds["Job"]["metadata"]["name"].startswith("feast-apply-")
    assert "feast --chdir /feature_repo apply" in kinds["Job"]["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert kinds["CronJob"]["spec"]["schedule"] == "15 * * * *"


def test_feast_on_dev_again_changes_nothing(dev):
    result = feast(dev)
    assert_ok(result, "second phase2.yml --tags feast")
    assert result.changed == 0, f"changed tasks: {result.changed_tasks()}"


def test_feast_on_dev_in_check_mode_changes_nothing(dev):
    result = feast(dev, "--check", "--diff")
    assert_ok(result, "phase2.yml --tags feast --check --diff")
    assert result.changed == 0, f"changed tasks: {result.changed_tasks()}"


def test_in_cluster_redis_renders_a_statefulset_instead(dev):
    other = dev.base / "rendered-in-cluster"
    result = feast(dev, "-e", "feast_online_store_provider=in_cluster", "-e", f"k8s_render_dir={other}")
    assert_ok(result, "phase2.yml --tags feast with in-cluster Redis")
    redis = {o["kind"]: o for o in objects(other / "feast-redis.yaml")}
    assert redis["StatefulSet"]["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "10Gi"
    store = yaml.safe_load(
        {o["kind"]: o for o in objects(other / "feast.yaml")}["ConfigMap"]["data"]["feature_store.yaml"]
    )
    assert store["online_store"]["connection_string"].startswith("feast-redis.feast.svc.cluster.local:6379,password=")
    _, problems = validate_manifests.validate(other, "1.32")
    assert problems == []


def test_teardown_keeps_the_data_by_default(dev):
    result = dev("teardown.yml", "--tags", "feast")
    assert_ok(result, "teardown.yml --tags feast")
    assert "set feast_delete_data=true to delete them" in " ".join(result.output.split())
    assert not (dev.rendered / "feast.yaml").exists() and not (dev.rendered / "feast-secrets.yaml").exists()
    assert ROLE not in [r["RoleName"] for r in dev.client("iam").list_roles()["Roles"]]
    assert dev.client("elasticache").describe_replication_groups(ReplicationGroupId=GROUP)["ReplicationGroups"]
    assert BUCKET in [b["Name"] for b in dev.client("s3").list_buckets()["Buckets"]]
    assert dev.client("secretsmanager").describe_secret(SecretId=SECRET)["Name"] == SECRET


def test_every_aws_call_of_the_run_is_in_the_documented_iam_policy(emulator):
    assert_every_call_is_in_the_iam_policy(emulator)
