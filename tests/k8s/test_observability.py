"""The observability role on the eks target, end to end without a cloud: the AWS side (Thanos bucket,
IRSA role, Grafana's admin password in Secrets Manager) against the AWS emulator, the Kubernetes side
against the Kubernetes API emulator, with the stand-in chart in place of every real chart (real charts
cannot be pulled here), and render mode validated offline.

What only a real cluster shows: that the pinned charts accept these values and their pods run.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from tests.k8s import crd_models
from tests.support import free_ports, wait_until

from .conftest import ROOT, Kube, PlaybookRun

sys.path.insert(0, str(ROOT / "tools"))
import validate_manifests

try:
    import promql_parser
except ImportError:  # the test extra pins it
    promql_parser = None

CHART = Path(__file__).resolve().parent / "charts" / "standin"
CRDS = Path(__file__).resolve().parent / "data" / "crds"
ROLE = ROOT / "roles" / "observability"
EMULATOR = ROOT / "roles" / "aws_emulator" / "files" / "argoeks_emulator.py"
DASHBOARDS = sorted((ROLE / "files" / "dashboards").glob("*.json"))

CLUSTER = "dev-mlops-cluster-01"
ACCOUNT = "123456789012"  # the AWS emulator's account
BUCKET = "argoeks-dev-thanos"
GRAFANA_SECRET = "argoeks/dev/grafana-admin"
THANOS_ROLE = f"{CLUSTER}-thanos"
RELEASES = {  # release -> namespace, in install order
    "kube-prometheus-stack": "monitoring",
    "thanos": "monitoring",
    "loki": "monitoring",
    "cilium": "kube-system",
    "kubecost": "kubecost",
}
# Secrets given to the role: none of them may show up in any output or rendered file.
SLACK_URL = "https://hooks.slack.com/services/T0000/B0000/slackSECRETslack"
SMTP_PASSWORD = "smtpSECRETpassword"

PLAY = """\
- name: Observability on eks
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


# ------------------------------------------------------------------------------------ fixtures


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
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**env, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def _answers(endpoint: str) -> bool:
    try:
        _session().client("sts", endpoint_url=endpoint).get_caller_identity()
    except Exception:  # any error means "not answering yet"
        return False
    return True


def _session() -> boto3.Session:
    return boto3.Session(region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")


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

    def grafana_password(self) -> str:
        return self.client("secretsmanager").get_secret_value(SecretId=GRAFANA_SECRET)["SecretString"]

    def bucket_exists(self) -> bool:
        return BUCKET in [b["Name"] for b in self.client("s3").list_buckets()["Buckets"]]


class Stack:
    """Runs the role (after k8s_platform_base, which makes the namespace and the IRSA service account)."""

    def __init__(self, kube: Kube, cloud: Cloud, helm: Path, render_dir: str = "") -> None:
        self.kube, self.cloud, self.helm = kube, cloud, helm
        charts = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())["observability_charts"]
        # The stand-in chart for every release: real charts cannot be pulled here. (yaml.safe_dump below
        # sorts the releases by name: the role must install them in its own order regardless.)
        for chart in charts.values():
            chart.update(chart_ref=str(CHART), chart_repo_url="", chart_version="")
        self.vars = {
            "platform_target": "eks",
            "aws_endpoint_url": cloud.endpoint,
            # platform_aws_environment carries them to modules and the Secrets Manager lookup
            "object_store_aws_credentials": {"access_key": "testing", "secret_key": "testing"},
            "platform_home": str(kube.tmp / "home"),
            "budget_emails": ["ops@example.com"],
            "observability_alert_slack_webhook_url": SLACK_URL,
            "observability_smtp_auth_username": "alertmanager",
            "observability_smtp_auth_password": SMTP_PASSWORD,
            "k8s_kubeconfig": str(kube.kubeconfig),
            "k8s_render_dir": render_dir,
            "observability_helm_binary": str(helm),
            "observability_helm_timeout": "2m",
            "observability_charts": charts,
        }
        self.outputs: list[str] = []

    def run(
        self,
        *args: str,
        roles: tuple[str, ...] = ("k8s_platform_base", "observability"),
        check: bool = True,
        **extra: Any,
    ) -> PlaybookRun:
        path = self.kube.tmp / f"vars{len(self.outputs)}.yml"
        path.write_text(yaml.safe_dump({**self.vars, **extra}))
        play = PLAY.format(root=ROOT, vars=path, roles="\n".join(f"    - {r}" for r in roles))
        run = self.kube.playbook(play, *args, check=check)
        self.outputs.append(run.stdout + run.stderr)
        return run

    def helm_cmd(self, *args: str) -> str:
        proc = subprocess.run(
            [str(self.helm), *args], capture_output=True, text=True, env=self.kube.env, timeout=60, check=True
        )
        return proc.stdout

    def releases(self) -> dict[str, dict[str, Any]]:
        return {r["name"]: r for r in json.loads(self.helm_cmd("list", "--all-namespaces", "-o", "json"))}

    def values(self, release: str) -> dict[str, Any]:
        return json.loads(self.helm_cmd("get", "values", release, "-n", RELEASES[release], "-o", "json"))


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


def secret_data(kube: Kube, name: str) -> dict[str, str]:
    """The Secret's decoded values. The emulator keeps stringData as sent (an API server would merge it into data)."""
    secret = get(kube, "secret", name, "-n", "monitoring")
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    return {**data, **(secret.get("stringData") or {})}


def apply_crds(kube: Kube) -> None:
    """What kube-prometheus-stack installs with its chart (the stand-in chart brings no CRDs)."""
    for crd in sorted(CRDS.glob("*.yaml")):
        kube.kubectl("apply", "-f", str(crd))


@pytest.fixture(scope="module")
def converged(aws_emulator: str, helm: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One platform brought up, then run again, then run in check mode: the tests below read it."""
    from .emulator import KubeEmulator

    tmp = tmp_path_factory.mktemp("observability")
    with KubeEmulator(tmp / "kubeconfig") as emulator:
        kube = Kube(emulator=emulator, kubeconfig=tmp / "kubeconfig", url=emulator.url, tmp=tmp)
        apply_crds(kube)
        cloud = Cloud(aws_emulator)
        stack = Stack(kube, cloud, helm)
        first = stack.run("--diff")
        password = cloud.grafana_password()
        k8s_password = secret_data(kube, "grafana-admin")["admin-password"]
        versions = cloud.client("secretsmanager").list_secret_version_ids(SecretId=GRAFANA_SECRET)["Versions"]
        second = stack.run("--diff", "-v")
        checked = stack.run("--check", "--diff", "-v")
        yield {
            "kube": kube,
            "cloud": cloud,
            "stack": stack,
            "first": first,
            "second": second,
            "checked": checked,
            "password": password,
            "k8s_password_first": k8s_password,
            "versions_first": versions,
        }


# ------------------------------------------------------------------------ apply and idempotence


def test_bad_settings_fail_before_any_change(aws_emulator: str, helm: Path, kube: Kube) -> None:
    cloud = Cloud(aws_emulator)
    stack = Stack(kube, cloud, helm)
    charts = json.loads(json.dumps(stack.vars["observability_charts"]))
    charts["kubecost"]["namespace"] = "Kube_Cost"
    charts["grafana"] = {"enabled": True, "chart_ref": "grafana", "namespace": "monitoring"}
    run = stack.run(roles=("observability",), check=False, observability_charts=charts)
    assert run.returncode != 0
    assert "observability: invalid eks settings" in run.stdout, run.stdout[-3000:]
    assert "observability_charts may only hold kube-prometheus-stack, thanos, loki, cilium, kubecost" in run.stdout
    assert not cloud.bucket_exists()
    assert cloud.client("secretsmanager").list_secrets()["SecretList"] == []
    assert stack.releases() == {}

    no_helm = stack.run(roles=("observability",), check=False, observability_helm_binary=str(kube.tmp / "no-helm"))
    assert no_helm.returncode != 0
    assert f"observability_helm_binary ({kube.tmp / 'no-helm'}) is not a Helm 3 binary" in no_helm.stdout
    assert not cloud.bucket_exists()


def test_role_applies_releases_and_objects(converged: dict[str, Any]) -> None:
    kube, stack, first = converged["kube"], converged["stack"], converged["first"]
    assert first.recap()["failed"] == 0 and first.recap()["changed"] > 0

    releases = stack.releases()
    assert {name: r["namespace"] for name, r in releases.items()} == RELEASES
    assert all(r["status"] == "deployed" and r["revision"] == "1" for r in releases.values())
    # installed in the role's order (kube-prometheus-stack first: the others use its CRDs), although
    # the test hands the role its charts sorted by name
    assert sorted(releases, key=lambda name: releases[name]["updated"]) == list(RELEASES)
    # each release got the role's values (what the roadmap's port-forward commands rely on)
    kps = stack.values("kube-prometheus-stack")
    assert kps["grafana"]["fullnameOverride"] == "grafana" and kps["grafana"]["service"]["port"] == 80
    assert kps["grafana"]["admin"] == {
        "existingSecret": "grafana-admin",
        "userKey": "admin-user",
        "passwordKey": "admin-password",
    }
    assert kps["prometheus"]["prometheusSpec"]["thanos"]["objectStorageConfig"]["existingSecret"] == {
        "name": "thanos-objstore",
        "key": "objstore.yml",
    }
    assert kps["prometheus"]["serviceAccount"] == {"create": False, "name": "thanos"}
    assert kps["alertmanager"]["alertmanagerSpec"]["configSecret"] == "alertmanager-platform"
    assert kps["alertmanager"]["alertmanagerSpec"]["secrets"] == ["alertmanager-receivers"]
    assert stack.values("cilium")["hubble"]["ui"]["enabled"] is True
    assert stack.values("kubecost")["global"]["prometheus"]["fqdn"] == "http://prometheus-operated.monitoring.svc:9090"
    # the stand-in chart's object of each release is there
    for release, namespace in RELEASES.items():
        assert exists(kube, "configmap", f"{release}-standin", "-n", namespace)

    # dashboards: one ConfigMap per file, labelled for Grafana's sidecar, with the file's JSON
    maps = {
        m["metadata"]["name"]: m
        for m in get(kube, "configmaps", "-n", "monitoring", "-l", "grafana_dashboard=1")["items"]
    }
    assert sorted(maps) == sorted(f"grafana-dashboard-{d.stem}" for d in DASHBOARDS)
    for path in DASHBOARDS:
        data = maps[f"grafana-dashboard-{path.stem}"]["data"]
        assert json.loads(data[path.name]) == json.loads(path.read_text())

    # the platform alert rules, the same as standalone's
    rule = get(kube, "prometheusrule", "argoeks-platform", "-n", "monitoring")
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}
    records = {r["record"] for g in rule["spec"]["groups"] for r in g["rules"] if "record" in r}
    assert {"llm:cost_usd_per_1k_tokens", "llm:cost_usd_per_request"} <= records
    assert {"Watchdog", "TargetDown", "HostDiskSpaceLow", "ModelErrorBudgetBurn"} <= alerts
    assert {"ProjectedMonthlyCostOver80PercentOfBudget", "ProjectedMonthlyCostOver100PercentOfBudget"} <= alerts

    # Alertmanager's configuration routes to the receivers and reads their secrets from the mounted Secret
    config = yaml.safe_load(secret_data(kube, "alertmanager-platform")["alertmanager.yaml"])
    platform = next(r for r in config["receivers"] if r["name"] == "platform")
    assert platform["email_configs"][0]["to"] == "ops@example.com"
    mounted = "/etc/alertmanager/secrets/alertmanager-receivers"
    assert platform["slack_configs"][0]["api_url_file"] == f"{mounted}/slack-webhook-url"
    assert config["global"]["smtp_auth_password_file"] == f"{mounted}/smtp-password"
    assert secret_data(kube, "alertmanager-receivers") == {
        "slack-webhook-url": SLACK_URL,
        "smtp-password": SMTP_PASSWORD,
    }
    objstore = yaml.safe_load(secret_data(kube, "thanos-objstore")["objstore.yml"])
    assert (
        objstore["type"] == "S3" and objstore["config"]["bucket"] == BUCKET and "access_key" not in objstore["config"]
    )

    assert get(kube, "namespace", "kubecost")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    policies = {p["metadata"]["name"] for p in get(kube, "networkpolicies", "-n", "monitoring")["items"]}
    assert {
        "observability-allow-https-egress",
        "observability-prometheus-egress",
        "observability-operator-webhook",
        "observability-alertmanager-smtp",
        "observability-prometheus-from-kubecost",
    } <= policies


def test_thanos_bucket_and_irsa_role(converged: dict[str, Any]) -> None:
    cloud = converged["cloud"]
    s3 = cloud.client("s3")
    rules = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert all(s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"].values())
    policy = json.loads(s3.get_bucket_policy(Bucket=BUCKET)["Policy"])
    assert policy["Statement"][0]["Effect"] == "Deny"
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    lifecycle = s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    assert lifecycle[0]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}

    iam = cloud.client("iam")
    role = iam.get_role(RoleName=THANOS_ROLE)["Role"]
    trust = role["AssumeRolePolicyDocument"]
    statement = trust["Statement"][0]
    issuer = cloud.issuer.removeprefix("https://")
    assert statement["Principal"] == {"Federated": cloud.provider_arn}
    assert statement["Condition"]["StringEquals"][f"{issuer}:sub"] == "system:serviceaccount:monitoring:thanos"
    inline = iam.get_role_policy(RoleName=THANOS_ROLE, PolicyName=THANOS_ROLE)["PolicyDocument"]
    resources = {
        r for s in inline["Statement"] for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])
    }
    assert resources == {f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"}
    # k8s_platform_base's service account points at this role
    account = get(converged["kube"], "serviceaccount", "thanos", "-n", "monitoring")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == role["Arn"]


def test_second_run_and_check_mode_change_nothing(converged: dict[str, Any]) -> None:
    for run in (converged["second"], converged["checked"]):
        assert run.recap()["failed"] == 0, run.stdout[-3000:]
        assert run.recap()["changed"] == 0, f"changed tasks: {changed_tasks(run)}"


def test_grafana_password_is_generated_once_and_never_printed(converged: dict[str, Any]) -> None:
    kube, cloud, stack = converged["kube"], converged["cloud"], converged["stack"]
    password = converged["password"]
    assert len(password) == 32 and password.isalnum()
    assert password != "prom-operator"
    # the Kubernetes Secret Grafana reads holds it; later runs keep it (no new version, same Secret)
    assert converged["k8s_password_first"] == password
    assert secret_data(kube, "grafana-admin") == {"admin-user": "admin", "admin-password": password}
    assert cloud.grafana_password() == password
    versions = cloud.client("secretsmanager").list_secret_version_ids(SecretId=GRAFANA_SECRET)["Versions"]
    assert [v["VersionId"] for v in versions] == [v["VersionId"] for v in converged["versions_first"]]
    # nowhere in the output of any run (plain, --diff, -v, --check), nor in any release's values
    secrets = (password, SLACK_URL, SMTP_PASSWORD)
    encoded = tuple(base64.b64encode(s.encode()).decode() for s in secrets)
    for output in stack.outputs:
        for secret in secrets + encoded:
            assert secret not in output
    for release in RELEASES:
        values = stack.helm_cmd("get", "values", release, "-n", RELEASES[release], "--all", "-o", "json")
        assert not any(secret in values for secret in secrets + encoded)


# ---------------------------------------------------------------------------------- render mode


@pytest.fixture(scope="module")
def rendered(aws_emulator: str, helm: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("observability-render")
    out = tmp / "render"
    # no cluster at all: the kubeconfig points nowhere, so any attempt to reach one fails
    kube = Kube(emulator=None, kubeconfig=tmp / "no-cluster.kubeconfig", url="", tmp=tmp)  # type: ignore[arg-type]
    cloud = Cloud(aws_emulator)
    stack = Stack(kube, cloud, helm, render_dir=str(out))
    run = stack.run(roles=("observability",))
    again = stack.run(roles=("observability",))
    return {"out": out, "run": run, "again": again, "cloud": cloud, "stack": stack}


def manifests(out: Path) -> dict[str, list[dict[str, Any]]]:
    return {p.name: [d for d in yaml.safe_load_all(p.read_text()) if d] for p in sorted(out.glob("*.yaml"))}


def test_render_mode_writes_manifests_and_values_without_a_cluster(rendered: dict[str, Any]) -> None:
    out = rendered["out"]
    assert rendered["run"].recap()["failed"] == 0
    assert rendered["again"].recap()["changed"] == 0, f"changed tasks: {changed_tasks(rendered['again'])}"
    assert sorted(manifests(out)) == [
        "observability-namespaces.yaml",
        "observability-rules.yaml",
        "observability-secrets.yaml",
        "observability.yaml",
    ]
    assert sorted(p.name for p in (out / "values").iterdir()) == sorted(
        [*(f"{r}.yaml" for r in RELEASES), "releases.yaml"]
    )
    assert "rendered to " + str(out) in rendered["run"].stdout
    # the AWS side is made in render mode too
    assert rendered["cloud"].bucket_exists()


def test_rendered_manifests_pass_strict_validation(rendered: dict[str, Any]) -> None:
    objects, problems = validate_manifests.validate(rendered["out"], "1.32", crd_dirs=[CRDS])
    assert problems == [], "\n".join(str(p) for p in problems)
    kinds = sorted({o["kind"] for _, _, o in objects})
    assert kinds == ["ConfigMap", "Namespace", "NetworkPolicy", "PrometheusRule", "Secret"]
    # without the CRD the rule is reported, so the check above did validate it
    _, without_crd = validate_manifests.validate(rendered["out"], "1.32")
    assert [p.obj for p in without_crd] == ["PrometheusRule monitoring/argoeks-platform"]
    # and the published prometheus-operator schema (npm @kubernetes-models) accepts it too
    rules = [o for _, _, o in objects if o["kind"] == "PrometheusRule"]
    assert crd_models.problems(rules) == []


def test_rendered_rule_validation_catches_a_typo(rendered: dict[str, Any], tmp_path: Path) -> None:
    rules = manifests(rendered["out"])["observability-rules.yaml"][0]
    rules["spec"]["groups"][0]["rules"][0]["severity"] = "critical"  # belongs under labels
    rules["spec"]["groups"][1]["rules"][0]["for"] = "two minutes"
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    _, problems = validate_manifests.validate(tmp_path, "1.32", crd_dirs=[CRDS])
    messages = {(p.path, p.message) for p in problems}
    assert any(path == "spec.groups[0].rules[0]" and "'severity' was unexpected" in m for path, m in messages)
    assert any(path == "spec.groups[1].rules[0].for" and "does not match" in m for path, m in messages)


def test_rendered_alert_rules_parse(rendered: dict[str, Any], tmp_path: Path) -> None:
    (rule,) = manifests(rendered["out"])["observability-rules.yaml"]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["kind"] == "PrometheusRule"
    groups = rule["spec"]["groups"]
    standalone = yaml.safe_load(_template_rules(rendered))["groups"]
    assert groups == standalone  # the same rules as the standalone target
    exprs = [r["expr"] for g in groups for r in g["rules"]]
    assert len(exprs) >= 10
    for group in groups:
        assert group["name"] and group["rules"]
        for r in group["rules"]:
            if "record" in r:  # recording rules: a metric name with a colon (level:metric[:op]), no alert fields
                assert re.fullmatch(r"[a-z_]+(:[a-z0-9_]+)+", r["record"])
                assert "alert" not in r and "annotations" not in r
                continue
            assert r["alert"] and r["labels"]["severity"] in {"critical", "warning", "info", "none"}
            assert r["annotations"]["runbook_url"].split("#")[0].endswith(".md")
    if promql_parser is None:
        pytest.skip("promql-parser is not installed")
    for expr in exprs:
        promql_parser.parse(expr)  # raises on a syntax error
    promtool = shutil.which("promtool")
    if promtool:
        (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": groups}))
        proc = subprocess.run(
            [promtool, "check", "rules", str(tmp_path / "rules.yml")], capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


def _template_rules(rendered: dict[str, Any]) -> str:
    """templates/rules.yml.j2 rendered by Ansible with the same settings, as the standalone target uses it."""
    stack, out = rendered["stack"], rendered["out"]
    dest = out.parent / "standalone-rules.yml"
    play = f"""\
- hosts: localhost
  gather_facts: false
  vars_files:
    - {ROOT}/group_vars/all/platform.yml
    - {ROLE}/defaults/main.yml
  tasks:
    - ansible.builtin.copy:
        content: "{{{{ lookup('ansible.builtin.template', '{ROLE}/templates/rules.yml.j2') }}}}"
        dest: {dest}
        mode: "0644"
"""
    stack.kube.playbook(play, "-e", "budget_emails=['ops@example.com']")
    return dest.read_text()


def test_rendered_alertmanager_config_is_valid(rendered: dict[str, Any], tmp_path: Path) -> None:
    objects = {o["metadata"]["name"]: o for o in manifests(rendered["out"])["observability.yaml"]}
    config = objects["alertmanager-platform"]["stringData"]["alertmanager.yaml"]
    parsed = yaml.safe_load(config)
    assert parsed["route"]["receiver"] == "platform"
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool (Debian package prometheus-alertmanager) is not installed")
    (tmp_path / "alertmanager.yml").write_text(config)
    proc = subprocess.run(
        [amtool, "check-config", str(tmp_path / "alertmanager.yml")], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_rendered_secrets_hold_no_secret(rendered: dict[str, Any]) -> None:
    out = rendered["out"]
    password = rendered["cloud"].grafana_password()
    files = [p for p in out.rglob("*") if p.is_file()]
    for secret in (password, SLACK_URL, SMTP_PASSWORD):
        encoded = base64.b64encode(secret.encode()).decode()
        assert not [p for p in files if secret in p.read_text() or encoded in p.read_text()]
        for output in rendered["stack"].outputs:
            assert secret not in output and encoded not in output
    secrets = {s["metadata"]["name"]: s for s in manifests(out)["observability-secrets.yaml"]}
    assert secrets["grafana-admin"]["stringData"] == {
        "admin-user": "admin",
        "admin-password": f"REDACTED (AWS Secrets Manager secret {GRAFANA_SECRET})",
    }
    assert set(secrets["alertmanager-receivers"]["stringData"]) == {"slack-webhook-url", "smtp-password"}


def test_rendered_values_carry_the_roadmap_settings(rendered: dict[str, Any]) -> None:
    values_dir = rendered["out"] / "values"
    values = {r: yaml.safe_load((values_dir / f"{r}.yaml").read_text()) for r in RELEASES}
    index = yaml.safe_load((values_dir / "releases.yaml").read_text())["releases"]
    assert [(r["name"], r["namespace"]) for r in index] == list(RELEASES.items())
    assert {r["name"]: r["chart"] for r in index}["kubecost"] == str(CHART)  # the test's stand-in

    kps = values["kube-prometheus-stack"]
    assert kps["grafana"]["fullnameOverride"] == "grafana"  # svc/grafana
    assert kps["grafana"]["service"]["port"] == 80  # port-forward 3000:80
    assert kps["grafana"]["admin"]["existingSecret"] == "grafana-admin"
    assert "adminPassword" not in kps["grafana"]
    assert kps["grafana"]["sidecar"]["dashboards"]["label"] == "grafana_dashboard"
    assert {d["name"]: d["url"] for d in kps["grafana"]["additionalDataSources"]} == {
        "Thanos": "http://thanos-query.monitoring.svc:9090",
        "Loki": "http://loki.monitoring.svc:3100",
    }
    assert kps["prometheus"]["thanosService"]["enabled"] is True
    assert (
        kps["prometheus"]["prometheusSpec"]["thanos"]["objectStorageConfig"]["existingSecret"]["name"]
        == "thanos-objstore"
    )
    assert kps["prometheus"]["prometheusSpec"]["ruleSelectorNilUsesHelmValues"] is False
    assert kps["defaultRules"]["rules"]["general"] is False  # the role's Watchdog/TargetDown replace it

    thanos = values["thanos"]
    assert thanos["query"]["enabled"] and thanos["storegateway"]["enabled"] and thanos["compactor"]["enabled"]
    assert thanos["receive"]["enabled"] is False
    assert thanos["global"]["objstore"] == {
        "createSecret": False,
        "secretName": "thanos-objstore",
        "secretKey": "objstore.yml",
    }
    assert thanos["global"]["serviceAccount"] == {"create": False, "name": "thanos"}
    assert thanos["compactor"]["retention"] == {"resolutionRaw": "30d", "resolution5m": "180d", "resolution1h": "1y"}
    sidecars = "dnssrv+_grpc._tcp.kube-prometheus-stack-thanos-discovery.monitoring.svc.cluster.local"
    assert sidecars in thanos["query"]["endpoints"]["static"]

    cilium = values["cilium"]
    assert cilium["hubble"]["enabled"] and cilium["hubble"]["relay"]["enabled"] and cilium["hubble"]["ui"]["enabled"]
    assert cilium["hubble"]["ui"]["service"]["port"] == 80  # port-forward 12000:80
    assert cilium["cni"]["chainingMode"] == "aws-cni"

    kubecost = values["kubecost"]
    assert kubecost["global"]["prometheus"] == {
        "enabled": False,
        "fqdn": "http://prometheus-operated.monitoring.svc:9090",
    }
    assert kubecost["global"]["grafana"]["enabled"] is False

    loki = values["loki"]
    assert loki["loki"]["enabled"] and loki["promtail"]["enabled"] and loki["grafana"]["enabled"] is False
    assert loki["loki"]["isDefault"] is False


def test_chart_values_override_is_merged(aws_emulator: str, helm: Path, tmp_path: Path) -> None:
    kube = Kube(emulator=None, kubeconfig=tmp_path / "none", url="", tmp=tmp_path)  # type: ignore[arg-type]
    stack = Stack(kube, Cloud(aws_emulator), helm, render_dir=str(tmp_path / "render"))
    override = {"kube-prometheus-stack": {"prometheus": {"prometheusSpec": {"replicas": 2}}}}
    charts = json.loads(json.dumps(stack.vars["observability_charts"]))
    charts["cilium"]["enabled"] = False
    run = stack.run(roles=("observability",), observability_chart_values=override, observability_charts=charts)
    assert "observability: release cilium skipped" in run.stdout
    kps = yaml.safe_load((tmp_path / "render" / "values" / "kube-prometheus-stack.yaml").read_text())
    assert kps["prometheus"]["prometheusSpec"]["replicas"] == 2
    assert kps["prometheus"]["prometheusSpec"]["retention"] == "15d"  # merged, not replaced
    assert not (tmp_path / "render" / "values" / "cilium.yaml").exists()


def test_irsa_role_uses_the_cluster_eks_cluster_published(aws_emulator: str, helm: Path, tmp_path: Path) -> None:
    kube = Kube(emulator=None, kubeconfig=tmp_path / "none", url="", tmp=tmp_path)  # type: ignore[arg-type]
    cloud = Cloud(aws_emulator)
    cloud.client("eks").delete_cluster(name=CLUSTER)
    stack = Stack(kube, cloud, helm, render_dir=str(tmp_path / "render"))

    # without the cluster, and without eks_cluster_info, the role stops before making the role
    missing = stack.run(roles=("observability",), check=False)
    assert missing.returncode != 0
    assert f"EKS cluster {CLUSTER} was not found" in missing.stdout
    assert not cloud.bucket_exists()
    iam = cloud.client("iam")
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_role(RoleName=THANOS_ROLE)

    # in the same play as eks_cluster, its published facts are used (no lookup)
    published = {"name": CLUSTER, "oidc_issuer": cloud.issuer, "oidc_provider_arn": cloud.provider_arn}
    run = stack.run(roles=("observability",), eks_cluster_info=published)
    assert run.recap()["failed"] == 0, run.stdout[-3000:]
    trust = iam.get_role(RoleName=THANOS_ROLE)["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Federated": cloud.provider_arn}


# ------------------------------------------------------------------------------------- teardown


def test_teardown_removes_releases_and_objects_and_keeps_the_data(aws_emulator: str, helm: Path, kube: Kube) -> None:
    apply_crds(kube)
    cloud = Cloud(aws_emulator)
    stack = Stack(kube, cloud, helm)
    # The emulator enforces the TLS-only bucket policy against this plain-HTTP client; leave it out
    # here (the role says so in one line) so the test can put a metric block into the bucket.
    stack.vars["s3_unsupported_features"] = ["tls_only_policy"]
    run = stack.run()
    assert run.recap()["failed"] == 0
    assert f"TLS-only bucket policy of s3://{BUCKET} skipped" in run.stdout
    cloud.client("s3").put_object(Bucket=BUCKET, Key="01HBLOCK/meta.json", Body=b"{}")
    # a volume of the stack, as the Prometheus StatefulSet would leave behind
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "prometheus-db-0", "namespace": "monitoring"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    kube.kubectl("apply", "-f", "-", input=json.dumps(claim))

    down = stack.run(roles=("observability",), observability_state="absent")
    assert down.recap()["failed"] == 0, down.stdout[-3000:]
    assert stack.releases() == {}
    for release, namespace in RELEASES.items():
        assert not exists(kube, "configmap", f"{release}-standin", "-n", namespace)
    assert get(kube, "configmaps", "-n", "monitoring", "-l", "grafana_dashboard=1")["items"] == []
    for name in ("grafana-admin", "alertmanager-platform", "alertmanager-receivers", "thanos-objstore"):
        assert not exists(kube, "secret", name, "-n", "monitoring")
    assert not exists(kube, "prometheusrule", "argoeks-platform", "-n", "monitoring")
    assert not [
        p
        for p in get(kube, "networkpolicies", "-n", "monitoring")["items"]
        if p["metadata"]["name"].startswith("observability-")
    ]
    assert not exists(kube, "namespace", "kubecost")
    iam = cloud.client("iam")
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_role(RoleName=THANOS_ROLE)
    # kept: the bucket with its blocks, the volume, Grafana's password; each said in one line
    assert cloud.client("s3").get_object(Bucket=BUCKET, Key="01HBLOCK/meta.json")["Body"].read() == b"{}"
    assert exists(kube, "pvc", "prometheus-db-0", "-n", "monitoring")
    assert "kept PersistentVolumeClaims monitoring/prometheus-db-0" in down.stdout
    assert f"kept s3://{BUCKET}" in down.stdout
    password = cloud.grafana_password()
    # k8s_platform_base's namespace and service account are not the role's to delete
    assert exists(kube, "serviceaccount", "thanos", "-n", "monitoring")

    again = stack.run(roles=("observability",), observability_state="absent")
    assert again.recap()["failed"] == 0 and again.recap()["changed"] == 0, changed_tasks(again)

    # a new install reuses the stored password
    assert stack.run().recap()["failed"] == 0
    assert secret_data(kube, "grafana-admin")["admin-password"] == password

    purge = stack.run(roles=("observability",), observability_state="absent", observability_delete_data=True)
    assert purge.recap()["failed"] == 0, purge.stdout[-3000:]
    assert not cloud.bucket_exists()
    assert not exists(kube, "pvc", "prometheus-db-0", "-n", "monitoring")
    secret = cloud.client("secretsmanager").describe_secret(SecretId=GRAFANA_SECRET)
    assert "DeletedDate" in secret


def test_teardown_in_render_mode_removes_the_rendered_files(aws_emulator: str, helm: Path, tmp_path: Path) -> None:
    kube = Kube(emulator=None, kubeconfig=tmp_path / "none", url="", tmp=tmp_path)  # type: ignore[arg-type]
    out = tmp_path / "render"
    stack = Stack(kube, Cloud(aws_emulator), helm, render_dir=str(out))
    assert stack.run(roles=("observability",)).recap()["failed"] == 0
    assert list(out.glob("*.yaml")) and list((out / "values").glob("*.yaml"))
    down = stack.run(roles=("observability",), observability_state="absent")
    assert down.recap()["failed"] == 0, down.stdout[-3000:]
    assert list(out.glob("*.yaml")) == [] and list((out / "values").glob("*.yaml")) == []
