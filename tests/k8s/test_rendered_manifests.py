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
