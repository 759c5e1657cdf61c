#!/usr/bin/python
# Copyright: argoeks maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

DOCUMENTATION = r"""
---
module: eks_access_entry
short_description: Manage an EKS access entry (an IAM principal's access to a cluster)
version_added: 0.2.0
description:
  - Creates or deletes the access entry of an IAM principal on an EKS cluster whose authentication mode
    includes C(API), with its type, Kubernetes groups and tags, idempotently and with check mode and diff.
  - Nodes that Karpenter launches join the cluster only when their IAM role has an C(EC2_LINUX) access entry
    (the cluster's C(authentication_mode) is C(API), so no C(aws-auth) ConfigMap is read).
  - Written because neither C(amazon.aws) nor C(community.aws) has a module for access entries.
  - An entry's type cannot change; a different O(type) fails naming both (delete the entry first).
author:
  - argoeks maintainers
options:
  cluster_name:
    description: Name of the EKS cluster.
    type: str
    required: true
  principal_arn:
    description: ARN of the IAM role or user the entry is for.
    type: str
    required: true
  type:
    description:
      - C(EC2_LINUX) and C(EC2_WINDOWS) for node roles (EKS gives them the node groups), C(STANDARD) for people
        and tools (with access policies or O(kubernetes_groups)).
    type: str
    choices: [STANDARD, EC2_LINUX, EC2_WINDOWS, FARGATE_LINUX]
    default: STANDARD
  kubernetes_groups:
    description:
      - Kubernetes groups of a C(STANDARD) entry (bound by RBAC). Not allowed for the C(EC2_*) types.
    type: list
    elements: str
    default: []
  state:
    description: Whether the entry should exist.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.tags
  - amazon.aws.boto3
notes:
  - Supports C(check_mode) and C(diff).
"""

EXAMPLES = r"""
- name: Let the nodes Karpenter launches join the cluster
  argoeks.mlops.eks_access_entry:
    cluster_name: dev-mlops-cluster-01
    principal_arn: arn:aws:iam::123456789012:role/dev-mlops-cluster-01-karpenter-node
    type: EC2_LINUX
    tags:
      Project: argoeks

- name: Remove it
  argoeks.mlops.eks_access_entry:
    cluster_name: dev-mlops-cluster-01
    principal_arn: arn:aws:iam::123456789012:role/dev-mlops-cluster-01-karpenter-node
    state: absent
"""

RETURN = r"""
access_entry:
  description: The entry as it is after the module ran (empty when absent).
  returned: always
  type: dict
  contains:
    principal_arn:
      description: ARN of the principal.
      type: str
    type:
      description: Type of the entry.
      type: str
      sample: EC2_LINUX
    kubernetes_groups:
      description: Kubernetes groups of the entry.
      type: list
      elements: str
    username:
      description: The Kubernetes user name EKS maps the principal to.
      type: str
      sample: system:node:{{EC2PrivateDNSName}}
    tags:
      description: Tags of the entry.
      type: dict
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.argoeks.mlops.plugins.module_utils.aws import AwsResource

NODE_TYPES = ("EC2_LINUX", "EC2_WINDOWS", "FARGATE_LINUX")


class AccessEntry(AwsResource):
    def __init__(self, module):
        super().__init__(
            module,
            "eks",
            f"EKS access entry of {module.params['principal_arn']} on {module.params['cluster_name']}",
        )
        self.key = {"clusterName": self.params["cluster_name"], "principalArn": self.params["principal_arn"]}

    def describe(self):
        found = self.describe_or_none("describe_access_entry", "ResourceNotFoundException", **self.key)
        if found is None:
            return None
        entry = found["accessEntry"]
        return {
            "principal_arn": entry["principalArn"],
            "type": entry.get("type", "STANDARD"),
            "kubernetes_groups": sorted(entry.get("kubernetesGroups") or []),
            "username": entry.get("username", ""),
            "tags": entry.get("tags") or {},
            "arn": entry.get("accessEntryArn", ""),
        }

    def create(self):
        wanted = {
            "principal_arn": self.params["principal_arn"],
            "type": self.params["type"],
            "kubernetes_groups": sorted(self.params["kubernetes_groups"]),
            "username": "",
            "tags": self.params["tags"] or {},
            "arn": "",
        }
        kwargs = dict(self.key, type=self.params["type"], tags=self.params["tags"] or {})
        if self.params["kubernetes_groups"]:
            kwargs["kubernetesGroups"] = self.params["kubernetes_groups"]
        self.call("create_access_entry", "create", **kwargs)
        return self.describe() if not self.module.check_mode else wanted

    def update(self, before):
        if before["type"] != self.params["type"]:
            self.module.fail_json(
                msg=f"{self.what} has type {before['type']}, not {self.params['type']}: the type of an access entry "
                "cannot change (delete the entry first)"
            )
        after = dict(before)
        groups = sorted(self.params["kubernetes_groups"])
        if before["type"] == "STANDARD" and groups != before["kubernetes_groups"]:
            self.call("update_access_entry", "update", kubernetesGroups=groups, **self.key)
            after["kubernetes_groups"] = groups
        if before["arn"]:
            arn = before["arn"]
            after["tags"] = self.sync_tags(
                before["tags"],
                lambda tags: self.call("tag_resource", "tag", resourceArn=arn, tags=tags),
                lambda keys: self.call("untag_resource", "untag", resourceArn=arn, tagKeys=keys),
            )
        return after


def main():
    argument_spec = dict(
        cluster_name=dict(type="str", required=True),
        principal_arn=dict(type="str", required=True),
        type=dict(type="str", choices=["STANDARD", *NODE_TYPES], default="STANDARD"),
        kubernetes_groups=dict(type="list", elements="str", default=[]),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        tags=dict(type="dict", aliases=["resource_tags"]),
        purge_tags=dict(type="bool", default=True),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    if not params["principal_arn"].startswith("arn:"):
        module.fail_json(msg=f"principal_arn must be an IAM ARN, got {params['principal_arn']!r}")
    if params["type"] in NODE_TYPES and params["kubernetes_groups"]:
        module.fail_json(msg=f"kubernetes_groups is not allowed with type {params['type']} (EKS sets the node groups)")

    entry = AccessEntry(module)
    before = entry.describe()
    if params["state"] == "absent":
        if before:
            entry.delete_if_present("delete_access_entry", "ResourceNotFoundException", **entry.key)
        module.exit_json(changed=entry.changed, access_entry={}, diff={"before": before or {}, "after": {}})

    after = entry.update(before) if before else entry.create()
    module.exit_json(changed=entry.changed, access_entry=after, diff={"before": before or {}, "after": after})


if __name__ == "__main__":
    main()
