"""The budget, topic and alarms cost_controls made, read back from the AWS emulator."""

import os

import boto3
import pytest

BUDGET = "argoeks-dev-monthly"
TOPIC = "argoeks-dev-alerts"
EMAILS = {"finops@example.com", "platform-team@example.com"}


@pytest.fixture(scope="module")
def aws():
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
    endpoint = f"http://127.0.0.1:{os.environ.get('ARGOEKS_TEST_AWS_PORT', '24598')}"
    clients = {n: session.client(n, endpoint_url=endpoint) for n in ("budgets", "sns", "cloudwatch", "sts")}
    clients["account"] = clients["sts"].get_caller_identity()["Account"]
    return clients


def topic_arn(aws):
    arns = [t["TopicArn"] for t in aws["sns"].list_topics()["Topics"] if t["TopicArn"].endswith(":" + TOPIC)]
    assert len(arns) == 1
    return arns[0]


def test_budget_is_monthly_with_the_limit(aws):
    budget = aws["budgets"].describe_budget(AccountId=aws["account"], BudgetName=BUDGET)["Budget"]
    assert float(budget["BudgetLimit"]["Amount"]) == 650
    assert budget["BudgetLimit"]["Unit"] == "USD"
    assert budget["TimeUnit"] == "MONTHLY"
    assert budget["BudgetType"] == "COST"


def test_budget_notifies_at_50_80_100_actual_and_100_forecast(aws):
    notifications = aws["budgets"].describe_notifications_for_budget(AccountId=aws["account"], BudgetName=BUDGET)[
        "Notifications"
    ]
    assert sorted((n["NotificationType"], float(n["Threshold"])) for n in notifications) == [
        ("ACTUAL", 50.0),
        ("ACTUAL", 80.0),
        ("ACTUAL", 100.0),
        ("FORECASTED", 100.0),
    ]
    assert all(n["ThresholdType"] == "PERCENTAGE" and n["ComparisonOperator"] == "GREATER_THAN" for n in notifications)


def test_every_notification_emails_the_addresses_once(aws):
    for notification in aws["budgets"].describe_notifications_for_budget(AccountId=aws["account"], BudgetName=BUDGET)[
        "Notifications"
    ]:
        subscribers = aws["budgets"].describe_subscribers_for_notification(
            AccountId=aws["account"], BudgetName=BUDGET, Notification=notification
        )["Subscribers"]
        assert sorted(s["Address"] for s in subscribers) == sorted(EMAILS)
        assert {s["SubscriptionType"] for s in subscribers} == {"EMAIL"}


def test_topic_has_the_emails_subscribed(aws):
    subscriptions = aws["sns"].list_subscriptions_by_topic(TopicArn=topic_arn(aws))["Subscriptions"]
    assert {s["Endpoint"] for s in subscriptions if s["Protocol"] == "email"} == EMAILS


def test_alarms_route_to_the_topic(aws):
    arn = topic_arn(aws)
    alarms = {a["AlarmName"]: a for a in aws["cloudwatch"].describe_alarms(AlarmNamePrefix="argoeks")["MetricAlarms"]}
    billing = alarms["argoeks-dev-estimated-charges"]
    assert billing["Namespace"] == "AWS/Billing"
    assert billing["MetricName"] == "EstimatedCharges"
    assert billing["Threshold"] == 650
    assert billing["AlarmActions"] == [arn]
    latency = alarms["argoeks-molecule-model-latency"]
    assert latency["Threshold"] == 0.1
    assert latency["AlarmActions"] == [arn]
    assert latency["OKActions"] == [arn]
