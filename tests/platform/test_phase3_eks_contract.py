"""Phase 3 on the eks target: the GPU node pool, vLLM, the vector database and the RAG service (inventories/dev),
with the AWS side answered by the AWS emulator.

A GPU setting that is wrong fails in preflight before anything exists. Phase 1's network, cluster and Kubernetes
ground come first (only those roles); then phase3.yml --tags gpu_nodes makes the node role, the interruption queue
with its EventBridge rules and the Karpenter controller's IRSA role (least privilege), and renders the
EC2NodeClass and the GPU NodePool, which Karpenter's published v1 schemas accept (and which they would refuse if
wrong), and the values of the Karpenter, NVIDIA device plugin and DCGM exporter releases. Again with no change, in
check mode, then the gpu_test pod renders. phase3.yml --tags llm_serving makes the model bucket and vLLM's IRSA
role and renders vLLM on the GPU pool (Deployment, Service, NetworkPolicies: strictly validated, restricted Pod
Security, reachable only as intended) with its ServiceMonitor and KEDA ScaledObject (checked against the
prometheus-operator and KEDA published schemas). phase3.yml --tags vector_db,rag_service makes a private, encrypted
RDS for PostgreSQL instance in the cluster's subnets with both passwords generated into Secrets Manager (never
printed, redacted in the rendered Secrets), renders the migration Job (psql: the database, its owner, pgvector,
the schema) and the RAG service (Deployment, Service, NetworkPolicies: strictly validated, restricted Pod
Security, reached only by the LLM gateway, reaching its database, vLLM and HTTPS, reading its password with an
IRSA role allowed nothing else) with its ServiceMonitor; an empty
image fails in preflight before the instance exists. Teardown removes everything the roles made and keeps the
model bucket and the database unless asked. Every AWS call is allowed by the documented IAM policy. (The emulator
has no EKS access entries: that step is skipped here, and eks_access_entry is unit-tested.)
"""

import json
import re
import shutil
import sys

import pytest
import yaml

from tests.aws import CREDENTIALS, assert_every_call_is_in_the_iam_policy, aws_emulator
from tests.k8s import cluster_rules, crd_models
from tests.support import ROOT, playbook, tool_env

sys.path.insert(0, str(ROOT / "tools"))
import validate_manifests

pytestmark = pytest.mark.platform

PHASE1_ROLES = "network,eks_cluster,k8s_platform_base"
CLUSTER = "dev-mlops-cluster-01"
NODE_ROLE = f"{CLUSTER}-karpenter-node"
CONTROLLER_ROLE = f"{CLUSTER}-karpenter"
QUEUE = f"{CLUSTER}-karpenter"
VLLM_ROLE = f"{CLUSTER}-vllm"
MODEL_BUCKET = f"{CLUSTER}-vllm-models"
MODEL = "mistralai/Mistral-7B-Instruct-v0.2"
RAG_DB = "argoeks-dev-rag"
RAG_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/argoeks/rag-service:1"
RAG_POD = {"app.kubernetes.io/name": "rag-service"}
RAG_ROLE = f"{CLUSTER}-rag"
VLLM_POD = {"app.kubernetes.io/name": "vllm"}
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
                "rag_service_image": RAG_IMAGE,
                # The emulator answers gp3 without the throughput rds_instance then reads as a change on every
                # run after the first; gp2 takes the same path otherwise.
                "vector_db_rds_storage_type": "gp2",
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


def vllm_objects(dev, name="llm-serving"):
    return [o for o in yaml.safe_load_all((dev.rendered / f"{name}.yaml").read_text()) if o]


def test_vllm_on_the_gpu_pool(dev):
    result = dev("phase3.yml", "--tags", "llm_serving")
    assert_ok(result, "phase3.yml --tags llm_serving")
    words = " ".join(result.output.split())
    assert f"OpenAI API: http://vllm.vllm.svc.cluster.local:8000/v1 (model {MODEL})" in words, result.tail()
    assert "LLM server: vLLM (v0.34.0) in namespace vllm" in words, result.tail()


def test_vllm_objects_pass_strict_validation_and_restricted_pod_security(dev, tmp_path):
    shutil.copy(dev.rendered / "llm-serving.yaml", tmp_path)
    _, problems = validate_manifests.validate(tmp_path, "1.32")
    assert problems == [], "\n".join(str(p) for p in problems)
    objects = {(o["kind"], o["metadata"]["name"]): o for o in vllm_objects(dev)}
    deployment, service = objects[("Deployment", "vllm")], objects[("Service", "vllm")]
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert "replicas" not in deployment["spec"]  # KEDA's to set
    assert spec["serviceAccountName"] == "vllm"
    assert spec["nodeSelector"] == {"karpenter.sh/nodepool": "gpu"}
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert container["image"] == "docker.io/vllm/vllm-openai:v0.34.0"
    assert container["args"][0] == MODEL and f"--served-model-name={MODEL}" in container["args"]
    assert "--max-model-len=4096" in container["args"] and "--tensor-parallel-size=1" in container["args"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}, probe
    assert container["startupProbe"]["failureThreshold"] * container["startupProbe"]["periodSeconds"] == 1200
    token = next(e for e in container["env"] if e["name"] == "HF_TOKEN")
    assert token["valueFrom"]["secretKeyRef"] == {"name": "vllm-hf-token", "key": "token", "optional": True}
    assert cluster_rules.pod_security_violations(spec, "restricted") == []
    # the roadmap's vllm.vllm.svc.cluster.local:8000
    assert service["metadata"]["namespace"] == "vllm" and service["spec"]["selector"] == VLLM_POD
    assert service["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}]


def test_vllm_is_reached_by_the_platform_and_scraped_and_keda_reads_prometheus(dev):
    policies = cluster_rules.network_policies([dev.rendered / "platform-base.yaml", dev.rendered / "llm-serving.yaml"])
    allows, namespace = cluster_rules.allows, cluster_rules.namespace_peer
    rag = namespace("rag", {"app.kubernetes.io/part-of": "argoeks"})
    assert allows(policies, "vllm", VLLM_POD, "Ingress", rag, 8000), "rag -> vLLM"
    assert not allows(policies, "vllm", VLLM_POD, "Ingress", namespace("default"), 8000), "default -> vLLM"
    prometheus = {"app.kubernetes.io/name": "prometheus"}
    monitoring = namespace("monitoring", pod_labels=prometheus)
    assert allows(policies, "vllm", VLLM_POD, "Ingress", monitoring, 8000), "Prometheus scrapes vLLM"
    assert allows(policies, "vllm", VLLM_POD, "Egress", "3.5.0.10", 443), "vLLM -> Hugging Face / S3"
    assert not allows(policies, "vllm", VLLM_POD, "Egress", "3.5.0.10", 80)
    keda = namespace("keda", pod_labels={"app": "keda-operator"})
    assert allows(policies, "monitoring", prometheus, "Ingress", keda, 9090), "KEDA -> Prometheus"
    assert not allows(policies, "monitoring", prometheus, "Ingress", namespace("default"), 9090)


def test_servicemonitor_and_scaledobject_pass_the_upstream_schemas(dev):
    objects = vllm_objects(dev, "llm-serving-autoscaling")
    assert {(o["apiVersion"], o["kind"]) for o in objects} == {
        ("monitoring.coreos.com/v1", "ServiceMonitor"),
        ("keda.sh/v1alpha1", "ScaledObject"),
    }
    assert crd_models.problems(objects) == []
    monitor = next(o for o in objects if o["kind"] == "ServiceMonitor")["spec"]
    assert monitor["selector"]["matchLabels"] == VLLM_POD
    assert monitor["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "15s"}]
    scaled = next(o for o in objects if o["kind"] == "ScaledObject")["spec"]
    assert scaled["scaleTargetRef"] == {"name": "vllm"}
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (1, 2)
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "prometheus"
    assert trigger["metadata"]["query"].startswith('sum(vllm:num_requests_waiting{namespace="vllm"})')
    assert trigger["metadata"]["serverAddress"] == "http://prometheus-operated.monitoring.svc:9090"
    assert trigger["metadata"]["threshold"] == "5"
    # A mistake of each kind is refused: the validators are not rubber stamps.
    broken = json.loads(json.dumps(objects))
    for obj in broken:
        if obj["kind"] == "ScaledObject":
            del obj["spec"]["scaleTargetRef"]
        else:
            obj["spec"]["endpoints"][0]["interval"] = "fifteen seconds"
    found = crd_models.problems(broken)
    assert len(found) == 2, found
    assert any(f.startswith("ScaledObject/vllm:") and "scaleTargetRef" in f for f in found), found
    assert any(f.startswith("ServiceMonitor/vllm:") for f in found), found


def test_keda_values_are_rendered(dev):
    keda = yaml.safe_load((dev.rendered / "values" / "llm-serving" / "keda.yaml").read_text())
    assert keda["prometheus"]["operator"]["serviceMonitor"]["enabled"] is True


def test_vllm_reads_its_model_bucket_and_nothing_else(dev, emulator):
    iam, s3 = emulator.client("iam"), emulator.client("s3")
    role = iam.get_role(RoleName=VLLM_ROLE)["Role"]
    assert "system:serviceaccount:vllm:vllm" in json.dumps(role["AssumeRolePolicyDocument"])
    (name,) = iam.list_role_policies(RoleName=VLLM_ROLE)["PolicyNames"]
    statements = iam.get_role_policy(RoleName=VLLM_ROLE, PolicyName=name)["PolicyDocument"]["Statement"]
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    resources = {r for s in statements for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])}
    assert actions == {"s3:ListBucket", "s3:GetBucketLocation", "s3:GetObject"}
    assert resources == {f"arn:aws:s3:::{MODEL_BUCKET}", f"arn:aws:s3:::{MODEL_BUCKET}/*"}
    # the service account k8s_platform_base made assumes exactly this role
    accounts = [o for o in yaml.safe_load_all((dev.rendered / "platform-base.yaml").read_text()) if o]
    account = next(o for o in accounts if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == "vllm")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == role["Arn"]
    # the bucket: versioned, encrypted, private, HTTPS only
    assert s3.get_bucket_versioning(Bucket=MODEL_BUCKET)["Status"] == "Enabled"
    rules = s3.get_bucket_encryption(Bucket=MODEL_BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    block = s3.get_public_access_block(Bucket=MODEL_BUCKET)["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4
    assert "aws:SecureTransport" in s3.get_bucket_policy(Bucket=MODEL_BUCKET)["Policy"]


def test_bad_vllm_settings_fail_before_any_change(dev, emulator):
    result = dev("phase3.yml", "--tags", "llm_serving", "-e", "llm_serving_model_source=ftp")
    assert result.rc != 0
    assert "llm_serving_model_source" in result.output and "ftp" in result.output, result.tail()
    result = dev("phase3.yml", "--tags", "llm_serving", "-e", '{"llm_serving_min_replicas": 3}')
    assert result.rc != 0
    assert "1 <= llm_serving_min_replicas (3) <= llm_serving_max_replicas (2)" in " ".join(result.output.split())
    # nothing was changed: the rendered Deployment is still the good one
    (deployment,) = [o for o in vllm_objects(dev) if o["kind"] == "Deployment"]
    assert deployment["metadata"]["name"] == "vllm"


def rag_objects(dev, name):
    return {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all((dev.rendered / name).read_text()) if o}


def test_a_bad_rag_image_fails_in_preflight_before_the_database_exists(dev, emulator):
    result = dev("phase3.yml", "--tags", "vector_db,rag_service", "-e", "rag_service_image=Bad/Image:1")
    assert result.rc != 0
    assert "rag_service_image: 'Bad/Image:1' is not a container image reference" in " ".join(result.output.split())
    assert emulator.client("rds").describe_db_instances()["DBInstances"] == []


def test_the_vector_database_and_the_rag_service(dev):
    result = dev("phase3.yml", "--tags", "vector_db,rag_service")
    assert_ok(result, "phase3.yml --tags vector_db,rag_service")
    words = " ".join(result.output.split())
    assert f"vector_db: database rag on RDS {RAG_DB}" in words, result.tail()
    assert "pgvector 0.8.0, documents vector(384), hnsw index" in words, result.tail()
    assert "RAG service: http://rag-service.rag.svc.cluster.local:8002 (reranker hybrid)" in words, result.tail()
    assert "rag_ingest.yml -e rag_service_url=http://127.0.0.1:8002" in words, result.tail()


def test_the_database_is_private_encrypted_backed_up_and_its_passwords_generated(dev, emulator):
    rds, ec2, secrets = emulator.client("rds"), emulator.client("ec2"), emulator.client("secretsmanager")
    (db,) = emulator.client("rds").describe_db_instances(DBInstanceIdentifier=RAG_DB)["DBInstances"]
    assert (db["Engine"], db["EngineVersion"]) == ("postgres", "16.8")
    assert db["StorageEncrypted"] and not db["PubliclyAccessible"] and db["BackupRetentionPeriod"] == 7
    (group,) = rds.describe_db_subnet_groups(DBSubnetGroupName=RAG_DB)["DBSubnetGroups"]
    subnets = ec2.describe_subnets(SubnetIds=[s["SubnetIdentifier"] for s in group["Subnets"]])["Subnets"]
    assert all(any(t["Key"] == "kubernetes.io/role/internal-elb" for t in s["Tags"]) for s in subnets)
    assert len({s["AvailabilityZone"] for s in subnets}) >= 2
    (sg,) = ec2.describe_security_groups(GroupIds=[g["VpcSecurityGroupId"] for g in db["VpcSecurityGroups"]])[
        "SecurityGroups"
    ]
    vpc = ec2.describe_vpcs(VpcIds=[sg["VpcId"]])["Vpcs"][0]
    assert [(p["FromPort"], p["ToPort"], [r["CidrIp"] for r in p["IpRanges"]]) for p in sg["IpPermissions"]] == [
        (5432, 5432, [vpc["CidrBlock"]])
    ]
    owner = json.loads(secrets.get_secret_value(SecretId="argoeks/dev/rag-db")["SecretString"])
    master = json.loads(secrets.get_secret_value(SecretId="argoeks/dev/rag-db-master")["SecretString"])
    assert owner["username"] == "rag" and owner["dbname"] == "rag" and len(owner["password"]) >= 20
    assert master["username"] == "ragadmin" and master["password"] != owner["password"]
    assert db["MasterUsername"] == "ragadmin"
    # Never printed, never in a rendered file: the rendered Secrets say where the values live.
    again = dev("phase3.yml", "--tags", "vector_db,rag_service", "-v")
    assert_ok(again, "phase3.yml -v")
    rendered = "".join(path.read_text() for path in dev.rendered.rglob("*.yaml"))
    for password in (owner["password"], master["password"]):
        assert password not in again.output and password not in rendered
    logins = rag_objects(dev, "vector-db-secrets.yaml")
    redacted = "REDACTED-see-secretsmanager-argoeks-dev-rag-db"
    assert logins[("Secret", "vector-db-rag")]["stringData"]["password"] == redacted


def test_the_migration_job_runs_psql_as_a_restricted_pod_against_the_instance(dev, emulator, tmp_path):
    shutil.copy(dev.rendered / "vector-db.yaml", tmp_path)
    _, problems = validate_manifests.validate(tmp_path, "1.32")
    assert problems == [], "\n".join(str(p) for p in problems)
    objects = rag_objects(dev, "vector-db.yaml")
    (job,) = [o for (kind, _), o in objects.items() if kind == "Job"]
    (sql,) = [o for (kind, _), o in objects.items() if kind == "ConfigMap"]
    spec = job["spec"]["template"]["spec"]
    assert cluster_rules.pod_security_violations(spec, "restricted") == []
    (container,) = spec["containers"]
    (db,) = emulator.client("rds").describe_db_instances(DBInstanceIdentifier=RAG_DB)["DBInstances"]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["PGHOST"] == db["Endpoint"]["Address"] and env["PGSSLMODE"] == "require"
    assert env["OWNER_PASSWORD"] == {"secretKeyRef": {"name": "vector-db-rag", "key": "password"}}
    # The passwords reach psql from the Secret through the environment, never as a value on a command line.
    script = " ".join(container["args"])
    assert re.findall(r"PGPASSWORD=(\S+)", script) == ['"$MASTER_PASSWORD"', '"$OWNER_PASSWORD"'], script
    assert set(sql["data"]) == {"bootstrap.sql", "migrate.sql", "001_documents.sql"}
    assert "CREATE EXTENSION IF NOT EXISTS vector VERSION '0.8.0'" in sql["data"]["bootstrap.sql"]
    assert "embedding vector(384) NOT NULL" in sql["data"]["001_documents.sql"]
    assert "USING hnsw (embedding vector_cosine_ops)" in sql["data"]["migrate.sql"]
    # The Job and its SQL are named after what they run: the same settings, the same Job.
    assert job["metadata"]["name"].removeprefix("vector-db-migrate-") == sql["metadata"]["name"].removeprefix(
        "vector-db-migrations-"
    )
    policies = cluster_rules.network_policies([dev.rendered / "platform-base.yaml", dev.rendered / "vector-db.yaml"])
    migrate = {"app.kubernetes.io/name": "vector-db-migrate"}
    assert cluster_rules.allows(policies, "rag", migrate, "Egress", "10.0.10.5", 5432), "Job -> RDS"
    assert not cluster_rules.allows(policies, "rag", migrate, "Egress", "3.5.0.10", 443)


def test_the_rag_service_passes_strict_validation_and_restricted_pod_security(dev, emulator, tmp_path):
    shutil.copy(dev.rendered / "rag-service.yaml", tmp_path)
    _, problems = validate_manifests.validate(tmp_path, "1.32")
    assert problems == [], "\n".join(str(p) for p in problems)
    objects = rag_objects(dev, "rag-service.yaml")
    deployment, service = objects[("Deployment", "rag-service")], objects[("Service", "rag-service")]
    spec = deployment["spec"]["template"]["spec"]
    assert cluster_rules.pod_security_violations(spec, "restricted") == []
    (container,) = spec["containers"]
    assert container["image"] == RAG_IMAGE and deployment["spec"]["replicas"] == 2
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert objects[("PodDisruptionBudget", "rag-service")]["spec"]["minAvailable"] == 1
    assert spec["serviceAccountName"] == "rag-service"
    assert not [v for v in spec["volumes"] if "secret" in v], "the password comes from Secrets Manager, not a volume"
    config = json.loads(objects[("ConfigMap", "rag-service-config")]["data"]["config.json"])
    (db,) = emulator.client("rds").describe_db_instances(DBInstanceIdentifier=RAG_DB)["DBInstances"]
    assert config["database"] | {"pool_size": 0} == {
        "host": db["Endpoint"]["Address"],
        "port": 5432,
        "name": "rag",
        "user": "rag",
        "password_secret": "argoeks/dev/rag-db",
        "region": "us-east-1",
        "sslmode": "require",
        "pool_size": 0,
    }
    assert config["llm"]["base_url"] == "http://vllm.vllm.svc.cluster.local:8000/v1" and config["llm"]["model"] == MODEL
    assert config["embedding_model_dir"] == "/opt/argoeks/model"  # where files/Dockerfile puts the model
    assert service["spec"]["type"] == "ClusterIP" and service["spec"]["selector"] == RAG_POD
    assert service["spec"]["ports"] == [{"name": "http", "port": 8002, "targetPort": "http", "protocol": "TCP"}]


def test_only_the_gateway_reaches_the_rag_service_which_reaches_its_database_vllm_and_https(dev):
    paths = [dev.rendered / name for name in ("platform-base.yaml", "rag-service.yaml", "llm-serving.yaml")]
    policies = cluster_rules.network_policies(paths)
    allows, namespace = cluster_rules.allows, cluster_rules.namespace_peer
    platform = {"app.kubernetes.io/part-of": "argoeks"}
    gateway = namespace("llm-gateway", platform, pod_labels={"app.kubernetes.io/name": "llm-gateway"})
    assert allows(policies, "rag", RAG_POD, "Ingress", gateway, 8002), "gateway -> RAG"
    other = namespace("llm-gateway", platform, pod_labels={"app.kubernetes.io/name": "debug"})
    assert not allows(policies, "rag", RAG_POD, "Ingress", other, 8002), "another pod of the gateway's namespace"
    assert not allows(policies, "rag", RAG_POD, "Ingress", namespace("jupyter", platform), 8002), "notebooks -> RAG"
    assert not allows(policies, "rag", RAG_POD, "Ingress", namespace("default"), 8002), "default -> RAG"
    monitoring = namespace("monitoring", pod_labels={"app.kubernetes.io/name": "prometheus"})
    assert allows(policies, "rag", RAG_POD, "Ingress", monitoring, 8002), "Prometheus scrapes the service"
    assert allows(policies, "rag", RAG_POD, "Egress", "10.0.10.5", 5432), "RAG -> RDS in the VPC"
    assert not allows(policies, "rag", RAG_POD, "Egress", "10.0.10.5", 6379)
    vllm = namespace("vllm", pod_labels=VLLM_POD)
    assert allows(policies, "rag", RAG_POD, "Egress", vllm, 8000), "RAG -> vLLM"
    assert allows(policies, "vllm", VLLM_POD, "Ingress", namespace("rag", platform, pod_labels=RAG_POD), 8000)
    assert allows(policies, "rag", RAG_POD, "Egress", "3.5.0.10", 443), "RAG -> STS and Secrets Manager"
    assert not allows(policies, "rag", RAG_POD, "Egress", "3.5.0.10", 80)


def test_the_rag_service_reads_the_owners_password_and_nothing_else(dev, emulator):
    iam = emulator.client("iam")
    role = iam.get_role(RoleName=RAG_ROLE)["Role"]
    assert "system:serviceaccount:rag:rag-service" in json.dumps(role["AssumeRolePolicyDocument"])
    (name,) = iam.list_role_policies(RoleName=RAG_ROLE)["PolicyNames"]
    (statement,) = iam.get_role_policy(RoleName=RAG_ROLE, PolicyName=name)["PolicyDocument"]["Statement"]
    secret_arn = emulator.client("secretsmanager").describe_secret(SecretId="argoeks/dev/rag-db")["ARN"]
    assert statement["Action"] == "secretsmanager:GetSecretValue"
    assert re.fullmatch(statement["Resource"].replace("?", "."), secret_arn), (statement["Resource"], secret_arn)
    assert not iam.list_attached_role_policies(RoleName=RAG_ROLE)["AttachedPolicies"]
    accounts = [o for o in yaml.safe_load_all((dev.rendered / "platform-base.yaml").read_text()) if o]
    account = next(o for o in accounts if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == "rag-service")
    assert account["metadata"]["namespace"] == "rag"
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == role["Arn"]


def test_the_rag_servicemonitor_passes_the_upstream_schema(dev):
    objects = list(rag_objects(dev, "rag-service-monitoring.yaml").values())
    assert crd_models.problems(objects) == []
    (monitor,) = objects
    assert monitor["spec"]["selector"]["matchLabels"] == RAG_POD
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s"}]


def test_the_rag_image_carries_the_roles_pins_and_model_files():
    dockerfile = (ROOT / "roles/rag_service/files/Dockerfile").read_text()
    role_vars = yaml.safe_load((ROOT / "roles/rag_service/vars/main.yml").read_text())
    defaults = yaml.safe_load((ROOT / "roles/rag_service/defaults/main.yml").read_text())
    for pin in role_vars["_rag_service_packages"] + defaults["rag_service_embedding_packages"]:
        assert pin in dockerfile.replace('"', ""), pin
    for item in role_vars["_rag_service_model_files"]:
        assert item["src"].rsplit("/", 1)[-1] in dockerfile, item


def test_second_run_and_check_mode_change_nothing(dev):
    again = dev("phase3.yml", "--tags", "gpu_nodes,llm_serving,vector_db,rag_service")
    assert_ok(again, "second run")
    assert again.changed == 0, again.tail()
    check = dev("phase3.yml", "--tags", "gpu_nodes,llm_serving,vector_db,rag_service", "--check")
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


def test_teardown_of_rag_keeps_the_database_unless_asked(dev, emulator):
    result = dev("teardown.yml", "--tags", "rag_service,vector_db")
    assert_ok(result, "teardown.yml --tags rag_service,vector_db")
    words = " ".join(result.output.split())
    assert f"vector_db: kept database rag on RDS instance {RAG_DB}" in words, result.tail()
    for name in ("rag-service.yaml", "rag-service-monitoring.yaml", "vector-db.yaml", "vector-db-secrets.yaml"):
        assert not (dev.rendered / name).exists(), name
    assert RAG_ROLE not in role_names(emulator)
    rds = emulator.client("rds")
    assert [d["DBInstanceIdentifier"] for d in rds.describe_db_instances()["DBInstances"]] == [RAG_DB]
    gone = dev("teardown.yml", "--tags", "vector_db", "-e", "vector_db_delete_data=true")
    assert_ok(gone, "teardown.yml --tags vector_db with vector_db_delete_data")
    assert rds.describe_db_instances()["DBInstances"] == []
    snapshots = rds.describe_db_snapshots(DBInstanceIdentifier=RAG_DB)["DBSnapshots"]
    assert [s["DBSnapshotIdentifier"] for s in snapshots] == [f"{RAG_DB}-final"]
    assert rds.describe_db_subnet_groups()["DBSubnetGroups"] == []
    # The logins of the final snapshot stay.
    names = {s["Name"] for s in emulator.client("secretsmanager").list_secrets()["SecretList"]}
    assert {"argoeks/dev/rag-db", "argoeks/dev/rag-db-master"} <= names


def test_teardown_of_vllm_keeps_the_model_bucket_unless_asked(dev, emulator):
    result = dev("teardown.yml", "--tags", "llm_serving")
    assert_ok(result, "teardown.yml --tags llm_serving")
    assert f"llm_serving: kept s3://{MODEL_BUCKET}" in " ".join(result.output.split()), result.tail()
    for name in ("llm-serving.yaml", "llm-serving-autoscaling.yaml", "values/llm-serving"):
        assert not (dev.rendered / name).exists(), name
    assert VLLM_ROLE not in role_names(emulator)
    s3 = emulator.client("s3")
    assert MODEL_BUCKET in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert_ok(dev("teardown.yml", "--tags", "llm_serving", "-e", "llm_serving_delete_data=true"), "with delete_data")
    assert MODEL_BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}


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
