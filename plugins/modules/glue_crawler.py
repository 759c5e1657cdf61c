#!/usr/bin/python
# Copyright: argoeks maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

DOCUMENTATION = r"""
---
module: glue_crawler
short_description: Manage an AWS Glue crawler of S3 data with its schedule, policies and tags, and run it
version_added: 0.1.0
description:
  - Creates, updates or deletes an AWS Glue crawler that catalogues S3 data into a Glue database, with its
    schedule, schema change and recrawl policies, table prefix, configuration and tags, idempotently and with
    check mode and diff. Optionally starts a crawl and waits for it to finish.
  - Written because C(community.aws.glue_crawler) cannot set a schedule and does not update an existing
    crawler, so it cannot keep one crawler per medallion layer of the data lake on its schedule.
  - An existing crawler is changed with one C(glue:UpdateCrawler) call carrying only what differs. Values are
    compared as AWS means them, so a role given by name matches the same role given by ARN, a schedule
    matches whatever its letter case and spacing, and O(configuration) is compared as JSON, not as text.
  - AWS does not update or delete a running crawler. An update waits (up to O(wait_timeout)) for the running
    crawl to finish; a deletion stops the crawl first and waits for it to stop.
  - Creating or updating a crawler right after creating its IAM role is retried for up to a minute while AWS
    answers that it cannot assume the role yet.
author:
  - argoeks maintainers
options:
  name:
    description: Name of the crawler.
    type: str
    required: true
  state:
    description: Whether the crawler should exist.
    type: str
    choices: [present, absent]
    default: present
  role:
    description:
      - IAM role the crawler runs as, by name (C(argoeks-dev-glue-crawler), C(service-role/name)) or by ARN.
      - Required when O(state=present).
    type: str
  database_name:
    description:
      - Glue database the crawler writes its tables to (see M(argoeks.mlops.glue_database)).
      - Omit to leave the database of an existing crawler as it is.
    type: str
  description:
    description: Description of the crawler. Omit to leave it as it is; an empty string removes it.
    type: str
  s3_targets:
    description:
      - The S3 locations to crawl. Required when O(state=present).
      - Other kinds of targets an existing crawler has (JDBC, DynamoDB, catalog, ...) are kept.
    type: list
    elements: dict
    suboptions:
      path:
        description: S3 location, C(s3://bucket/prefix/).
        type: str
        required: true
      exclusions:
        description: Glob patterns of objects not to crawl, for example C(**/_temporary/**).
        type: list
        elements: str
        default: []
      sample_size:
        description: Number of files to crawl in each leaf folder (1 to 249); omit to crawl all files.
        type: int
  schedule:
    description:
      - When the crawler runs, as a C(cron(...)) expression of 6 fields in UTC (minutes hours day-of-month
        month day-of-week year), for example C(cron(0 2 * * ? *)) for 02:00 every day. One of day-of-month and
        day-of-week must be C(?).
      - An empty string removes the schedule (the crawler then runs only on demand). Omit to leave it as it is.
    type: str
  schema_change_policy:
    description:
      - What the crawler does to catalog tables when it finds a changed or a deleted object.
      - Omit to leave it as it is (AWS's default on creation is C(UPDATE_IN_DATABASE) and
        C(DEPRECATE_IN_DATABASE)); with O(recrawl_policy=CRAWL_NEW_FOLDERS_ONLY), AWS allows only C(LOG) for
        both, which is also what an omitted policy becomes then.
    type: dict
    suboptions:
      update_behavior:
        description: On a changed schema.
        type: str
        choices: [UPDATE_IN_DATABASE, LOG]
        default: UPDATE_IN_DATABASE
      delete_behavior:
        description: On a deleted object.
        type: str
        choices: [DEPRECATE_IN_DATABASE, DELETE_FROM_DATABASE, LOG]
        default: DEPRECATE_IN_DATABASE
  recrawl_policy:
    description:
      - Whether a crawl after the first one crawls everything again or only the folders added since the last
        crawl. Omit to leave it as it is (AWS's default is C(CRAWL_EVERYTHING)).
    type: str
    choices: [CRAWL_EVERYTHING, CRAWL_NEW_FOLDERS_ONLY]
  table_prefix:
    description: Prefix of the names of the tables the crawler creates (at most 128 characters). An empty
      string removes it; omit to leave it as it is.
    type: str
  configuration:
    description:
      - 'Crawler configuration as a JSON object, given as a JSON string or a dictionary, for example
        C({"Version": 1.0, "Grouping": {"TableGroupingPolicy": "CombineCompatibleSchemas"}}) (see the examples).'
      - An empty string or C({}) removes it; omit to leave it as it is.
    type: raw
  run:
    description:
      - Start a crawl when this task created or changed the crawler, or when the crawler has never crawled.
      - A crawler that is already running is left running (the task does not fail).
    type: bool
    default: false
  wait:
    description:
      - With O(run=true), wait until the crawl has finished (the crawler is C(READY) again) and fail when the
        crawl failed, with its error message.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait for a crawl (to finish, or to stop before a deletion).
    type: int
    default: 900
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.tags
  - amazon.aws.boto3
notes:
  - Supports C(check_mode) and C(diff).
  - Reading and changing tags needs the crawler's ARN, which the module builds from the account of the
    credentials in use (C(sts:GetCallerIdentity)); nothing is read from STS when O(tags) is omitted.
"""

EXAMPLES = r"""
- name: Crawler of the bronze layer of the dev data lake, every night at 02:00 UTC
  argoeks.mlops.glue_crawler:
    name: mlops-dev-bronze
    role: argoeks-dev-glue-crawler
    database_name: mlops_dev
    description: Raw data as it lands
    s3_targets:
      - path: s3://argoeks-dev-datalake/bronze/
        exclusions: ["**/_temporary/**"]
    table_prefix: bronze_
    schedule: cron(0 2 * * ? *)
    schema_change_policy:
      update_behavior: UPDATE_IN_DATABASE
      delete_behavior: DEPRECATE_IN_DATABASE
    configuration:
      Version: 1.0
      Grouping:
        TableGroupingPolicy: CombineCompatibleSchemas
    tags:
      Project: argoeks
      Layer: bronze

- name: Silver layer, crawling only new folders; run it now and wait for the result
  argoeks.mlops.glue_crawler:
    name: mlops-dev-silver
    role: arn:aws:iam::123456789012:role/argoeks-dev-glue-crawler
    database_name: mlops_dev
    s3_targets:
      - path: s3://argoeks-dev-datalake/silver/
    recrawl_policy: CRAWL_NEW_FOLDERS_ONLY
    schema_change_policy:
      update_behavior: LOG
      delete_behavior: LOG
    schedule: cron(30 2 * * ? *)
    run: true
    wait: true
    wait_timeout: 1200

- name: Crawl on demand only (remove the schedule)
  argoeks.mlops.glue_crawler:
    name: mlops-dev-bronze
    role: argoeks-dev-glue-crawler
    s3_targets:
      - path: s3://argoeks-dev-datalake/bronze/
    schedule: ""

- name: Remove a crawler (its tables stay in the database)
  argoeks.mlops.glue_crawler:
    name: mlops-dev-bronze
    state: absent
"""

RETURN = r"""
crawler:
  description: The crawler as it is after the module ran (as it would be, in check mode); empty when absent.
  returned: always
  type: dict
  contains:
    name:
      description: Crawler name.
      type: str
      sample: mlops-dev-bronze
    role:
      description: IAM role of the crawler, as AWS reports it.
      type: str
      sample: argoeks-dev-glue-crawler
    database_name:
      description: Database the crawler writes to.
      type: str
      sample: mlops_dev
    description:
      description: Description; empty when it has none.
      type: str
    targets:
      description: What the crawler crawls.
      type: dict
      contains:
        s3_targets:
          description: S3 targets, sorted by path, each with its exclusions (sorted) and sample size (null for all).
          type: list
          elements: dict
          sample: [{"path": "s3://argoeks-dev-datalake/bronze/", "exclusions": [], "sample_size": null}]
    schedule:
      description: Schedule in normalised form (single spaces, upper case); empty when the crawler has none.
      type: str
      sample: cron(0 2 * * ? *)
    schema_change_policy:
      description: C(update_behavior) and C(delete_behavior).
      type: dict
      sample: {"update_behavior": "UPDATE_IN_DATABASE", "delete_behavior": "DEPRECATE_IN_DATABASE"}
    recrawl_policy:
      description: Recrawl behaviour.
      type: str
      sample: CRAWL_EVERYTHING
    table_prefix:
      description: Table prefix; empty when it has none.
      type: str
      sample: bronze_
    configuration:
      description: Configuration as a dictionary; empty when it has none.
      type: dict
    state:
      description: C(READY), C(RUNNING) or C(STOPPING); null in check mode before the crawler exists.
      type: str
      sample: READY
    last_crawl:
      description: The last crawl as AWS reports it; empty when the crawler has not crawled yet.
      type: dict
      contains:
        status:
          description: C(SUCCEEDED), C(CANCELLED) or C(FAILED).
          type: str
          sample: SUCCEEDED
        error_message:
          description: Why the crawl failed.
          type: str
        start_time:
          description: When the crawl started (ISO 8601).
          type: str
        log_group:
          description: CloudWatch Logs group of the crawl.
          type: str
          sample: /aws-glue/crawlers
        log_stream:
          description: CloudWatch Logs stream of the crawl.
          type: str
          sample: mlops-dev-bronze
    tags:
      description: Tags of the crawler.
      type: dict
      returned: when O(tags) is set
    arn:
      description: ARN of the crawler.
      type: str
      returned: when O(tags) is set
      sample: arn:aws:glue:us-east-1:123456789012:crawler/mlops-dev-bronze
crawl_started:
  description: Whether the module started a crawl (would have, in check mode).
  returned: always
  type: bool
"""

import contextlib
import json
import re
import time

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    import botocore

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import compare_aws_tags

from ansible_collections.argoeks.mlops.plugins.module_utils.aws import retry_decorator

POLL_SECONDS = 10
ROLE_PROPAGATION_SECONDS = 60  # IAM: a new role can take this long before Glue can assume it
ROLE_PROPAGATION_MESSAGES = ("unable to assume provided role", "please verify the role's trustpolicy")
ACCESS_DENIED_CODES = ("AccessDeniedException", "AccessDenied")

CRON = re.compile(r"^cron\((?P<fields>.+)\)$", re.IGNORECASE)
CRON_FIELDS = 6
S3_PATH = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(?P<account>\d{12}):role/(?P<path_and_name>.+)$")
MAX_NAME = 255
MAX_TABLE_PREFIX = 128
MAX_DESCRIPTION = 2048
SAMPLE_SIZE = (1, 249)

DEFAULT_SCHEMA_CHANGE_POLICY = {"update_behavior": "UPDATE_IN_DATABASE", "delete_behavior": "DEPRECATE_IN_DATABASE"}
LOG_ONLY = {"update_behavior": "LOG", "delete_behavior": "LOG"}
DEFAULT_RECRAWL = "CRAWL_EVERYTHING"
# What UpdateCrawler can change, in the order the module compares them.
FIELDS = (
    "role",
    "database_name",
    "description",
    "targets",
    "schedule",
    "schema_change_policy",
    "recrawl_policy",
    "table_prefix",
    "configuration",
)


# ---- normalising ---------------------------------------------------------------------------
def normalize_schedule(expression):
    """cron(...) with single spaces and upper case, or "" for no schedule."""
    if not expression or not expression.strip():
        return ""
    match = CRON.match(expression.strip())
    if not match:
        return expression.strip()
    return f"cron({' '.join(match.group('fields').split()).upper()})"


def role_identity(role):
    """(account or None, role name): IAM role names are unique in an account whatever their path."""
    match = ROLE_ARN.match(role or "")
    if match:
        return match.group("account"), match.group("path_and_name").rsplit("/", 1)[-1]
    return None, (role or "").rsplit("/", 1)[-1]


def same_role(current, wanted):
    current_account, current_name = role_identity(current)
    wanted_account, wanted_name = role_identity(wanted)
    if current_name != wanted_name:
        return False
    return current_account is None or wanted_account is None or current_account == wanted_account


def parse_configuration(configuration):
    """A configuration (JSON text or dict) as a dict; {} when there is none."""
    if configuration is None or configuration == "":
        return {}
    if isinstance(configuration, dict):
        return configuration
    return json.loads(configuration)


def configuration_text(configuration):
    return json.dumps(configuration, sort_keys=True, separators=(",", ":")) if configuration else ""


def from_aws_s3_target(target):
    return {
        "path": target["Path"],
        "exclusions": sorted(target.get("Exclusions") or []),
        "sample_size": target.get("SampleSize"),
    }


def from_option_s3_target(target):
    return {
        "path": target["path"],
        "exclusions": sorted(set(target["exclusions"] or [])),
        "sample_size": target["sample_size"],
    }


def to_aws_s3_target(target):
    aws_target = {"Path": target["path"], "Exclusions": target["exclusions"]}
    if target["sample_size"] is not None:
        aws_target["SampleSize"] = target["sample_size"]
    return aws_target


def from_aws_schema_change_policy(policy):
    policy = policy or {}
    return {
        "update_behavior": policy.get("UpdateBehavior") or DEFAULT_SCHEMA_CHANGE_POLICY["update_behavior"],
        "delete_behavior": policy.get("DeleteBehavior") or DEFAULT_SCHEMA_CHANGE_POLICY["delete_behavior"],
    }


def from_aws_last_crawl(last_crawl):
    if not last_crawl:
        return {}
    started = last_crawl.get("StartTime")
    return {
        "status": last_crawl.get("Status"),
        "error_message": last_crawl.get("ErrorMessage"),
        "start_time": started.isoformat() if hasattr(started, "isoformat") else started,
        "log_group": last_crawl.get("LogGroup"),
        "log_stream": last_crawl.get("LogStream"),
    }


def crawl_identity(crawler):
    """What tells one crawl from the next in GetCrawler's LastCrawl."""
    last = (crawler or {}).get("LastCrawl") or {}
    return last.get("MessagePrefix"), last.get("StartTime")


def error_code(error):
    if isinstance(error, botocore.exceptions.ClientError):
        return error.response.get("Error", {}).get("Code")
    return None


# ---- validation (before any AWS call) --------------------------------------------------------
def validate(module):
    params = module.params
    name = params["name"]
    if not name or len(name) > MAX_NAME or not name.isprintable():
        module.fail_json(msg=f"name must be 1 to {MAX_NAME} printable characters, got {name!r}")
    if params["wait_timeout"] < 1:
        module.fail_json(msg=f"wait_timeout must be a positive integer, got {params['wait_timeout']}")
    if params["state"] == "absent":
        return

    role = params["role"]
    if not role.strip() or (role.startswith("arn:") and not ROLE_ARN.match(role)):
        module.fail_json(
            msg=f"role must be an IAM role name or a role ARN (arn:aws:iam::<account>:role/<name>), got {role!r}"
        )
    if params["database_name"] is not None and not params["database_name"]:
        module.fail_json(msg="database_name must not be empty; omit it to leave the crawler's database as it is")
    if params["description"] is not None and len(params["description"]) > MAX_DESCRIPTION:
        module.fail_json(msg=f"description must be at most {MAX_DESCRIPTION} characters")
    if params["table_prefix"] is not None and len(params["table_prefix"]) > MAX_TABLE_PREFIX:
        module.fail_json(
            msg=f"table_prefix must be at most {MAX_TABLE_PREFIX} characters, got {len(params['table_prefix'])}"
        )

    validate_targets(module, params["s3_targets"])
    validate_schedule(module, params["schedule"])
    validate_policies(module)

    configuration = params["configuration"]
    if configuration is not None:
        if isinstance(configuration, str):
            try:
                configuration = parse_configuration(configuration)
            except ValueError as e:
                module.fail_json(msg=f"configuration is not valid JSON: {e}")
        if not isinstance(configuration, dict):
            module.fail_json(msg=f"configuration must be a JSON object (or a dictionary), got {configuration!r}")
        params["configuration"] = configuration


def validate_targets(module, targets):
    if not targets:
        module.fail_json(msg="s3_targets must list at least one S3 location to crawl")
    seen = set()
    for index, target in enumerate(targets):
        where = f"s3_targets[{index}]"
        path = target["path"]
        if not S3_PATH.match(path or ""):
            module.fail_json(msg=f"{where}.path must be an S3 location s3://<bucket>/<prefix>, got {path!r}")
        if path in seen:
            module.fail_json(msg=f"{where}.path {path!r} is listed twice in s3_targets")
        seen.add(path)
        size = target["sample_size"]
        if size is not None and not SAMPLE_SIZE[0] <= size <= SAMPLE_SIZE[1]:
            module.fail_json(
                msg=f"{where}.sample_size must be between {SAMPLE_SIZE[0]} and {SAMPLE_SIZE[1]}, got {size}"
            )
        if any(not exclusion for exclusion in target["exclusions"]):
            module.fail_json(msg=f"{where}.exclusions must not contain empty patterns")


def validate_schedule(module, schedule):
    if schedule is None or not schedule.strip():
        return
    example = "for example cron(0 2 * * ? *), or '' to remove the schedule"
    match = CRON.match(schedule.strip())
    if not match:
        module.fail_json(msg=f"schedule must be a cron(...) expression, {example}; got {schedule!r}")
    fields = match.group("fields").split()
    if len(fields) != CRON_FIELDS:
        module.fail_json(
            msg=f"schedule must have {CRON_FIELDS} fields (minutes hours day-of-month month day-of-week year), "
            f"{example}; got {len(fields)} in {schedule!r}"
        )
    if "?" not in (fields[2], fields[4]):
        module.fail_json(msg=f"schedule: one of day-of-month and day-of-week must be '?' (AWS cron), got {schedule!r}")


def validate_policies(module):
    params = module.params
    policy = params["schema_change_policy"]
    if params["recrawl_policy"] == "CRAWL_NEW_FOLDERS_ONLY" and policy is not None and policy != LOG_ONLY:
        module.fail_json(
            msg="schema_change_policy must be update_behavior=LOG and delete_behavior=LOG with "
            f"recrawl_policy=CRAWL_NEW_FOLDERS_ONLY (AWS allows nothing else), got {policy}"
        )


# ---- the crawler ---------------------------------------------------------------------------
class GlueCrawler:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.name = module.params["name"]
        self.client = module.client("glue", retry_decorator=retry_decorator())
        self.changed = False
        self.described = None
        self._arn = None

    def fail(self, error, action, permission):
        msg = f"Failed to {action} Glue crawler {self.name}"
        if error_code(error) in ACCESS_DENIED_CODES:
            msg += f" (access denied: the credentials in use need {permission})"
        self.module.fail_json_aws(error, msg=msg)

    # ---- reading -------------------------------------------------------------------------
    def describe(self):
        try:
            return self.client.get_crawler(aws_retry=True, Name=self.name)["Crawler"]
        except is_boto3_error_code("EntityNotFoundException"):
            return None
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
            self.fail(e, "read", "glue:GetCrawler")

    def arn(self):
        """arn:<partition>:glue:<region>:<account>:crawler/<name>; the account comes from STS."""
        if self._arn is None:
            sts = self.module.client("sts", retry_decorator=retry_decorator())
            try:
                caller = sts.get_caller_identity(aws_retry=True)
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
                self.module.fail_json_aws(
                    e, msg=f"Failed to find the AWS account of the credentials, for the ARN of Glue crawler {self.name}"
                )
            partition = caller["Arn"].split(":")[1]
            self._arn = f"arn:{partition}:glue:{self.module.region}:{caller['Account']}:crawler/{self.name}"
        return self._arn

    def read_tags(self):
        try:
            return dict(self.client.get_tags(aws_retry=True, ResourceArn=self.arn()).get("Tags") or {})
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            self.fail(e, "read the tags of", "glue:GetTags")

    def current_state(self, crawler, with_tags):
        """The crawler's definition as the module's options see it ({} when there is none)."""
        if crawler is None:
            return {}
        try:
            configuration = parse_configuration(crawler.get("Configuration"))
        except ValueError:  # not JSON: kept as text so that any wanted configuration differs
            configuration = {"unparsed": crawler.get("Configuration")}
        targets = crawler.get("Targets") or {}
        state = {
            "name": crawler["Name"],
            "role": crawler.get("Role"),
            "database_name": crawler.get("DatabaseName") or "",
            "description": crawler.get("Description") or "",
            "targets": {
                "s3_targets": sorted(
                    (from_aws_s3_target(t) for t in targets.get("S3Targets") or []), key=lambda t: t["path"]
                )
            },
            "schedule": normalize_schedule((crawler.get("Schedule") or {}).get("ScheduleExpression")),
            "schema_change_policy": from_aws_schema_change_policy(crawler.get("SchemaChangePolicy")),
            "recrawl_policy": (crawler.get("RecrawlPolicy") or {}).get("RecrawlBehavior") or DEFAULT_RECRAWL,
            "table_prefix": crawler.get("TablePrefix") or "",
            "configuration": configuration,
        }
        if with_tags:
            state["tags"] = self.read_tags()
        return state

    # ---- desired state -------------------------------------------------------------------
    def wanted_fields(self):
        """The fields the options ask for (options that are omitted are left out)."""
        params = self.params
        wanted = {
            "role": params["role"],
            "targets": {
                "s3_targets": sorted((from_option_s3_target(t) for t in params["s3_targets"]), key=lambda t: t["path"])
            },
        }
        for option in ("database_name", "description", "recrawl_policy", "table_prefix", "configuration"):
            if params[option] is not None:
                wanted[option] = params[option]
        if params["schedule"] is not None:
            wanted["schedule"] = normalize_schedule(params["schedule"])
        policy = params["schema_change_policy"]
        if policy is None and params["recrawl_policy"] == "CRAWL_NEW_FOLDERS_ONLY":
            policy = LOG_ONLY
        if policy is not None:
            wanted["schema_change_policy"] = dict(policy)
        return wanted

    @staticmethod
    def differs(field, current_value, wanted_value):
        if field == "role":
            return not same_role(current_value, wanted_value)
        return current_value != wanted_value

    def aws_value(self, field, value):
        """(UpdateCrawler/CreateCrawler argument, its value) for a field."""
        if field == "role":
            return "Role", value
        if field == "database_name":
            return "DatabaseName", value
        if field == "description":
            return "Description", value
        if field == "targets":
            # Keep the targets of other kinds the crawler has: Targets replaces them all.
            kept = {k: v for k, v in ((self.described or {}).get("Targets") or {}).items() if k != "S3Targets" and v}
            return "Targets", dict(kept, S3Targets=[to_aws_s3_target(t) for t in value["s3_targets"]])
        if field == "schedule":
            return "Schedule", value
        if field == "schema_change_policy":
            return "SchemaChangePolicy", {
                "UpdateBehavior": value["update_behavior"],
                "DeleteBehavior": value["delete_behavior"],
            }
        if field == "recrawl_policy":
            return "RecrawlPolicy", {"RecrawlBehavior": value}
        if field == "table_prefix":
            return "TablePrefix", value
        return "Configuration", configuration_text(value)

    # ---- changes ---------------------------------------------------------------------------
    def create(self, wanted):
        request = {"Name": self.name}
        for field, value in wanted.items():
            if value in ("", {}) and field in ("description", "schedule", "table_prefix", "configuration"):
                continue  # nothing to set
            key, aws_value = self.aws_value(field, value)
            request[key] = aws_value
        if self.params["tags"]:
            request["Tags"] = self.params["tags"]
        self.changed = True
        if not self.module.check_mode:
            self.change("create_crawler", "create", "glue:CreateCrawler", request)

    def update_request(self, current, wanted):
        """UpdateCrawler arguments for the fields that differ; None when none does."""
        request = {}
        for field in FIELDS:
            if field in wanted and self.differs(field, current[field], wanted[field]):
                key, value = self.aws_value(field, wanted[field])
                request[key] = value
        return dict(request, Name=self.name) if request else None

    def update(self, current, wanted):
        request = self.update_request(current, wanted)
        if request is None:
            return False
        self.changed = True
        if not self.module.check_mode:
            self.change("update_crawler", "update", "glue:UpdateCrawler", request)
        return True

    def change(self, method, action, permission, request):
        """Create or update; a running crawler is waited for, a role IAM has not propagated yet is retried."""
        deadline = time.monotonic() + self.params["wait_timeout"]
        propagation_deadline = time.monotonic() + ROLE_PROPAGATION_SECONDS
        while True:
            try:
                getattr(self.client, method)(aws_retry=True, **request)
                return
            except is_boto3_error_code("CrawlerRunningException"):
                why = f"AWS does not {action} a running crawler"
                if time.monotonic() > deadline:
                    self.module.fail_json(
                        msg=f"Timed out after {self.params['wait_timeout']}s: AWS still reports Glue crawler "
                        f"{self.name} as running ({why})"
                    )
                time.sleep(POLL_SECONDS)
                self.wait_ready(deadline, why)
            except is_boto3_error_code("InvalidInputException") as e:  # pylint: disable=duplicate-except
                message = e.response.get("Error", {}).get("Message", "").lower()
                if any(m in message for m in ROLE_PROPAGATION_MESSAGES) and time.monotonic() < propagation_deadline:
                    time.sleep(POLL_SECONDS)
                    continue
                self.fail(e, action, permission)
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
                self.fail(e, action, permission)

    def update_tags(self, current_tags):
        params = self.params
        if params["tags"] is None:
            return
        to_set, to_remove = compare_aws_tags(current_tags, params["tags"], params["purge_tags"])
        if to_remove:
            self.call("untag_resource", "untag", "glue:UntagResource", ResourceArn=self.arn(), TagsToRemove=to_remove)
        if to_set:
            self.call("tag_resource", "tag", "glue:TagResource", ResourceArn=self.arn(), TagsToAdd=to_set)

    def delete(self):
        self.changed = True
        if self.module.check_mode:
            return
        try:
            self.client.delete_crawler(aws_retry=True, Name=self.name)
            return
        except is_boto3_error_code("EntityNotFoundException"):
            return
        except is_boto3_error_code("CrawlerRunningException"):  # pylint: disable=duplicate-except
            pass
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
            self.fail(e, "delete", "glue:DeleteCrawler")
        # AWS does not delete a running crawler: stop its crawl, wait until it has stopped, delete again.
        try:
            self.client.stop_crawler(aws_retry=True, Name=self.name)
        except is_boto3_error_code(["CrawlerNotRunningException", "CrawlerStoppingException"]):
            pass
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
            self.fail(e, "stop the running crawl of", "glue:StopCrawler")
        self.wait_ready(time.monotonic() + self.params["wait_timeout"], "AWS does not delete a running crawler")
        self.call("delete_crawler", "delete", "glue:DeleteCrawler", Name=self.name)

    def call(self, method, action, permission, **kwargs):
        self.changed = True
        if self.module.check_mode:
            return None
        try:
            return getattr(self.client, method)(aws_retry=True, **kwargs)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            self.fail(e, action, permission)

    # ---- crawling --------------------------------------------------------------------------
    def start(self):
        """Start a crawl; False when the crawler was already running."""
        self.changed = True
        if self.module.check_mode:
            return True
        try:
            self.client.start_crawler(aws_retry=True, Name=self.name)
        except is_boto3_error_code("CrawlerRunningException"):
            return False
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
            self.fail(e, "start", "glue:StartCrawler")
        return True

    def wait_ready(self, deadline, why, previous_crawl=None):
        """Wait until the crawler is READY (and, given the crawl seen before a start, has a newer last crawl)."""
        while True:
            crawler = self.describe()
            if crawler is None:
                self.module.fail_json(msg=f"Glue crawler {self.name} disappeared while waiting for it to be READY")
            ready = crawler.get("State") == "READY"
            if ready and (previous_crawl is None or crawl_identity(crawler) != previous_crawl):
                return crawler
            if time.monotonic() > deadline:
                self.module.fail_json(
                    msg=f"Timed out after {self.params['wait_timeout']}s waiting for Glue crawler {self.name} to be "
                    f"READY ({why}); it is {crawler.get('State')}",
                    crawler=self.result(crawler, self.current_state(crawler, with_tags=False)),
                )
            time.sleep(POLL_SECONDS)

    @staticmethod
    def result(crawler, definition):
        if not definition:
            return {}
        return dict(
            definition,
            state=(crawler or {}).get("State"),
            last_crawl=from_aws_last_crawl((crawler or {}).get("LastCrawl")),
        )


def predicted(current, wanted, params):
    """The definition after the changes, keeping how AWS spells what does not change."""
    after = dict(current) if current else {"name": params["name"]}
    for field, value in wanted.items():
        if not current or GlueCrawler.differs(field, current.get(field), value):
            after[field] = value
    if not current:
        after.setdefault("database_name", "")
        after.setdefault("description", "")
        after.setdefault("schedule", "")
        after.setdefault("schema_change_policy", dict(DEFAULT_SCHEMA_CHANGE_POLICY))
        after.setdefault("recrawl_policy", DEFAULT_RECRAWL)
        after.setdefault("table_prefix", "")
        after.setdefault("configuration", {})
    if params["tags"] is not None:
        current_tags = (current or {}).get("tags", {})
        to_set, to_remove = compare_aws_tags(current_tags, params["tags"], params["purge_tags"])
        after["tags"] = {k: v for k, v in dict(current_tags, **to_set).items() if k not in to_remove}
    return after


def main():
    target_spec = dict(
        path=dict(type="str", required=True),
        exclusions=dict(type="list", elements="str", default=[]),
        sample_size=dict(type="int"),
    )
    policy_spec = dict(
        update_behavior=dict(type="str", choices=["UPDATE_IN_DATABASE", "LOG"], default="UPDATE_IN_DATABASE"),
        delete_behavior=dict(
            type="str",
            choices=["DEPRECATE_IN_DATABASE", "DELETE_FROM_DATABASE", "LOG"],
            default="DEPRECATE_IN_DATABASE",
        ),
    )
    argument_spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        role=dict(type="str"),
        database_name=dict(type="str"),
        description=dict(type="str"),
        s3_targets=dict(type="list", elements="dict", options=target_spec),
        schedule=dict(type="str"),
        schema_change_policy=dict(type="dict", options=policy_spec),
        recrawl_policy=dict(type="str", choices=["CRAWL_EVERYTHING", "CRAWL_NEW_FOLDERS_ONLY"]),
        table_prefix=dict(type="str"),
        configuration=dict(type="raw"),
        tags=dict(type="dict", aliases=["resource_tags"]),
        purge_tags=dict(type="bool", default=True),
        run=dict(type="bool", default=False),
        wait=dict(type="bool", default=False),
        wait_timeout=dict(type="int", default=900),
    )
    module = AnsibleAWSModule(
        argument_spec=argument_spec,
        required_if=[("state", "present", ["role", "s3_targets"])],
        supports_check_mode=True,
    )
    validate(module)
    params = module.params
    with_tags = params["tags"] is not None

    crawler = GlueCrawler(module)
    crawler.described = crawler.describe()
    before = crawler.current_state(crawler.described, with_tags)

    if params["state"] == "absent":
        if crawler.described is not None:
            crawler.delete()
        module.exit_json(changed=crawler.changed, crawler={}, crawl_started=False, diff={"before": before, "after": {}})

    wanted = crawler.wanted_fields()
    if crawler.described is None:
        crawler.create(wanted)
        redefined = True
    else:
        redefined = crawler.update(before, wanted)
        crawler.update_tags(before.get("tags", {}))

    described = crawler.described
    if crawler.changed and not module.check_mode:
        described = crawler.describe()

    started, waited = False, False
    if params["run"]:
        running = described is not None and described.get("State") in ("RUNNING", "STOPPING")
        never_crawled = described is None or (not described.get("LastCrawl") and not running)
        previous_crawl = crawl_identity(described)
        if (redefined or never_crawled) and not running:
            started = crawler.start()
            running = not started  # it was already running: wait for that crawl
        if params["wait"] and (started or running) and not module.check_mode:
            described = crawler.wait_ready(
                time.monotonic() + params["wait_timeout"],
                "waiting for the crawl to finish",
                previous_crawl if started else None,
            )
            waited = True

    if module.check_mode:
        definition = predicted(before, wanted, params)
    elif crawler.changed:
        definition = crawler.current_state(described, with_tags)
    else:
        definition = before
    if with_tags:
        definition["arn"] = crawler.arn()
    result = crawler.result(described, definition)
    diff_after = {k: v for k, v in definition.items() if k != "arn"}
    diff_before = {k: v for k, v in before.items() if k != "arn"}

    last_crawl = result.get("last_crawl") or {}
    if waited and last_crawl.get("status") == "FAILED":
        module.fail_json(
            msg=f"The crawl of Glue crawler {crawler.name} failed: {last_crawl.get('error_message') or 'no message'} "
            f"(CloudWatch Logs {last_crawl.get('log_group')} {last_crawl.get('log_stream')})",
            changed=crawler.changed,
            crawler=result,
            crawl_started=started,
        )
    module.exit_json(
        changed=crawler.changed,
        crawler=result,
        crawl_started=started,
        diff={"before": diff_before, "after": diff_after},
    )


if __name__ == "__main__":
    main()
