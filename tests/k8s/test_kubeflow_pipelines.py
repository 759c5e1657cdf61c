"""The kubeflow_pipelines role on the eks target without a cloud: the AWS side (artifact bucket, IRSA role
of the pipeline pods) against the AWS emulator, the Kubernetes side against the Kubernetes API emulator with
stand-in kustomize directories in place of Kubeflow Pipelines' manifests (which cannot be fetched here):
tests/k8s/kustomize/kfp-cluster-standin and kfp-standin carry the upstream names the role overlays
(kfp-launcher, pipeline-runner, ml-pipeline-ui). Render mode is validated offline.

What only a real cluster shows: that the pinned upstream manifests build with the overlay and their pods
run, write artifacts to the bucket through IRSA, and serve the UI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from tests.support import free_ports, wait_until

from .conftest import ROOT, Kube, PlaybookRun

sys.path.insert(0, str(ROOT / "tools"))
import validate_manifests

STANDINS = Path(__file__).resolve().parent / "kustomize"
EMULATOR = ROOT / "roles" / "aws_emulator" / "files" / "argoeks_emulator.py"
CLUSTER = "dev-mlops-cluster-01"
ACCOUNT = "123456789012"  # the AWS emulator's account
BUCKET = "argoeks-kfp-artifacts-dev"
ROLE = f"{CLUSTER}-kubeflow"

PLAY = """\
- name: Kubeflow Pipelines on eks
  hosts: localhost
  gather_facts: false
  vars_files:
    - {root}/group_vars/all/platform.yml
    - {vars}
  environment: "{{{{ platform_aws_environment }}}}"
  module_defaults:
    group/amazon.aws.aws: &aws_defaults
      region: "{{{{ aws_region }}}}"
    group/community.aws.aws: *aws_defaults
    group/argoeks.mlops.aws: *aws_defaults
  roles:
{roles}
"""


@pytest.fixture(scope="module")
def aws_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    (port,) = free_ports(1, also_plus=0)
    log = tmp_path_factory.mktemp("aws") / "emulator.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(EMULATOR), "-H", "127.0.0.1", "-p", str(port)],
            env={**_clean_env(), "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(endpoint), what="the AWS emulator")
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**env, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def _session() -> boto3.Session:
    return boto3.Session(region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")


def _answers(endpoint: str) -> bool:
    try:
        _session().client("sts", endpoint_url=endpoint).get_caller_identity()
    except Exception:  # any error means "not answering yet"
        return False
    return True


class Cloud:
    """The AWS emulator, emptied and given the EKS cluster (with its OIDC provider) eks_cluster would make."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        reset = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")  # noqa: S310 (http on loopback)
        urllib.request.urlopen(reset, timeout=10).close()  # noqa: S310
        cluster = self.client("eks").create_cluster(
            name=CLUSTER,
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/{CLUSTER}-cluster",
            resourcesVpcConfig={"subnetIds": ["subnet-a", "subnet-b"]},
        )["cluster"]
        self.issuer = cluster["identity"]["oidc"]["issuer"]
        self.provider_arn = self.client("iam").create_open_id_connect_provider(
            Url=self.issuer,
            ClientIDList=["sts.amazonaws.com"],
            ThumbprintList=["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"],
        )["OpenIDConnectProviderArn"]

    def client(self, service: str) -> Any:
        return _session().client(service, endpoint_url=self.endpoint)

    def buckets(self) -> list[str]:
        return [b["Name"] for b in self.client("s3").list_buckets()["Buckets"]]

    def roles(self) -> list[str]:
        return [r["RoleName"] for r in self.client("iam").list_roles()["Roles"]]


class Stack:
    """Runs k8s_platform_base (namespace, IRSA service account) and the role with the stand-in manifests."""

    def __init__(self, kube: Kube, cloud: Cloud, render_dir: str = "") -> None:
        self.kube, self.cloud = kube, cloud
        self.vars = {
            "platform_target": "eks",
            "aws_endpoint_url": cloud.endpoint,
            "object_store_aws_credentials": {"access_key": "testing", "secret_key": "testing"},
            "platform_home": str(kube.tmp / "home"),
            "k8s_kubeconfig": str(kube.kubeconfig),
            "k8s_render_dir": render_dir,
            "k8s_platform_base_account_id": ACCOUNT,
            "kubeflow_pipelines_cluster_manifests": str(STANDINS / "kfp-cluster-standin"),
            "kubeflow_pipelines_manifests": str(STANDINS / "kfp-standin"),
            # The emulator runs no controllers: no Deployment ever becomes available.
            "kubeflow_pipelines_wait_timeout": 0,
        }
        self.outputs: list[str] = []

    def run(
        self,
        *args: str,
        roles: tuple[str, ...] = ("k8s_platform_base", "kubeflow_pipelines"),
        check: bool = True,
        **extra: Any,
    ) -> PlaybookRun:
        path = self.kube.tmp / f"vars{len(self.outputs)}.yml"
        path.write_text(yaml.safe_dump({**self.vars, **extra}))
        play = PLAY.format(root=ROOT, vars=path, roles="\n".join(f"    - {r}" for r in roles))
        run = self.kube.playbook(play, *args, check=check)
        self.outputs.append(run.stdout + run.stderr)
        return run


def changed_tasks(run: PlaybookRun) -> list[str]:
    names, current = [], None
    for line in run.stdout.splitlines():
        if line.startswith("TASK ["):
            current = line
        elif line.startswith("changed:") and current not in names:
            names.append(current)
    return names


def get(kube: Kube, *args: str) -> dict[str, Any]:
    return json.loads(kube.kubectl("get", *args, "-o", "json").stdout)


def exists(kube: Kube, *args: str) -> bool:
    return kube.kubectl("get", *args, check=False).returncode == 0


@pytest.fixture(scope="module")
def converged(aws_emulator: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Applied, then again, then in check mode; then torn down: the tests below read each step."""
    from .emulator import KubeEmulator

    tmp = tmp_path_factory.mktemp("kfp")
    with KubeEmulator(tmp / "kubeconfig") as emulator:
        kube = Kube(emulator=emulator, kubeconfig=tmp / "kubeconfig", url=emulator.url, tmp=tmp)
        cloud = Cloud(aws_emulator)
        stack = Stack(kube, cloud)
        first = stack.run("--diff")
        state = {
            "launcher": get(kube, "configmap", "kfp-launcher", "-n", "kubeflow"),
            "runner": get(kube, "serviceaccount", "pipeline-runner", "-n", "kubeflow"),
            "ui": get(kube, "service", "ml-pipeline-ui", "-n", "kubeflow"),
            "namespace": get(kube, "namespace", "kubeflow"),
            "policies": {p["metadata"]["name"] for p in get(kube, "networkpolicies", "-n", "kubeflow")["items"]},
            "cluster_role": exists(kube, "clusterrole", "kubeflow-pipelines-standin"),
        }
        iam = cloud.client("iam")
        state["trust"] = iam.get_role(RoleName=ROLE)["Role"]["AssumeRolePolicyDocument"]
        state["inline"] = iam.get_role_policy(RoleName=ROLE, PolicyName=ROLE)["PolicyDocument"]
        second = stack.run("--diff")
        checked = stack.run("--check", "--diff")
        teardown = stack.run(roles=("kubeflow_pipelines",), kubeflow_pipelines_state="absent")
        yield {
            "kube": kube,
            "cloud": cloud,
            "first": first,
            "second": second,
            "checked": checked,
            "teardown": teardown,
            **state,
        }


def test_bad_settings_fail_before_any_change(aws_emulator: str, kube: Kube) -> None:
    cloud = Cloud(aws_emulator)
    run = Stack(kube, cloud).run(
        roles=("kubeflow_pipelines",), check=False, kubeflow_pipelines_bucket_prefix="/leading"
    )
    assert run.returncode != 0
    assert "kubeflow_pipelines_bucket_prefix (/leading) a key prefix" in " ".join(run.stdout.split())
    assert BUCKET not in cloud.buckets() and ROLE not in cloud.roles()


def test_role_applies_the_manifests_with_the_overlay(converged: dict[str, Any]) -> None:
    assert converged["first"].recap()["failed"] == 0 and converged["first"].recap()["changed"] > 0
    launcher = converged["launcher"]["data"]
    assert launcher["defaultPipelineRoot"] == f"s3://{BUCKET}/pipelines"
    providers = yaml.safe_load(launcher["providers"])
    assert providers["s3"]["default"]["region"] == "us-east-1"
    assert providers["s3"]["default"]["credentials"] == {"fromEnv": True}
    annotations = converged["runner"]["metadata"]["annotations"]
    assert annotations["eks.amazonaws.com/role-arn"] == f"arn:aws:iam::{ACCOUNT}:role/{ROLE}"
    # the roadmap's port-forward target: svc/ml-pipeline-ui port 80
    assert [p["port"] for p in converged["ui"]["spec"]["ports"]] == [80]
    assert converged["cluster_role"], "the cluster-scoped resources are applied"
    # the manifests' own Namespace object did not strip k8s_platform_base's labels
    labels = converged["namespace"]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert "kubeflow-pipelines-egress" in converged["policies"]
    assert "kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80" in " ".join(converged["first"].stdout.split())


def test_bucket_is_encrypted_private_and_tls_only(converged: dict[str, Any]) -> None:
    s3 = converged["cloud"].client("s3")
    rules = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    block = s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"]
    assert block == dict.fromkeys(
        ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
    )
    policy = json.loads(s3.get_bucket_policy(Bucket=BUCKET)["Policy"])
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_irsa_role_trusts_only_the_pipeline_runner_and_reaches_only_the_bucket(converged: dict[str, Any]) -> None:
    cloud = converged["cloud"]
    statement = converged["trust"]["Statement"][0]
    issuer = cloud.issuer.removeprefix("https://")
    assert statement["Principal"] == {"Federated": cloud.provider_arn}
    assert statement["Condition"]["StringEquals"][f"{issuer}:sub"] == "system:serviceaccount:kubeflow:pipeline-runner"
    inline = converged["inline"]
    resources = {
        r for s in inline["Statement"] for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])
    }
    assert resources == {f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"}


def test_second_run_and_check_mode_change_nothing(converged: dict[str, Any]) -> None:
    for run in (converged["second"], converged["checked"]):
        assert run.recap()["failed"] == 0, run.stdout[-3000:]
        assert run.recap()["changed"] == 0, f"changed tasks: {changed_tasks(run)}"


def test_teardown_removes_pipelines_keeps_namespace_account_and_bucket(converged: dict[str, Any]) -> None:
    kube, cloud, run = converged["kube"], converged["cloud"], converged["teardown"]
    assert run.recap()["failed"] == 0, run.stdout[-3000:]
    assert not exists(kube, "service", "ml-pipeline-ui", "-n", "kubeflow")
    assert not exists(kube, "configmap", "kfp-launcher", "-n", "kubeflow")
    assert not exists(kube, "clusterrole", "kubeflow-pipelines-standin")
    assert not exists(kube, "networkpolicy", "kubeflow-pipelines-egress", "-n", "kubeflow")
    assert exists(kube, "namespace", "kubeflow") and exists(kube, "serviceaccount", "pipeline-runner", "-n", "kubeflow")
    assert ROLE not in cloud.roles()
    assert BUCKET in cloud.buckets(), "artifacts are kept unless kubeflow_pipelines_delete_data"
    assert "set kubeflow_pipelines_delete_data=true to delete it" in " ".join(run.stdout.split())


# ---------------------------------------------------------------------------------- render mode


@pytest.fixture(scope="module")
def rendered(aws_emulator: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("kfp-render")
    out = tmp / "render"
    # No cluster: the kubeconfig points nowhere, and nothing may try it.
    kube = Kube(emulator=None, kubeconfig=tmp / "no-kubeconfig", url="", tmp=tmp)  # type: ignore[arg-type]
    cloud = Cloud(aws_emulator)
    stack = Stack(kube, cloud, render_dir=str(out))
    run = stack.run(roles=("kubeflow_pipelines",))
    again = stack.run(roles=("kubeflow_pipelines",))
    return {"out": out, "run": run, "again": again, "cloud": cloud, "stack": stack}


def test_render_mode_writes_manifests_and_the_overlay_without_a_cluster(rendered: dict[str, Any]) -> None:
    out = rendered["out"]
    assert rendered["run"].recap()["failed"] == 0
    assert rendered["again"].recap()["changed"] == 0, f"changed tasks: {changed_tasks(rendered['again'])}"
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == [
        "kubeflow-pipelines-cluster.yaml",
        "kubeflow-pipelines-policies.yaml",
        "kubeflow-pipelines.yaml",
        "values/kubeflow-pipelines/kfp-launcher.yaml",
        "values/kubeflow-pipelines/kustomization.yaml",
        "values/kubeflow-pipelines/pipeline-runner.yaml",
    ]
    kustomization = yaml.safe_load((out / "values/kubeflow-pipelines/kustomization.yaml").read_text())
    assert kustomization["namespace"] == "kubeflow"
    # the overlay is what `kubectl kustomize` builds: the rendered file is exactly that
    built = subprocess.run(
        ["kubectl", "kustomize", str(out / "values/kubeflow-pipelines")], capture_output=True, text=True, check=True
    ).stdout
    assert list(yaml.safe_load_all(built)) == list(yaml.safe_load_all((out / "kubeflow-pipelines.yaml").read_text()))
    assert "rendered to " + str(out) in rendered["run"].stdout
    assert BUCKET in rendered["cloud"].buckets(), "the AWS side is made in render mode too"


def test_rendered_manifests_pass_strict_validation(rendered: dict[str, Any]) -> None:
    objects, problems = validate_manifests.validate(rendered["out"], "1.32")
    assert problems == [], "\n".join(str(p) for p in problems)
    kinds = {(o["kind"], o["metadata"]["name"]) for _, _, o in objects}
    assert {
        ("ConfigMap", "kfp-launcher"),
        ("Service", "ml-pipeline-ui"),
        ("NetworkPolicy", "kubeflow-pipelines-egress"),
    } <= kinds
    assert not any(kind == "Namespace" for kind, _ in kinds), "the namespace belongs to k8s_platform_base"


def test_render_teardown_removes_the_files(rendered: dict[str, Any]) -> None:
    run = rendered["stack"].run(roles=("kubeflow_pipelines",), kubeflow_pipelines_state="absent")
    assert run.recap()["failed"] == 0, run.stdout[-3000:]
    assert [p for p in rendered["out"].rglob("*") if p.is_file()] == []
