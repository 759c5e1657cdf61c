"""Phase 2 (MLflow) on the eks target (inventories/dev), with the AWS side answered by the AWS emulator.

Phase 1's network, cluster and Kubernetes ground come first (only those roles). Then phase2.yml (tag mlflow) makes
the RDS instance (encrypted, backed up, in the cluster's private subnets), the master password in
Secrets Manager, the artifact bucket and the IRSA role, and renders the Kubernetes objects, which pass
strict offline validation. Again with no change, in check mode; teardown keeps the data unless asked.
"""

import json
import sys

import pytest
import yaml

from tests.aws import CREDENTIALS, assert_every_call_is_in_the_iam_policy, aws_emulator
from tests.k8s import crd_models
from tests.support import ROOT, playbook, tool_env

sys.path.insert(0, str(ROOT / "tools"))
import validate_manifests

pytestmark = pytest.mark.platform

PHASE1_ROLES = "network,eks_cluster,k8s_platform_base"
DB = "argoeks-dev-mlflow"
BUCKET = "argoeks-mlflow-artifacts-dev"
SECRET = "argoeks/dev/mlflow-db"
ROLE = "dev-mlops-cluster-01-mlflow"
CRDS = ROOT / "tests" / "k8s" / "data" / "crds"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    with aws_emulator(tmp_path_factory.mktemp("aws")) as aws:
        yield aws


@pytest.fixture(scope="module")
def dev(emulator, tmp_path_factory):
    endpoint, session = emulator.endpoint, emulator.session
    base = tmp_path_factory.mktemp("eks-phase2")
    extra = base / "vars.yml"
    extra.write_text(
        yaml.safe_dump(
            {
                "aws_endpoint_url": endpoint,
                "platform_home": str(base / "home"),
                "eks_cluster_addons": [],
                # No Kubernetes API here: the Kubernetes objects are rendered, not applied.
                "k8s_render_dir": str(base / "rendered"),
                # moto describes gp3 instances without StorageThroughput and Iops, which rds_instance reads
                # on every run after the first; gp2 takes the same path otherwise.
                "mlflow_db_storage_type": "gp2",
                # Only Phase 1's ground runs here, so its checkpoints (tested with verify.yml) would not pass.
                "verify_checkpoints_skip": True,
            }
        )
    )
    env = tool_env(**CREDENTIALS)

    def run(playbook_name="phase2.yml", *args):
        # Phase 2's other roles have their own contract tests: these runs are limited to MLflow's.
        tags = ("--tags", "mlflow") if playbook_name in ("phase2.yml", "teardown.yml") and "--tags" not in args else ()
        return playbook(playbook_name, "-i", "inventories/dev", "-e", f"@{extra}", *tags, *args, env=env)

    run.rendered = base / "rendered"
    run.client = lambda name: session.client(name, endpoint_url=endpoint)
    return run


def assert_ok(run, what):
    assert run.rc == 0 and run.failed == 0, f"{what} failed:\n{run.tail()}"


def test_bad_bucket_name_fails_in_preflight_creating_nothing(dev):
    result = dev("phase2.yml", "-e", "mlflow_bucket_name=Bad_Bucket")
    assert result.rc != 0
    assert "mlflow_bucket_name: 'Bad_Bucket' is not a valid S3 bucket name" in result.output, result.tail()
    assert dev.client("rds").describe_db_instances()["DBInstances"] == []
    assert dev.client("s3").list_buckets()["Buckets"] == []


def test_phase1_ground_then_phase2_from_nothing(dev):
    assert_ok(dev("phase1.yml", "--tags", PHASE1_ROLES), "phase1.yml (network, cluster, Kubernetes ground)")
    result = dev()
    assert_ok(result, "phase2.yml -i inventories/dev")
    summary = " ".join(result.output.split())
    assert "MLflow: http://mlflow-tracking.mlflow.svc.cluster.local:5000" in summary
    assert f"artifacts: s3://{BUCKET}" in summary
    assert "kubectl port-forward -n mlflow svc/mlflow-tracking 5000:5000" in summary


def test_rds_instance_is_encrypted_backed_up_and_private(dev):
    (db,) = dev.client("rds").describe_db_instances(DBInstanceIdentifier=DB)["DBInstances"]
    assert db["Engine"] == "postgres"
    assert db["StorageEncrypted"] is True
    assert db["BackupRetentionPeriod"] == 7
    assert db["PubliclyAccessible"] is False
    assert db["MultiAZ"] is False  # dev; prod turns it on
    assert db["DeletionProtection"] is False  # dev; prod turns it on
    assert db["DBSubnetGroup"]["DBSubnetGroupName"] == DB
    zones = {s["SubnetAvailabilityZone"]["Name"] for s in db["DBSubnetGroup"]["Subnets"]}
    assert len(zones) >= 2
    (sg_id,) = [g["VpcSecurityGroupId"] for g in db["VpcSecurityGroups"]]
    (sg,) = dev.client("ec2").describe_security_groups(GroupIds=[sg_id])["SecurityGroups"]
    ingress = [(p["FromPort"], [r["CidrIp"] for r in p["IpRanges"]]) for p in sg["IpPermissions"]]
    assert ingress == [(5432, ["10.0.0.0/16"])]


def test_master_password_is_in_secrets_manager_and_nowhere_in_the_output(dev):
    value = json.loads(dev.client("secretsmanager").get_secret_value(SecretId=SECRET)["SecretString"])
    assert value["username"] == "mlflow" and len(value["password"]) == 32
    rendered = "".join(p.read_text() for p in dev.rendered.glob("*.yaml"))
    assert value["password"] not in rendered, "the rendered Secret holds the password"
    secret = next(o for o in yaml.safe_load_all((dev.rendered / "mlflow-secrets.yaml").read_text()) if o)
    assert "REDACTED" in secret["stringData"]["MLFLOW_BACKEND_STORE_URI"]


def test_artifact_bucket_is_versioned_encrypted_and_private(dev):
    s3 = dev.client("s3")
    assert s3.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
    rule = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert all(s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"].values())
    assert "aws:SecureTransport" in s3.get_bucket_policy(Bucket=BUCKET)["Policy"]


def test_irsa_role_trusts_the_service_account_and_only_reaches_the_bucket(dev):
    iam = dev.client("iam")
    role = iam.get_role(RoleName=ROLE)["Role"]
    trust = json.dumps(role["AssumeRolePolicyDocument"])
    assert "system:serviceaccount:mlflow:mlflow-tracking" in trust
    (policy_name,) = iam.list_role_policies(RoleName=ROLE)["PolicyNames"]
    document = iam.get_role_policy(RoleName=ROLE, PolicyName=policy_name)["PolicyDocument"]
    resources = set()
    for statement in document["Statement"]:
        found = statement["Resource"]
        resources.update([found] if isinstance(found, str) else found)
    assert resources == {f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"}


def test_rendered_manifests_pass_strict_validation(dev):
    # The ServiceMonitor's CRD comes with kube-prometheus-stack (Phase 1's observability, not run here).
    objects, problems = validate_manifests.validate(dev.rendered, "1.32", [CRDS])
    assert problems == [], "\n".join(str(p) for p in problems)
    kinds = {(o["kind"], o["metadata"]["name"]) for _, _, o in objects if o["metadata"].get("namespace") == "mlflow"}
    expected = {
        ("Deployment", "mlflow-tracking"),
        ("Service", "mlflow-tracking"),
        ("Secret", "mlflow-tracking-db"),
        ("ServiceMonitor", "mlflow-tracking"),
    }
    assert expected <= kinds
    # custom resources: the published prometheus-operator schema (npm @kubernetes-models) accepts them too
    custom = [o for _, _, o in objects if o["apiVersion"] in crd_models.MODELS]
    assert custom and crd_models.problems(custom) == []


def test_deployment_runs_the_pinned_image_non_root_against_rds_and_s3(dev):
    objects = [o for o in yaml.safe_load_all((dev.rendered / "mlflow.yaml").read_text()) if o]
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    service = next(o for o in objects if o["kind"] == "Service")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "ghcr.io/mlflow/mlflow:v3.17.2-full"
    assert pod["serviceAccountName"] == "mlflow-tracking"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert f"--artifacts-destination=s3://{BUCKET}/" in container["args"] and "--serve-artifacts" in container["args"]
    allowed = next(a for a in container["args"] if a.startswith("--allowed-hosts="))
    assert "mlflow-tracking.mlflow.svc.cluster.local:5000" in allowed and "localhost:*" in allowed
    env = {e["name"]: e for e in container["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-tracking-db"
    assert {p["httpGet"]["path"] for p in (container["readinessProbe"], container["livenessProbe"])} == {"/health"}
    assert container["resources"]["limits"] and container["resources"]["requests"]
    assert service["spec"]["ports"][0]["port"] == 5000


def test_phase2_on_dev_again_changes_nothing(dev):
    result = dev()
    assert_ok(result, "second phase2.yml -i inventories/dev")
    assert result.changed == 0, f"changed tasks: {result.changed_tasks()}"


def test_phase2_on_dev_in_check_mode_changes_nothing(dev):
    result = dev("phase2.yml", "--check", "--diff")
    assert_ok(result, "phase2.yml -i inventories/dev --check --diff")
    assert result.changed == 0, f"changed tasks: {result.changed_tasks()}"


def test_teardown_keeps_the_database_and_artifacts_by_default(dev):
    result = dev("teardown.yml")
    assert_ok(result, "teardown.yml --tags mlflow")
    assert "set mlflow_delete_data=true to delete them" in " ".join(result.output.split())
    assert not [p.name for p in dev.rendered.glob("mlflow*.yaml")]
    assert ROLE not in [r["RoleName"] for r in dev.client("iam").list_roles()["Roles"]]
    assert dev.client("rds").describe_db_instances(DBInstanceIdentifier=DB)["DBInstances"]
    assert BUCKET in [b["Name"] for b in dev.client("s3").list_buckets()["Buckets"]]
    assert dev.client("secretsmanager").describe_secret(SecretId=SECRET)["Name"] == SECRET


def test_teardown_with_delete_data_leaves_nothing_of_phase2(dev):
    result = dev("teardown.yml", "-e", "mlflow_delete_data=true mlflow_db_final_snapshot=false")
    assert_ok(result, "teardown.yml --tags mlflow deleting data")
    assert dev.client("rds").describe_db_instances()["DBInstances"] == []
    assert dev.client("rds").describe_db_subnet_groups()["DBSubnetGroups"] == []
    groups = dev.client("ec2").describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"{DB}-db"]}])
    assert groups["SecurityGroups"] == []
    assert BUCKET not in [b["Name"] for b in dev.client("s3").list_buckets()["Buckets"]]
    assert SECRET not in [s["Name"] for s in dev.client("secretsmanager").list_secrets()["SecretList"]]


def test_every_aws_call_of_the_run_is_in_the_documented_iam_policy(emulator):
    assert_every_call_is_in_the_iam_policy(emulator)
