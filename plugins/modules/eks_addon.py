#!/usr/bin/python
# Copyright: argoeks maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

DOCUMENTATION = r"""
---
module: eks_addon
short_description: Manage an Amazon EKS managed add-on (vpc-cni, coredns, kube-proxy, aws-ebs-csi-driver, ...)
version_added: 0.1.0
description:
  - Creates, updates or deletes an Amazon EKS managed add-on of a cluster, with its version, IRSA service
    account role, configuration values and tags, idempotently and with check mode and diff, and waits until
    the add-on is C(ACTIVE) (or gone).
  - Written because no well-kept Ansible module manages EKS add-ons (neither C(amazon.aws) nor
    C(community.aws) has one); shelling out to C(aws eks ...) is neither idempotent nor able to run in
    check mode, and does not report the add-on's health issues when it ends up C(DEGRADED).
  - Fails with the add-on's health issues when it becomes C(DEGRADED), C(CREATE_FAILED) or C(UPDATE_FAILED),
    and with a clear message when the endpoint (for example a local AWS emulator) does not implement the
    EKS add-on API.
author:
  - argoeks maintainers
options:
  cluster_name:
    description: Name of the EKS cluster.
    type: str
    required: true
  name:
    description: Name of the add-on, for example C(vpc-cni), C(coredns), C(kube-proxy), C(aws-ebs-csi-driver).
    type: str
    required: true
    aliases: [addon_name]
  addon_version:
    description:
      - Version of the add-on, for example C(v1.18.3-eksbuild.1).
      - When empty, a new add-on gets the default version for the cluster's Kubernetes version and an
        existing add-on keeps its version.
    type: str
  service_account_role_arn:
    description:
      - ARN of the IAM role the add-on's service account assumes (IRSA), for example the role of the
        EBS CSI driver.
      - When empty, a new add-on uses the node role and an existing add-on keeps its role.
    type: str
  configuration_values:
    description:
      - Configuration values of the add-on, as a JSON string (or a dictionary, which the module turns into
        JSON), matching the schema of C(aws eks describe-addon-configuration).
      - Compared as JSON, so formatting and key order do not cause changes.
      - When empty, the add-on's configuration values are left as they are.
    type: raw
  resolve_conflicts:
    description:
      - How EKS resolves conflicts with fields of the add-on's Kubernetes objects changed outside EKS
        when creating or updating it.
      - C(OVERWRITE) resets them to the add-on's values, C(NONE) fails on conflicts, C(PRESERVE) keeps them.
    type: str
    choices: [OVERWRITE, NONE, PRESERVE]
    default: OVERWRITE
  state:
    description: Whether the add-on should exist.
    type: str
    choices: [present, absent]
    default: present
  wait:
    description: Wait until the add-on is C(ACTIVE) after creating or updating it, and gone after deleting it.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait.
    type: int
    default: 600
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.tags
  - amazon.aws.boto3
notes:
  - Supports C(check_mode) and C(diff).
  - An add-on that is C(DEGRADED) and needs no change is reported as it is, without failing.
"""

EXAMPLES = r"""
- name: Core networking add-ons at the cluster's default versions
  argoeks.mlops.eks_addon:
    cluster_name: argoeks-dev
    name: "{{ item }}"
    tags:
      Project: argoeks
  loop: [vpc-cni, coredns, kube-proxy]

- name: EBS CSI driver with its IRSA role and a pinned version
  argoeks.mlops.eks_addon:
    cluster_name: argoeks-dev
    name: aws-ebs-csi-driver
    addon_version: v1.35.0-eksbuild.1
    service_account_role_arn: arn:aws:iam::123456789012:role/argoeks-dev-ebs-csi
    configuration_values: '{"controller": {"replicaCount": 2}}'
    resolve_conflicts: OVERWRITE
    wait_timeout: 900

- name: Remove it
  argoeks.mlops.eks_addon:
    cluster_name: argoeks-dev
    name: aws-ebs-csi-driver
    state: absent
"""

RETURN = r"""
addon:
  description: The add-on as it is after the module ran (empty when absent).
  returned: always
  type: dict
  contains:
    name:
      description: Name of the add-on.
      type: str
      sample: aws-ebs-csi-driver
    cluster_name:
      description: Name of the cluster.
      type: str
      sample: argoeks-dev
    version:
      description: Version of the add-on.
      type: str
      sample: v1.35.0-eksbuild.1
    status:
      description: Status of the add-on (C(ACTIVE), C(CREATING), C(UPDATING), C(DEGRADED), ...).
      type: str
      sample: ACTIVE
    service_account_role_arn:
      description: ARN of the IAM role of the add-on's service account, if any.
      type: str
      sample: arn:aws:iam::123456789012:role/argoeks-dev-ebs-csi
    configuration_values:
      description: Configuration values of the add-on (JSON), if any.
      type: str
      sample: '{"controller": {"replicaCount": 2}}'
    arn:
      description: ARN of the add-on.
      type: str
      sample: arn:aws:eks:us-east-1:123456789012:addon/argoeks-dev/aws-ebs-csi-driver/a1b2c3d4
    tags:
      description: Tags of the add-on.
      type: dict
      sample: {Project: argoeks}
"""

import contextlib
import json
import time

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    import botocore

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import compare_aws_tags

from ansible_collections.argoeks.mlops.plugins.module_utils.aws import retry_decorator

# Error codes of endpoints that lack the add-on API: "404" is what botocore makes of a bare 404 without an
# error body (moto answers "Not yet implemented" that way); real EKS answers 404 as ResourceNotFoundException.
NOT_IMPLEMENTED_CODES = frozenset(
    ("404", "UnknownOperationException", "UnknownOperation", "NotImplemented", "NotImplementedException")
)
FAILED_STATUSES = ("DEGRADED", "CREATE_FAILED", "UPDATE_FAILED", "DELETE_FAILED")
POLL_SECONDS = 10


def not_implemented(error):
    if not isinstance(error, botocore.exceptions.ClientError):
        return False
    return error.response.get("Error", {}).get("Code") in NOT_IMPLEMENTED_CODES


def same_json(current, wanted):
    """Whether two JSON documents are equal; an absent current value equals an empty object."""
    try:
        return json.loads(current or "{}") == json.loads(wanted)
    except ValueError:
        return False


class EKSAddon:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.name = module.params["name"]
        self.cluster = module.params["cluster_name"]
        self.what = f"EKS add-on {self.name} on cluster {self.cluster}"
        self.client = module.client("eks", retry_decorator=retry_decorator())
        self.changed = False

    def fail(self, error, action):
        if not_implemented(error):
            self.module.fail_json(
                msg=f"Failed to {action} {self.what}: the EKS endpoint does not implement EKS add-ons "
                f"({error.response['Error'].get('Code')}: {error.response['Error'].get('Message')}). "
                "AWS emulators such as moto lack the add-on API; run this against real EKS.",
            )
        self.module.fail_json_aws(error, msg=f"Failed to {action} {self.what}")

    # ---- reading -------------------------------------------------------------------------
    def describe(self):
        try:
            return self.client.describe_addon(aws_retry=True, clusterName=self.cluster, addonName=self.name)["addon"]
        except is_boto3_error_code("ResourceNotFoundException"):
            return None
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
            self.fail(e, "describe")

    def current_state(self, addon):
        """The add-on as the module's options see it."""
        if addon is None:
            return {}
        return {
            "name": addon.get("addonName", self.name),
            "cluster_name": addon.get("clusterName", self.cluster),
            "version": addon.get("addonVersion"),
            "status": addon.get("status"),
            "service_account_role_arn": addon.get("serviceAccountRoleArn"),
            "configuration_values": addon.get("configurationValues"),
            "arn": addon.get("addonArn"),
            "tags": dict(addon.get("tags") or {}),
        }

    # ---- desired state -------------------------------------------------------------------
    def wanted_configuration(self):
        return self.params["configuration_values"] or None

    def settings_update(self, current):
        """UpdateAddon arguments for what differs from `current` (empty when nothing does)."""
        update = {}
        params = self.params
        if params["addon_version"] and params["addon_version"] != current["version"]:
            update["addonVersion"] = params["addon_version"]
        if (
            params["service_account_role_arn"]
            and params["service_account_role_arn"] != (current["service_account_role_arn"])
        ):
            update["serviceAccountRoleArn"] = params["service_account_role_arn"]
        wanted = self.wanted_configuration()
        if wanted is not None and not same_json(current["configuration_values"], wanted):
            update["configurationValues"] = wanted
        return update

    # ---- changes ---------------------------------------------------------------------------
    def create(self):
        params = self.params
        request = {"clusterName": self.cluster, "addonName": self.name, "resolveConflicts": params["resolve_conflicts"]}
        if params["addon_version"]:
            request["addonVersion"] = params["addon_version"]
        if params["service_account_role_arn"]:
            request["serviceAccountRoleArn"] = params["service_account_role_arn"]
        if self.wanted_configuration() is not None:
            request["configurationValues"] = self.wanted_configuration()
        if params["tags"]:
            request["tags"] = params["tags"]
        self.changed = True
        predicted = {
            "name": self.name,
            "cluster_name": self.cluster,
            "version": params["addon_version"] or None,
            "status": "ACTIVE",
            "service_account_role_arn": params["service_account_role_arn"] or None,
            "configuration_values": self.wanted_configuration(),
            "arn": None,
            "tags": params["tags"] or {},
        }
        if self.module.check_mode:
            return predicted
        try:
            created = self.client.create_addon(aws_retry=True, **request)["addon"]
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            self.fail(e, "create")
        return self.current_state(self.wait_active() if params["wait"] else created)

    def update(self, current):
        params = self.params
        after = dict(current)
        if params["tags"] is not None:
            to_set, to_remove = compare_aws_tags(current["tags"], params["tags"], params["purge_tags"])
            if to_remove:
                self.call("untag_resource", "untag", resourceArn=current["arn"], tagKeys=to_remove)
            if to_set:
                self.call("tag_resource", "tag", resourceArn=current["arn"], tags=to_set)
            after["tags"] = {k: v for k, v in current["tags"].items() if k not in to_remove}
            after["tags"].update(to_set)
        update = self.settings_update(current)
        if update and current["status"] in ("CREATING", "UPDATING") and params["wait"] and not self.module.check_mode:
            self.wait_active()  # EKS refuses an update while another one is in progress
        if update:
            self.call(
                "update_addon",
                "update",
                clusterName=self.cluster,
                addonName=self.name,
                resolveConflicts=params["resolve_conflicts"],
                **update,
            )
            after.update(
                version=update.get("addonVersion", current["version"]),
                service_account_role_arn=update.get("serviceAccountRoleArn", current["service_account_role_arn"]),
                configuration_values=update.get("configurationValues", current["configuration_values"]),
                status="ACTIVE",
            )
        if not self.changed or self.module.check_mode:
            return after
        return self.current_state(self.wait_active() if params["wait"] else self.describe())

    def delete(self):
        self.changed = True
        if self.module.check_mode:
            return
        try:
            self.client.delete_addon(aws_retry=True, clusterName=self.cluster, addonName=self.name)
        except is_boto3_error_code("ResourceNotFoundException"):
            return
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
            self.fail(e, "delete")
        if self.params["wait"]:
            self.wait_gone()

    def call(self, method, action, **kwargs):
        self.changed = True
        if self.module.check_mode:
            return
        try:
            getattr(self.client, method)(aws_retry=True, **kwargs)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            self.fail(e, action)

    # ---- waiting ---------------------------------------------------------------------------
    def wait_active(self):
        """Wait until the add-on is ACTIVE and return it; fail on a failed status or a timeout."""
        deadline = time.monotonic() + self.params["wait_timeout"]
        while True:
            addon = self.describe()
            status = addon.get("status") if addon else None
            if status == "ACTIVE":
                return addon
            if status in FAILED_STATUSES:
                self.module.fail_json(
                    msg=f"{self.what} is {status}: {health_issues(addon)}",
                    addon=self.current_state(addon),
                )
            if addon is None:
                self.module.fail_json(msg=f"{self.what} disappeared while waiting for it to be ACTIVE")
            if time.monotonic() > deadline:
                self.module.fail_json(
                    msg=f"Timed out after {self.params['wait_timeout']}s waiting for {self.what} "
                    f"to be ACTIVE (it is {status})",
                    addon=self.current_state(addon),
                )
            time.sleep(POLL_SECONDS)

    def wait_gone(self):
        deadline = time.monotonic() + self.params["wait_timeout"]
        while True:
            addon = self.describe()
            if addon is None:
                return
            if addon.get("status") == "DELETE_FAILED":
                self.module.fail_json(msg=f"{self.what} is DELETE_FAILED: {health_issues(addon)}")
            if time.monotonic() > deadline:
                self.module.fail_json(
                    msg=f"Timed out after {self.params['wait_timeout']}s waiting for {self.what} "
                    f"to be deleted (it is {addon.get('status')})"
                )
            time.sleep(POLL_SECONDS)


def health_issues(addon):
    issues = (addon.get("health") or {}).get("issues") or []
    if not issues:
        return "no health issues reported"
    described = []
    for issue in issues:
        text = f"{issue.get('code', 'Unknown')}: {issue.get('message', '')}".rstrip(": ")
        if issue.get("resourceIds"):
            text += f" (resources: {', '.join(issue['resourceIds'])})"
        described.append(text)
    return "; ".join(described)


def validate(module):
    """Fail naming the option before any AWS call."""
    params = module.params
    if params["wait_timeout"] < 1:
        module.fail_json(msg=f"wait_timeout must be a positive integer, got {params['wait_timeout']}")
    role = params["service_account_role_arn"]
    if role and not (role.startswith("arn:") and ":role/" in role):
        module.fail_json(msg=f"service_account_role_arn must be the ARN of an IAM role, got {role!r}")
    values = params["configuration_values"]
    if isinstance(values, dict):
        params["configuration_values"] = json.dumps(values, sort_keys=True)
    elif values is not None and not isinstance(values, str):
        module.fail_json(msg=f"configuration_values must be a JSON string or a dictionary, got {type(values).__name__}")
    elif values:
        try:
            parsed = json.loads(values)
        except ValueError as e:
            module.fail_json(msg=f"configuration_values is not valid JSON: {e}")
        if not isinstance(parsed, dict):
            module.fail_json(msg="configuration_values must be a JSON object")


def main():
    argument_spec = dict(
        cluster_name=dict(type="str", required=True),
        name=dict(type="str", required=True, aliases=["addon_name"]),
        addon_version=dict(type="str"),
        service_account_role_arn=dict(type="str"),
        configuration_values=dict(type="raw"),
        resolve_conflicts=dict(type="str", choices=["OVERWRITE", "NONE", "PRESERVE"], default="OVERWRITE"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        tags=dict(type="dict", aliases=["resource_tags"]),
        purge_tags=dict(type="bool", default=True),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=600),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    validate(module)

    addon = EKSAddon(module)
    before = addon.current_state(addon.describe())

    if module.params["state"] == "absent":
        if before:
            addon.delete()
        module.exit_json(changed=addon.changed, addon={}, diff={"before": before, "after": {}})

    after = addon.update(before) if before else addon.create()
    module.exit_json(changed=addon.changed, addon=after, diff={"before": before, "after": after})


if __name__ == "__main__":
    main()
