#!/usr/bin/python
# Copyright: argoeks maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

DOCUMENTATION = r"""
---
module: elasticache_replication_group
short_description: Manage an Amazon ElastiCache (Redis OSS or Valkey) replication group
version_added: 0.1.0
description:
  - Creates, updates or deletes an ElastiCache replication group with cluster mode disabled (one shard, a
    primary and O(replicas) read replicas), encrypted at rest and in transit, with an AUTH token, snapshots and
    tags, idempotently and with check mode and diff.
  - Written because no well-kept module manages replication groups (C(community.aws.elasticache) manages single
    cache clusters and does not converge on a second run against some endpoints).
  - What AWS can change in place (description, node type, automatic failover, Multi-AZ, snapshot retention and
    window, security groups, tags) is changed with one C(ModifyReplicationGroup) call, applied immediately.
    What it cannot (engine, port, subnet group, encryption, the number of replicas) is reported as a failure
    naming the difference, and nothing is changed.
  - The AUTH token is set when the group is created. AWS never returns it, so it is not compared afterwards;
    rotate it with the AWS CLI (C(modify-replication-group --auth-token ... --auth-token-update-strategy ROTATE)).
author:
  - argoeks maintainers
options:
  name:
    description: Replication group ID (1 to 40 lower-case letters, digits and hyphens, starting with a letter).
    type: str
    required: true
  state:
    description: Whether the group should exist.
    type: str
    choices: [present, absent]
    default: present
  description:
    description: Description of the group. Required when creating it.
    type: str
  engine:
    description: C(redis) (Redis OSS) or C(valkey).
    type: str
    choices: [redis, valkey]
    default: redis
  engine_version:
    description: Engine version when creating, such as V(7.1). Not compared afterwards (AWS upgrades minor versions).
    type: str
  node_type:
    description: Node type, for example V(cache.t4g.small). Required when creating.
    type: str
  replicas:
    description: Read replicas of the primary (0 to 5). With one or more, automatic failover and Multi-AZ default to on.
    type: int
    default: 1
  automatic_failover:
    description: Promote a replica when the primary fails; defaults to on when O(replicas) is at least 1.
    type: bool
  multi_az:
    description: Keep the replicas in other zones than the primary; defaults to on when O(replicas) is at least 1.
    type: bool
  port:
    description: Port the nodes listen on.
    type: int
    default: 6379
  subnet_group:
    description: Cache subnet group (private subnets of the VPC) when creating.
    type: str
  security_group_ids:
    description: VPC security groups of the nodes.
    type: list
    elements: str
  at_rest_encryption:
    description: Encrypt the data on disk (set when creating).
    type: bool
    default: true
  transit_encryption:
    description: TLS between clients and nodes (set when creating); required for O(auth_token).
    type: bool
    default: true
  auth_token:
    description: AUTH password of the clients (16 to 128 printable characters, no C(@), C(") or C(/)), set at creation.
    type: str
  snapshot_retention_days:
    description: Days automatic snapshots are kept (0 turns them off).
    type: int
  snapshot_window:
    description: Daily snapshot window, UTC, as C(hh:mm-hh:mm).
    type: str
  wait:
    description:
      - Wait until the group is C(available) after creating or changing it, or gone after deleting it (its subnet
        and security groups can only be deleted then).
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait.
    type: int
    default: 1800
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.tags
  - amazon.aws.boto3
notes:
  - Supports C(check_mode) and C(diff).
"""

EXAMPLES = r"""
- name: Redis for the Feast online store, a primary and a replica in another zone
  argoeks.mlops.elasticache_replication_group:
    name: argoeks-dev-feast
    description: Feast online store
    node_type: cache.t4g.small
    engine_version: "7.1"
    replicas: 1
    subnet_group: argoeks-dev-feast
    security_group_ids: [sg-0123456789abcdef0]
    auth_token: "{{ redis_auth_token }}"
    snapshot_retention_days: 7
    tags:
      Project: argoeks
      Component: feast

- name: Remove it
  argoeks.mlops.elasticache_replication_group:
    name: argoeks-dev-feast
    state: absent
"""

RETURN = r"""
replication_group:
  description: The group as the module's options see it (as it would be, in check mode); empty when absent.
  returned: always
  type: dict
  contains:
    name:
      description: Replication group ID.
      type: str
      sample: argoeks-dev-feast
    status:
      description: C(creating), C(available), C(modifying), C(deleting), ...; null in check mode before creation.
      type: str
      sample: available
    primary_endpoint:
      description: Address and port clients write to.
      type: dict
      sample: {"address": "master.argoeks-dev-feast.abc123.use1.cache.amazonaws.com", "port": 6379}
    reader_endpoint:
      description: Address and port that spreads reads over the replicas.
      type: dict
    replicas:
      description: Number of read replicas.
      type: int
      sample: 1
    node_type:
      description: Node type.
      type: str
    automatic_failover:
      description: Whether automatic failover is on.
      type: bool
    multi_az:
      description: Whether Multi-AZ is on.
      type: bool
    at_rest_encryption:
      description: Encryption at rest.
      type: bool
    transit_encryption:
      description: TLS in transit.
      type: bool
    auth_token_enabled:
      description: Whether clients must give an AUTH token.
      type: bool
    snapshot_retention_days:
      description: Days snapshots are kept.
      type: int
    snapshot_window:
      description: Daily snapshot window.
      type: str
    arn:
      description: ARN of the group.
      type: str
    tags:
      description: Tags of the group.
      type: dict
"""

import re

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import (
    ansible_dict_to_boto3_tag_list,
    boto3_tag_list_to_ansible_dict,
)

from ansible_collections.argoeks.mlops.plugins.module_utils.aws import GONE, AwsResource

NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
WINDOW = re.compile(r"^([01]?\d|2[0-3]):[0-5]\d-([01]?\d|2[0-3]):[0-5]\d$")
POLL_SECONDS = 15
# Statuses from which a replication group never becomes available on its own.
FAILED_STATUSES = ("create-failed",)
# Option -> (ModifyReplicationGroup argument) for what AWS changes in place.
MUTABLE = {
    "description": "ReplicationGroupDescription",
    "node_type": "CacheNodeType",
    "automatic_failover": "AutomaticFailoverEnabled",
    "multi_az": "MultiAZEnabled",
    "snapshot_retention_days": "SnapshotRetentionLimit",
    "snapshot_window": "SnapshotWindow",
}
IMMUTABLE = ("engine", "replicas", "at_rest_encryption", "transit_encryption")


def validate(module):
    params = module.params
    problems = []
    if not NAME.match(params["name"]) or "--" in params["name"] or params["name"].endswith("-"):
        problems.append(
            f"name {params['name']!r} must be 1 to 40 lower-case letters, digits and single hyphens, starting with a "
            "letter and not ending with a hyphen"
        )
    if params["state"] == "present":
        if not 0 <= params["replicas"] <= 5:
            problems.append(f"replicas must be 0 to 5, got {params['replicas']}")
        for option in ("automatic_failover", "multi_az"):
            if params[option] and params["replicas"] == 0:
                problems.append(f"{option} needs at least one replica (replicas is 0)")
        token = params["auth_token"]
        if token is not None:
            if not params["transit_encryption"]:
                problems.append("auth_token needs transit_encryption: true")
            if not 16 <= len(token) <= 128 or any(c in token for c in '@"/') or not token.isprintable():
                problems.append('auth_token must be 16 to 128 printable characters without @, " or /')
        if params["snapshot_window"] and not WINDOW.match(params["snapshot_window"]):
            problems.append(f"snapshot_window {params['snapshot_window']!r} must look like 05:00-06:00 (UTC)")
        if params["snapshot_retention_days"] is not None and not 0 <= params["snapshot_retention_days"] <= 35:
            problems.append(f"snapshot_retention_days must be 0 to 35, got {params['snapshot_retention_days']}")
        if not 1 <= params["port"] <= 65535:
            problems.append(f"port must be 1 to 65535, got {params['port']}")
    if problems:
        module.fail_json(msg="elasticache_replication_group: " + "; ".join(problems))


def endpoint(value):
    return {"address": value["Address"], "port": value["Port"]} if value else {}


class ReplicationGroup(AwsResource):
    def __init__(self, module):
        self.name = module.params["name"]
        super().__init__(module, "elasticache", f"replication group {self.name}")

    def find(self):
        """The group as AWS describes it, also while it is being deleted; None once it is gone."""
        answer = self.describe_or_none(
            "describe_replication_groups", "ReplicationGroupNotFoundFault", ReplicationGroupId=self.name
        )
        return ((answer or {}).get("ReplicationGroups") or [None])[0]

    def describe(self):
        group = self.find()
        # A group being deleted is gone as far as this module is concerned.
        return None if group is None or group.get("Status") == "deleting" else group

    def tags(self, arn):
        tags = self.read("list_tags_for_resource", "read the tags of", ResourceName=arn)["TagList"]
        return boto3_tag_list_to_ansible_dict(tags)

    def state(self, group):
        if group is None:
            return {}
        node_groups = group.get("NodeGroups") or [{}]
        return {
            "name": group["ReplicationGroupId"],
            "status": group.get("Status"),
            "description": group.get("Description", ""),
            "engine": group.get("Engine", "redis"),
            "node_type": group.get("CacheNodeType"),
            "replicas": max(len(group.get("MemberClusters") or []) - 1, 0),
            "automatic_failover": group.get("AutomaticFailover") in ("enabled", "enabling"),
            "multi_az": group.get("MultiAZ") == "enabled",
            "at_rest_encryption": bool(group.get("AtRestEncryptionEnabled")),
            "transit_encryption": bool(group.get("TransitEncryptionEnabled")),
            "auth_token_enabled": bool(group.get("AuthTokenEnabled")),
            "snapshot_retention_days": group.get("SnapshotRetentionLimit", 0),
            "snapshot_window": group.get("SnapshotWindow", ""),
            "primary_endpoint": endpoint(node_groups[0].get("PrimaryEndpoint")),
            "reader_endpoint": endpoint(node_groups[0].get("ReaderEndpoint")),
            "arn": group.get("ARN", ""),
            "tags": self.tags(group["ARN"]) if group.get("ARN") else {},
        }

    def wanted(self):
        params = self.params
        replicas = params["replicas"]
        wanted = {
            "description": params["description"],
            "engine": params["engine"],
            "node_type": params["node_type"],
            "replicas": replicas,
            "automatic_failover": replicas > 0
            if params["automatic_failover"] is None
            else params["automatic_failover"],
            "multi_az": replicas > 0 if params["multi_az"] is None else params["multi_az"],
            "at_rest_encryption": params["at_rest_encryption"],
            "transit_encryption": params["transit_encryption"],
            "snapshot_retention_days": params["snapshot_retention_days"],
            "snapshot_window": params["snapshot_window"],
        }
        return {key: value for key, value in wanted.items() if value is not None}

    def create(self, wanted):
        params = self.params
        missing = [option for option in ("description", "node_type") if not params[option]]
        if missing:
            self.module.fail_json(
                msg=f"elasticache_replication_group: creating {self.name} needs {' and '.join(missing)}"
            )
        request = {
            "ReplicationGroupId": self.name,
            "ReplicationGroupDescription": wanted["description"],
            "Engine": wanted["engine"],
            "CacheNodeType": wanted["node_type"],
            "NumNodeGroups": 1,
            "ReplicasPerNodeGroup": wanted["replicas"],
            "AutomaticFailoverEnabled": wanted["automatic_failover"],
            "MultiAZEnabled": wanted["multi_az"],
            "Port": params["port"],
            "AtRestEncryptionEnabled": wanted["at_rest_encryption"],
            "TransitEncryptionEnabled": wanted["transit_encryption"],
        }
        optional = {
            "EngineVersion": params["engine_version"],
            "CacheSubnetGroupName": params["subnet_group"],
            "SecurityGroupIds": params["security_group_ids"],
            "AuthToken": params["auth_token"],
            "SnapshotRetentionLimit": params["snapshot_retention_days"],
            "SnapshotWindow": params["snapshot_window"],
            "Tags": ansible_dict_to_boto3_tag_list(params["tags"]) if params["tags"] else None,
        }
        request.update({key: value for key, value in optional.items() if value is not None})
        self.call("create_replication_group", "create", **request)

    def update(self, current, wanted):
        immutable = [
            f"{key} ({current[key]} -> {wanted[key]})"
            for key in IMMUTABLE
            if key in wanted and current[key] != wanted[key]
        ]
        if immutable:
            self.module.fail_json(
                msg=f"elasticache_replication_group: {self.name} cannot change {', '.join(immutable)} in place; "
                "create a new group (or change it with the AWS console or CLI) - nothing was changed",
                replication_group=current,
            )
        request = {MUTABLE[key]: wanted[key] for key in MUTABLE if key in wanted and current[key] != wanted[key]}
        if self.params["security_group_ids"] is not None and self.security_groups_differ():
            request["SecurityGroupIds"] = self.params["security_group_ids"]
        if request:
            self.call(
                "modify_replication_group", "modify", ReplicationGroupId=self.name, ApplyImmediately=True, **request
            )
        return request

    def security_groups_differ(self):
        """The security groups live on the member clusters; compare with the primary's."""
        answer = self.describe_or_none(
            "describe_cache_clusters", "CacheClusterNotFound", CacheClusterId=f"{self.name}-001"
        )
        if answer is None:
            return False  # nothing to compare with (the group's members are not listed)
        current = sorted(g["SecurityGroupId"] for c in answer["CacheClusters"] for g in c.get("SecurityGroups") or [])
        return current != sorted(self.params["security_group_ids"])

    def update_tags(self, current):
        if not current.get("arn"):
            return
        arn = current["arn"]
        self.sync_tags(
            current.get("tags", {}),
            tag=lambda tags: self.call(
                "add_tags_to_resource", "tag", ResourceName=arn, Tags=ansible_dict_to_boto3_tag_list(tags)
            ),
            untag=lambda keys: self.call("remove_tags_from_resource", "untag", ResourceName=arn, TagKeys=keys),
        )

    def wait_gone(self):
        self.wait(self.find, ready=(GONE,), status=lambda group: group.get("Status"), poll=POLL_SECONDS)

    def wait_available(self):
        """Wait for `available`; a group whose creation failed fails the module at once."""
        return self.wait(
            self.describe,
            ready=("available",),
            failed=FAILED_STATUSES,
            status=lambda group: group.get("Status"),
            reason=lambda group: (
                "AWS could not create it (see its events: aws elasticache describe-events "
                f"--source-type replication-group --source-identifier {self.name}); delete it with state: absent "
                "and run again"
            ),
            extra=lambda group: {"replication_group": self.state(group)},
            poll=POLL_SECONDS,
        )


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            description=dict(type="str"),
            engine=dict(type="str", choices=["redis", "valkey"], default="redis"),
            engine_version=dict(type="str"),
            node_type=dict(type="str"),
            replicas=dict(type="int", default=1),
            automatic_failover=dict(type="bool"),
            multi_az=dict(type="bool"),
            port=dict(type="int", default=6379),
            subnet_group=dict(type="str"),
            security_group_ids=dict(type="list", elements="str"),
            at_rest_encryption=dict(type="bool", default=True),
            transit_encryption=dict(type="bool", default=True),
            auth_token=dict(type="str", no_log=True),
            snapshot_retention_days=dict(type="int"),
            snapshot_window=dict(type="str"),
            tags=dict(type="dict", aliases=["resource_tags"]),
            purge_tags=dict(type="bool", default=True),
            wait=dict(type="bool", default=True),
            wait_timeout=dict(type="int", default=1800),
        ),
        supports_check_mode=True,
    )
    validate(module)
    group = ReplicationGroup(module)
    described = group.describe()
    before = group.state(described)

    if module.params["state"] == "absent":
        if described is not None:
            group.delete_if_present(
                "delete_replication_group", "ReplicationGroupNotFoundFault", ReplicationGroupId=group.name
            )
            if module.params["wait"] and not module.check_mode:
                group.wait_gone()
        module.exit_json(changed=group.changed, replication_group={}, diff={"before": before, "after": {}})

    wanted = group.wanted()
    if described is None:
        group.create(wanted)
        after = dict(wanted, name=group.name, status=None, tags=module.params["tags"] or {})
    else:
        group.update(before, wanted)
        group.update_tags(before)
        after = dict(before, **wanted)
        if module.params["tags"] is not None:
            after["tags"] = (
                module.params["tags"] if module.params["purge_tags"] else dict(before["tags"], **module.params["tags"])
            )
    if group.changed and not module.check_mode:
        after = group.state(group.wait_available() if module.params["wait"] else group.describe())
    module.exit_json(changed=group.changed, replication_group=after, diff={"before": before, "after": after})


if __name__ == "__main__":
    main()
