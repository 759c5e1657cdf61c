#!/usr/bin/python
# Copyright: argoeks maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

DOCUMENTATION = r"""
---
module: aws_budget
short_description: Manage an AWS Budget with its alert notifications and their subscribers
version_added: 0.1.0
description:
  - Creates, updates or deletes an AWS Budget (a cost or usage limit per month, quarter or year), its
    notifications (alerts at a threshold of actual or forecasted spend) and the e-mail addresses and SNS
    topics each notification is sent to, idempotently and with check mode and diff.
  - Written because no well-kept Ansible module manages AWS Budgets; neither C(amazon.aws) nor
    C(community.aws) has one.
  - A notification is identified by its O(notifications[].type), O(notifications[].comparison),
    O(notifications[].threshold) and O(notifications[].threshold_type); changing any of them replaces the
    notification (it is deleted and created again). Its subscribers are synchronised in place.
  - The budget name cannot be changed in place; a new name creates a new budget.
  - Budgets is a global service; its API is answered in C(us-east-1) whatever O(region) says.
author:
  - argoeks maintainers
options:
  name:
    description: Name of the budget, unique within the account. C(:) and C(\) are not allowed.
    type: str
    required: true
  state:
    description: Whether the budget should exist.
    type: str
    choices: [present, absent]
    default: present
  account_id:
    description:
      - Id of the AWS account the budget belongs to.
      - Defaults to the account of the credentials in use (found with C(sts:GetCallerIdentity)).
    type: str
  limit_amount:
    description:
      - The budget's limit per O(time_unit), in O(currency). Must be greater than 0.
      - Required when O(state=present).
    type: float
  currency:
    description:
      - Unit of O(limit_amount); the currency (C(USD)) for cost budgets, the usage unit (for example C(GB))
        for usage budgets.
    type: str
    default: USD
  time_unit:
    description: Period the limit applies to; the budget resets at the start of each.
    type: str
    choices: [MONTHLY, QUARTERLY, ANNUALLY]
    default: MONTHLY
  budget_type:
    description: Whether the budget tracks cost or usage.
    type: str
    choices: [COST, USAGE]
    default: COST
  cost_filters:
    description:
      - Restrict the budget to matching costs, as a mapping of filter name to a list of values, for example
        C(TagKeyValue) with C(user:Project$argoeks) (cost allocation tag C(Project) is C(argoeks)) or C(Service)
        with C(Amazon Elastic Compute Cloud - Compute).
      - Omit to leave the filters of an existing budget as they are; C({}) removes all filters.
    type: dict
  notifications:
    description:
      - Alerts sent when spend crosses a threshold.
      - Each needs at least one subscriber (an e-mail address or an SNS topic).
    type: list
    elements: dict
    default: []
    suboptions:
      type:
        description: Compare the threshold with the actual spend or with the forecast for the period.
        type: str
        choices: [ACTUAL, FORECASTED]
        default: ACTUAL
      comparison:
        description: How spend is compared with the threshold.
        type: str
        choices: [GREATER_THAN, LESS_THAN, EQUAL_TO]
        default: GREATER_THAN
      threshold:
        description: The threshold, greater than 0; a percentage of O(limit_amount) or an absolute amount.
        type: float
        required: true
      threshold_type:
        description: Whether O(notifications[].threshold) is a percentage of the limit or an amount.
        type: str
        choices: [PERCENTAGE, ABSOLUTE_VALUE]
        default: PERCENTAGE
      emails:
        description: E-mail addresses to alert, at most 10 (the AWS limit).
        type: list
        elements: str
        default: []
      sns_topic_arns:
        description:
          - SNS topics to alert, at most 1 (the AWS limit).
          - The topic's policy must allow C(budgets.amazonaws.com) to publish to it.
        type: list
        elements: str
        default: []
  purge_notifications:
    description:
      - Delete notifications of the budget that O(notifications) does not list.
      - When false, unlisted notifications are kept as they are.
    type: bool
    default: true
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - Supports C(check_mode) and C(diff).
  - Changing O(limit_amount), O(time_unit) or O(cost_filters) updates the budget in place; AWS then reports
    zero spend for it until it has new usage data.
"""

EXAMPLES = r"""
- name: Monthly cost budget of the platform, with alerts at 50/80/100% actual and 100% forecasted
  argoeks.mlops.aws_budget:
    name: argoeks-monthly
    limit_amount: 650
    currency: USD
    time_unit: MONTHLY
    cost_filters:
      TagKeyValue:
        - user:Project$argoeks
    notifications:
      - threshold: 50
        emails: [finops@example.com]
      - threshold: 80
        emails: [finops@example.com]
      - threshold: 100
        emails: [finops@example.com, oncall@example.com]
      - type: FORECASTED
        threshold: 100
        emails: [finops@example.com]
        sns_topic_arns:
          - arn:aws:sns:us-east-1:123456789012:argoeks-budget-alerts

- name: Add an alert, keeping the notifications that are already there
  argoeks.mlops.aws_budget:
    name: argoeks-monthly
    limit_amount: 650
    notifications:
      - threshold: 120
        emails: [cto@example.com]
    purge_notifications: false

- name: Remove the budget
  argoeks.mlops.aws_budget:
    name: argoeks-monthly
    state: absent
"""

RETURN = r"""
budget:
  description: The budget as it is after the module ran (as it would be, in check mode); empty when absent.
  returned: always
  type: dict
  contains:
    name:
      description: Budget name.
      type: str
      sample: argoeks-monthly
    limit_amount:
      description: Limit per period.
      type: float
      sample: 650.0
    currency:
      description: Unit of the limit.
      type: str
      sample: USD
    time_unit:
      description: Period of the limit.
      type: str
      sample: MONTHLY
    budget_type:
      description: COST or USAGE.
      type: str
      sample: COST
    cost_filters:
      description: Filters of the budget, each list of values sorted.
      type: dict
      sample: {"TagKeyValue": ["user:Project$argoeks"]}
    notifications:
      description: Notifications, sorted by type, then threshold.
      type: list
      elements: dict
      contains:
        type:
          description: ACTUAL or FORECASTED.
          type: str
          sample: ACTUAL
        comparison:
          description: Comparison operator.
          type: str
          sample: GREATER_THAN
        threshold:
          description: Threshold.
          type: float
          sample: 80.0
        threshold_type:
          description: PERCENTAGE or ABSOLUTE_VALUE.
          type: str
          sample: PERCENTAGE
        emails:
          description: E-mail subscribers, sorted.
          type: list
          elements: str
          sample: [finops@example.com]
        sns_topic_arns:
          description: SNS topic subscribers, sorted.
          type: list
          elements: str
          sample: []
"""

import contextlib

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    import botocore

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.argoeks.mlops.plugins.module_utils.aws import retry_decorator

MAX_EMAILS = 10  # AWS: up to 10 e-mail subscribers and 1 SNS subscriber per notification
MAX_SNS_TOPICS = 1


# ---- normalising ---------------------------------------------------------------------------
def notification_key(notification):
    """What identifies a notification (AWS has no id for it): type, comparison, threshold, threshold type."""
    return (
        notification["type"],
        notification["comparison"],
        float(notification["threshold"]),
        notification["threshold_type"],
    )


def sort_notifications(notifications):
    return sorted(notifications, key=lambda n: (n["type"], n["threshold"], n["comparison"], n["threshold_type"]))


def from_aws_notification(notification, subscribers):
    return {
        "type": notification["NotificationType"],
        "comparison": notification["ComparisonOperator"],
        "threshold": float(notification["Threshold"]),
        # ThresholdType is optional in the API; a missing one is read as a percentage.
        "threshold_type": notification.get("ThresholdType") or "PERCENTAGE",
        "emails": sorted(s["Address"] for s in subscribers if s["SubscriptionType"] == "EMAIL"),
        "sns_topic_arns": sorted(s["Address"] for s in subscribers if s["SubscriptionType"] == "SNS"),
    }


def from_option_notification(notification):
    return {
        "type": notification["type"],
        "comparison": notification["comparison"],
        "threshold": float(notification["threshold"]),
        "threshold_type": notification["threshold_type"],
        "emails": sorted(set(notification["emails"])),
        "sns_topic_arns": sorted(set(notification["sns_topic_arns"])),
    }


def to_aws_notification(notification):
    return {
        "NotificationType": notification["type"],
        "ComparisonOperator": notification["comparison"],
        "Threshold": float(notification["threshold"]),
        "ThresholdType": notification["threshold_type"],
    }


def to_aws_subscribers(notification):
    return [{"SubscriptionType": "EMAIL", "Address": a} for a in notification["emails"]] + [
        {"SubscriptionType": "SNS", "Address": a} for a in notification["sns_topic_arns"]
    ]


def normalize_filters(filters):
    return {key: sorted(values or []) for key, values in (filters or {}).items()}


def format_amount(amount):
    return str(float(amount))


# ---- validation (before any AWS call) --------------------------------------------------------
def validate(module):
    params = module.params
    name = params["name"]
    if not name or ":" in name or "\\" in name:
        module.fail_json(msg=f"name must be non-empty and contain neither ':' nor '\\', got {name!r}")
    if params["state"] == "absent":
        return
    if params["limit_amount"] is None or params["limit_amount"] <= 0:
        module.fail_json(msg=f"limit_amount must be greater than 0, got {params['limit_amount']}")
    for key, values in (params["cost_filters"] or {}).items():
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            module.fail_json(msg=f"cost_filters.{key} must be a list of strings, got {values!r}")
    seen = {}
    for index, notification in enumerate(params["notifications"]):
        where = f"notifications[{index}]"
        if notification["threshold"] <= 0:
            module.fail_json(msg=f"{where}.threshold must be greater than 0, got {notification['threshold']}")
        emails, topics = notification["emails"], notification["sns_topic_arns"]
        if not emails and not topics:
            module.fail_json(msg=f"{where} needs at least one subscriber in emails or sns_topic_arns")
        bad = [e for e in emails if "@" not in e]
        if bad:
            module.fail_json(msg=f"{where}.emails: {', '.join(repr(e) for e in bad)} is not an e-mail address")
        if len(set(emails)) > MAX_EMAILS:
            module.fail_json(msg=f"{where}.emails has {len(set(emails))} addresses; AWS allows at most {MAX_EMAILS}")
        if len(set(topics)) > MAX_SNS_TOPICS:
            module.fail_json(
                msg=f"{where}.sns_topic_arns has {len(set(topics))} topics; AWS allows at most {MAX_SNS_TOPICS}"
            )
        key = notification_key(notification)
        if key in seen:
            module.fail_json(
                msg=f"{where} repeats notifications[{seen[key]}] (same type, comparison, threshold and "
                "threshold_type); merge their subscribers into one"
            )
        seen[key] = index


class Budget:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.name = module.params["name"]
        self.client = module.client("budgets", retry_decorator=retry_decorator())
        self.account_id = module.params["account_id"] or self.caller_account()
        self.changed = False
        self.described = None
        self.described_notifications = []

    def caller_account(self):
        sts = self.module.client("sts", retry_decorator=retry_decorator())
        try:
            return sts.get_caller_identity(aws_retry=True)["Account"]
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            self.module.fail_json_aws(e, msg="Failed to find the AWS account id; set account_id")

    # ---- reading -------------------------------------------------------------------------
    def read(self):
        """Read the budget and its notifications; return them as the module's options see them."""
        self.described = self.describe()
        self.described_notifications = self.aws_notifications() if self.described is not None else []
        return self.current_state(self.described, self.described_notifications)

    def describe(self):
        try:
            return self.client.describe_budget(aws_retry=True, AccountId=self.account_id, BudgetName=self.name)[
                "Budget"
            ]
        except is_boto3_error_code("NotFoundException"):
            return None
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
            self.module.fail_json_aws(e, msg=f"Failed to describe budget {self.name}")

    def aws_notifications(self):
        """[(notification as AWS describes it, its subscribers)], all pages."""
        found = []
        for notification in self.paginate(
            "describe_notifications_for_budget", "Notifications", "read the notifications of"
        ):
            # NotificationState (OK/ALARM) is AWS's, not part of what identifies the notification.
            notification = {k: v for k, v in notification.items() if k != "NotificationState"}
            subscribers = self.paginate(
                "describe_subscribers_for_notification",
                "Subscribers",
                "read the subscribers of a notification of",
                Notification=notification,
            )
            found.append((notification, subscribers))
        return found

    def paginate(self, method, key, what, **kwargs):
        items, token = [], None
        while True:
            page_args = dict(kwargs, NextToken=token) if token else kwargs
            try:
                page = getattr(self.client, method)(
                    aws_retry=True, AccountId=self.account_id, BudgetName=self.name, **page_args
                )
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
                self.module.fail_json_aws(e, msg=f"Failed to {what} budget {self.name}")
            items.extend(page.get(key) or [])
            token = page.get("NextToken")
            if not token:
                return items

    @staticmethod
    def current_state(budget, notifications):
        """The budget as the module's options see it."""
        if budget is None:
            return {}
        limit = budget.get("BudgetLimit") or {}
        return {
            "name": budget["BudgetName"],
            "limit_amount": float(limit["Amount"]) if limit.get("Amount") is not None else None,
            "currency": limit.get("Unit"),
            "time_unit": budget["TimeUnit"],
            "budget_type": budget["BudgetType"],
            "cost_filters": normalize_filters(budget.get("CostFilters")),
            "notifications": sort_notifications(from_aws_notification(n, s) for n, s in notifications),
        }

    # ---- changes ---------------------------------------------------------------------------
    def wanted_budget(self):
        params = self.params
        return {
            "BudgetName": self.name,
            "BudgetLimit": {"Amount": format_amount(params["limit_amount"]), "Unit": params["currency"]},
            "TimeUnit": params["time_unit"],
            "BudgetType": params["budget_type"],
        }

    def create(self, wanted):
        request = self.wanted_budget()
        if self.params["cost_filters"]:
            request["CostFilters"] = wanted["cost_filters"]
        self.call(
            "create_budget",
            "create",
            Budget=request,
            NotificationsWithSubscribers=[
                {"Notification": to_aws_notification(n), "Subscribers": to_aws_subscribers(n)}
                for n in wanted["notifications"]
            ],
        )

    def update(self, current, wanted):
        if self.budget_differs(current, wanted):
            self.call("update_budget", "update", NewBudget=self.new_budget(wanted))
        self.update_notifications(current)

    def new_budget(self, wanted):
        """UpdateBudget replaces the whole budget: keep what the module does not manage as it is."""
        described = self.described
        new_budget = self.wanted_budget()
        keep = ["BillingViewArn"]
        if self.params["time_unit"] == described["TimeUnit"]:
            keep.append("TimePeriod")  # a new period length starts with the current period instead
        # AWS takes either FilterExpression and Metrics or CostFilters and CostTypes, never both.
        if self.params["cost_filters"] is None and described.get("FilterExpression"):
            keep += ["FilterExpression", "Metrics"]
        else:
            keep.append("CostTypes")
            if wanted["cost_filters"]:
                new_budget["CostFilters"] = wanted["cost_filters"]
        new_budget.update({k: described[k] for k in keep if described.get(k)})
        return new_budget

    @staticmethod
    def budget_differs(current, wanted):
        return any(current[k] != wanted[k] for k in ("limit_amount", "currency", "time_unit", "budget_type")) or (
            current["cost_filters"] != wanted["cost_filters"]
        )

    def update_notifications(self, current):
        existing = {notification_key(from_aws_notification(n, s)): (n, s) for n, s in self.described_notifications}
        wanted = {notification_key(n): n for n in self.wanted_notifications()}
        # Delete first: AWS limits how many notifications a budget has.
        if self.params["purge_notifications"]:
            for key in existing.keys() - wanted.keys():
                self.call("delete_notification", "delete a notification of", Notification=existing[key][0])
        for key, notification in wanted.items():
            if key not in existing:
                self.call(
                    "create_notification",
                    "create a notification of",
                    Notification=to_aws_notification(notification),
                    Subscribers=to_aws_subscribers(notification),
                )
                continue
            aws_notification, aws_subscribers = existing[key]
            have = {(s["SubscriptionType"], s["Address"]) for s in aws_subscribers}
            want = {(s["SubscriptionType"], s["Address"]) for s in to_aws_subscribers(notification)}
            # Add before removing: a notification must keep at least one subscriber.
            for kind, address in sorted(want - have):
                self.call(
                    "create_subscriber",
                    f"add {address} to a notification of",
                    Notification=aws_notification,
                    Subscriber={"SubscriptionType": kind, "Address": address},
                )
            for kind, address in sorted(have - want):
                self.call(
                    "delete_subscriber",
                    f"remove {address} from a notification of",
                    Notification=aws_notification,
                    Subscriber={"SubscriptionType": kind, "Address": address},
                )

    def wanted_notifications(self):
        return sort_notifications(from_option_notification(n) for n in self.params["notifications"])

    def wanted_state(self, current):
        """What the budget is once the module has run (also what check mode reports)."""
        params = self.params
        notifications = self.wanted_notifications()
        if current and not params["purge_notifications"]:
            listed = {notification_key(n) for n in notifications}
            notifications += [n for n in current["notifications"] if notification_key(n) not in listed]
        if params["cost_filters"] is not None:
            cost_filters = normalize_filters(params["cost_filters"])
        else:
            cost_filters = current.get("cost_filters", {}) if current else {}
        return {
            "name": self.name,
            "limit_amount": float(params["limit_amount"]),
            "currency": params["currency"],
            "time_unit": params["time_unit"],
            "budget_type": params["budget_type"],
            "cost_filters": cost_filters,
            "notifications": sort_notifications(notifications),
        }

    def delete(self):
        self.changed = True
        if self.module.check_mode:
            return
        try:
            self.client.delete_budget(aws_retry=True, AccountId=self.account_id, BudgetName=self.name)
        except is_boto3_error_code("NotFoundException"):
            return
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
            self.module.fail_json_aws(e, msg=f"Failed to delete budget {self.name}")

    def call(self, method, what, **kwargs):
        self.changed = True
        if self.module.check_mode:
            return
        if method not in ("create_budget", "update_budget"):
            kwargs["BudgetName"] = self.name
        try:
            getattr(self.client, method)(aws_retry=True, AccountId=self.account_id, **kwargs)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            self.module.fail_json_aws(e, msg=f"Failed to {what} budget {self.name}")


def main():
    notification_spec = dict(
        type=dict(type="str", choices=["ACTUAL", "FORECASTED"], default="ACTUAL"),
        comparison=dict(type="str", choices=["GREATER_THAN", "LESS_THAN", "EQUAL_TO"], default="GREATER_THAN"),
        threshold=dict(type="float", required=True),
        threshold_type=dict(type="str", choices=["PERCENTAGE", "ABSOLUTE_VALUE"], default="PERCENTAGE"),
        emails=dict(type="list", elements="str", default=[]),
        sns_topic_arns=dict(type="list", elements="str", default=[]),
    )
    argument_spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        account_id=dict(type="str"),
        limit_amount=dict(type="float"),
        currency=dict(type="str", default="USD"),
        time_unit=dict(type="str", choices=["MONTHLY", "QUARTERLY", "ANNUALLY"], default="MONTHLY"),
        budget_type=dict(type="str", choices=["COST", "USAGE"], default="COST"),
        cost_filters=dict(type="dict"),
        notifications=dict(type="list", elements="dict", options=notification_spec, default=[]),
        purge_notifications=dict(type="bool", default=True),
    )
    module = AnsibleAWSModule(
        argument_spec=argument_spec,
        required_if=[("state", "present", ["limit_amount"])],
        supports_check_mode=True,
    )
    validate(module)

    budget = Budget(module)
    before = budget.read()

    if module.params["state"] == "absent":
        if budget.described is not None:
            budget.delete()
        module.exit_json(changed=budget.changed, budget={}, diff={"before": before, "after": {}})

    wanted = budget.wanted_state(before)
    if budget.described is None:
        budget.create(wanted)
    else:
        budget.update(before, wanted)

    # Budgets has low API rate limits, so the result is what was asked for rather than read back;
    # a second run reads it back and proves it (changed=False).
    after = wanted if budget.changed else before
    module.exit_json(changed=budget.changed, budget=after, diff={"before": before, "after": after})


if __name__ == "__main__":
    main()
