"""argoeks.mlops.validate_settings and its rules: every problem reported, each naming the variable."""

import json

import pytest

from ansible_collections.argoeks.mlops.plugins.module_utils import validation
from ansible_collections.argoeks.mlops.plugins.modules import validate_settings
from tests.unit.conftest import ModuleFailed


@pytest.mark.parametrize(
    "name",
    ["argoeks-terraform-state", "abc", "a.b-c", "argoeks-datalake-dev-bronze", "x" * 63],
)
def test_valid_bucket_names(name):
    assert validation.s3_bucket_name(name, {}) is None


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("Bad_Bucket", "characters other than"),
        ("ab", "2 characters long"),
        ("x" * 64, "64 characters long"),
        ("-leading", "start and end"),
        ("trailing.", "start and end"),
        ("two..dots", "'..'"),
        ("192.168.1.10", "IP address"),
        ("xn--bucket", "reserves"),
        ("bucket-s3alias", "reserves"),
    ],
)
def test_invalid_bucket_names_say_why(name, reason):
    problem = validation.s3_bucket_name(name, {})
    assert reason in problem
    assert "accepted:" in problem


@pytest.mark.parametrize("value", ["ops@example.com", ["a@b.io", "first.last+tag@sub.example.org"]])
def test_valid_emails(value):
    assert validation.email_list(value, {}) is None


@pytest.mark.parametrize("value", [[], ["not-an-email"], ["a@b"], "x@", [None]])
def test_invalid_emails(value):
    assert validation.email_list(value, {}) is not None


@pytest.mark.parametrize(
    ("rule", "value", "check", "ok"),
    [
        ("aws_region", "us-east-1", {}, True),
        ("aws_region", "us-gov-west-1", {}, True),
        ("aws_region", "useast1", {}, False),
        ("cidr", "10.0.0.0/16", {}, True),
        ("cidr", "10.0.0.1/16", {}, False),  # host bits set
        ("cidr", "10.0.0.0/8", {}, False),  # larger than a VPC may be
        ("cidr", "10.0.0.0", {}, False),
        ("version", "1.32", {"min": "1.29"}, True),
        ("model_name", "mistralai/Mistral-7B-Instruct-v0.2", {}, True),
        ("model_name", "HuggingFaceTB/SmolLM2-135M-Instruct", {}, True),
        ("model_name", "Mistral-7B-Instruct-v0.2", {}, False),  # no organisation
        ("model_name", "org/name/extra", {}, False),
        ("model_name", "org/../name", {}, False),
        ("model_name", "/name", {}, False),
        ("gpu_instance_types", ["g5.xlarge"], {}, True),
        ("gpu_instance_types", ["g6e.12xlarge", "p4d.24xlarge", "g4dn.metal"], {}, True),
        ("gpu_instance_types", ["m5.large"], {}, False),  # no GPU
        ("gpu_instance_types", ["inf2.xlarge"], {}, False),  # Inferentia, not NVIDIA
        ("gpu_instance_types", ["g5xlarge"], {}, False),
        ("gpu_instance_types", [], {}, False),
        ("gpu_instance_types", "g5.xlarge", {}, False),  # a string, not a list
        ("version", "1.28", {"min": "1.29"}, False),
        ("version", "latest", {}, False),
        ("number", 650, {"min": 1}, True),
        ("number", -5, {"min": 1}, False),
        ("number", "lots", {"min": 1}, False),
        ("number", True, {}, False),
        ("port", 4566, {}, True),
        ("port", 70000, {}, False),
        ("choice", "eks", {"choices": ["standalone", "eks"]}, True),
        ("choice", "gke", {"choices": ["standalone", "eks"]}, False),
        ("url", "", {}, True),
        ("url", "http://127.0.0.1:4566", {}, True),
        ("url", "localhost:4566", {}, False),
        ("dynamodb_table_name", "argoeks-terraform-locks", {}, True),
        ("dynamodb_table_name", "a b", {}, False),
        ("absolute_path", "/var/lib/argoeks", {}, True),
        ("absolute_path", "relative/dir", {}, False),
        ("container_image", "123456789012.dkr.ecr.us-east-1.amazonaws.com/argoeks/rag-service:1", {}, True),
        ("container_image", "docker.io/library/postgres:16.8-alpine", {}, True),
        ("container_image", "localhost:5000/rag-service@sha256:" + "a" * 64, {}, True),
        ("container_image", "rag-service", {}, True),
        ("container_image", "", {}, False),
        ("container_image", "Rag-Service:1", {}, False),  # repositories are lowercase
        ("container_image", "registry/rag service:1", {}, False),
        ("container_image", "rag-service:", {}, False),
    ],
)
def test_rules(rule, value, check, ok):
    assert (validation.RULES[rule](value, check) is None) is ok


def test_module_lists_every_problem_with_variable_names(run_module):
    checks = [
        {"var": "platform_target", "rule": "choice", "choices": ["standalone", "eks"]},
        {"var": "state_backend_bucket", "rule": "s3_bucket_name"},
        {"var": "budget_emails", "rule": "email_list"},
        {"var": "aws_region", "rule": "aws_region"},
    ]
    values = {
        "platform_target": "gke",
        "state_backend_bucket": "Bad_Bucket",
        "budget_emails": ["not-an-email"],
        "aws_region": "us-east-1",
    }
    with pytest.raises(ModuleFailed) as failed:
        run_module(validate_settings, {"checks": checks, "values": values})
    problems = failed.value.result["problems"]
    assert [p.split(":")[0] for p in problems] == ["platform_target", "state_backend_bucket", "budget_emails"]
    assert "accepted: standalone, eks" in problems[0]
    assert "3 problems" in failed.value.result["msg"]
    assert "nothing was changed" in failed.value.result["msg"]


def test_module_skips_checks_for_other_targets_and_passes(run_module):
    checks = [
        {"var": "vpc_cidr", "rule": "cidr", "targets": ["eks"]},
        {"var": "aws_region", "rule": "aws_region"},
    ]
    result = run_module(
        validate_settings,
        {"checks": checks, "values": {"vpc_cidr": "nonsense", "aws_region": "eu-west-1"}, "target": "standalone"},
    )
    assert result["changed"] is False
    assert result["checked"] == ["aws_region"]


def test_unset_required_value_is_a_problem(run_module):
    with pytest.raises(ModuleFailed) as failed:
        run_module(
            validate_settings,
            {
                "checks": [{"var": "budget_emails", "rule": "email_list", "hint": "set it to your address"}],
                "values": {},
            },
        )
    assert failed.value.result["problems"] == ["budget_emails: is not set (set it to your address)"]


def test_allow_empty_accepts_an_empty_string_and_still_checks_other_values():
    check = {"var": "mlflow_bucket_name", "rule": "s3_bucket_name", "required": False, "allow_empty": True}
    assert validation.find_problems([check], {"mlflow_bucket_name": ""}) == []
    problems = validation.find_problems([check], {"mlflow_bucket_name": "Bad_Name"})
    assert len(problems) == 1 and problems[0].startswith("mlflow_bucket_name: 'Bad_Name' is not a valid S3 bucket name")
    # Without allow_empty an empty name is a problem like any other bad name.
    assert validation.find_problems([dict(check, allow_empty=False)], {"mlflow_bucket_name": ""})


SUBNET_CHECK = {"within": "10.0.0.0/16", "count": 2}


def test_subnets_inside_the_vpc_without_overlap_pass():
    assert validation.cidr_list(["10.0.0.0/20", "10.0.16.0/20"], SUBNET_CHECK) is None


@pytest.mark.parametrize(
    ("subnets", "check", "reason"),
    [
        (["10.0.0.0/20", "10.0.8.0/21"], SUBNET_CHECK, "10.0.0.0/20 overlaps 10.0.8.0/21"),
        (["10.0.0.0/20", "10.1.0.0/20"], SUBNET_CHECK, "outside the VPC CIDR"),
        (["10.0.0.0/20"], SUBNET_CHECK, "has 1 entries but there are 2 availability zones"),
        (["10.0.0.0/20", "10.0.16.0/20"], dict(SUBNET_CHECK, disjoint_from=["10.0.16.0/24"]), "overlaps 10.0.16.0/24"),
        (["10.0.0.1/20", "10.0.16.0/20"], SUBNET_CHECK, "not a valid CIDR block"),
        ("10.0.0.0/20", SUBNET_CHECK, "not a list of CIDR blocks"),
    ],
)
def test_bad_subnets_say_why(subnets, check, reason):
    assert reason in validation.cidr_list(subnets, check)


@pytest.mark.parametrize(
    ("zones", "reason"),
    [
        (["us-east-1a"], "has 1 distinct zone(s)"),
        (["us-east-1a", "us-east-1a"], "has 1 distinct zone(s)"),
        (["us-east-1a", "eu-west-1b"], "'eu-west-1b' is not a zone of us-east-1"),
    ],
)
def test_fewer_than_two_zones_or_foreign_zones_fail(zones, reason):
    assert reason in validation.az_list(zones, {"region": "us-east-1"})


def test_two_zones_of_the_region_pass():
    assert validation.az_list(["us-east-1a", "us-east-1b"], {"region": "us-east-1"}) is None


@pytest.mark.parametrize("limit", [0, -10])
def test_budget_must_be_positive(limit):
    assert "out of range" in validation.number(limit, {"min": 0.01})


def test_email_without_at_sign_fails():
    assert "is not an email address" in validation.email_list(["platform-team.example.com"], {})


# --- Alerting and retention (observability) ---------------------------------------------------

SLACK_WEBHOOK = "https://hooks.slack.com/services/T/B/X"


@pytest.mark.parametrize("value", ["", None, SLACK_WEBHOOK, "https://hooks.example.com:8443/alerts/abc"])
def test_valid_webhook_urls(value):
    assert validation.webhook_url(value, {}) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("http://hooks.slack.com/services/T/B/X", "uses plain http"),
        ("not-a-url", "is not an https URL"),
        ("https://hooks.example.org", "is not an https URL"),  # no path: not a webhook
        ("https://hooks.slack.com/services/T/B/X Y", "is not an https URL"),
        ("ftp://hooks.slack.com/services/T/B/X", "is not an https URL"),
    ],
)
def test_invalid_webhook_urls_say_why_without_repeating_the_value(value, reason):
    problem = validation.webhook_url(value, {})
    assert reason in problem
    assert "accepted:" in problem
    assert value not in problem
    assert "hooks.slack.com/services/T/B/X" not in problem


@pytest.mark.parametrize(
    ("value", "check"),
    [
        ([], {"enabled": True, "others": 1}),  # Slack only
        ("", {"enabled": True, "others": "1"}),
        ([], {"enabled": False, "others": 0}),  # alerting disabled
        ([], {"enabled": "false", "others": 0}),
        (["ops@example.com"], {"enabled": True, "others": 0}),
        (["ops@example.com", "oncall@example.org"], {"enabled": True, "others": 1}),
    ],
)
def test_alert_receivers_accepted(value, check):
    assert validation.alert_receivers(value, check) is None


def test_no_receiver_while_alerting_is_enabled_fails():
    for check in ({"enabled": True, "others": 0}, {"enabled": "true", "others": "0"}, {}):
        problem = validation.alert_receivers([], check)
        assert problem is not None, check
        assert "no other receiver" in problem
        assert "disable alerting" in problem


@pytest.mark.parametrize("check", [{"enabled": True, "others": 0}, {"enabled": True, "others": 1}])
def test_alert_receivers_reject_bad_addresses_even_with_other_receivers(check):
    assert "'ops.example.com' is not an email address" in validation.alert_receivers(["ops.example.com"], check)


@pytest.mark.parametrize("value", ["15d", "12h", "30s", "500ms", "1w", "1y", "1h30m", "2d12h"])
def test_valid_durations(value):
    assert validation.duration(value, {}) is None


@pytest.mark.parametrize("value", ["", "15", "15 days", "15D", "d", "-1d", "1.5h", 15, None])
def test_invalid_durations(value):
    assert "is not a duration" in validation.duration(value, {})


@pytest.mark.parametrize("value", ["30m1h", "1h1h"])
def test_durations_prometheus_rejects_are_rejected(value):
    assert validation.duration(value, {}) is not None


@pytest.mark.parametrize("value", ["", None, "512MB", "5GB", "1TB", "100B", "5GiB", "0.5GB"])
def test_valid_byte_sizes(value):
    assert validation.byte_size(value, {}) is None


@pytest.mark.parametrize("value", ["5G", "5gb", "5 GB", "GB", "-5GB", 5, "15d"])
def test_invalid_byte_sizes(value):
    assert "is not a size" in validation.byte_size(value, {})


def test_module_checks_observability_settings_like_preflight(run_module):
    checks = [
        {"var": "observability_retention_time", "rule": "duration", "required": False},
        {"var": "observability_retention_size", "rule": "byte_size", "required": False},
        # preflight passes these templated, as strings
        {"var": "observability_alert_email_to", "rule": "alert_receivers", "enabled": "True", "others": "0"},
    ]
    values = {
        "observability_retention_time": "15 days",
        "observability_retention_size": "5G",
        "observability_alert_email_to": [],
    }
    with pytest.raises(ModuleFailed) as failed:
        run_module(validate_settings, {"checks": checks, "values": values})
    assert [p.split(":")[0] for p in failed.value.result["problems"]] == [c["var"] for c in checks]

    passing = dict(checks[2], enabled="False")
    result = run_module(validate_settings, {"checks": [passing], "values": {"observability_alert_email_to": []}})
    assert result["checked"] == ["observability_alert_email_to"]


def test_module_alert_receivers_without_enabled_requires_a_receiver(run_module):
    with pytest.raises(ModuleFailed):
        run_module(
            validate_settings,
            {
                "checks": [{"var": "observability_alert_email_to", "rule": "alert_receivers"}],
                "values": {"observability_alert_email_to": []},
            },
        )


SECRET_WEBHOOK = "http://hooks.slack.com/services/T0SECRET/B0SECRET/sEcReTtOkEn42"
SECRET_CHECK = {
    "var": "observability_alert_slack_webhook_url",
    "rule": "webhook_url",
    "secret": True,
    "required": False,
}


def test_bad_secret_fails_naming_the_variable_but_never_showing_the_value(run_module):
    with pytest.raises(ModuleFailed) as failed:
        run_module(
            validate_settings,
            {
                "checks": [SECRET_CHECK],
                "values": {},
                "secret_values": {"observability_alert_slack_webhook_url": SECRET_WEBHOOK},
            },
        )
    result = failed.value.result
    assert result["problems"] == [
        "observability_alert_slack_webhook_url: the value uses plain http (accepted: an https webhook URL like "
        "https://hooks.slack.com/services/T000/B000/XXXX, or empty)"
    ]
    assert "observability_alert_slack_webhook_url" in result["msg"]
    output = json.dumps(result)
    assert SECRET_WEBHOOK not in output
    assert "sEcReTtOkEn42" not in output
    assert "T0SECRET" not in output


def test_secret_is_masked_even_when_its_rule_repeats_values(run_module):
    """A secret check with a rule that quotes its value (url): Ansible's no_log masking hides it."""
    secret = "ftp://secret-host.example.com/tOkEn"
    with pytest.raises(ModuleFailed) as failed:
        run_module(
            validate_settings,
            {
                "checks": [{"var": "hook", "rule": "url", "secret": True}],
                "values": {},
                "secret_values": {"hook": secret},
            },
        )
    assert failed.value.result["problems"][0].startswith("hook: ")
    assert secret not in json.dumps(failed.value.result)


def test_secret_check_never_shows_a_value_given_in_values(run_module):
    secret = "ftp://secret-host.example.com/tOkEn"
    with pytest.raises(ModuleFailed) as failed:
        run_module(
            validate_settings, {"checks": [{"var": "hook", "rule": "url", "secret": True}], "values": {"hook": secret}}
        )
    assert secret not in json.dumps(failed.value.result)


def test_good_secret_passes_and_is_not_in_the_output(run_module):
    secret = "https://hooks.slack.com/services/T0SECRET/B0SECRET/g00dT0k3n"
    result = run_module(
        validate_settings,
        {
            "checks": [SECRET_CHECK, {"var": "aws_region", "rule": "aws_region"}],
            "values": {"aws_region": "us-east-1"},
            "secret_values": {"observability_alert_slack_webhook_url": secret},
        },
    )
    assert result["checked"] == ["observability_alert_slack_webhook_url", "aws_region"]
    assert result["problems"] == []
    assert "g00dT0k3n" not in json.dumps(result)


def test_unset_optional_secret_is_not_checked_and_unset_required_secret_is_reported(run_module):
    run_module(validate_settings, {"checks": [SECRET_CHECK], "values": {}, "secret_values": {}})
    with pytest.raises(ModuleFailed) as failed:
        run_module(validate_settings, {"checks": [dict(SECRET_CHECK, required=True)], "values": {}})
    assert failed.value.result["problems"] == ["observability_alert_slack_webhook_url: is not set"]


@pytest.mark.parametrize("value", ["mlops_dev", "mlops_prod_2", "a"])
def test_valid_glue_database_names(value):
    assert validation.glue_name(value, {}) is None


@pytest.mark.parametrize("value", ["mlops-dev", "Mlops", "", "x" * 256, None])
def test_invalid_glue_database_names(value):
    assert "is not a Glue database name" in validation.glue_name(value, {})


def test_glue_schedules_accept_six_field_cron_or_empty():
    assert validation.glue_schedules({"bronze": "cron(0 * * * ? *)", "silver": "", "gold": None}, {}) is None


@pytest.mark.parametrize(
    ("schedules", "named"),
    [
        ({"bronze": "cron(0 2 * *)"}, "bronze: 'cron(0 2 * *)'"),
        ({"gold": "rate(1 hour)"}, "gold: 'rate(1 hour)'"),
        ({"silver": "0 * * * ? *"}, "silver: '0 * * * ? *'"),
    ],
)
def test_bad_glue_schedules_name_the_layer(schedules, named):
    problem = validation.glue_schedules(schedules, {})
    assert problem.startswith(named) and "accepted: cron() with six fields" in problem


def test_glue_schedules_must_be_a_mapping():
    assert "is not a mapping" in validation.glue_schedules(["cron(0 * * * ? *)"], {})


@pytest.mark.parametrize(
    ("value", "enabled", "reason"),
    [
        ("localhost:25", True, "is the Alertmanager pod itself on eks"),
        ("127.0.0.1:25", True, "is the Alertmanager pod itself on eks"),
        ("smtp.example.com", True, "is not host:port"),
        ("smtp.example.com:0", False, "is not host:port"),
    ],
)
def test_a_loopback_or_malformed_mail_relay_fails_when_it_would_never_deliver(value, enabled, reason):
    assert reason in validation.smtp_relay(value, {"enabled": enabled})


@pytest.mark.parametrize(
    ("value", "enabled"), [("localhost:25", False), ("email-smtp.us-east-1.amazonaws.com:587", True)]
)
def test_a_real_relay_or_loopback_without_email_receivers_on_eks_passes(value, enabled):
    assert validation.smtp_relay(value, {"enabled": enabled}) is None


def test_a_public_endpoint_open_to_the_internet_is_named_and_a_private_one_passes():
    assert "opens the cluster's public API endpoint to the whole internet" in validation.restricted_cidrs(
        ["203.0.113.0/24", "0.0.0.0/0"], {"enabled": True}
    )
    assert validation.restricted_cidrs(["0.0.0.0/0"], {"enabled": False}) is None
    assert validation.restricted_cidrs(["203.0.113.0/24"], {"enabled": True}) is None
    assert "is not a CIDR" in validation.restricted_cidrs(["nonsense"], {"enabled": True})


def test_a_warn_check_warns_and_passes_while_the_same_check_fails_without_warn(run_module):
    check = {"var": "eks_cluster_public_access_cidrs", "rule": "restricted_cidrs", "enabled": True, "targets": ["eks"]}
    values = {"eks_cluster_public_access_cidrs": ["0.0.0.0/0"]}
    result = run_module(validate_settings, {"checks": [dict(check, warn=True)], "values": values, "target": "eks"})
    assert result["problems"] == []
    # (ansible-core 2.19+ reports a warning as a summary holding its event)
    warnings = [w["event"]["msg"] if isinstance(w, dict) else w for w in result["warnings"]]
    assert any(w.startswith("eks_cluster_public_access_cidrs: 0.0.0.0/0 opens") for w in warnings), warnings
    with pytest.raises(ModuleFailed) as failed:
        run_module(validate_settings, {"checks": [check], "values": values, "target": "eks"})
    assert failed.value.result["problems"][0].startswith("eks_cluster_public_access_cidrs: 0.0.0.0/0 opens")
