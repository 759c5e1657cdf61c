"""argoeks.mlops.validate_settings and its rules: every problem reported, each naming the variable."""

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
