#!/usr/bin/python
# Copyright: argoeks maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

DOCUMENTATION = r"""
---
module: validate_settings
short_description: Check platform settings against rules and report every problem at once
version_added: 0.1.0
description:
  - Validates a set of variables (S3 bucket names, AWS regions, emails, CIDRs, versions, choices, ...)
    and fails listing I(every) problem, each with the variable name and what is accepted.
  - Used by the C(preflight) role before any change. Read-only; never reports a change.
  - C(ansible.builtin.assert) stops at the first failed condition of a task and knows no AWS naming
    rules, and role argument specs only see one role's variables; this module checks the whole inventory.
author:
  - argoeks maintainers
options:
  checks:
    description: The rules to apply, in the order problems should be reported.
    type: list
    elements: dict
    required: true
    suboptions:
      var:
        description: Variable name (looked up in O(values)).
        type: str
        required: true
      rule:
        description: Rule to apply.
        type: str
        required: true
        choices: [s3_bucket_name, dynamodb_table_name, aws_region, email_list, number, integer, port, choice,
                  cidr, cidr_list, az_list, version, name, lower_name, model_name, gpu_instance_types,
                  ip_address, url, absolute_path,
                  boolean, mapping, webhook_url, alert_receivers, duration, byte_size, glue_name, glue_schedules,
                  smtp_relay, restricted_cidrs, container_image]
      choices:
        description: Accepted values for O(checks[].rule=choice).
        type: list
        elements: raw
      min:
        description: Lower bound (number, integer, port, version, CIDR prefix length).
        type: raw
      max:
        description: Upper bound (number, integer, port, CIDR prefix length).
        type: raw
      required:
        description: Whether an unset (null) value is a problem.
        type: bool
        default: true
      allow_empty:
        description:
          - Accept an empty string without applying the rule, for settings where empty means "generated" or
            "off" (such as C(mlflow_bucket_name)).
          - Unset, O(checks[].rule=url) accepts an empty string and the other rules do not.
        type: bool
      targets:
        description: Only check when O(target) is one of these.
        type: list
        elements: str
      hint:
        description: Extra advice appended to the problem.
        type: str
      within:
        description: For O(checks[].rule=cidr_list), the network every subnet must lie in.
        type: str
      disjoint_from:
        description: For O(checks[].rule=cidr_list), CIDRs the subnets must not overlap.
        type: list
        elements: str
      count:
        description: For O(checks[].rule=cidr_list), how many subnets there must be.
        type: int
      region:
        description: For O(checks[].rule=az_list), the region every zone must belong to.
        type: str
      enabled:
        description:
          - For O(checks[].rule=alert_receivers), whether alerting is enabled (then a receiver is required).
          - For O(checks[].rule=smtp_relay), whether email receivers are set on eks (then a loopback relay is refused).
          - For O(checks[].rule=restricted_cidrs), whether the endpoint is public (then 0.0.0.0/0 is refused).
        type: bool
      warn:
        description: Report this check's problem as a warning instead of failing.
        type: bool
        default: false
      others:
        description: For O(checks[].rule=alert_receivers), how many receivers of other kinds are set.
        type: int
      secret:
        description: The value is a secret; it is taken from O(secret_values) and never repeated in a message.
        type: bool
        default: false
  values:
    description: Variable name to value. A missing name counts as unset.
    type: dict
    required: true
  secret_values:
    description: Variable name to value for checks with O(checks[].secret=true); never logged.
    type: dict
    default: {}
  target:
    description: The platform target, for checks limited to some targets.
    type: str
"""

EXAMPLES = r"""
- name: Validate the state backend settings
  argoeks.mlops.validate_settings:
    target: "{{ platform_target }}"
    checks:
      - {var: state_backend_bucket, rule: s3_bucket_name}
      - {var: budget_emails, rule: email_list}
      - {var: platform_target, rule: choice, choices: [standalone, eks]}
    values:
      state_backend_bucket: "{{ state_backend_bucket }}"
      budget_emails: "{{ budget_emails }}"
      platform_target: "{{ platform_target }}"
"""

RETURN = r"""
problems:
  description: >-
    Every problem found, each as "variable: what is wrong (accepted: ...)".
  returned: always
  type: list
  elements: str
  sample: ["state_backend_bucket: 'Bad_Bucket' is not a valid S3 bucket name: ..."]
checked:
  description: Names of the variables that were checked.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.argoeks.mlops.plugins.module_utils.validation import RULES, find_problems


def main():
    module = AnsibleModule(
        argument_spec=dict(
            checks=dict(
                type="list",
                elements="dict",
                required=True,
                options=dict(
                    var=dict(type="str", required=True),
                    rule=dict(type="str", required=True, choices=sorted(RULES)),
                    choices=dict(type="list", elements="raw"),
                    min=dict(type="raw"),
                    max=dict(type="raw"),
                    required=dict(type="bool", default=True),
                    allow_empty=dict(type="bool"),
                    targets=dict(type="list", elements="str"),
                    hint=dict(type="str"),
                    within=dict(type="str"),
                    disjoint_from=dict(type="list", elements="str"),
                    count=dict(type="int"),
                    region=dict(type="str"),
                    enabled=dict(type="bool"),
                    others=dict(type="int"),
                    secret=dict(type="bool", default=False),
                    warn=dict(type="bool", default=False),
                ),
            ),
            values=dict(type="dict", required=True),
            secret_values=dict(type="dict", default={}, no_log=True),
            target=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    # Options left unset arrive as None: drop them so each rule applies its own default.
    checks = [{key: value for key, value in check.items() if value is not None} for check in module.params["checks"]]
    # A secret passed in `values` by mistake is still never shown: mask it like secret_values.
    for check in checks:
        value = module.params["values"].get(check["var"])
        if check["secret"] and isinstance(value, str) and value:
            module.no_log_values.add(value)
    values = dict(module.params["values"], **module.params["secret_values"])
    for warning in find_problems([c for c in checks if c["warn"]], values, module.params["target"]):
        module.warn(warning)
    problems = find_problems([c for c in checks if not c["warn"]], values, module.params["target"])
    checked = [c["var"] for c in checks if not c.get("targets") or module.params["target"] in c["targets"]]
    if problems:
        count = len(problems)
        module.fail_json(
            msg=f"{count} problem{'s' if count > 1 else ''} in the settings (nothing was changed):\n  - "
            + "\n  - ".join(problems),
            problems=problems,
            checked=checked,
        )
    module.exit_json(changed=False, problems=[], checked=checked)


if __name__ == "__main__":
    main()
