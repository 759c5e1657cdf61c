"""argoeks.mlops.aws_budget against moto's in-process Budgets, and against botocore's Stubber where moto falls short."""

import datetime
import importlib.util
from pathlib import Path

import boto3
import pytest
from ansible_collections.amazon.aws.plugins.module_utils import cloud
from ansible_collections.amazon.aws.plugins.module_utils import modules as aws_modules
from botocore.stub import ANY, Stubber
from moto import mock_aws
from moto.budgets.responses import BudgetsResponse

from ansible_collections.argoeks.mlops.plugins.modules import aws_budget
from tests.unit.conftest import ModuleFailed

NAME = "argoeks-monthly"
EMAIL = "finops@example.com"
MONTHLY = {
    "name": NAME,
    "limit_amount": 650,
    "currency": "USD",
    "time_unit": "MONTHLY",
    "cost_filters": {"TagKeyValue": ["user:Project$argoeks"]},
    "notifications": [
        {"type": "ACTUAL", "threshold": 50, "emails": [EMAIL]},
        {"type": "ACTUAL", "threshold": 80, "emails": [EMAIL]},
        {"type": "ACTUAL", "threshold": 100, "emails": [EMAIL]},
        {"type": "FORECASTED", "threshold": 100, "emails": [EMAIL]},
    ],
}


# ---- moto ------------------------------------------------------------------------------------
# moto 5.2.5 lacks DescribeSubscribersForNotification, CreateSubscriber, DeleteSubscriber and
# UpdateBudget; the platform's emulator adds them (roles/aws_emulator/files/argoeks_emulator.py),
# and these tests use the same handlers.
EMULATOR = Path(__file__).resolve().parents[4] / "roles" / "aws_emulator" / "files" / "argoeks_emulator.py"
_spec = importlib.util.spec_from_file_location("argoeks_emulator", EMULATOR)
argoeks_emulator = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(argoeks_emulator)


@pytest.fixture
def budgets(aws_env, monkeypatch):
    for name, handler in argoeks_emulator.HANDLERS.items():
        monkeypatch.setattr(BudgetsResponse, name, handler, raising=False)
    with mock_aws():
        yield boto3.client("budgets", region_name="us-east-1")


@pytest.fixture
def account(budgets):
    return boto3.client("sts", region_name="us-east-1").get_caller_identity()["Account"]


def notifications_in_aws(client, account):
    """{(type, threshold): (notification, sorted subscriber addresses)} read with boto3."""
    found = {}
    for n in client.describe_notifications_for_budget(AccountId=account, BudgetName=NAME)["Notifications"]:
        subscribers = client.describe_subscribers_for_notification(AccountId=account, BudgetName=NAME, Notification=n)[
            "Subscribers"
        ]
        found[(n["NotificationType"], n["Threshold"])] = (n, sorted(s["Address"] for s in subscribers))
    return found


def budget_names(client, account):
    return [b["BudgetName"] for b in client.describe_budgets(AccountId=account).get("Budgets", [])]


def test_creates_monthly_budget_with_alerts(budgets, account, run_module):
    result = run_module(aws_budget, MONTHLY)

    assert result["changed"] is True
    budget = budgets.describe_budget(AccountId=account, BudgetName=NAME)["Budget"]
    assert float(budget["BudgetLimit"]["Amount"]) == 650.0
    assert budget["BudgetLimit"]["Unit"] == "USD"
    assert budget["TimeUnit"] == "MONTHLY"
    assert budget["BudgetType"] == "COST"
    assert budget["CostFilters"] == {"TagKeyValue": ["user:Project$argoeks"]}
    alerts = notifications_in_aws(budgets, account)
    assert sorted(alerts) == [("ACTUAL", 50.0), ("ACTUAL", 80.0), ("ACTUAL", 100.0), ("FORECASTED", 100.0)]
    for notification, subscribers in alerts.values():
        assert notification["ComparisonOperator"] == "GREATER_THAN"
        assert notification["ThresholdType"] == "PERCENTAGE"
        assert subscribers == [EMAIL]
    assert result["budget"]["limit_amount"] == 650.0
    assert [(n["type"], n["threshold"]) for n in result["budget"]["notifications"]] == [
        ("ACTUAL", 50.0),
        ("ACTUAL", 80.0),
        ("ACTUAL", 100.0),
        ("FORECASTED", 100.0),
    ]


def test_second_run_changes_nothing(budgets, account, run_module):
    created = run_module(aws_budget, MONTHLY)
    again = run_module(aws_budget, MONTHLY, diff=True)
    assert again["changed"] is False
    assert again["diff"]["before"] == again["diff"]["after"]
    # what the first run reported is what AWS holds, as read back by the second
    assert again["budget"] == created["budget"]


def test_check_mode_reports_creation_and_creates_nothing(budgets, account, run_module):
    result = run_module(aws_budget, MONTHLY, check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["diff"]["before"] == {}
    assert result["diff"]["after"]["limit_amount"] == 650.0
    assert len(result["diff"]["after"]["notifications"]) == 4
    assert budget_names(budgets, account) == []


def test_notification_added_and_unlisted_one_purged(budgets, account, run_module):
    run_module(aws_budget, MONTHLY)
    changed = dict(
        MONTHLY,
        notifications=[
            *MONTHLY["notifications"][1:],  # drops 50% ACTUAL
            {"type": "ACTUAL", "threshold": 120, "emails": [EMAIL]},
        ],
    )

    checked = run_module(aws_budget, changed, check_mode=True)
    assert checked["changed"] is True
    assert ("ACTUAL", 50.0) in notifications_in_aws(budgets, account)

    result = run_module(aws_budget, changed)
    assert result["changed"] is True
    assert sorted(notifications_in_aws(budgets, account)) == [
        ("ACTUAL", 80.0),
        ("ACTUAL", 100.0),
        ("ACTUAL", 120.0),
        ("FORECASTED", 100.0),
    ]
    assert notifications_in_aws(budgets, account)[("ACTUAL", 120.0)][1] == [EMAIL]
    assert run_module(aws_budget, changed)["changed"] is False


def test_purge_false_keeps_unlisted_notifications(budgets, account, run_module):
    run_module(aws_budget, MONTHLY)
    extra = dict(
        MONTHLY,
        notifications=[{"type": "ACTUAL", "threshold": 120, "emails": [EMAIL]}],
        purge_notifications=False,
    )
    result = run_module(aws_budget, extra)
    assert result["changed"] is True
    assert len(notifications_in_aws(budgets, account)) == 5
    assert len(result["budget"]["notifications"]) == 5
    assert run_module(aws_budget, extra)["changed"] is False


def test_subscriber_added_to_and_removed_from_existing_notification(budgets, account, run_module):
    run_module(aws_budget, MONTHLY)
    notifications = [dict(n) for n in MONTHLY["notifications"]]
    notifications[2] = dict(notifications[2], emails=[EMAIL, "oncall@example.com"])  # 100% ACTUAL

    result = run_module(aws_budget, dict(MONTHLY, notifications=notifications), diff=True)
    assert result["changed"] is True
    alerts = notifications_in_aws(budgets, account)
    assert alerts[("ACTUAL", 100.0)][1] == [EMAIL, "oncall@example.com"]
    assert alerts[("ACTUAL", 80.0)][1] == [EMAIL]
    assert len(alerts) == 4  # the notification was kept, not replaced
    assert run_module(aws_budget, dict(MONTHLY, notifications=notifications))["changed"] is False

    notifications[2] = dict(notifications[2], emails=["oncall@example.com"])
    run_module(aws_budget, dict(MONTHLY, notifications=notifications))
    assert notifications_in_aws(budgets, account)[("ACTUAL", 100.0)][1] == ["oncall@example.com"]


def test_absent_deletes_and_is_idempotent(budgets, account, run_module):
    run_module(aws_budget, MONTHLY)
    absent = {"name": NAME, "state": "absent"}

    checked = run_module(aws_budget, absent, check_mode=True, diff=True)
    assert checked["changed"] is True
    assert checked["diff"]["before"]["limit_amount"] == 650.0
    assert budget_names(budgets, account) == [NAME]

    gone = run_module(aws_budget, absent)
    assert gone["changed"] is True
    assert gone["budget"] == {}
    assert budget_names(budgets, account) == []
    assert run_module(aws_budget, absent)["changed"] is False


# ---- Stubber ----------------------------------------------------------------------------------
ACCOUNT = "123456789012"
KEY = {"AccountId": ACCOUNT, "BudgetName": NAME}


class Stubbed:
    """Stubbed budgets and STS clients handed to the module, with every call it attempted and every retry pause."""

    def __init__(self):
        self.budgets = boto3.client("budgets", region_name="us-east-1")
        self.sts = boto3.client("sts", region_name="us-east-1")
        self.stubber = Stubber(self.budgets)
        self.sts_stubber = Stubber(self.sts)
        self.calls = []
        self.sleeps = []
        for client in (self.budgets, self.sts):
            # emitted before the Stubber checks anything, so unexpected calls are recorded too
            client.meta.events.register("provide-client-params", self.record)

    def record(self, model, **kwargs):
        self.calls.append(model.name)

    def conn(self, module, conn_type=None, resource=None, **kwargs):
        return {"budgets": self.budgets, "sts": self.sts}[resource]

    def existing_budget(self, amount="650.0", time_unit="MONTHLY"):
        budget = {
            "BudgetName": NAME,
            "BudgetLimit": {"Amount": amount, "Unit": "USD"},
            "TimeUnit": time_unit,
            "BudgetType": "COST",
            "CostTypes": {"IncludeTax": True, "IncludeCredit": False},
            "TimePeriod": {
                "Start": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
                "End": datetime.datetime(2087, 6, 15, tzinfo=datetime.UTC),
            },
        }
        self.stubber.add_response("describe_budget", {"Budget": budget}, KEY)
        self.stubber.add_response("describe_notifications_for_budget", {"Notifications": []}, KEY)


@pytest.fixture
def stubbed(aws_env, monkeypatch):
    stubs = Stubbed()
    # Replace only the boto3 client creation: AnsibleAWSModule.client still wraps the client in its retries.
    monkeypatch.setattr(aws_modules, "boto3_conn", stubs.conn)
    monkeypatch.setattr(cloud.time, "sleep", stubs.sleeps.append)
    with stubs.stubber, stubs.sts_stubber:
        yield stubs


SIMPLE = {"name": NAME, "account_id": ACCOUNT, "limit_amount": 650}


def test_limit_change_updates_the_budget_in_place(stubbed, run_module):
    stubbed.existing_budget(amount="650.0")
    new_budget = {
        "BudgetName": NAME,
        "BudgetLimit": {"Amount": "800.0", "Unit": "USD"},
        "TimeUnit": "MONTHLY",
        "BudgetType": "COST",
        "CostTypes": {"IncludeTax": True, "IncludeCredit": False},  # kept as they were
        "TimePeriod": ANY,
    }
    stubbed.stubber.add_response("update_budget", {}, {"AccountId": ACCOUNT, "NewBudget": new_budget})

    result = run_module(aws_budget, dict(SIMPLE, limit_amount=800), diff=True)

    assert result["changed"] is True
    assert result["diff"]["before"]["limit_amount"] == 650.0
    assert result["diff"]["after"]["limit_amount"] == 800.0
    stubbed.stubber.assert_no_pending_responses()
    assert stubbed.calls == ["DescribeBudget", "DescribeNotificationsForBudget", "UpdateBudget"]


def test_limit_change_in_check_mode_does_not_update(stubbed, run_module):
    stubbed.existing_budget(amount="650.0")

    result = run_module(aws_budget, dict(SIMPLE, limit_amount=800), check_mode=True, diff=True)

    assert result["changed"] is True
    assert result["budget"]["limit_amount"] == 800.0
    stubbed.stubber.assert_no_pending_responses()
    assert "UpdateBudget" not in stubbed.calls


def test_same_limit_written_differently_is_no_change(stubbed, run_module):
    stubbed.existing_budget(amount="650")  # AWS may answer "650", "650.0" or "650.00"

    result = run_module(aws_budget, dict(SIMPLE, limit_amount="650.00"))

    assert result["changed"] is False
    stubbed.stubber.assert_no_pending_responses()
    assert stubbed.calls == ["DescribeBudget", "DescribeNotificationsForBudget"]


def test_access_denied_fails_naming_the_budget(stubbed, run_module):
    stubbed.stubber.add_client_error(
        "describe_budget",
        service_error_code="AccessDeniedException",
        service_message="User is not authorized to perform: budgets:ViewBudget",
        http_status_code=400,
        expected_params=KEY,
    )

    with pytest.raises(ModuleFailed) as failed:
        run_module(aws_budget, SIMPLE)

    assert NAME in failed.value.result["msg"]
    assert "AccessDenied" in failed.value.result["msg"]
    assert stubbed.sleeps == []  # not retried
    stubbed.stubber.assert_no_pending_responses()


def test_throttling_is_retried(stubbed, run_module):
    stubbed.stubber.add_client_error(
        "describe_budget",
        service_error_code="ThrottlingException",
        service_message="Rate exceeded",
        http_status_code=400,
        expected_params=KEY,
    )
    stubbed.existing_budget(amount="650.0")

    result = run_module(aws_budget, SIMPLE)

    assert result["changed"] is False
    assert result["budget"]["limit_amount"] == 650.0
    assert len(stubbed.sleeps) == 1
    assert stubbed.calls == ["DescribeBudget", "DescribeBudget", "DescribeNotificationsForBudget"]
    stubbed.stubber.assert_no_pending_responses()


def test_account_id_defaults_to_the_callers(stubbed, run_module):
    stubbed.sts_stubber.add_response(
        "get_caller_identity",
        {"Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/ops", "UserId": "AIDAEXAMPLE"},
        {},
    )
    stubbed.existing_budget()

    result = run_module(aws_budget, {"name": NAME, "limit_amount": 650})

    assert result["changed"] is False
    stubbed.sts_stubber.assert_no_pending_responses()
    stubbed.stubber.assert_no_pending_responses()  # describe_budget was asked with the caller's account


@pytest.mark.parametrize("amount", [0, -5])
def test_limit_amount_not_positive_fails_before_any_call(stubbed, run_module, amount):
    with pytest.raises(ModuleFailed) as failed:
        run_module(aws_budget, dict(SIMPLE, limit_amount=amount))

    assert "limit_amount" in failed.value.result["msg"]
    assert "greater than 0" in failed.value.result["msg"]
    assert stubbed.calls == []


def test_limit_amount_missing_for_present_fails(stubbed, run_module):
    with pytest.raises(ModuleFailed) as failed:
        run_module(aws_budget, {"name": NAME, "account_id": ACCOUNT})

    assert "limit_amount" in failed.value.result["msg"]
    assert stubbed.calls == []


def test_email_without_at_fails_naming_the_notification(stubbed, run_module):
    notifications = [
        {"threshold": 50, "emails": [EMAIL]},
        {"threshold": 80, "emails": [EMAIL, "finops.example.com"]},
    ]

    with pytest.raises(ModuleFailed) as failed:
        run_module(aws_budget, dict(SIMPLE, notifications=notifications))

    assert "notifications[1].emails" in failed.value.result["msg"]
    assert "finops.example.com" in failed.value.result["msg"]
    assert stubbed.calls == []


@pytest.mark.parametrize(
    ("notification", "message"),
    [
        ({"threshold": 80}, "notifications[0] needs at least one subscriber"),
        ({"threshold": 0, "emails": [EMAIL]}, "notifications[0].threshold must be greater than 0"),
        ({"threshold": 80, "emails": [f"u{i}@example.com" for i in range(11)]}, "AWS allows at most 10"),
        ({"threshold": 80, "sns_topic_arns": ["arn:aws:sns:us-east-1:1:a", "arn:aws:sns:us-east-1:1:b"]}, "at most 1"),
    ],
)
def test_invalid_notification_fails_before_any_call(stubbed, run_module, notification, message):
    with pytest.raises(ModuleFailed) as failed:
        run_module(aws_budget, dict(SIMPLE, notifications=[notification]))

    assert message in failed.value.result["msg"]
    assert stubbed.calls == []


def test_duplicate_notifications_fail(stubbed, run_module):
    notifications = [{"threshold": 80, "emails": [EMAIL]}, {"threshold": 80.0, "emails": ["b@example.com"]}]

    with pytest.raises(ModuleFailed) as failed:
        run_module(aws_budget, dict(SIMPLE, notifications=notifications))

    assert "notifications[1] repeats notifications[0]" in failed.value.result["msg"]
    assert stubbed.calls == []


def test_update_is_applied_by_the_platform_emulator(budgets, run_module):
    run_module(aws_budget, MONTHLY)
    raised = dict(MONTHLY, limit_amount=800)
    assert run_module(aws_budget, raised)["changed"] is True
    limit = budgets.describe_budget(AccountId=ACCOUNT, BudgetName=NAME)["Budget"]["BudgetLimit"]
    assert float(limit["Amount"]) == 800
    assert run_module(aws_budget, raised)["changed"] is False
