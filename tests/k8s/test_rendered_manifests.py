"""Every manifest the eks roles render for dev and prod: strict schemas, CRDs, policy scan.

Render mode writes what a run would apply; these tests validate it offline, so a typo in a role
fails here with the field it is in, long before a cluster sees it.
"""

import fnmatch
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support import ROOT, VENV_BIN, playbook

sys.path.insert(0, str(ROOT / "tools"))
import validate_manifests

from tests.k8s import cluster_rules

DATA = Path(__file__).parent / "data"
CHECKOV = VENV_BIN.parent / "tools" / "checkov" / "bin" / "checkov"
ACCEPTED = yaml.safe_load((Path(__file__).parent / "checkov-accepted.yml").read_text()) or []


@pytest.fixture(scope="module", params=["dev", "prod"])
def rendered(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"render-{request.param}")
    run = playbook(
        "phase1.yml",
        "-i",
        f"inventories/{request.param}",
        "--tags",
        "k8s_platform_base",
        "-e",
        f"k8s_render_dir={out}",
        "-e",
        "k8s_platform_base_account_id=123456789012",
    )
    assert run.rc == 0, run.tail()
    assert list(out.glob("*.yaml")), "render mode wrote nothing"
    return request.param, out


def test_rendered_manifests_pass_strict_schemas(rendered):
    inventory, out = rendered
    version = yaml.safe_load((ROOT / f"inventories/{inventory}/group_vars/platform/main.yml").read_text())[
        "eks_cluster_version"
    ]
    objects, problems = validate_manifests.validate(out, str(version))
    assert len(objects) > 0
    assert problems == [], "\n".join(str(p) for p in problems)


def rendered_objects(out):
    return [o for path in sorted(out.glob("*.yaml")) for o in yaml.safe_load_all(path.read_text()) if o]


def test_the_cluster_gets_one_encrypted_gp3_default_storage_class(rendered):
    """EKS 1.30 and later have no default StorageClass: a claim that names none would stay Pending."""
    _, out = rendered
    classes = [o for o in rendered_objects(out) if o["kind"] == "StorageClass"]
    defaults = [
        c
        for c in classes
        if c["metadata"].get("annotations", {}).get("storageclass.kubernetes.io/is-default-class") == "true"
    ]
    assert len(defaults) == 1, classes
    (default,) = defaults
    assert default["provisioner"] == "ebs.csi.aws.com"
    assert default["parameters"] == {"type": "gp3", "encrypted": "true"}
    assert default["volumeBindingMode"] == "WaitForFirstConsumer"
    # The provisioner is there: the EBS CSI driver is one of the cluster's add-ons.
    addons = yaml.safe_load((ROOT / "roles/eks_cluster/defaults/main.yml").read_text())["eks_cluster_addons"]
    assert "aws-ebs-csi-driver" in {a["name"] for a in addons}


def test_each_namespace_enforces_a_pod_security_level_its_workloads_pass(rendered):
    _, out = rendered
    levels = cluster_rules.enforced_levels(rendered_objects(out))
    charts = [o for o in yaml.safe_load_all((DATA / "chart-daemonsets.yaml").read_text()) if o]
    refused = {
        name: cluster_rules.pod_security_violations(spec, levels[namespace])
        for namespace, name, spec in cluster_rules.pod_specs(charts)
    }
    assert refused == {name: [] for name in refused}, refused
    # Only the namespace whose DaemonSets read the node is loosened.
    assert {ns: level for ns, level in levels.items() if level != "baseline"} == {"monitoring": "privileged"}


def test_pod_security_rules_refuse_what_their_level_forbids():
    privileged = next(yaml.safe_load_all((DATA / "privileged.yaml").read_text()))
    ((_, _, spec),) = cluster_rules.pod_specs([privileged])
    assert cluster_rules.pod_security_violations(spec, "baseline") == ["bad: privileged"]
    assert cluster_rules.pod_security_violations(spec, "privileged") == []
    charts = [o for o in yaml.safe_load_all((DATA / "chart-daemonsets.yaml").read_text()) if o]
    node_exporter = next(cluster_rules.pod_specs(charts))[2]
    assert cluster_rules.pod_security_violations(node_exporter, "baseline") == [
        "hostNetwork: true", "hostPID: true", "hostPath volume proc", "hostPath volume sys", "hostPath volume root",
        "node-exporter: hostPort 9100",
    ]  # fmt: skip
    restricted = {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {"name": "app", "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}
        ],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
    }
    assert cluster_rules.pod_security_violations(restricted, "restricted") == []
    restricted["containers"][0]["securityContext"]["capabilities"] = {"add": ["NET_ADMIN"]}
    assert cluster_rules.pod_security_violations(restricted, "restricted") == [
        "app: adds capabilities ['NET_ADMIN']",
        "app: does not drop ALL capabilities",
        "app: adds capabilities other than NET_BIND_SERVICE",
    ]


def scan(directory):
    proc = subprocess.run(
        [str(CHECKOV), "-d", str(directory), "--framework", "kubernetes", "-o", "json", "--quiet", "--compact"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    reports = json.loads(proc.stdout or "[]")
    reports = reports if isinstance(reports, list) else [reports]
    return [f for r in reports for f in r.get("results", {}).get("failed_checks", [])]


def accepted(finding):
    return any(
        finding["check_id"] == a["check"] and fnmatch.fnmatch(finding["resource"], a["resource"]) for a in ACCEPTED
    )


@pytest.mark.skipif(not CHECKOV.exists(), reason="checkov is installed by ./argoeks setup test")
def test_rendered_manifests_pass_the_policy_scan(rendered):
    _, out = rendered
    findings = [f for f in scan(out) if not accepted(f)]
    assert findings == [], "\n".join(f"{f['check_id']} {f['resource']}: {f['check_name']}" for f in findings)


def test_every_accepted_finding_has_a_reason():
    assert all(a.get("reason") and a.get("check") and a.get("resource") for a in ACCEPTED)


@pytest.mark.skipif(not CHECKOV.exists(), reason="checkov is installed by ./argoeks setup test")
def test_policy_scan_flags_a_privileged_workload(tmp_path):
    (tmp_path / "privileged.yaml").write_text((DATA / "privileged.yaml").read_text())
    checks = {f["check_id"] for f in scan(tmp_path)}
    assert "CKV_K8S_16" in checks  # privileged container


def test_broken_manifests_fail_with_the_field_named(tmp_path):
    (tmp_path / "broken.yaml").write_text((DATA / "broken.yaml").read_text())
    _, problems = validate_manifests.validate(tmp_path, "1.32")
    found = {(p.obj, p.path): p.message for p in problems}
    assert "'bogus' was unexpected" in found[("ConfigMap x/c", "")]
    assert "'three' is not of type 'integer'" in found[("Deployment x/d", "spec.replicas")]
    assert "'imagePullPolcy' was unexpected" in found[("Deployment x/d", "spec.template.spec.containers[0]")]
    assert "comes before its CustomResourceDefinition" in found[("Widget w", "kind")]
    assert "'colour' was unexpected" in found[("Widget w2", "spec")]
    assert "is not of type 'integer'" in found[("Widget w2", "spec.size")]
    assert "neither a Kubernetes 1.32 kind nor a CustomResourceDefinition" in found[("Gadget g", "apiVersion")]
    assert len(problems) == 7


def test_cli_exits_non_zero_on_problems(tmp_path):
    (tmp_path / "broken.yaml").write_text((DATA / "broken.yaml").read_text())
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools/validate_manifests.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "6 objects, 7 problems" in proc.stdout
