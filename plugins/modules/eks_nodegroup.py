#!/usr/bin/python
# Copyright: argoeks maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

DOCUMENTATION = r"""
---
module: eks_nodegroup
short_description: Manage an EKS managed node group idempotently
version_added: 0.1.0
description:
  - Creates, updates or deletes an Amazon EKS managed node group, idempotently and with check mode and diff.
  - Written because C(community.aws.eks_nodegroup) 10.0.0 reads C(updateConfig) from every DescribeNodegroup
    answer, so a second run against AWS-compatible emulators such as moto (which omit it) fails with a
    C(KeyError), and the module cannot be tested offline. This module treats optional fields that are absent
    from the answer (C(updateConfig), C(labels), C(taints), C(tags), C(diskSize)) as their defaults or empty.
  - The scaling configuration, labels, taints, O(max_unavailable) and tags are updated in place.
  - O(subnets), O(instance_types), O(ami_type), O(capacity_type), O(disk_size) and O(node_role_arn) cannot
    change on an existing node group; the module fails listing each difference rather than replacing the
    node group (that would drain and terminate its nodes).
author:
  - argoeks maintainers
options:
  cluster_name:
    description: Name of the EKS cluster the node group belongs to.
    type: str
    required: true
  name:
    description: Name of the node group.
    type: str
    required: true
  state:
    description: Whether the node group should exist.
    type: str
    choices: [present, absent]
    default: present
  node_role_arn:
    description:
      - ARN of the IAM role the nodes' kubelet uses. Required when creating a node group.
      - On an existing node group it is only compared when given.
    type: str
  subnets:
    description:
      - IDs of the subnets the nodes are launched in. Required when creating a node group.
      - On an existing node group it is only compared (in any order) when given.
    type: list
    elements: str
  instance_types:
    description: EC2 instance types of the nodes, in order of preference.
    type: list
    elements: str
    default: [m5.large]
  ami_type:
    description: AMI type of the nodes, for example C(AL2023_x86_64_STANDARD) or C(AL2023_ARM_64_STANDARD).
    type: str
    default: AL2023_x86_64_STANDARD
  capacity_type:
    description: Whether the nodes are On-Demand or Spot instances.
    type: str
    choices: [ON_DEMAND, SPOT]
    default: ON_DEMAND
  disk_size:
    description:
      - Root volume size of each node in GiB.
      - A node group whose description has no C(diskSize) is taken to have this default.
    type: int
    default: 50
  min_size:
    description:
      - Minimum number of nodes.
      - When creating and omitted, 1 (0 if O(desired_size=0)); when updating and omitted, the current value is kept.
    type: int
  max_size:
    description:
      - Maximum number of nodes, at least 1.
      - When creating and omitted, the largest of 2, O(min_size) and O(desired_size); when updating and omitted,
        the current value is kept.
    type: int
  desired_size:
    description:
      - Number of nodes wanted now. Must satisfy O(min_size) <= O(desired_size) <= O(max_size).
      - When creating and omitted, O(min_size); when updating and omitted, the current value is kept (so that a
        cluster autoscaler's choice is not undone).
    type: int
  max_unavailable:
    description:
      - Maximum number of nodes unavailable at once during a version update.
      - A node group whose description has no C(updateConfig) is taken to have the default of 1.
    type: int
    default: 1
  labels:
    description:
      - Kubernetes labels of the nodes. When given, labels not listed are removed; when omitted, labels are left alone.
    type: dict
  taints:
    description:
      - Kubernetes taints of the nodes. When given, taints not listed are removed; when omitted, taints are left alone.
      - A taint is identified by its O(taints[].key) and O(taints[].effect).
    type: list
    elements: dict
    suboptions:
      key:
        description: Taint key.
        type: str
        required: true
      value:
        description: Taint value.
        type: str
      effect:
        description: Taint effect.
        type: str
        required: true
        choices: [NO_SCHEDULE, NO_EXECUTE, PREFER_NO_SCHEDULE]
  wait:
    description:
      - Wait until the node group is C(ACTIVE) after creating or updating it, and gone after deleting it.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait.
    type: int
    default: 1200
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.tags
  - amazon.aws.boto3
notes:
  - Supports C(check_mode) and C(diff).
  - Sizes are checked (0 <= O(min_size) <= O(desired_size) <= O(max_size), O(max_size) >= 1) before any AWS call.
  - A node group that is C(CREATE_FAILED) is reported as a failure with its health issues; delete it with
    O(state=absent) and create it again.
"""

EXAMPLES = r"""
- name: General-purpose node group of the argoeks cluster
  argoeks.mlops.eks_nodegroup:
    cluster_name: argoeks-dev
    name: general
    node_role_arn: arn:aws:iam::123456789012:role/argoeks-dev-node
    subnets:
      - subnet-0a1b2c3d4e5f60001
      - subnet-0a1b2c3d4e5f60002
    instance_types: [m5.large]
    min_size: 1
    desired_size: 2
    max_size: 4
    labels:
      workload: general
    tags:
      Project: argoeks

- name: Spot GPU node group, tainted so that only GPU workloads land on it
  argoeks.mlops.eks_nodegroup:
    cluster_name: argoeks-dev
    name: gpu-spot
    node_role_arn: arn:aws:iam::123456789012:role/argoeks-dev-node
    subnets: [subnet-0a1b2c3d4e5f60001, subnet-0a1b2c3d4e5f60002]
    ami_type: AL2023_x86_64_NVIDIA
    capacity_type: SPOT
    instance_types: [g5.xlarge, g5.2xlarge]
    disk_size: 200
    min_size: 0
    desired_size: 0
    max_size: 3
    taints:
      - key: nvidia.com/gpu
        value: "true"
        effect: NO_SCHEDULE

- name: Scale the general node group (other settings are kept)
  argoeks.mlops.eks_nodegroup:
    cluster_name: argoeks-dev
    name: general
    desired_size: 3
    max_size: 6

- name: Remove it
  argoeks.mlops.eks_nodegroup:
    cluster_name: argoeks-dev
    name: general
    state: absent
"""

RETURN = r"""
nodegroup:
  description: The node group as it is after the module ran (in check mode, as it would be); empty when absent.
  returned: always
  type: dict
  contains:
    name:
      description: Node group name.
      type: str
      sample: general
    cluster_name:
      description: Name of the cluster.
      type: str
      sample: argoeks-dev
    arn:
      description: Node group ARN.
      type: str
      sample: arn:aws:eks:us-east-1:123456789012:nodegroup/argoeks-dev/general/6ec6d7a4-0d2c-4c6b-9b7e-000000000000
    status:
      description: Node group status.
      type: str
      sample: ACTIVE
    scaling:
      description: Scaling configuration.
      type: dict
      contains:
        min_size:
          description: Minimum number of nodes.
          type: int
          sample: 1
        max_size:
          description: Maximum number of nodes.
          type: int
          sample: 4
        desired_size:
          description: Desired number of nodes.
          type: int
          sample: 2
    instance_types:
      description: Instance types.
      type: list
      elements: str
      sample: [m5.large]
    ami_type:
      description: AMI type.
      type: str
      sample: AL2023_x86_64_STANDARD
    capacity_type:
      description: Capacity type.
      type: str
      sample: ON_DEMAND
    disk_size:
      description: Root volume size in GiB.
      type: int
      sample: 50
    subnets:
      description: Subnet IDs.
      type: list
      elements: str
    node_role_arn:
      description: ARN of the node IAM role.
      type: str
    max_unavailable:
      description: Maximum number of nodes unavailable during an update (null when only a percentage is set).
      type: int
      sample: 1
    labels:
      description: Kubernetes labels.
      type: dict
      sample: {workload: general}
    taints:
      description: Kubernetes taints, each with C(key), C(value) and C(effect).
      type: list
      elements: dict
    tags:
      description: Tags of the node group.
      type: dict
      sample: {Project: argoeks}
"""

import contextlib
import time

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    import botocore

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import compare_aws_tags

from ansible_collections.argoeks.mlops.plugins.module_utils.aws import retry_decorator

DEFAULT_DISK_SIZE = 50
DEFAULT_MAX_UNAVAILABLE = 1
DEFAULT_INSTANCE_TYPES = ["m5.large"]
DEFAULT_AMI_TYPE = "AL2023_x86_64_STANDARD"
DEFAULT_CAPACITY_TYPE = "ON_DEMAND"
POLL_SECONDS = 10

# Options that cannot change on an existing node group, with the describe field they are compared to.
IMMUTABLE = ("subnets", "instance_types", "ami_type", "capacity_type", "disk_size", "node_role_arn")


def size_problems(min_size, desired_size, max_size):
    """Problems with the given sizes (None = not given): 0 <= min_size <= desired_size <= max_size, max_size >= 1."""
    problems = []
    for option, value in (("min_size", min_size), ("desired_size", desired_size), ("max_size", max_size)):
        if value is not None and value < 0:
            problems.append(f"{option} ({value}) must not be negative")
    if max_size is not None and max_size < 1:
        problems.append(f"max_size ({max_size}) must be at least 1")
    for low, high in (
        (("min_size", min_size), ("desired_size", desired_size)),
        (("desired_size", desired_size), ("max_size", max_size)),
        (("min_size", min_size), ("max_size", max_size)),
    ):
        if low[1] is not None and high[1] is not None and low[1] > high[1]:
            problems.append(f"{low[0]} ({low[1]}) must not be greater than {high[0]} ({high[1]})")
    return problems


def fail_on_sizes(module, min_size, desired_size, max_size, context=""):
    problems = size_problems(min_size, desired_size, max_size)
    if problems:
        module.fail_json(
            msg=f"Invalid node group sizes{context}: "
            + "; ".join(problems)
            + ". They must satisfy 0 <= min_size <= desired_size <= max_size and max_size >= 1."
        )


def normalise_taints(taints):
    """Taints as sorted dicts with key, value (None when unset) and effect."""
    result = [{"key": t["key"], "value": t.get("value"), "effect": t["effect"]} for t in taints or []]
    return sorted(result, key=lambda t: (t["key"], t["effect"], t["value"] or ""))


def taint_request(taint):
    request = {"key": taint["key"], "effect": taint["effect"]}
    if taint.get("value") is not None:
        request["value"] = taint["value"]
    return request


def health_issues(nodegroup):
    issues = ((nodegroup or {}).get("health") or {}).get("issues") or []
    if not issues:
        return "no health issues reported"
    return "; ".join(
        f"{issue.get('code', 'Unknown')}: {issue.get('message', '')}"
        + (f" ({', '.join(issue['resourceIds'])})" if issue.get("resourceIds") else "")
        for issue in issues
    )


class EksNodegroup:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.name = module.params["name"]
        self.cluster = module.params["cluster_name"]
        self.what = f"EKS node group {self.name} in cluster {self.cluster}"
        self.client = module.client("eks", retry_decorator=retry_decorator())
        self.changed = False

    # ---- reading -------------------------------------------------------------------------
    def describe(self):
        try:
            return self.client.describe_nodegroup(aws_retry=True, clusterName=self.cluster, nodegroupName=self.name)[
                "nodegroup"
            ]
        except is_boto3_error_code("ResourceNotFoundException"):
            return None
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
            self.module.fail_json_aws(e, msg=f"Failed to describe {self.what}")

    @staticmethod
    def current_state(nodegroup):
        """The node group as the module's options see it; absent optional fields become their defaults."""
        if nodegroup is None:
            return {}
        scaling = nodegroup.get("scalingConfig") or {}
        update_config = nodegroup.get("updateConfig")
        max_unavailable = update_config.get("maxUnavailable") if update_config is not None else DEFAULT_MAX_UNAVAILABLE
        return {
            "name": nodegroup.get("nodegroupName"),
            "cluster_name": nodegroup.get("clusterName"),
            "arn": nodegroup.get("nodegroupArn"),
            "status": nodegroup.get("status"),
            "scaling": {
                "min_size": scaling.get("minSize"),
                "max_size": scaling.get("maxSize"),
                "desired_size": scaling.get("desiredSize"),
            },
            "instance_types": list(nodegroup.get("instanceTypes") or DEFAULT_INSTANCE_TYPES),
            "ami_type": nodegroup.get("amiType") or DEFAULT_AMI_TYPE,
            "capacity_type": nodegroup.get("capacityType") or DEFAULT_CAPACITY_TYPE,
            "disk_size": nodegroup.get("diskSize") or DEFAULT_DISK_SIZE,
            "subnets": list(nodegroup.get("subnets") or []),
            "node_role_arn": nodegroup.get("nodeRole"),
            "max_unavailable": max_unavailable,
            "labels": dict(nodegroup.get("labels") or {}),
            "taints": normalise_taints(nodegroup.get("taints")),
            "tags": dict(nodegroup.get("tags") or {}),
        }

    # ---- desired state -------------------------------------------------------------------
    def wanted_labels(self):
        labels = self.params["labels"]
        return None if labels is None else {str(k): str(v) for k, v in labels.items()}

    def wanted_taints(self):
        if self.params["taints"] is None:
            return None
        taints = normalise_taints(self.params["taints"])
        seen = set()
        for taint in taints:
            identity = (taint["key"], taint["effect"])
            if identity in seen:
                self.module.fail_json(
                    msg=f"taints lists key {taint['key']!r} with effect {taint['effect']} more than once"
                )
            seen.add(identity)
        return taints

    def wanted_tags(self):
        tags = self.params["tags"]
        return None if tags is None else {str(k): str(v) for k, v in tags.items()}

    def wanted_scaling(self, current_scaling=None):
        """The full scaling configuration: the options, else the current values (update) or defaults (create)."""
        p_min, p_desired, p_max = self.params["min_size"], self.params["desired_size"], self.params["max_size"]
        if current_scaling is not None:
            scaling = {
                "min_size": current_scaling["min_size"] if p_min is None else p_min,
                "desired_size": current_scaling["desired_size"] if p_desired is None else p_desired,
                "max_size": current_scaling["max_size"] if p_max is None else p_max,
            }
            context = f" for {self.what} (omitted sizes keep their current values)"
        else:
            min_size = p_min if p_min is not None else min(1, p_desired if p_desired is not None else 1)
            desired_size = p_desired if p_desired is not None else min_size
            max_size = p_max if p_max is not None else max(2, min_size, desired_size)
            scaling = {"min_size": min_size, "desired_size": desired_size, "max_size": max_size}
            context = f" for {self.what} (omitted sizes take their defaults)"
        fail_on_sizes(self.module, scaling["min_size"], scaling["desired_size"], scaling["max_size"], context)
        return scaling

    def check_immutable(self, current):
        wanted = {
            "instance_types": self.params["instance_types"],
            "ami_type": self.params["ami_type"],
            "capacity_type": self.params["capacity_type"],
            "disk_size": self.params["disk_size"],
        }
        if self.params["subnets"] is not None:
            wanted["subnets"] = self.params["subnets"]
        if self.params["node_role_arn"] is not None:
            wanted["node_role_arn"] = self.params["node_role_arn"]
        differences = []
        for option in IMMUTABLE:
            if option not in wanted:
                continue
            have, want = current[option], wanted[option]
            same = sorted(have) == sorted(want) if option == "subnets" else have == want
            if not same:
                differences.append(f"{option}: node group has {have!r}, asked for {want!r}")
        if differences:
            self.module.fail_json(
                msg=(
                    f"{self.what} cannot be changed in place ("
                    + "; ".join(differences)
                    + "). The node group must be replaced: delete it (state=absent) and create it again, "
                    "or create one under another name and move the workloads."
                ),
            )

    def predicted(self, current):
        """What the node group will look like after a real run (check mode's answer and diff)."""
        if current:
            # The immutable settings were checked to be as asked.
            after = dict(current)
        else:
            after = {"name": self.name, "cluster_name": self.cluster, "status": "ACTIVE"}
            for option in ("instance_types", "ami_type", "capacity_type", "disk_size", "node_role_arn"):
                after[option] = self.params[option]
            after["subnets"] = list(self.params["subnets"] or [])
        after["scaling"] = self.wanted_scaling(current.get("scaling") if current else None)
        after["max_unavailable"] = self.params["max_unavailable"]
        for option, wanted in (
            ("labels", self.wanted_labels()),
            ("taints", self.wanted_taints()),
        ):
            after[option] = wanted if wanted is not None else after.get(option, [] if option == "taints" else {})
        tags = self.wanted_tags()
        if tags is None:
            after.setdefault("tags", {})
        else:
            to_set, to_remove = compare_aws_tags(after.get("tags", {}), tags, self.params["purge_tags"])
            after["tags"] = {k: v for k, v in dict(after.get("tags", {}), **to_set).items() if k not in to_remove}
        return after

    # ---- changes ---------------------------------------------------------------------------
    def create(self):
        params = self.params
        for option in ("node_role_arn", "subnets"):
            if not params[option]:
                self.module.fail_json(msg=f"{option} is required to create {self.what}")
        scaling = self.wanted_scaling()
        request = {
            "clusterName": self.cluster,
            "nodegroupName": self.name,
            "nodeRole": params["node_role_arn"],
            "subnets": params["subnets"],
            "instanceTypes": params["instance_types"],
            "amiType": params["ami_type"],
            "capacityType": params["capacity_type"],
            "diskSize": params["disk_size"],
            "scalingConfig": {
                "minSize": scaling["min_size"],
                "maxSize": scaling["max_size"],
                "desiredSize": scaling["desired_size"],
            },
            "updateConfig": {"maxUnavailable": params["max_unavailable"]},
        }
        labels, taints, tags = self.wanted_labels(), self.wanted_taints(), self.wanted_tags()
        if labels:
            request["labels"] = labels
        if taints:
            request["taints"] = [taint_request(t) for t in taints]
        if tags:
            request["tags"] = tags
        self.changed = True
        if self.module.check_mode:
            return
        try:
            self.client.create_nodegroup(aws_retry=True, **request)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            self.module.fail_json_aws(e, msg=f"Failed to create {self.what}")
        self.wait_active(failed=("CREATE_FAILED", "DEGRADED"))

    def update(self, current):
        request = {}
        scaling = self.wanted_scaling(current["scaling"])
        if scaling != current["scaling"]:
            request["scalingConfig"] = {
                "minSize": scaling["min_size"],
                "maxSize": scaling["max_size"],
                "desiredSize": scaling["desired_size"],
            }
        if current["max_unavailable"] != self.params["max_unavailable"]:
            request["updateConfig"] = {"maxUnavailable": self.params["max_unavailable"]}
        labels = self.wanted_labels()
        if labels is not None:
            add = {k: v for k, v in labels.items() if current["labels"].get(k) != v}
            remove = [k for k in current["labels"] if k not in labels]
            if add or remove:
                request["labels"] = {}
                if add:
                    request["labels"]["addOrUpdateLabels"] = add
                if remove:
                    request["labels"]["removeLabels"] = remove
        taints = self.wanted_taints()
        if taints is not None:
            have = {(t["key"], t["effect"]): t for t in current["taints"]}
            want = {(t["key"], t["effect"]): t for t in taints}
            add = [taint_request(t) for ident, t in want.items() if have.get(ident) != t]
            remove = [taint_request(t) for ident, t in have.items() if ident not in want]
            if add or remove:
                request["taints"] = {}
                if add:
                    request["taints"]["addOrUpdateTaints"] = add
                if remove:
                    request["taints"]["removeTaints"] = remove
        if request:
            self.call("update_nodegroup_config", "update", clusterName=self.cluster, nodegroupName=self.name, **request)
            if not self.module.check_mode:
                self.wait_active(failed=("DEGRADED",))
        tags = self.wanted_tags()
        if tags is not None:
            to_set, to_remove = compare_aws_tags(current["tags"], tags, self.params["purge_tags"])
            if to_remove:
                self.call("untag_resource", "untag", resourceArn=current["arn"], tagKeys=to_remove)
            if to_set:
                self.call("tag_resource", "tag", resourceArn=current["arn"], tags=to_set)

    def delete(self):
        self.changed = True
        if self.module.check_mode:
            return
        try:
            self.client.delete_nodegroup(aws_retry=True, clusterName=self.cluster, nodegroupName=self.name)
        except is_boto3_error_code("ResourceNotFoundException"):
            return
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
            self.module.fail_json_aws(e, msg=f"Failed to delete {self.what}")
        self.wait_gone()

    def call(self, method, what, **kwargs):
        self.changed = True
        if self.module.check_mode:
            return
        try:
            getattr(self.client, method)(aws_retry=True, **kwargs)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            self.module.fail_json_aws(e, msg=f"Failed to {what} {self.what}")

    # ---- waiting ---------------------------------------------------------------------------
    def wait_active(self, failed):
        """Wait for ACTIVE; fail with the health issues if the node group reaches a status in `failed`."""
        if not self.params["wait"]:
            return
        deadline = time.monotonic() + self.params["wait_timeout"]
        while True:
            nodegroup = self.describe()
            if nodegroup is None:
                self.module.fail_json(msg=f"{self.what} disappeared while waiting for it to be ACTIVE")
            status = nodegroup.get("status")
            if status == "ACTIVE":
                return
            if status in failed or status in ("DELETING", "DELETE_FAILED"):
                self.module.fail_json(
                    msg=f"{self.what} is {status} instead of ACTIVE: {health_issues(nodegroup)}",
                    nodegroup=self.current_state(nodegroup),
                )
            if time.monotonic() > deadline:
                self.module.fail_json(
                    msg=f"Timed out after {self.params['wait_timeout']}s waiting for {self.what} to be ACTIVE "
                    f"(it is {status})"
                )
            time.sleep(POLL_SECONDS)

    def wait_gone(self):
        if not self.params["wait"]:
            return
        deadline = time.monotonic() + self.params["wait_timeout"]
        while True:
            nodegroup = self.describe()
            if nodegroup is None:
                return
            status = nodegroup.get("status")
            if status == "DELETE_FAILED":
                self.module.fail_json(msg=f"Failed to delete {self.what} (DELETE_FAILED): {health_issues(nodegroup)}")
            if time.monotonic() > deadline:
                self.module.fail_json(
                    msg=f"Timed out after {self.params['wait_timeout']}s waiting for {self.what} to be deleted "
                    f"(it is {status})"
                )
            time.sleep(POLL_SECONDS)


def main():
    argument_spec = dict(
        cluster_name=dict(type="str", required=True),
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        node_role_arn=dict(type="str"),
        subnets=dict(type="list", elements="str"),
        instance_types=dict(type="list", elements="str", default=list(DEFAULT_INSTANCE_TYPES)),
        ami_type=dict(type="str", default=DEFAULT_AMI_TYPE),
        capacity_type=dict(type="str", choices=["ON_DEMAND", "SPOT"], default=DEFAULT_CAPACITY_TYPE),
        disk_size=dict(type="int", default=DEFAULT_DISK_SIZE),
        min_size=dict(type="int"),
        max_size=dict(type="int"),
        desired_size=dict(type="int"),
        max_unavailable=dict(type="int", default=DEFAULT_MAX_UNAVAILABLE),
        labels=dict(type="dict"),
        taints=dict(
            type="list",
            elements="dict",
            options=dict(
                key=dict(type="str", required=True, no_log=False),
                value=dict(type="str"),
                effect=dict(type="str", required=True, choices=["NO_SCHEDULE", "NO_EXECUTE", "PREFER_NO_SCHEDULE"]),
            ),
        ),
        tags=dict(type="dict", aliases=["resource_tags"]),
        purge_tags=dict(type="bool", default=True),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=1200),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params

    # Everything that can be checked without AWS is checked before the first call.
    if params["state"] == "present":
        fail_on_sizes(module, params["min_size"], params["desired_size"], params["max_size"])
        for option in ("disk_size", "max_unavailable", "wait_timeout"):
            if params[option] < 1:
                module.fail_json(msg=f"{option} must be a positive integer, got {params[option]}")
        if not params["instance_types"]:
            module.fail_json(msg="instance_types must list at least one instance type")

    nodegroup = EksNodegroup(module)
    described = nodegroup.describe()
    before = nodegroup.current_state(described)

    if params["state"] == "absent":
        if described is not None:
            if described.get("status") == "DELETING":
                # Already on its way out: nothing to change, but honour wait.
                if not module.check_mode:
                    nodegroup.wait_gone()
            else:
                nodegroup.delete()
        module.exit_json(changed=nodegroup.changed, nodegroup={}, diff={"before": before, "after": {}})

    if described is None:
        nodegroup.create()
    else:
        status = described.get("status")
        if status == "CREATE_FAILED":
            module.fail_json(
                msg=f"{nodegroup.what} is CREATE_FAILED: {health_issues(described)}. "
                "Delete it (state=absent) and create it again.",
                nodegroup=before,
            )
        if status in ("DELETING", "DELETE_FAILED"):
            module.fail_json(
                msg=f"{nodegroup.what} is {status}; run again once it is gone to create it anew.",
                nodegroup=before,
            )
        nodegroup.check_immutable(before)
        if status in ("CREATING", "UPDATING") and params["wait"] and not module.check_mode:
            # EKS accepts one change at a time; let the running one finish first.
            nodegroup.wait_active(failed=("CREATE_FAILED", "DEGRADED"))
            described = nodegroup.describe()
            before = nodegroup.current_state(described)
        nodegroup.update(before)

    after = nodegroup.predicted(before) if module.check_mode else nodegroup.current_state(nodegroup.describe())
    module.exit_json(changed=nodegroup.changed, nodegroup=after, diff={"before": before, "after": after})


if __name__ == "__main__":
    main()
