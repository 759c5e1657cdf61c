#!/usr/bin/python
# Copyright: argoeks maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

DOCUMENTATION = r"""
---
module: eks_cluster
short_description: Manage an EKS cluster with its endpoint access, control-plane logging and secrets encryption
version_added: 0.1.0
description:
  - Creates, updates or deletes an Amazon EKS cluster control plane idempotently, with check mode and diff.
  - Written because C(community.aws.eks_cluster) 10.0.0 has no options for API endpoint access, control-plane
    logging or envelope encryption of Kubernetes secrets, and cannot change a cluster's Kubernetes version.
    This module manages all of them on an existing cluster as well as at creation.
  - EKS runs one change at a time, so changes to an existing cluster are made one after another (version,
    security groups, endpoint access, logging, encryption), each waited for with C(DescribeUpdate) before the next.
  - The Kubernetes version is upgraded one minor version at a time, as EKS requires; asking to skip a minor
    version or to downgrade fails, naming O(version), before anything is changed.
  - The subnets and the IAM role of an existing cluster, and a secrets encryption key once set, cannot be changed
    in place; the module fails naming the difference rather than replacing the cluster.
author:
  - argoeks maintainers
options:
  name:
    description: Name of the cluster.
    type: str
    required: true
  state:
    description: Whether the cluster should exist.
    type: str
    choices: [present, absent]
    default: present
  version:
    description:
      - Kubernetes version as C(major.minor), for example C("1.32"). Quote it in YAML so it stays a string.
      - On an existing cluster a version one minor release above the current one is an upgrade.
      - When omitted, EKS chooses its default version at creation and the version is never changed.
    type: str
  role_arn:
    description: ARN of the IAM role the EKS control plane assumes. Required when creating a cluster.
    type: str
  subnets:
    description:
      - IDs of the subnets (at least two, in different availability zones) for the control plane's network
        interfaces. Required when creating a cluster.
    type: list
    elements: str
  security_groups:
    description:
      - IDs of additional security groups for the control plane's network interfaces.
      - Changed in place on an existing cluster; an empty list removes all additional security groups.
    type: list
    elements: str
    default: []
  endpoint_public_access:
    description: Whether the Kubernetes API server endpoint is reachable from the internet.
    type: bool
    default: true
  endpoint_private_access:
    description: Whether the Kubernetes API server endpoint is reachable from inside the cluster's VPC.
    type: bool
    default: true
  public_access_cidrs:
    description:
      - CIDR blocks allowed to reach the public endpoint. Only used when O(endpoint_public_access=true).
    type: list
    elements: str
    default: ['0.0.0.0/0']
  logging:
    description:
      - Control-plane log types to send to CloudWatch Logs; the types not listed are turned off.
      - An empty list turns all control-plane logging off.
    type: list
    elements: str
    choices: [api, audit, authenticator, controllerManager, scheduler]
    default: [api, audit, authenticator, controllerManager, scheduler]
  secrets_kms_key_arn:
    description:
      - ARN of a KMS key for envelope encryption of Kubernetes secrets.
      - Associated with an existing cluster that has no secrets encryption. Once set it cannot be changed or
        removed, so a different key fails; leaving this option out leaves the cluster's encryption as it is.
      - An alias is accepted but cannot be compared with the key ARN EKS reports, so it is taken as matching.
    type: str
  authentication_mode:
    description:
      - How the cluster authenticates IAM principals (access entries, the C(aws-auth) ConfigMap, or both).
      - Only used when creating a cluster.
    type: str
    choices: [API, API_AND_CONFIG_MAP, CONFIG_MAP]
    default: API_AND_CONFIG_MAP
  wait:
    description:
      - Wait for the cluster to be C(ACTIVE) after creating it, for the last update to finish, and for the
        cluster to be gone after deleting it.
      - The module always waits between two updates of one run, as EKS refuses an update while another runs.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait for each step (creation, each update, deletion).
    type: int
    default: 1800
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.tags
  - amazon.aws.boto3
notes:
  - Supports C(check_mode) and C(diff).
  - Creating a cluster takes about ten minutes, a version upgrade about as long, and associating a secrets
    encryption key can take longer.
"""

EXAMPLES = r"""
- name: EKS control plane with private and restricted public endpoint, all logs and encrypted secrets
  argoeks.mlops.eks_cluster:
    name: argoeks-dev
    version: "1.32"
    role_arn: arn:aws:iam::123456789012:role/argoeks-dev-cluster
    subnets:
      - subnet-0a1b2c3d4e5f60001
      - subnet-0a1b2c3d4e5f60002
    endpoint_public_access: true
    endpoint_private_access: true
    public_access_cidrs:
      - 203.0.113.0/24
    secrets_kms_key_arn: arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab
    authentication_mode: API
    tags:
      Project: argoeks
  register: eks

- name: Upgrade the control plane one minor version
  argoeks.mlops.eks_cluster:
    name: argoeks-dev
    version: "1.33"

- name: Only audit and authenticator logs
  argoeks.mlops.eks_cluster:
    name: argoeks-dev
    logging: [audit, authenticator]

- name: Remove the cluster (its node groups must be gone first)
  argoeks.mlops.eks_cluster:
    name: argoeks-dev
    state: absent
"""

RETURN = r"""
cluster:
  description: The cluster as it is after the module ran (empty when absent).
  returned: always
  type: dict
  contains:
    name:
      description: Cluster name.
      type: str
      sample: argoeks-dev
    arn:
      description: Cluster ARN.
      type: str
      sample: arn:aws:eks:us-east-1:123456789012:cluster/argoeks-dev
    version:
      description: Kubernetes version.
      type: str
      sample: "1.32"
    status:
      description: Cluster status.
      type: str
      sample: ACTIVE
    endpoint:
      description: URL of the Kubernetes API server.
      type: str
      sample: https://0123456789ABCDEF.gr7.us-east-1.eks.amazonaws.com
    certificate_authority:
      description: Base64-encoded certificate of the cluster's certificate authority.
      type: str
    oidc_issuer:
      description: URL of the cluster's OpenID Connect issuer (for IAM roles for service accounts).
      type: str
      sample: https://oidc.eks.us-east-1.amazonaws.com/id/0123456789ABCDEF
    role_arn:
      description: ARN of the control plane's IAM role.
      type: str
    subnets:
      description: Subnet IDs of the control plane's network interfaces.
      type: list
      elements: str
    security_groups:
      description: Additional security group IDs.
      type: list
      elements: str
    endpoint_public_access:
      description: Whether the public endpoint is on.
      type: bool
    endpoint_private_access:
      description: Whether the private endpoint is on.
      type: bool
    public_access_cidrs:
      description: CIDR blocks allowed to reach the public endpoint.
      type: list
      elements: str
    logging:
      description: Enabled control-plane log types.
      type: list
      elements: str
      sample: [api, audit, authenticator, controllerManager, scheduler]
    secrets_kms_key_arn:
      description: ARN of the KMS key encrypting Kubernetes secrets, if any.
      type: str
    authentication_mode:
      description: Authentication mode (C(CONFIG_MAP) when EKS reports none).
      type: str
    tags:
      description: Tags of the cluster.
      type: dict
"""

import contextlib
import re
import time

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    import botocore

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import compare_aws_tags

from ansible_collections.argoeks.mlops.plugins.module_utils.aws import retry_decorator

LOG_TYPES = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
VERSION_PATTERN = re.compile(r"^\d+\.\d+$")
CLUSTER_POLL_SECONDS = 10
UPDATE_POLL_SECONDS = 5


def parse_version(version):
    major, minor = version.split(".")
    return int(major), int(minor)


def logging_config(enabled):
    """The clusterLogging structure that turns on exactly `enabled` and turns the other types off."""
    on = [t for t in LOG_TYPES if t in enabled]
    off = [t for t in LOG_TYPES if t not in enabled]
    entries = []
    if on:
        entries.append({"types": on, "enabled": True})
    if off:
        entries.append({"types": off, "enabled": False})
    return {"clusterLogging": entries}


def encryption_config(key_arn):
    return [{"resources": ["secrets"], "provider": {"keyArn": key_arn}}]


def same_kms_key(current_arn, wanted):
    """A key given as id or ARN matches the ARN EKS reports; an alias cannot be compared offline."""
    if not current_arn:
        return False
    if wanted.startswith("alias/") or ":alias/" in wanted:
        return True
    return current_arn == wanted or current_arn.endswith("/" + wanted)


class EKSCluster:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.name = module.params["name"]
        self.client = module.client("eks", retry_decorator=retry_decorator())
        self.changed = False
        self.pending = None  # (update id, what) of an update not waited for yet

    # ---- reading -------------------------------------------------------------------------
    def describe(self):
        try:
            return self.client.describe_cluster(aws_retry=True, name=self.name)["cluster"]
        except is_boto3_error_code("ResourceNotFoundException"):
            return None
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
            self.module.fail_json_aws(e, msg=f"Failed to describe EKS cluster {self.name}")

    @staticmethod
    def current_state(cluster):
        """The cluster as the module's options see it; fields EKS leaves out read as their defaults."""
        if cluster is None:
            return {}
        vpc = cluster.get("resourcesVpcConfig") or {}
        enabled = set()
        for entry in (cluster.get("logging") or {}).get("clusterLogging") or []:
            if entry.get("enabled"):
                enabled.update(entry.get("types") or [])
        key_arn = None
        for entry in cluster.get("encryptionConfig") or []:
            if "secrets" in (entry.get("resources") or []):
                key_arn = (entry.get("provider") or {}).get("keyArn")
        return {
            "name": cluster.get("name"),
            "arn": cluster.get("arn"),
            "version": cluster.get("version"),
            "status": cluster.get("status"),
            "endpoint": cluster.get("endpoint"),
            "certificate_authority": (cluster.get("certificateAuthority") or {}).get("data"),
            "oidc_issuer": ((cluster.get("identity") or {}).get("oidc") or {}).get("issuer"),
            "role_arn": cluster.get("roleArn"),
            "subnets": list(vpc.get("subnetIds") or []),
            "security_groups": list(vpc.get("securityGroupIds") or []),
            # EKS's own defaults when the answer leaves them out
            "endpoint_public_access": vpc.get("endpointPublicAccess", True),
            "endpoint_private_access": vpc.get("endpointPrivateAccess", False),
            "public_access_cidrs": list(vpc.get("publicAccessCidrs") or ["0.0.0.0/0"]),
            "logging": [t for t in LOG_TYPES if t in enabled],
            "secrets_kms_key_arn": key_arn,
            "authentication_mode": (cluster.get("accessConfig") or {}).get("authenticationMode", "CONFIG_MAP"),
            "tags": dict(cluster.get("tags") or {}),
        }

    # ---- desired state -------------------------------------------------------------------
    def wanted_logging(self):
        return [t for t in LOG_TYPES if t in self.params["logging"]]

    def endpoint_differs(self, current):
        params = self.params
        return (
            current["endpoint_public_access"] != params["endpoint_public_access"]
            or current["endpoint_private_access"] != params["endpoint_private_access"]
            or (
                params["endpoint_public_access"]
                and sorted(current["public_access_cidrs"]) != sorted(params["public_access_cidrs"])
            )
        )

    def endpoint_config(self):
        params = self.params
        config = {
            "endpointPublicAccess": params["endpoint_public_access"],
            "endpointPrivateAccess": params["endpoint_private_access"],
        }
        if params["endpoint_public_access"]:
            config["publicAccessCidrs"] = params["public_access_cidrs"]
        return config

    def check_unchangeable(self, current):
        """Fail, before changing anything, on differences an existing cluster cannot take."""
        params = self.params
        problems = []
        if (
            params["subnets"] is not None
            and current["subnets"]
            and sorted(current["subnets"]) != sorted(params["subnets"])
        ):
            problems.append(f"subnets: cluster has {sorted(current['subnets'])}, asked for {sorted(params['subnets'])}")
        if params["role_arn"] and current["role_arn"] and current["role_arn"] != params["role_arn"]:
            problems.append(f"role_arn: cluster has {current['role_arn']!r}, asked for {params['role_arn']!r}")
        if problems:
            self.module.fail_json(
                msg=f"EKS cluster {self.name} cannot be changed in place ("
                + "; ".join(problems)
                + "). Delete the cluster (state=absent) or choose another name."
            )
        wanted_key = params["secrets_kms_key_arn"]
        if (
            wanted_key
            and current["secrets_kms_key_arn"]
            and not same_kms_key(current["secrets_kms_key_arn"], wanted_key)
        ):
            self.module.fail_json(
                msg=f"secrets_kms_key_arn of EKS cluster {self.name} cannot be changed: secrets are encrypted with "
                f"{current['secrets_kms_key_arn']}, asked for {wanted_key}"
            )
        if params["version"] and current["version"]:
            self.check_upgrade(current["version"], params["version"])

    def check_upgrade(self, current, wanted):
        try:
            have = parse_version(current)
        except ValueError:
            self.module.fail_json(msg=f"EKS cluster {self.name} reports version {current!r}, which is not major.minor")
        want = parse_version(wanted)
        if want == have:
            return
        if want < have:
            hint = ""
            if len(wanted.split(".")[1]) == 1 and have[1] >= 10:
                hint = f" (YAML reads an unquoted {wanted}0 as the number {wanted}: quote the version)"
            self.module.fail_json(
                msg=f"version {wanted} is older than EKS cluster {self.name}'s version {current}: "
                "EKS cannot downgrade a cluster" + hint
            )
        if want != (have[0], have[1] + 1):
            self.module.fail_json(
                msg=f"version {wanted} skips minor versions: EKS cluster {self.name} is at {current} and upgrades "
                f"one minor version at a time; set version to {have[0]}.{have[1] + 1} first"
            )

    # ---- changes ---------------------------------------------------------------------------
    def create(self):
        params = self.params
        for option in ("role_arn", "subnets"):
            if not params[option]:
                self.module.fail_json(msg=f"{option} is required to create EKS cluster {self.name}")
        vpc = dict(self.endpoint_config(), subnetIds=params["subnets"], securityGroupIds=params["security_groups"])
        request = {
            "name": self.name,
            "roleArn": params["role_arn"],
            "resourcesVpcConfig": vpc,
            "logging": logging_config(self.wanted_logging()),
            "accessConfig": {"authenticationMode": params["authentication_mode"]},
        }
        if params["version"]:
            request["version"] = params["version"]
        if params["secrets_kms_key_arn"]:
            request["encryptionConfig"] = encryption_config(params["secrets_kms_key_arn"])
        if params["tags"]:
            request["tags"] = params["tags"]
        self.changed = True
        if self.module.check_mode:
            return
        try:
            self.client.create_cluster(aws_retry=True, **request)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            self.module.fail_json_aws(e, msg=f"Failed to create EKS cluster {self.name}")
        if params["wait"]:
            self.wait_for_cluster("ACTIVE")

    def update(self, current):
        params = self.params
        if params["version"] and current["version"] and params["version"] != current["version"]:
            self.start_update(
                "update_cluster_version", "version upgrade", name=self.name, version=params["version"], ready=current
            )
        if sorted(current["security_groups"]) != sorted(params["security_groups"]):
            self.start_update(
                "update_cluster_config",
                "security group update",
                name=self.name,
                resourcesVpcConfig={"subnetIds": current["subnets"], "securityGroupIds": params["security_groups"]},
                ready=current,
            )
        if self.endpoint_differs(current):
            self.start_update(
                "update_cluster_config",
                "endpoint access update",
                name=self.name,
                resourcesVpcConfig=self.endpoint_config(),
                ready=current,
            )
        if set(current["logging"]) != set(params["logging"]):
            self.start_update(
                "update_cluster_config",
                "logging update",
                name=self.name,
                logging=logging_config(self.wanted_logging()),
                ready=current,
            )
        if params["secrets_kms_key_arn"] and not current["secrets_kms_key_arn"]:
            self.start_update(
                "associate_encryption_config",
                "secrets encryption",
                clusterName=self.name,
                encryptionConfig=encryption_config(params["secrets_kms_key_arn"]),
                ready=current,
            )
        if params["tags"] is not None:
            to_set, to_remove = compare_aws_tags(current["tags"], params["tags"], params["purge_tags"])
            if to_remove:
                self.call("untag_resource", "untag", resourceArn=current["arn"], tagKeys=to_remove)
            if to_set:
                self.call("tag_resource", "tag", resourceArn=current["arn"], tags=to_set)
        if params["wait"]:
            self.finish_pending()

    def start_update(self, method, what, ready, **kwargs):
        """Start one EKS update, after the previous one (EKS runs one at a time) and on an ACTIVE cluster."""
        self.changed = True
        if self.module.check_mode:
            return
        if self.pending:
            self.finish_pending()
        elif ready.get("status") != "ACTIVE":
            self.wait_for_cluster("ACTIVE")
        answer = self.call(method, f"start the {what} of", **kwargs)
        update_id = ((answer or {}).get("update") or {}).get("id")
        self.pending = (update_id, what) if update_id else None

    def finish_pending(self):
        if not self.pending:
            return
        update_id, what = self.pending
        self.pending = None
        self.wait_for_update(update_id, what)
        self.wait_for_cluster("ACTIVE")

    def delete(self, cluster):
        self.changed = cluster.get("status") != "DELETING"
        if self.module.check_mode:
            return
        if self.changed:
            try:
                self.client.delete_cluster(aws_retry=True, name=self.name)
            except is_boto3_error_code("ResourceNotFoundException"):
                return
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
                self.module.fail_json_aws(e, msg=f"Failed to delete EKS cluster {self.name}")
        if self.params["wait"]:
            self.wait_for_cluster(None)

    def call(self, method, what, **kwargs):
        self.changed = True
        if self.module.check_mode:
            return None
        try:
            return getattr(self.client, method)(aws_retry=True, **kwargs)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            self.module.fail_json_aws(e, msg=f"Failed to {what} EKS cluster {self.name}")

    # ---- waiting ---------------------------------------------------------------------------
    def wait_for_update(self, update_id, what):
        deadline = time.monotonic() + self.params["wait_timeout"]
        while True:
            try:
                update = self.client.describe_update(aws_retry=True, name=self.name, updateId=update_id)["update"]
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
                self.module.fail_json_aws(e, msg=f"Failed to read {what} {update_id} of EKS cluster {self.name}")
            status = update.get("status")
            if status == "Successful":
                return
            if status in ("Failed", "Cancelled"):
                errors = "; ".join(
                    f"{err.get('errorCode', 'Unknown')}: {err.get('errorMessage', '')}".rstrip(": ")
                    for err in update.get("errors") or []
                )
                self.module.fail_json(
                    msg=f"The {what} of EKS cluster {self.name} (update {update_id}) is {status}: "
                    + (errors or "EKS gave no reason"),
                    update=update,
                )
            if time.monotonic() > deadline:
                self.module.fail_json(
                    msg=f"Timed out after {self.params['wait_timeout']}s waiting for the {what} of EKS cluster "
                    f"{self.name} (update {update_id} is {status})"
                )
            time.sleep(UPDATE_POLL_SECONDS)

    def wait_for_cluster(self, status):
        """Wait for `status`, or for the cluster to be gone when status is None."""
        deadline = time.monotonic() + self.params["wait_timeout"]
        while True:
            cluster = self.describe()
            found = cluster.get("status") if cluster else None
            if found == status:
                return
            if status and found == "FAILED":
                issues = "; ".join(
                    f"{issue.get('code', 'Unknown')}: {issue.get('message', '')}".rstrip(": ")
                    for issue in (cluster.get("health") or {}).get("issues") or []
                )
                self.module.fail_json(
                    msg=f"EKS cluster {self.name} is FAILED: " + (issues or "EKS reports no health issues"),
                    cluster=self.current_state(cluster),
                )
            if status and found is None:
                self.module.fail_json(msg=f"EKS cluster {self.name} disappeared while waiting for it to be {status}")
            if time.monotonic() > deadline:
                self.module.fail_json(
                    msg=f"Timed out after {self.params['wait_timeout']}s waiting for EKS cluster {self.name} "
                    f"to be {status or 'deleted'} (it is {found or 'absent'})"
                )
            time.sleep(CLUSTER_POLL_SECONDS)


def validate(module):
    """Checks that need no AWS call."""
    params = module.params
    if params["version"] is not None and not VERSION_PATTERN.match(params["version"]):
        module.fail_json(
            msg=f'version must be a Kubernetes version like "1.32" (major.minor), got {params["version"]!r}'
        )
    if params["subnets"] is not None and len(set(params["subnets"])) < 2:
        module.fail_json(
            msg=f"subnets must name at least two subnets (in different availability zones), got {params['subnets']}"
        )
    if params["wait_timeout"] < 1:
        module.fail_json(msg=f"wait_timeout must be a positive integer, got {params['wait_timeout']}")
    if not params["endpoint_public_access"] and not params["endpoint_private_access"]:
        module.fail_json(
            msg="endpoint_public_access and endpoint_private_access cannot both be false: "
            "the cluster's API server would be unreachable"
        )
    if params["endpoint_public_access"] and not params["public_access_cidrs"]:
        module.fail_json(msg="public_access_cidrs must not be empty when endpoint_public_access is true")


def predicted(params, before):
    """What check mode reports as the cluster's state after a real run."""
    after = dict(before)
    after.update(
        name=params["name"],
        security_groups=params["security_groups"],
        endpoint_public_access=params["endpoint_public_access"],
        endpoint_private_access=params["endpoint_private_access"],
        logging=[t for t in LOG_TYPES if t in params["logging"]],
    )
    if params["endpoint_public_access"]:
        after["public_access_cidrs"] = params["public_access_cidrs"]
    for option in ("version", "role_arn", "subnets"):
        if params[option]:
            after[option] = params[option]
    if params["secrets_kms_key_arn"] and not before.get("secrets_kms_key_arn"):
        after["secrets_kms_key_arn"] = params["secrets_kms_key_arn"]
    if not before:
        after["authentication_mode"] = params["authentication_mode"]
    if params["tags"] is not None:
        after["tags"] = (
            dict(params["tags"]) if params["purge_tags"] else dict(before.get("tags") or {}, **params["tags"])
        )
    return after


def main():
    argument_spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        version=dict(type="str"),
        role_arn=dict(type="str"),
        subnets=dict(type="list", elements="str"),
        security_groups=dict(type="list", elements="str", default=[]),
        endpoint_public_access=dict(type="bool", default=True),
        endpoint_private_access=dict(type="bool", default=True),
        public_access_cidrs=dict(type="list", elements="str", default=["0.0.0.0/0"]),
        logging=dict(type="list", elements="str", choices=LOG_TYPES, default=list(LOG_TYPES)),
        secrets_kms_key_arn=dict(type="str", no_log=False),
        authentication_mode=dict(
            type="str", choices=["API", "API_AND_CONFIG_MAP", "CONFIG_MAP"], default="API_AND_CONFIG_MAP"
        ),
        tags=dict(type="dict", aliases=["resource_tags"]),
        purge_tags=dict(type="bool", default=True),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=1800),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    if module.params["state"] == "present":
        validate(module)

    cluster = EKSCluster(module)
    described = cluster.describe()
    before = cluster.current_state(described)

    if module.params["state"] == "absent":
        if described is not None:
            cluster.delete(described)
        module.exit_json(changed=cluster.changed, cluster={}, diff={"before": before, "after": {}})

    if described is None:
        cluster.create()
    else:
        cluster.check_unchangeable(before)
        cluster.update(before)

    after = predicted(module.params, before) if module.check_mode else cluster.current_state(cluster.describe())
    module.exit_json(changed=cluster.changed, cluster=after, diff={"before": before, "after": after})


if __name__ == "__main__":
    main()
