#!/usr/bin/python
# Copyright: argoeks maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

DOCUMENTATION = r"""
---
module: dynamodb_table
short_description: Manage a DynamoDB table with its encryption, point-in-time recovery and tags
version_added: 0.1.0
description:
  - Creates, updates or deletes an Amazon DynamoDB table, including server-side encryption,
    point-in-time recovery (continuous backups) and tags, idempotently and with check mode and diff.
  - Written because C(community.aws.dynamodb_table) manages no point-in-time recovery (the Terraform
    lock table needs it) and reads C(TableId) from every answer, which AWS-compatible emulators do not
    return, so it cannot be tested offline.
  - The key schema of an existing table cannot change; the module fails naming the difference rather than
    replacing the table (that would lose its data).
author:
  - argoeks maintainers
options:
  name:
    description: Name of the table.
    type: str
    required: true
  state:
    description: Whether the table should exist.
    type: str
    choices: [present, absent]
    default: present
  hash_key_name:
    description: Name of the partition (hash) key. Required when creating a table.
    type: str
  hash_key_type:
    description: Type of the partition key (S string, N number, B binary).
    type: str
    choices: [S, N, B]
    default: S
  range_key_name:
    description: Name of the optional sort (range) key.
    type: str
  range_key_type:
    description: Type of the sort key.
    type: str
    choices: [S, N, B]
    default: S
  billing_mode:
    description: C(PAY_PER_REQUEST) (on demand) or C(PROVISIONED).
    type: str
    choices: [PAY_PER_REQUEST, PROVISIONED]
    default: PAY_PER_REQUEST
  read_capacity:
    description: Read capacity units when O(billing_mode=PROVISIONED).
    type: int
    default: 1
  write_capacity:
    description: Write capacity units when O(billing_mode=PROVISIONED).
    type: int
    default: 1
  sse_enabled:
    description:
      - Encrypt the table with a KMS key (the AWS managed C(aws/dynamodb) key unless O(sse_kms_key_id) is set).
      - When false the table uses DynamoDB's default encryption with an AWS owned key.
    type: bool
    default: true
  sse_kms_key_id:
    description: KMS key id, ARN or alias for O(sse_enabled=true). Empty uses the AWS managed key.
    type: str
  point_in_time_recovery:
    description: Keep continuous backups so the table can be restored to any second of the last 35 days.
    type: bool
    default: true
  wait:
    description: Wait until the table is C(ACTIVE) after creating or updating it, and gone after deleting it.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait.
    type: int
    default: 300
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.tags
  - amazon.aws.boto3
notes:
  - Supports C(check_mode) and C(diff).
"""

EXAMPLES = r"""
- name: Terraform state lock table (roadmap Phase 1, Day 1-2)
  argoeks.mlops.dynamodb_table:
    name: argoeks-terraform-locks
    hash_key_name: LockID
    hash_key_type: S
    billing_mode: PAY_PER_REQUEST
    sse_enabled: true
    point_in_time_recovery: true
    tags:
      Project: argoeks

- name: Remove it
  argoeks.mlops.dynamodb_table:
    name: argoeks-terraform-locks
    state: absent
"""

RETURN = r"""
table:
  description: The table as it is after the module ran (empty when absent).
  returned: always
  type: dict
  contains:
    name:
      description: Table name.
      type: str
      sample: argoeks-terraform-locks
    arn:
      description: Table ARN.
      type: str
      sample: arn:aws:dynamodb:us-east-1:123456789012:table/argoeks-terraform-locks
    status:
      description: Table status.
      type: str
      sample: ACTIVE
    hash_key_name:
      description: Partition key name.
      type: str
    hash_key_type:
      description: Partition key type.
      type: str
    range_key_name:
      description: Sort key name, if any.
      type: str
    range_key_type:
      description: Sort key type, if any.
      type: str
    billing_mode:
      description: Billing mode.
      type: str
      sample: PAY_PER_REQUEST
    sse_enabled:
      description: Whether KMS encryption is on.
      type: bool
    sse_kms_key_arn:
      description: ARN of the KMS key in use, if any.
      type: str
    point_in_time_recovery:
      description: Whether point-in-time recovery is on.
      type: bool
    tags:
      description: Tags of the table.
      type: dict
"""

import contextlib
import time

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    import botocore

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import (
    ansible_dict_to_boto3_tag_list,
    boto3_tag_list_to_ansible_dict,
    compare_aws_tags,
)

from ansible_collections.argoeks.mlops.plugins.module_utils.aws import retry_decorator


class DynamoDBTable:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.name = module.params["name"]
        self.client = module.client("dynamodb", retry_decorator=retry_decorator())
        self.changed = False

    # ---- reading -------------------------------------------------------------------------
    def describe(self):
        try:
            table = self.client.describe_table(aws_retry=True, TableName=self.name)["Table"]
        except is_boto3_error_code("ResourceNotFoundException"):
            return None
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
            self.module.fail_json_aws(e, msg=f"Failed to describe DynamoDB table {self.name}")
        return table

    def current_state(self, table):
        """The table as the module's options see it."""
        if table is None:
            return {}
        keys = {k["KeyType"]: k["AttributeName"] for k in table["KeySchema"]}
        types = {a["AttributeName"]: a["AttributeType"] for a in table.get("AttributeDefinitions", [])}
        sse = table.get("SSEDescription") or {}
        state = {
            "name": table["TableName"],
            "arn": table.get("TableArn"),
            "status": table.get("TableStatus"),
            "hash_key_name": keys.get("HASH"),
            "hash_key_type": types.get(keys.get("HASH")),
            "range_key_name": keys.get("RANGE"),
            "range_key_type": types.get(keys.get("RANGE")) if keys.get("RANGE") else None,
            # Tables created on demand may omit BillingModeSummary; provisioned is the API's default.
            "billing_mode": (table.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED"),
            "sse_enabled": sse.get("Status") in ("ENABLED", "ENABLING", "UPDATING"),
            "sse_kms_key_arn": sse.get("KMSMasterKeyArn"),
            "point_in_time_recovery": self.pitr_enabled(),
            "tags": self.tags(table.get("TableArn")),
        }
        if state["billing_mode"] == "PROVISIONED":
            throughput = table.get("ProvisionedThroughput") or {}
            state["read_capacity"] = throughput.get("ReadCapacityUnits")
            state["write_capacity"] = throughput.get("WriteCapacityUnits")
        return state

    def pitr_enabled(self):
        try:
            desc = self.client.describe_continuous_backups(aws_retry=True, TableName=self.name)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            self.module.fail_json_aws(e, msg=f"Failed to read point-in-time recovery of {self.name}")
        pitr = desc["ContinuousBackupsDescription"].get("PointInTimeRecoveryDescription") or {}
        return pitr.get("PointInTimeRecoveryStatus") in ("ENABLED", "ENABLING")

    def tags(self, arn):
        if not arn:
            return {}
        try:
            tags = self.client.list_tags_of_resource(aws_retry=True, ResourceArn=arn).get("Tags", [])
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            self.module.fail_json_aws(e, msg=f"Failed to list tags of {self.name}")
        return boto3_tag_list_to_ansible_dict(tags)

    # ---- desired state -------------------------------------------------------------------
    def wanted_sse(self):
        spec = {"Enabled": self.params["sse_enabled"]}
        if self.params["sse_enabled"]:
            spec["SSEType"] = "KMS"
            if self.params["sse_kms_key_id"]:
                spec["KMSMasterKeyId"] = self.params["sse_kms_key_id"]
        return spec

    def check_key_schema(self, current):
        wanted = {
            "hash_key_name": self.params["hash_key_name"] or current["hash_key_name"],
            "hash_key_type": self.params["hash_key_type"] if self.params["hash_key_name"] else current["hash_key_type"],
            "range_key_name": self.params["range_key_name"],
            "range_key_type": self.params["range_key_type"] if self.params["range_key_name"] else None,
        }
        differences = [
            f"{key}: table has {current[key]!r}, asked for {value!r}"
            for key, value in wanted.items()
            if current[key] != value
        ]
        if differences:
            self.module.fail_json(
                msg=(
                    f"The key schema of DynamoDB table {self.name} cannot be changed in place ("
                    + "; ".join(differences)
                    + "). Delete the table (state=absent) or choose another name."
                ),
            )

    # ---- changes ---------------------------------------------------------------------------
    def create(self):
        params = self.params
        if not params["hash_key_name"]:
            self.module.fail_json(msg=f"hash_key_name is required to create DynamoDB table {self.name}")
        attributes = [{"AttributeName": params["hash_key_name"], "AttributeType": params["hash_key_type"]}]
        key_schema = [{"AttributeName": params["hash_key_name"], "KeyType": "HASH"}]
        if params["range_key_name"]:
            attributes.append({"AttributeName": params["range_key_name"], "AttributeType": params["range_key_type"]})
            key_schema.append({"AttributeName": params["range_key_name"], "KeyType": "RANGE"})
        request = {
            "TableName": self.name,
            "AttributeDefinitions": attributes,
            "KeySchema": key_schema,
            "BillingMode": params["billing_mode"],
            "SSESpecification": self.wanted_sse(),
        }
        if params["billing_mode"] == "PROVISIONED":
            request["ProvisionedThroughput"] = self.throughput()
        if params["tags"]:
            request["Tags"] = ansible_dict_to_boto3_tag_list(params["tags"])
        self.changed = True
        if self.module.check_mode:
            return
        try:
            self.client.create_table(aws_retry=True, **request)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            self.module.fail_json_aws(e, msg=f"Failed to create DynamoDB table {self.name}")
        self.wait_for("ACTIVE")
        # CreateTable cannot turn on point-in-time recovery; the update path does.
        self.update(self.current_state(self.describe()))

    def throughput(self):
        return {"ReadCapacityUnits": self.params["read_capacity"], "WriteCapacityUnits": self.params["write_capacity"]}

    def update(self, current):
        params = self.params
        update = {}
        if current["billing_mode"] != params["billing_mode"]:
            update["BillingMode"] = params["billing_mode"]
        if params["billing_mode"] == "PROVISIONED" and (
            current.get("read_capacity") != params["read_capacity"]
            or current.get("write_capacity") != params["write_capacity"]
        ):
            update["ProvisionedThroughput"] = self.throughput()
            update["BillingMode"] = "PROVISIONED"
        if current["sse_enabled"] != params["sse_enabled"] or (
            params["sse_enabled"]
            and params["sse_kms_key_id"]
            and not self.same_kms_key(current["sse_kms_key_arn"], params["sse_kms_key_id"])
        ):
            update["SSESpecification"] = self.wanted_sse()
        if update:
            self.call("update_table", "update", TableName=self.name, **update)
            self.wait_for("ACTIVE")
        if current["point_in_time_recovery"] != params["point_in_time_recovery"]:
            self.call(
                "update_continuous_backups",
                "set point-in-time recovery of",
                TableName=self.name,
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": params["point_in_time_recovery"]},
            )
        if params["tags"] is not None:
            to_set, to_remove = compare_aws_tags(current["tags"], params["tags"], params["purge_tags"])
            if to_remove:
                self.call("untag_resource", "untag", ResourceArn=current["arn"], TagKeys=to_remove)
            if to_set:
                self.call(
                    "tag_resource", "tag", ResourceArn=current["arn"], Tags=ansible_dict_to_boto3_tag_list(to_set)
                )

    @staticmethod
    def same_kms_key(current_arn, wanted):
        """A key given as id or ARN matches the ARN AWS reports; an alias cannot be compared offline."""
        if not current_arn:
            return False
        if wanted.startswith("alias/") or ":alias/" in wanted:
            return True
        return current_arn == wanted or current_arn.endswith("/" + wanted)

    def delete(self):
        self.changed = True
        if self.module.check_mode:
            return
        try:
            self.client.delete_table(aws_retry=True, TableName=self.name)
        except is_boto3_error_code("ResourceNotFoundException"):
            return
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
            self.module.fail_json_aws(e, msg=f"Failed to delete DynamoDB table {self.name}")
        self.wait_for(None)

    def call(self, method, what, **kwargs):
        self.changed = True
        if self.module.check_mode:
            return
        try:
            getattr(self.client, method)(aws_retry=True, **kwargs)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            self.module.fail_json_aws(e, msg=f"Failed to {what} DynamoDB table {self.name}")

    def wait_for(self, status):
        """Wait for `status`, or for the table to be gone when status is None."""
        if not self.params["wait"]:
            return
        deadline = time.monotonic() + self.params["wait_timeout"]
        while True:
            table = self.describe()
            if (table is None and status is None) or (table is not None and table.get("TableStatus") == status):
                return
            if time.monotonic() > deadline:
                found = table.get("TableStatus") if table else "absent"
                self.module.fail_json(
                    msg=f"Timed out after {self.params['wait_timeout']}s waiting for DynamoDB table {self.name} "
                    f"to be {status or 'deleted'} (it is {found})"
                )
            time.sleep(2)


def main():
    argument_spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        hash_key_name=dict(type="str"),
        hash_key_type=dict(type="str", choices=["S", "N", "B"], default="S"),
        range_key_name=dict(type="str"),
        range_key_type=dict(type="str", choices=["S", "N", "B"], default="S"),
        billing_mode=dict(type="str", choices=["PAY_PER_REQUEST", "PROVISIONED"], default="PAY_PER_REQUEST"),
        read_capacity=dict(type="int", default=1),
        write_capacity=dict(type="int", default=1),
        sse_enabled=dict(type="bool", default=True),
        sse_kms_key_id=dict(type="str", no_log=False),
        point_in_time_recovery=dict(type="bool", default=True),
        tags=dict(type="dict", aliases=["resource_tags"]),
        purge_tags=dict(type="bool", default=True),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=300),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    for option in ("read_capacity", "write_capacity", "wait_timeout"):
        if module.params[option] < 1:
            module.fail_json(msg=f"{option} must be a positive integer, got {module.params[option]}")

    table = DynamoDBTable(module)
    described = table.describe()
    before = table.current_state(described)

    if module.params["state"] == "absent":
        if described is not None:
            table.delete()
        module.exit_json(changed=table.changed, table={}, diff={"before": before, "after": {}})

    if described is None:
        table.create()
    else:
        table.check_key_schema(before)
        table.update(before)

    after = dict(before, **predicted(module.params)) if module.check_mode else table.current_state(table.describe())
    module.exit_json(changed=table.changed, table=after, diff={"before": before, "after": after})


def predicted(params):
    """What check mode reports as the table's state after a real run."""
    after = {
        "name": params["name"],
        "billing_mode": params["billing_mode"],
        "sse_enabled": params["sse_enabled"],
        "point_in_time_recovery": params["point_in_time_recovery"],
    }
    if params["hash_key_name"]:
        after.update(hash_key_name=params["hash_key_name"], hash_key_type=params["hash_key_type"])
    if params["tags"] is not None:
        after["tags"] = params["tags"]
    return after


if __name__ == "__main__":
    main()
