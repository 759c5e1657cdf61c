"""The Kubernetes API emulator works with the real tools: kubectl, kubernetes.core and Helm 3."""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import Kube
from .emulator import KubeEmulator

CHART = Path(__file__).resolve().parent / "charts" / "standin"

NS_AND_CM = """\
apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: demo
  labels: {app: web}
data:
  colour: blue
"""

CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wdg]}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
      subresources: {status: {}}
"""


def api(kube: Kube, method: str, path: str, body: Any = None, ctype: str = "application/json") -> tuple[int, Any]:
    """One raw HTTP call to the emulator; returns (status, decoded JSON body)."""
    return http_call(kube.emulator.port, method, path, body, ctype)


def http_call(port: int, method: str, path: str, body: Any = None, ctype: str = "application/json") -> tuple[int, Any]:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=data, headers={"Content-Type": ctype})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def get_json(kube: Kube, *args: str) -> dict[str, Any]:
    return json.loads(kube.kubectl("get", *args, "-o", "json").stdout)


# ------------------------------------------------------------------------------------ harness


def test_starts_fast_writes_kubeconfig_and_stops(tmp_path: Path) -> None:
    started = time.monotonic()
    emulator = KubeEmulator(tmp_path / "kc").start()
    try:
        assert time.monotonic() - started < 3
        assert f"server: {emulator.url}" in (tmp_path / "kc").read_text()
        assert http_call(emulator.port, "GET", "/version")[1]["major"] == "1"
    finally:
        emulator.stop()
    with pytest.raises(OSError):
        http_call(emulator.port, "GET", "/version")


# --------------------------------------------------------------------------------- raw API


def test_discovery_lists_builtin_groups_and_kinds(kube: Kube) -> None:
    status, apis = api(kube, "GET", "/apis")
    groups = {g["name"]: g for g in apis["groups"]}
    assert status == 200 and apis["kind"] == "APIGroupList"
    for group in ("apps", "networking.k8s.io", "policy", "rbac.authorization.k8s.io", "apiextensions.k8s.io"):
        assert group in groups
    assert groups["apps"]["preferredVersion"]["groupVersion"] == "apps/v1"
    _, core = api(kube, "GET", "/api/v1")
    kinds = {r["name"]: r for r in core["resources"]}
    assert kinds["namespaces"]["kind"] == "Namespace" and kinds["namespaces"]["namespaced"] is False
    assert kinds["configmaps"]["namespaced"] is True and "patch" in kinds["configmaps"]["verbs"]
    _, netv1 = api(kube, "GET", "/apis/networking.k8s.io/v1")
    assert "NetworkPolicy" in {r["kind"] for r in netv1["resources"]}
    status, missing = api(kube, "GET", "/apis/example.com/v1")
    assert status == 404 and missing["kind"] == "Status" and missing["reason"] == "NotFound"


def test_crud_status_errors_and_resource_versions(kube: Kube) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"tier": "x"}}, "data": {}}
    # a namespaced create needs the namespace to exist
    status, err = api(kube, "POST", "/api/v1/namespaces/nowhere/configmaps", cm)
    assert status == 404
    assert err["kind"] == "Status" and err["reason"] == "NotFound" and err["code"] == 404
    assert err["message"] == 'namespaces "nowhere" not found'

    status, created = api(kube, "POST", "/api/v1/namespaces/default/configmaps", cm)
    meta = created["metadata"]
    assert status == 201 and meta["uid"] and meta["creationTimestamp"] and meta["generation"] == 1
    assert meta["namespace"] == "default"
    rv1 = int(meta["resourceVersion"])

    status, dup = api(kube, "POST", "/api/v1/namespaces/default/configmaps", cm)
    assert status == 409 and dup["reason"] == "AlreadyExists" and dup["message"] == 'configmaps "a" already exists'

    # merge patch, json patch and strategic merge patch (applied as a merge patch)
    path = "/api/v1/namespaces/default/configmaps/a"
    _, merged = api(kube, "PATCH", path, {"data": {"k": "1"}}, "application/merge-patch+json")
    _, jsonp = api(kube, "PATCH", path, [{"op": "add", "path": "/data/j", "value": "2"}], "application/json-patch+json")
    _, smp = api(kube, "PATCH", path, {"data": {"s": "3"}}, "application/strategic-merge-patch+json")
    assert merged["data"] == {"k": "1"} and jsonp["data"] == {"k": "1", "j": "2"}
    assert smp["data"] == {"k": "1", "j": "2", "s": "3"}
    assert int(merged["metadata"]["resourceVersion"]) > rv1
    assert int(smp["metadata"]["resourceVersion"]) > int(jsonp["metadata"]["resourceVersion"])
    assert smp["metadata"]["uid"] == meta["uid"]

    # PUT replaces; a stale resourceVersion is a 409 Conflict
    replacement = {**cm, "data": {"only": "this"}, "metadata": {**cm["metadata"], "resourceVersion": str(rv1)}}
    status, conflict = api(kube, "PUT", path, replacement)
    assert status == 409 and conflict["reason"] == "Conflict"
    replacement["metadata"]["resourceVersion"] = smp["metadata"]["resourceVersion"]
    status, replaced = api(kube, "PUT", path, replacement)
    assert status == 200 and replaced["data"] == {"only": "this"}

    # dryRun=All answers as if done but stores nothing
    status, _ = api(kube, "PATCH", path + "?dryRun=All", {"data": {"dry": "run"}}, "application/merge-patch+json")
    assert status == 200
    status, _ = api(kube, "POST", "/api/v1/namespaces/default/configmaps?dryRun=All", {**cm, "metadata": {"name": "b"}})
    assert status == 201
    status, _ = api(kube, "DELETE", path + "?dryRun=All")
    assert status == 200
    assert api(kube, "GET", path)[1]["data"] == {"only": "this"}
    assert api(kube, "GET", "/api/v1/namespaces/default/configmaps/b")[0] == 404

    # lists carry kind, apiVersion and the current resourceVersion
    _, listing = api(kube, "GET", "/api/v1/namespaces/default/configmaps")
    assert listing["kind"] == "ConfigMapList" and listing["apiVersion"] == "v1"
    assert int(listing["metadata"]["resourceVersion"]) >= int(replaced["metadata"]["resourceVersion"])
    assert [i["metadata"]["name"] for i in listing["items"]] == ["a"]

    # DELETE answers a Status; a second DELETE is NotFound
    status, deleted = api(kube, "DELETE", path)
    assert status == 200 and deleted["kind"] == "Status" and deleted["status"] == "Success"
    status, gone = api(kube, "DELETE", path)
    assert status == 404 and gone["message"] == 'configmaps "a" not found'


def test_server_side_apply_raw(kube: Kube) -> None:
    path = "/api/v1/namespaces/default/configmaps/ssa?fieldManager=alice"
    doc = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "1", "b": "2"}}
    apply = "application/apply-patch+yaml"
    status, created = api(kube, "PATCH", path, doc, apply)
    assert status == 201 and created["data"] == {"a": "1", "b": "2"}
    assert created["metadata"]["managedFields"][0]["manager"] == "alice"
    rv = created["metadata"]["resourceVersion"]
    # re-applying the same config changes nothing
    status, same = api(kube, "PATCH", path, doc, apply)
    assert status == 200 and same["metadata"]["resourceVersion"] == rv
    # a field the manager stops applying is removed
    _, dropped = api(kube, "PATCH", path, {**doc, "data": {"a": "1"}}, apply)
    assert dropped["data"] == {"a": "1"}
    # another manager setting alice's field to another value conflicts unless forced
    bob = "/api/v1/namespaces/default/configmaps/ssa?fieldManager=bob"
    status, conflict = api(kube, "PATCH", bob, {**doc, "data": {"a": "9"}}, apply)
    assert status == 409 and conflict["reason"] == "Conflict" and 'conflict with "alice"' in conflict["message"]
    status, forced = api(kube, "PATCH", bob + "&force=true", {**doc, "data": {"a": "9"}}, apply)
    assert status == 200 and forced["data"] == {"a": "9"}
    # apply needs a fieldManager; force is only for apply
    status, _ = api(kube, "PATCH", "/api/v1/namespaces/default/configmaps/ssa", doc, apply)
    assert status == 422
    status, _ = api(kube, "PATCH", bob + "&force=true", {"data": {}}, "application/merge-patch+json")
    assert status == 422
    # dryRun=All apply of a new object creates nothing
    dry = "/api/v1/namespaces/default/configmaps/ghost?fieldManager=alice&dryRun=All"
    status, _ = api(kube, "PATCH", dry, {**doc, "metadata": {"name": "ghost"}}, apply)
    assert status == 201
    assert api(kube, "GET", "/api/v1/namespaces/default/configmaps/ghost")[0] == 404


def test_finalizers_hold_deletion_until_removed(kube: Kube) -> None:
    body = {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}
    path = "/api/v1/namespaces/default/configmaps/held"
    assert api(kube, "POST", "/api/v1/namespaces/default/configmaps", body)[0] == 201
    status, marked = api(kube, "DELETE", path)
    assert status == 200 and marked["metadata"]["deletionTimestamp"]
    assert api(kube, "GET", path)[0] == 200
    status, _ = api(kube, "PATCH", path, {"metadata": {"finalizers": None}}, "application/merge-patch+json")
    assert status == 200
    assert api(kube, "GET", path)[0] == 404


def test_namespaces_collection_and_cluster_scoped(kube: Kube) -> None:
    status, listing = api(kube, "GET", "/api/v1/namespaces")
    assert status == 200 and listing["kind"] == "NamespaceList"
    assert {"default", "kube-system"} <= {i["metadata"]["name"] for i in listing["items"]}
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "r"}, "rules": []}
    assert api(kube, "POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", role)[0] == 201
    _, got = api(kube, "GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles/r")
    assert "namespace" not in got["metadata"] and got["kind"] == "ClusterRole"


def test_delete_collection_with_label_selector(kube: Kube) -> None:
    for name, tier in (("a", "web"), ("b", "web"), ("c", "db")):
        body = {"metadata": {"name": name, "labels": {"tier": tier}}}
        assert api(kube, "POST", "/api/v1/namespaces/default/secrets", body)[0] == 201
    status, deleted = api(kube, "DELETE", "/api/v1/namespaces/default/secrets?labelSelector=tier%3Dweb")
    assert status == 200 and sorted(i["metadata"]["name"] for i in deleted["items"]) == ["a", "b"]
    _, left = api(kube, "GET", "/api/v1/namespaces/default/secrets")
    assert [i["metadata"]["name"] for i in left["items"]] == ["c"]


# ------------------------------------------------------------------------------------ kubectl


def test_kubectl_apply_get_reapply_server_side_delete(kube: Kube) -> None:
    out = kube.kubectl("apply", "-f", "-", input=NS_AND_CM).stdout
    assert "namespace/demo created" in out and "configmap/settings created" in out

    cm = get_json(kube, "configmap", "settings", "-n", "demo")
    assert cm["data"] == {"colour": "blue"} and cm["metadata"]["labels"] == {"app": "web"}
    assert get_json(kube, "namespace", "demo")["status"]["phase"] == "Active"

    out = kube.kubectl("apply", "-f", "-", input=NS_AND_CM).stdout
    assert "namespace/demo unchanged" in out and "configmap/settings unchanged" in out

    out = kube.kubectl("apply", "-f", "-", input=NS_AND_CM.replace("blue", "green")).stdout
    assert "configmap/settings configured" in out
    assert get_json(kube, "configmap", "settings", "-n", "demo")["data"] == {"colour": "green"}

    ssa = NS_AND_CM.replace("blue", "red")
    out = kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=ssa).stdout
    assert "configmap/settings serverside-applied" in out
    cm = get_json(kube, "configmap", "settings", "-n", "demo")
    assert cm["data"] == {"colour": "red"}

    out = kube.kubectl("delete", "-f", "-", input=NS_AND_CM).stdout
    assert 'namespace "demo" deleted' in out and 'configmap "settings" deleted' in out
    missing = kube.kubectl("get", "namespace", "demo", check=False)
    assert missing.returncode != 0 and 'namespaces "demo" not found' in missing.stderr


def test_kubectl_selectors(kube: Kube) -> None:
    docs = "\n---\n".join(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {n}, namespace: default, labels: {lbl}}}"
        for n, lbl in (("one", "{app: web, env: prod}"), ("two", "{app: api, env: dev}"), ("three", "{app: web}"))
    )
    kube.kubectl("apply", "-f", "-", input=docs)

    def names(*args: str) -> list[str]:
        return sorted(i["metadata"]["name"] for i in get_json(kube, "configmaps", "-n", "default", *args)["items"])

    assert names("-l", "app=web") == ["one", "three"]
    assert names("-l", "app!=web") == ["two"]
    assert names("-l", "env in (prod,dev)") == ["one", "two"]
    assert names("-l", "env notin (prod)") == ["three", "two"]
    assert names("-l", "env") == ["one", "two"]
    assert names("-l", "!env") == ["three"]
    assert names("-l", "app=web,env=prod") == ["one"]
    assert names("--field-selector", "metadata.name=two") == ["two"]


def test_kubectl_crd_then_custom_resource(kube: Kube) -> None:
    cr = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1, namespace: default}\nspec: {size: 3}\n"
    early = kube.kubectl("apply", "-f", "-", input=cr, check=False)
    assert early.returncode != 0 and "Widget" in early.stderr

    kube.kubectl("apply", "-f", "-", input=CRD)
    # kubectl wait watches the object
    waited = kube.kubectl("wait", "--for=condition=Established", "--timeout=10s", "crd/widgets.example.com")
    assert "condition met" in waited.stdout
    crd = get_json(kube, "crd", "widgets.example.com")
    assert {c["type"]: c["status"] for c in crd["status"]["conditions"]}["Established"] == "True"
    assert "widget.example.com/w1 created" in kube.kubectl("apply", "-f", "-", input=cr).stdout
    assert get_json(kube, "wdg", "w1")["spec"] == {"size": 3}


# ------------------------------------------------------------------------- kubernetes.core


K8S_OBJECTS = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - kubernetes.core.k8s:
        state: {state}
        wait: {wait}
        definition:
          - {{apiVersion: v1, kind: Namespace, metadata: {{name: mlops}}}}
          - apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {{name: default-deny, namespace: mlops}}
            spec: {{podSelector: {{}}, policyTypes: [{policy}]}}
          - {{apiVersion: v1, kind: ServiceAccount, metadata: {{name: runner, namespace: mlops}}}}
"""


def k8s_objects(state: str = "present", policy: str = "Ingress", wait: bool = False) -> str:
    return K8S_OBJECTS.format(state=state, policy=policy, wait=str(wait).lower())


def test_k8s_module_idempotence_check_mode_and_absent(kube: Kube) -> None:
    assert kube.playbook(k8s_objects()).recap()["changed"] == 1
    assert get_json(kube, "networkpolicy", "default-deny", "-n", "mlops")["spec"]["policyTypes"] == ["Ingress"]
    assert get_json(kube, "serviceaccount", "runner", "-n", "mlops")["metadata"]["name"] == "runner"

    assert kube.playbook(k8s_objects()).recap()["changed"] == 0

    run = kube.playbook(k8s_objects(policy="Egress"), "--check", "--diff", "-v")
    assert run.recap()["changed"] == 1
    assert "before:" in run.stdout and "- Egress" in run.stdout.split("before:")[0]
    assert get_json(kube, "networkpolicy", "default-deny", "-n", "mlops")["spec"]["policyTypes"] == ["Ingress"]

    assert kube.playbook(k8s_objects(state="absent", wait=True)).recap()["changed"] == 1
    assert kube.kubectl("get", "namespace", "mlops", check=False).returncode != 0
    assert kube.kubectl("get", "serviceaccount", "runner", "-n", "mlops", check=False).returncode != 0


APPLY = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - kubernetes.core.k8s:
        apply: true
        {ssa}
        definition:
          apiVersion: v1
          kind: ConfigMap
          metadata: {{name: applied, namespace: default}}
          data: {{mode: "{value}"}}
"""


@pytest.mark.parametrize("ssa", ["", "server_side_apply: {field_manager: ansible-test}"], ids=["client", "server"])
def test_k8s_module_apply_paths(kube: Kube, ssa: str) -> None:
    assert kube.playbook(APPLY.format(ssa=ssa, value="one")).recap()["changed"] == 1
    assert kube.playbook(APPLY.format(ssa=ssa, value="one")).recap()["changed"] == 0
    assert kube.playbook(APPLY.format(ssa=ssa, value="two")).recap()["changed"] == 1
    cm = api(kube, "GET", "/api/v1/namespaces/default/configmaps/applied")[1]
    assert cm["data"] == {"mode": "two"}
    if ssa:
        assert [m["manager"] for m in cm["metadata"]["managedFields"]] == ["ansible-test"]
    else:
        assert "kubectl.kubernetes.io/last-applied-configuration" in cm["metadata"]["annotations"]


def test_k8s_info_label_selectors(kube: Kube) -> None:
    docs = "\n---\n".join(
        f"apiVersion: v1\nkind: Service\nmetadata: {{name: {n}, namespace: default, labels: {{tier: {t}}}}}\n"
        "spec: {ports: [{port: 80}]}"
        for n, t in (("web", "front"), ("api", "back"), ("db", "data"))
    )
    kube.kubectl("apply", "-f", "-", input=docs)
    play = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - kubernetes.core.k8s_info:
        kind: Service
        namespace: default
        label_selectors: [tier in (front, back), tier != back]
      register: found
    - kubernetes.core.k8s_info:
        kind: Service
        namespace: default
        field_selectors: [metadata.name=db]
      register: by_name
    - ansible.builtin.copy:
        dest: "{{ out }}"
        content: "{{ {'labels': found.resources | map(attribute='metadata.name') | list,
                      'fields': by_name.resources | map(attribute='metadata.name') | list} | to_json }}"
"""
    out = kube.tmp / "found.json"
    kube.playbook(play, "-e", f"out={out}")
    assert json.loads(out.read_text()) == {"labels": ["web"], "fields": ["db"]}


CR_PLAY = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - kubernetes.core.k8s:
        definition:
          apiVersion: example.com/v1
          kind: Widget
          metadata: {name: gadget, namespace: default}
          spec: {size: 5}
"""


def test_k8s_module_crd_then_custom_resource(kube: Kube) -> None:
    early = kube.playbook(CR_PLAY, check=False)
    assert early.returncode != 0 and early.recap()["failed"] == 1
    assert "example.com/v1.Widget" in early.stdout

    crd_play = f"""\
- hosts: localhost
  gather_facts: false
  tasks:
    - kubernetes.core.k8s:
        wait: true
        wait_condition: {{type: Established, status: "True"}}
        definition: {json.dumps(__import__("yaml").safe_load(CRD))}
"""
    assert kube.playbook(crd_play).recap()["changed"] == 1
    assert kube.playbook(CR_PLAY).recap()["changed"] == 1
    assert kube.playbook(CR_PLAY).recap()["changed"] == 0
    assert get_json(kube, "widgets", "gadget", "-n", "default")["spec"] == {"size": 5}


# ------------------------------------------------------------------------------------- Helm


HELM = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - kubernetes.core.helm:
        binary_path: "{helm}"
        name: rel
        chart_ref: "{chart}"
        release_namespace: default
        release_state: {state}
        values: {{greeting: {greeting}}}
"""


def test_helm_install_idempotent_upgrade_uninstall(kube: Kube, helm: Path) -> None:
    def play(state: str = "present", greeting: str = "hello") -> str:
        return HELM.format(helm=helm, chart=CHART, state=state, greeting=greeting)

    assert kube.playbook(play()).recap()["changed"] == 1
    cm = get_json(kube, "configmap", "rel-standin", "-n", "default")
    assert cm["data"] == {"greeting": "hello"}
    releases = get_json(kube, "secrets", "-n", "default", "-l", "owner=helm")["items"]
    assert [s["metadata"]["labels"]["status"] for s in releases] == ["deployed"]

    assert kube.playbook(play()).recap()["changed"] == 0
    assert kube.playbook(play(greeting="bye")).recap()["changed"] == 1
    assert get_json(kube, "configmap", "rel-standin", "-n", "default")["data"] == {"greeting": "bye"}

    assert kube.playbook(play(state="absent")).recap()["changed"] == 1
    assert kube.kubectl("get", "configmap", "rel-standin", "-n", "default", check=False).returncode != 0
    assert get_json(kube, "secrets", "-n", "default", "-l", "owner=helm")["items"] == []


def test_a_helm_binary_other_than_the_pinned_one_is_refused(tmp_path: Path) -> None:
    from .helm import HELM_SHA256, helm_binary

    fake = tmp_path / "helm"
    fake.write_bytes(b"#!/bin/sh\necho v3.17.0\n")
    fake.chmod(0o755)
    with pytest.raises(RuntimeError, match=f"not the pinned {HELM_SHA256}"):
        helm_binary(cache=fake)
