"""Rules a real cluster applies and the Kubernetes API emulator does not: Pod Security admission and
NetworkPolicy reachability, evaluated on rendered objects.

- `pod_security_violations(pod_spec, level)`: the checks of the Pod Security Standards
  (https://kubernetes.io/docs/concepts/security/pod-security-standards/, v1.32) that the admission
  controller runs for `baseline` and `restricted` (AppArmor and SELinux options are not checked).
- `allows(policies, ...)`: whether NetworkPolicies let one connection through, with the API's semantics
  (a pod is isolated in a direction once a policy selecting it names that direction; then a rule must
  match the peer and the port). Peers outside the cluster (the API server's addresses on EKS, S3) are
  matched by ipBlock only.
"""

from __future__ import annotations

import ipaddress

import yaml

BASELINE_CAPABILITIES = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}  # fmt: skip
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}  # fmt: skip
RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
}  # fmt: skip
LEVELS = ("privileged", "baseline", "restricted")

POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


def pod_specs(objects):
    """(namespace, name, pod spec) of every workload in objects (Pods, controllers, CronJobs)."""
    for obj in objects:
        kind, meta = obj.get("kind"), obj.get("metadata", {})
        spec = None
        if kind == "Pod":
            spec = obj.get("spec")
        elif kind in POD_KINDS:
            spec = obj.get("spec", {}).get("template", {}).get("spec")
        elif kind == "CronJob":
            spec = obj.get("spec", {}).get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec")
        if spec is not None:
            yield meta.get("namespace", "default"), f"{kind}/{meta.get('name')}", spec


def _containers(spec):
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or []


def pod_security_violations(spec, level):
    """What the Pod Security admission of `level` refuses in a pod spec, one line per finding."""
    if level == "privileged":
        return []
    found = []
    pod_context = spec.get("securityContext") or {}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            found.append(f"{field}: true")
    for volume in spec.get("volumes") or []:
        if "hostPath" in volume:
            found.append(f"hostPath volume {volume.get('name')}")
    for sysctl in pod_context.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            found.append(f"sysctl {sysctl.get('name')}")
    if (pod_context.get("seccompProfile") or {}).get("type") == "Unconfined":
        found.append("pod seccompProfile Unconfined")
    for container in _containers(spec):
        name, context = container.get("name"), container.get("securityContext") or {}
        if context.get("privileged"):
            found.append(f"{name}: privileged")
        added = set((context.get("capabilities") or {}).get("add") or [])
        if added - BASELINE_CAPABILITIES:
            found.append(f"{name}: adds capabilities {sorted(added - BASELINE_CAPABILITIES)}")
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                found.append(f"{name}: hostPort {port['hostPort']}")
        if context.get("procMount", "Default") != "Default":
            found.append(f"{name}: procMount {context['procMount']}")
        if (context.get("seccompProfile") or {}).get("type") == "Unconfined":
            found.append(f"{name}: seccompProfile Unconfined")
    if level == "baseline":
        return found

    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if kinds - RESTRICTED_VOLUMES:
            found.append(f"volume {volume.get('name')} of type {sorted(kinds)}")
    pod_seccomp = (pod_context.get("seccompProfile") or {}).get("type")
    for container in _containers(spec):
        name, context = container.get("name"), container.get("securityContext") or {}
        if context.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation is not false")
        if not context.get("runAsNonRoot", pod_context.get("runAsNonRoot", False)):
            found.append(f"{name}: runAsNonRoot is not true")
        if context.get("runAsUser", pod_context.get("runAsUser")) == 0:
            found.append(f"{name}: runAsUser 0")
        if (context.get("seccompProfile") or {}).get("type", pod_seccomp) not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: seccompProfile is not RuntimeDefault or Localhost")
        capabilities = context.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            found.append(f"{name}: does not drop ALL capabilities")
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            found.append(f"{name}: adds capabilities other than NET_BIND_SERVICE")
    return found


def enforced_levels(objects):
    """Namespace name -> the Pod Security level it enforces (privileged when unlabelled)."""
    return {
        o["metadata"]["name"]: o["metadata"].get("labels", {}).get("pod-security.kubernetes.io/enforce", "privileged")
        for o in objects
        if o.get("kind") == "Namespace"
    }


# ---- NetworkPolicy ---------------------------------------------------------------------------------------------


def selects(selector, labels):
    """Whether a label selector matches labels (an empty selector matches everything)."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def _types(policy):
    spec = policy["spec"]
    return spec.get("policyTypes") or (["Ingress", "Egress"] if "egress" in spec else ["Ingress"])


def _port_matches(ports, port, protocol):
    if not ports:
        return True
    for entry in ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        if "port" not in entry:
            return True
        low = entry["port"]
        if isinstance(low, str):  # a named port: not resolvable from the policy alone
            continue
        if low <= port <= entry.get("endPort", low):
            return True
    return False


def _peer_matches(peers, peer, own_namespace):
    """peer: an IP address string (outside the cluster), or (namespace name, namespace labels, pod labels)."""
    if not peers:
        return True
    for candidate in peers:
        if isinstance(peer, str):
            block, address = candidate.get("ipBlock"), ipaddress.ip_address(peer)
            if (
                block
                and address in ipaddress.ip_network(block["cidr"])
                and not any(address in ipaddress.ip_network(e) for e in block.get("except") or [])
            ):
                return True
            continue
        namespace, namespace_labels, pod_labels = peer
        if "ipBlock" in candidate:
            continue
        namespace_selector, pod_selector = candidate.get("namespaceSelector"), candidate.get("podSelector")
        in_namespace = (
            selects(namespace_selector, namespace_labels)
            if namespace_selector is not None
            else (namespace == own_namespace)
        )
        if in_namespace and (pod_selector is None or selects(pod_selector, pod_labels)):
            return True
    return False


def network_policies(paths):
    """Every NetworkPolicy in the rendered manifest files given."""
    return [o for path in paths for o in yaml.safe_load_all(path.read_text()) if o and o["kind"] == "NetworkPolicy"]


def namespace_peer(name, labels=None, pod_labels=None):
    """A peer in namespace `name` (which carries its kubernetes.io/metadata.name label and `labels`)."""
    return (name, {"kubernetes.io/metadata.name": name, **(labels or {})}, pod_labels or {})


def allows(policies, namespace, pod_labels, direction, peer, port, protocol="TCP"):
    """Whether the pod (namespace, pod_labels) may send (Egress) to or receive (Ingress) from peer on port."""
    key = "egress" if direction == "Egress" else "ingress"
    peers_key = "to" if direction == "Egress" else "from"
    isolating = [
        p
        for p in policies
        if p.get("kind") == "NetworkPolicy"
        and p["metadata"].get("namespace") == namespace
        and selects(p["spec"].get("podSelector", {}), pod_labels)
        and direction in _types(p)
    ]
    if not isolating:
        return True
    return any(
        _port_matches(rule.get("ports"), port, protocol) and _peer_matches(rule.get(peers_key), peer, namespace)
        for policy in isolating
        for rule in policy["spec"].get(key) or []
    )
