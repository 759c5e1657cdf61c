"""The jupyterhub role on the eks target without a cloud: the notebook image's ECR repository against the AWS
emulator, the zero-to-jupyterhub release (the stand-in chart in place of the real one, which cannot be pulled
here) and the role's objects against the Kubernetes API emulator, and render mode validated offline.

What only a real cluster shows: that the pinned chart accepts these values, its pods run and the
authenticator reaches the identity provider.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.k8s import crd_models
from tests.support import playbook

from .conftest import ROOT, Kube, PlaybookRun
from .test_observability import CRDS, Cloud, aws_emulator, changed_tasks  # noqa: F401 - fixtures

sys.path.insert(0, str(ROOT / "tools"))
import validate_manifests

CHART = Path(__file__).resolve().parent / "charts" / "standin"
ACCOUNT = "123456789012"
REPOSITORY = "mlops/jupyter"
# A test value that must never be printed.
CLIENT_SECRET = "oauthCLIENTsecretVALUE"

PLAY = """\
- name: JupyterHub on eks
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
    - jupyterhub
"""


class Hub:
    def __init__(self, kube: Kube, cloud: Cloud, helm_bin: Path, render_dir: str = "") -> None:
        self.kube, self.cloud, self.helm = kube, cloud, helm_bin
        self.vars = {
            "platform_target": "eks",
            "aws_endpoint_url": cloud.endpoint,
            "object_store_aws_credentials": {"access_key": "testing", "secret_key": "testing"},
            "platform_home": str(kube.tmp / "home"),
            "budget_emails": ["ops@example.com"],
            "k8s_kubeconfig": str(kube.kubeconfig),
            "k8s_render_dir": render_dir,
            "jupyterhub_helm_binary": str(helm_bin),
            "jupyterhub_helm_timeout": "2m",
            "jupyterhub_chart": {"chart_ref": str(CHART), "chart_repo_url": "", "chart_version": ""},
            "jupyterhub_authenticator_config": {
                "client_id": "argoeks-hub",
                "oauth_callback_url": "https://hub.example.com/hub/oauth_callback",
                "allowed_organizations": ["example-org"],
            },
            "jupyterhub_authenticator_client_secret": CLIENT_SECRET,
        }
        self.outputs: list[str] = []

    def run(self, *args: str, check: bool = True, **extra: Any) -> PlaybookRun:
        path = self.kube.tmp / f"hub-vars{len(self.outputs)}.yml"
        path.write_text(yaml.safe_dump({**self.vars, **extra}))
        run = self.kube.playbook(PLAY.format(root=ROOT, vars=path), *args, check=check)
        self.outputs.append(run.stdout + run.stderr)
        return run

    def helm_cmd(self, *args: str) -> str:
        proc = subprocess.run(
            [str(self.helm), *args], capture_output=True, text=True, env=self.kube.env, timeout=60, check=True
        )
        return proc.stdout

    def releases(self) -> dict[str, dict[str, Any]]:
        return {r["name"]: r for r in json.loads(self.helm_cmd("list", "--all-namespaces", "-o", "json"))}

    def values(self) -> dict[str, Any]:
        return json.loads(self.helm_cmd("get", "values", "jupyterhub", "-n", "jupyter", "-o", "json"))

    def repositories(self) -> dict[str, dict[str, Any]]:
        return {r["repositoryName"]: r for r in self.cloud.client("ecr").describe_repositories()["repositories"]}


@pytest.fixture(scope="module")
def converged(aws_emulator: str, helm: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:  # noqa: F811
    from .emulator import KubeEmulator

    tmp = tmp_path_factory.mktemp("jupyterhub")
    with KubeEmulator(tmp / "kubeconfig") as emulator:
        kube = Kube(emulator=emulator, kubeconfig=tmp / "kubeconfig", url=emulator.url, tmp=tmp)
        kube.kubectl("apply", "-f", str(CRDS / "monitoring.coreos.com_servicemonitors.yaml"))
        hub = Hub(kube, Cloud(aws_emulator), helm)
        first = hub.run("--diff")
        second = hub.run("--diff", "-v")
        checked = hub.run("--check", "--diff", "-v")
        yield {"kube": kube, "hub": hub, "first": first, "second": second, "checked": checked}


def test_preflight_refuses_the_dummy_authenticator_in_the_prod_inventory_only() -> None:
    prod = playbook("phase2.yml", "-i", "inventories/prod", "-e", "jupyterhub_authenticator_class=dummy", timeout=300)
    assert prod.rc != 0
    assert "jupyterhub_authenticator_class: 'dummy' is not accepted" in prod.output
    assert "never in prod" in prod.output
    dev = playbook(
        "phase2.yml",
        "-i",
        "inventories/dev",
        "--tags",
        "preflight",
        "-e",
        "jupyterhub_authenticator_class=dummy",
        "-e",
        "verify_checkpoints_skip=true",
    )
    assert dev.rc == 0 and dev.failed == 0, dev.tail()


def test_dummy_authentication_in_prod_fails_before_any_change(aws_emulator: str, helm: Path, kube: Kube) -> None:  # noqa: F811
    hub = Hub(kube, Cloud(aws_emulator), helm)
    run = hub.run(check=False, platform_env="prod", jupyterhub_authenticator_class="dummy")
    assert run.returncode != 0
    assert "jupyterhub: invalid eks settings" in run.stdout and "(not dummy in prod)" in " ".join(run.stdout.split())
    assert hub.repositories() == {}
    assert hub.releases() == {}


def test_the_release_has_the_roadmaps_resources_culling_and_authentication(converged: dict[str, Any]) -> None:
    hub, kube = converged["hub"], converged["kube"]
    assert converged["first"].recap()["failed"] == 0 and converged["first"].recap()["changed"] > 0
    releases = hub.releases()
    assert releases["jupyterhub"]["namespace"] == "jupyter" and releases["jupyterhub"]["status"] == "deployed"
    assert kube.kubectl("get", "configmap", "jupyterhub-standin", "-n", "jupyter", check=False).returncode == 0
    values = hub.values()
    single = values["singleuser"]
    assert single["cpu"] == {"guarantee": 2, "limit": 4}
    assert single["memory"] == {"guarantee": "8G", "limit": "16G"}
    assert single["storage"] == {"type": "dynamic", "capacity": "100Gi"}
    assert single["image"] == {
        "name": f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/{REPOSITORY}",
        "tag": "6.1.1-1",
    }
    assert single["extraEnv"]["MLFLOW_TRACKING_URI"] == "http://mlflow.mlflow.svc.cluster.local:5000"
    assert single["extraEnv"]["FEAST_FEATURE_SERVER_URL"] == "http://feast-feature-server.feast.svc.cluster.local:6566"
    assert values["cull"] == {"enabled": True, "timeout": 3600, "every": 300, "users": False}
    config = values["hub"]["config"]
    assert config["JupyterHub"]["authenticator_class"] == "github"
    assert config["Authenticator"] == {"admin_users": ["admin"], "auto_login": False}
    assert config["GitHubOAuthenticator"]["allowed_organizations"] == ["example-org"]
    assert config["GitHubOAuthenticator"]["client_secret"] == CLIENT_SECRET, "Helm gets the secret"
    assert values["proxy"]["service"]["type"] == "ClusterIP"
    # The roadmap's namespace; k8s_platform_base makes it on a platform, Helm here.
    assert kube.kubectl("get", "namespace", "jupyter", check=False).returncode == 0
    monitor = json.loads(kube.kubectl("get", "servicemonitor", "jupyterhub-hub", "-n", "jupyter", "-o", "json").stdout)
    assert monitor["spec"]["endpoints"][0]["path"] == "/hub/metrics"


def test_the_notebook_images_repository_is_created_and_the_build_skipped_with_a_reason(
    converged: dict[str, Any],
) -> None:
    repository = converged["hub"].repositories()[REPOSITORY]
    assert repository["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repository["imageTagMutability"] == "IMMUTABLE"
    text = " ".join(converged["first"].stdout.split())
    assert "jupyterhub: notebook image not built: no docker or podman with a running engine on this host" in text
    dockerfile = (ROOT / "roles" / "jupyterhub" / "files" / "Dockerfile").read_text()
    for tool in ("mlflow==", "feast[", "great-expectations==", "evidently==", "shap==", "optuna==", "ray[default]=="):
        assert tool in dockerfile, tool


def test_second_run_and_check_mode_change_nothing(converged: dict[str, Any]) -> None:
    for run in (converged["second"], converged["checked"]):
        assert run.recap()["failed"] == 0, run.stdout[-3000:]
        assert run.recap()["changed"] == 0, f"changed tasks: {changed_tasks(run)}"


def test_the_client_secret_is_never_printed(converged: dict[str, Any]) -> None:
    for output in converged["hub"].outputs:
        assert CLIENT_SECRET not in output


def test_teardown_keeps_the_notebooks_unless_asked(converged: dict[str, Any]) -> None:
    hub, kube = converged["hub"], converged["kube"]
    # A user's notebook volume, as the spawner labels it.
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "claim-alice", "namespace": "jupyter", "labels": {"app": "jupyterhub"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "100Gi"}}},
    }
    kube.kubectl("apply", "-f", "-", input=json.dumps(claim))
    kept = hub.run(jupyterhub_state="absent")
    assert "set jupyterhub_delete_data=true to delete them" in " ".join(kept.stdout.split())
    assert hub.releases() == {}
    assert kube.kubectl("get", "pvc", "claim-alice", "-n", "jupyter", check=False).returncode == 0
    assert REPOSITORY in hub.repositories()
    hub.run(jupyterhub_state="absent", jupyterhub_delete_data=True)
    assert REPOSITORY not in hub.repositories()
    assert kube.kubectl("get", "pvc", "claim-alice", "-n", "jupyter", check=False).returncode != 0
    # The namespace is k8s_platform_base's (quotas, policies): only the role's data goes.
    assert kube.kubectl("get", "namespace", "jupyter", check=False).returncode == 0


# ---------------------------------------------------------------------------------- render mode


@pytest.fixture(scope="module")
def rendered(aws_emulator: str, helm: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:  # noqa: F811
    tmp = tmp_path_factory.mktemp("jupyterhub-render")
    out = tmp / "render"
    kube = Kube(emulator=None, kubeconfig=tmp / "no-cluster.kubeconfig", url="", tmp=tmp)  # type: ignore[arg-type]
    hub = Hub(kube, Cloud(aws_emulator), helm, render_dir=str(out))
    run = hub.run()
    again = hub.run()
    return {"out": out, "run": run, "again": again, "hub": hub}


def test_render_mode_writes_values_and_manifests_without_a_cluster(rendered: dict[str, Any]) -> None:
    out = rendered["out"]
    assert rendered["run"].recap()["failed"] == 0
    assert rendered["again"].recap()["changed"] == 0, f"changed tasks: {changed_tasks(rendered['again'])}"
    assert sorted(p.name for p in out.glob("*.yaml")) == ["jupyterhub-monitoring.yaml"]
    values = yaml.safe_load((out / "values" / "jupyterhub.yaml").read_text())
    assert values["singleuser"]["cpu"] == {"guarantee": 2, "limit": 4}
    assert "client_secret" not in values["hub"]["config"]["GitHubOAuthenticator"], "no secret in review files"
    assert not any(CLIENT_SECRET in p.read_text() for p in out.rglob("*.yaml"))
    assert REPOSITORY in rendered["hub"].repositories(), "the AWS side is made in render mode too"


def test_rendered_manifests_pass_strict_validation(rendered: dict[str, Any]) -> None:
    objects, problems = validate_manifests.validate(rendered["out"], "1.32", crd_dirs=[CRDS])
    assert problems == [], "\n".join(str(p) for p in problems)
    assert sorted(o["kind"] for _, _, o in objects) == ["ServiceMonitor"]
    # and the published prometheus-operator schema (npm @kubernetes-models) accepts it too
    assert crd_models.problems([o for _, _, o in objects]) == []


def test_rendered_values_network_policy_is_a_valid_egress_rule(rendered: dict[str, Any], tmp_path: Path) -> None:
    """The chart copies singleuser.networkPolicy.egress into a NetworkPolicy: validate it as one."""
    values = yaml.safe_load((rendered["out"] / "values" / "jupyterhub.yaml").read_text())
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "singleuser", "namespace": "jupyter"},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": values["singleuser"]["networkPolicy"]["egress"],
        },
    }
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    _, problems = validate_manifests.validate(tmp_path, "1.32")
    assert problems == [], "\n".join(str(p) for p in problems)


def test_user_pods_pass_the_namespaces_baseline_pod_security(rendered: dict[str, Any]) -> None:
    """zero-to-jupyterhub blocks the metadata server by default with an init container that runs iptables as
    privileged with NET_ADMIN, which `baseline` refuses; the values turn it off and let the chart's
    NetworkPolicy block the address instead."""
    values = yaml.safe_load((rendered["out"] / "values" / "jupyterhub.yaml").read_text())
    single = values["singleuser"]
    assert single["cloudMetadata"]["blockWithIptables"] is False
    assert single["networkPolicy"]["enabled"] is True
    assert single["networkPolicy"]["egressAllowRules"]["cloudMetadataServer"] is False
