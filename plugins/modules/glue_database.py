#!/usr/bin/python
# Copyright: argoeks maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

DOCUMENTATION = r"""
---
module: glue_database
short_description: Manage an AWS Glue Data Catalog database
version_added: 0.1.0
description:
  - Creates, updates or deletes a database of the AWS Glue Data Catalog (its description, location and
    parameters), idempotently and with check mode and diff.
  - Written because neither C(amazon.aws) nor C(community.aws) has a module for Glue databases; the data lake
    needs one per environment (C(mlops_<env>)) for its crawlers to write their tables to.
  - An existing database is changed with C(glue:UpdateDatabase) only when O(description), O(location_uri) or
    O(parameters) differ from what it has. Settings the module does not manage (default permissions of new
    tables, a target database of a resource link) are kept as they are.
author:
  - argoeks maintainers
options:
  name:
    description:
      - Name of the database, unique within the catalog.
      - Must be lower case; Glue folds database names to lower case when it stores them.
    type: str
    required: true
  state:
    description:
      - Whether the database should exist.
      - Deleting a database also deletes every table of it from the catalog (not the data in S3).
    type: str
    choices: [present, absent]
    default: present
  description:
    description:
      - Description of the database.
      - Omit to leave the description of an existing database as it is; an empty string removes it.
    type: str
  location_uri:
    description:
      - Location of the database's data, for example C(s3://argoeks-dev-datalake/).
      - Omit to leave it as it is; an empty string removes it.
    type: str
  parameters:
    description:
      - Key-value properties of the database; numbers and booleans are stored as strings.
      - The database gets exactly these parameters; omit to leave them as they are, C({}) removes all.
    type: dict
  catalog_id:
    description: Id of the Data Catalog (an AWS account id). Defaults to the catalog of the account in use.
    type: str
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - Supports C(check_mode) and C(diff).
"""

EXAMPLES = r"""
- name: Database of the dev data lake (roadmap Phase 2, Week 4)
  argoeks.mlops.glue_database:
    name: mlops_dev
    description: Bronze, silver and gold tables of the dev data lake
    location_uri: s3://argoeks-dev-datalake/
    parameters:
      environment: dev
      managed_by: ansible

- name: Remove it (and the catalog tables in it)
  argoeks.mlops.glue_database:
    name: mlops_dev
    state: absent
"""

RETURN = r"""
database:
  description: The database as it is after the module ran (as it would be, in check mode); empty when absent.
  returned: always
  type: dict
  contains:
    name:
      description: Database name.
      type: str
      sample: mlops_dev
    description:
      description: Description; empty when it has none.
      type: str
      sample: Bronze, silver and gold tables of the dev data lake
    location_uri:
      description: Location of the data; empty when it has none.
      type: str
      sample: s3://argoeks-dev-datalake/
    parameters:
      description: Parameters of the database.
      type: dict
      sample: {"environment": "dev"}
    create_time:
      description: When the database was created (ISO 8601); null in check mode before it exists.
      type: str
      sample: "2026-11-26T09:10:30.246000+00:00"
    catalog_id:
      description: Id of the catalog holding the database.
      type: str
      sample: "123456789012"
"""

import contextlib
import re

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    import botocore

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.argoeks.mlops.plugins.module_utils.aws import retry_decorator

MAX_NAME = 255  # Glue NameString
MAX_DESCRIPTION = 2048
MAX_LOCATION = 1024
URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")
ACCESS_DENIED_CODES = ("AccessDeniedException", "AccessDenied")
# DatabaseInput members the module does not manage, passed back unchanged on UpdateDatabase (which
# replaces the whole definition).
KEPT_ON_UPDATE = ("CreateTableDefaultPermissions", "TargetDatabase", "FederatedDatabase")


def parameter_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def validate(module):
    """Fail naming the option before any AWS call."""
    params = module.params
    name = params["name"]
    if not name or len(name) > MAX_NAME or not name.isprintable():
        module.fail_json(msg=f"name must be 1 to {MAX_NAME} printable characters, got {name!r}")
    if name != name.lower():
        module.fail_json(
            msg=f"name must be lower case (Glue stores database names in lower case), got {name!r}; "
            f"use {name.lower()!r}"
        )
    if params["state"] == "absent":
        return
    description = params["description"]
    if description is not None and len(description) > MAX_DESCRIPTION:
        module.fail_json(msg=f"description must be at most {MAX_DESCRIPTION} characters, got {len(description)}")
    location = params["location_uri"]
    if location and (len(location) > MAX_LOCATION or not URI.match(location)):
        module.fail_json(
            msg=f"location_uri must be a URI such as s3://bucket/prefix/ (at most {MAX_LOCATION} characters), "
            f"got {location!r}"
        )
    parameters = params["parameters"]
    if parameters is not None:
        for key, value in parameters.items():
            if not key or len(key) > MAX_NAME:
                module.fail_json(msg=f"parameters: key {key!r} must be 1 to {MAX_NAME} characters")
            if value is None or isinstance(value, (dict, list)):
                module.fail_json(
                    msg=f"parameters.{key} must be a string (or a number or boolean), got {type(value).__name__}"
                )
        params["parameters"] = {key: parameter_value(value) for key, value in parameters.items()}


class GlueDatabase:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.name = module.params["name"]
        self.catalog = {"CatalogId": module.params["catalog_id"]} if module.params["catalog_id"] else {}
        self.client = module.client("glue", retry_decorator=retry_decorator())
        self.changed = False
        self.described = None

    def fail(self, error, action, permission):
        msg = f"Failed to {action} Glue database {self.name}"
        if isinstance(error, botocore.exceptions.ClientError) and (
            error.response.get("Error", {}).get("Code") in ACCESS_DENIED_CODES
        ):
            msg += f" (access denied: the credentials in use need {permission} on it)"
        self.module.fail_json_aws(error, msg=msg)

    # ---- reading -------------------------------------------------------------------------
    def read(self):
        try:
            self.described = self.client.get_database(aws_retry=True, Name=self.name, **self.catalog)["Database"]
        except is_boto3_error_code("EntityNotFoundException"):
            self.described = None
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
            self.fail(e, "read", "glue:GetDatabase")
        return self.current_state(self.described)

    @staticmethod
    def current_state(database):
        """The database as the module's options see it."""
        if database is None:
            return {}
        created = database.get("CreateTime")
        return {
            "name": database["Name"],
            "description": database.get("Description") or "",
            "location_uri": database.get("LocationUri") or "",
            "parameters": dict(database.get("Parameters") or {}),
            "create_time": created.isoformat() if hasattr(created, "isoformat") else created,
            "catalog_id": database.get("CatalogId"),
        }

    # ---- desired state -------------------------------------------------------------------
    def wanted_state(self, current):
        """What the database is once the module has run: the options given, the rest as it is."""
        params = self.params
        wanted = {
            "name": self.name,
            "description": current.get("description", ""),
            "location_uri": current.get("location_uri", ""),
            "parameters": current.get("parameters", {}),
            "create_time": current.get("create_time"),
            "catalog_id": current.get("catalog_id") or params["catalog_id"],
        }
        for option in ("description", "location_uri", "parameters"):
            if params[option] is not None:
                wanted[option] = params[option]
        return wanted

    @staticmethod
    def database_input(wanted):
        database_input = {"Name": wanted["name"]}
        if wanted["description"]:
            database_input["Description"] = wanted["description"]
        if wanted["location_uri"]:
            database_input["LocationUri"] = wanted["location_uri"]
        if wanted["parameters"]:
            database_input["Parameters"] = wanted["parameters"]
        return database_input

    # ---- changes ---------------------------------------------------------------------------
    def create(self, wanted):
        self.call("create_database", "create", "glue:CreateDatabase", DatabaseInput=self.database_input(wanted))

    def update(self, current, wanted):
        if all(current[k] == wanted[k] for k in ("description", "location_uri", "parameters")):
            return
        database_input = self.database_input(wanted)
        for key in KEPT_ON_UPDATE:
            if self.described.get(key):
                database_input[key] = self.described[key]
        self.call("update_database", "update", "glue:UpdateDatabase", Name=self.name, DatabaseInput=database_input)

    def delete(self):
        self.changed = True
        if self.module.check_mode:
            return
        try:
            self.client.delete_database(aws_retry=True, Name=self.name, **self.catalog)
        except is_boto3_error_code("EntityNotFoundException"):
            return
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
            self.fail(e, "delete", "glue:DeleteDatabase")

    def call(self, method, action, permission, **kwargs):
        self.changed = True
        if self.module.check_mode:
            return
        try:
            getattr(self.client, method)(aws_retry=True, **self.catalog, **kwargs)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            self.fail(e, action, permission)


def main():
    argument_spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        description=dict(type="str"),
        location_uri=dict(type="str"),
        parameters=dict(type="dict"),
        catalog_id=dict(type="str"),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    validate(module)

    database = GlueDatabase(module)
    before = database.read()

    if module.params["state"] == "absent":
        if database.described is not None:
            database.delete()
        module.exit_json(changed=database.changed, database={}, diff={"before": before, "after": {}})

    wanted = database.wanted_state(before)
    if database.described is None:
        database.create(wanted)
    else:
        database.update(before, wanted)

    after = before
    if database.changed:  # read back what AWS made of it; check mode reports what it would be
        after = wanted if module.check_mode else database.read()
    module.exit_json(changed=database.changed, database=after, diff={"before": before, "after": after})


if __name__ == "__main__":
    main()
