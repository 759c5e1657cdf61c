"""The platform's alert rules and alert routing (roles/observability) do what their names say.

Both templates are rendered by Ansible's template module with the role's defaults, its vars and
group_vars/all (so "{{ budget_emails }}"-style defaults resolve as they do in a play), then checked
by the tools Prometheus and Alertmanager ship: promtool (Debian package prometheus) checks the rules
and runs unit tests proving each alert fires on the series it is meant for and stays silent on the
others; amtool (prometheus-alertmanager) checks the Alertmanager configuration of each receiver set-up
and where it routes alerts. `./argoeks setup test` installs both.
"""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support import ROOT, VENV_BIN, tool_env

ROLE = ROOT / "roles" / "observability"
RUNBOOK_DIR = "docs/runbooks"
PACKAGES = {"promtool": "prometheus", "amtool": "prometheus-alertmanager"}

# What each alert is: its severity label decides where Alertmanager sends it.
SEVERITY = {
    "Watchdog": "none",
    "TargetDown": "critical",
    "PrometheusRuleEvaluationFailures": "warning",
    "AlertmanagerNotificationsFailing": "warning",
    "HostDiskSpaceLow": "warning",
    "HostDiskSpaceCritical": "critical",
    "HostMemoryPressure": "warning",
    "ModelErrorBudgetBurn": "critical",
    "ModelLatencyBudgetBurn": "warning",
    "ProjectedMonthlyCostOver80PercentOfBudget": "warning",
    "ProjectedMonthlyCostOver100PercentOfBudget": "critical",
}

# Recording rules: LLM tokens and their cost (observability_llm_hourly_price_usd).
RECORDED = (
    "llm:prompt_tokens:rate5m",
    "llm:completion_tokens:rate5m",
    "llm:requests:rate5m",
    "llm:cost_usd_per_1k_tokens",
    "llm:cost_usd_per_request",
)

# Secrets of the receivers: the rendered configuration must point to files holding them, never hold them.
WEBHOOK_URL = "https://hooks.slack.com/services/T0TEST000/B0TEST000/wEbHoOkToKeN1234567890"
SMTP_PASSWORD = "smtp-Pa55w0rd-n0t-in-config"


def tool(name):
    """Path of promtool or amtool; a missing tool fails the test (the suite is incomplete without it)."""
    path = shutil.which(name, path=tool_env()["PATH"])
    if path is None:
        pytest.fail(f"{name} not found: run `./argoeks setup test` (installs the Debian package {PACKAGES[name]})")
    return path


def test_a_missing_tool_fails_and_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match=r"amtool not found: run `\./argoeks setup test`"):
        tool("amtool")


def run(*args, cwd=None):
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=tool_env(), capture_output=True, text=True, timeout=120, check=False
    )


def render(template, dest, **overrides):
    """Render a template of the role with the Ansible template module; `overrides` win over every default."""
    extra_vars = {"ansible_python_interpreter": str(VENV_BIN / "python"), **overrides}
    proc = run(
        VENV_BIN / "ansible",
        "localhost",
        "--inventory=localhost,",
        "--connection=local",
        "--module-name=ansible.builtin.template",
        "--args=" + json.dumps({"src": str(ROLE / "templates" / template), "dest": str(dest)}),
        f"--extra-vars=@{ROLE / 'defaults' / 'main.yml'}",
        f"--extra-vars=@{ROLE / 'vars' / 'main.yml'}",
        f"--extra-vars=@{ROOT / 'group_vars' / 'all' / 'platform.yml'}",
        "--extra-vars=" + json.dumps(extra_vars),
        cwd=ROOT,
    )
    assert proc.returncode == 0, f"rendering {template} failed:\n{proc.stdout}{proc.stderr}"
    return Path(dest).read_text()


# --- Prometheus rules ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def rules_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("rules") / "rules.yml"
    render("rules.yml.j2", path)
    return path


@pytest.fixture(scope="module")
def alert_rules(rules_file):
    """Alert name -> rule, from the rendered file."""
    rules = {}
    for group in yaml.safe_load(rules_file.read_text())["groups"]:
        for rule in group["rules"]:
            if "record" in rule:
                continue
            assert rule["alert"] not in rules, f"alert {rule['alert']} is defined twice"
            rules[rule["alert"]] = rule
    return rules


def test_promtool_accepts_the_rules(rules_file):
    proc = run(tool("promtool"), "check", "rules", rules_file)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(SEVERITY) + len(RECORDED)} rules found" in proc.stdout


def test_every_alert_has_its_severity(alert_rules):
    assert {name: rule["labels"]["severity"] for name, rule in alert_rules.items()} == SEVERITY


def test_thresholds_come_from_the_defaults_and_the_budget(alert_rules):
    # budget_monthly_limit_usd (650, group_vars/all) at observability_budget_alert_percentages [80, 100]
    assert alert_rules["ProjectedMonthlyCostOver80PercentOfBudget"]["expr"].endswith("* 730 > 520.0")
    assert alert_rules["ProjectedMonthlyCostOver100PercentOfBudget"]["expr"].endswith("* 730 > 650.0")
    description = alert_rules["ProjectedMonthlyCostOver80PercentOfBudget"]["annotations"]["description"]
    assert description == "Budget 650 USD/month; this alert fires at 80%."
    # 14.4x burn of the 0.999 availability and 0.99-under-0.1s latency SLOs
    assert alert_rules["ModelErrorBudgetBurn"]["expr"].count("> 14.4 * 0.001") == 2
    assert alert_rules["ModelLatencyBudgetBurn"]["expr"].count("> 14.4 * 0.01") == 2
    assert alert_rules["ModelLatencyBudgetBurn"]["expr"].count('le="0.1"') == 2


def runbook_target(url):
    """(file, anchor) of a runbook_url in this repository."""
    assert url.startswith(RUNBOOK_DIR + "/"), f"{url} does not point into {RUNBOOK_DIR}/"
    path, _, anchor = url.partition("#")
    return ROOT / path, anchor


def heading_anchors(markdown):
    """Anchors of a Markdown file: GitHub's slugs of its headings and explicit <a id|name=...> tags."""
    anchors = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (heading := re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)):
            text = re.sub(r"[^\w\- ]", "", heading.group(1).lower())
            anchors.add(text.replace(" ", "-"))
    anchors.update(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", markdown))
    return anchors


def test_every_alert_links_an_existing_runbook(alert_rules):
    for name, rule in alert_rules.items():
        path, anchor = runbook_target(rule["annotations"]["runbook_url"])
        assert path.is_file(), f"{name}: runbook {path.relative_to(ROOT)} does not exist"
        assert anchor, f"{name}: runbook_url has no #section"


def test_heading_anchors_follow_github_slugs():
    markdown = '# Incident response\n## Alert path\n```\n# not a heading\n```\n## TargetDown\n<a id="watchdog"></a>\n'
    assert heading_anchors(markdown) == {"incident-response", "alert-path", "targetdown", "watchdog"}


def test_every_runbook_url_anchor_is_a_section_of_its_runbook(alert_rules):
    missing = []
    for name, rule in alert_rules.items():
        path, anchor = runbook_target(rule["annotations"]["runbook_url"])
        if anchor not in heading_anchors(path.read_text()):
            missing.append(f"{name} -> {path.name}#{anchor}")
    assert not missing, "runbook sections missing: " + ", ".join(missing)


class Fires:
    """An alert promtool must find firing: its labels besides alertname and severity, and the expansion
    of every annotation that holds a template (annotations without one are taken from the rule)."""

    def __init__(self, labels=None, **annotations):
        self.labels = labels or {}
        self.annotations = annotations

    def expected(self, name, rule):
        annotations = {}
        for key, value in rule["annotations"].items():
            if "{{" in value:
                assert key in self.annotations, f"{name}: give the expected expansion of annotation {key!r}"
                annotations[key] = self.annotations[key]
            else:
                annotations[key] = value
        return {"exp_labels": {**self.labels, "severity": SEVERITY[name]}, "exp_annotations": annotations}


def check(eval_time, name, *fires):
    """One promtool alert_rule_test: at eval_time exactly `fires` of alert `name` are firing (none: silent)."""
    return {"eval_time": eval_time, "alertname": name, "fires": list(fires)}


NODE = {"instance": "127.0.0.1:9100", "job": "node"}
ROOT_FS = {**NODE, "device": "/dev/sda1", "fstype": "ext4", "mountpoint": "/"}
MODEL = {"component": "model-serving", "job": "model-iris", "instance": "127.0.0.1:8080"}


def series(metric, labels, values):
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{metric}{{{inner}}}", "values": values}


def filesystem(labels, avail, size="100x30", readonly="0x30"):
    return [
        series("node_filesystem_avail_bytes", labels, avail),
        series("node_filesystem_size_bytes", labels, size),
        series("node_filesystem_readonly", labels, readonly),
    ]


def requests(labels, ok, errors):
    return [
        series("http_requests_total", {**labels, "status": "200"}, ok),
        series("http_requests_total", {**labels, "status": "500"}, errors),
    ]


def latency(labels, fast, total):
    """A request-duration histogram: `fast` requests under 0.1s of `total` (counter series notation)."""
    return [
        series("http_request_duration_seconds_bucket", {**labels, "le": "0.1"}, fast),
        series("http_request_duration_seconds_bucket", {**labels, "le": "+Inf"}, total),
        series("http_request_duration_seconds_count", labels, total),
    ]


def hourly_cost(*per_node):
    return [
        series("node_total_hourly_cost", {"node": f"ip-10-0-64-{i}", "instance": f"10.0.64.{i}:9003"}, f"{cost}x180")
        for i, cost in enumerate(per_node, start=1)
    ]


# (input series, checks): promtool evaluates every minute from 0 to each check's eval_time.
CASES = {
    "watchdog-always-fires": (
        [],
        [check("0m", "Watchdog", Fires()), check("3h", "Watchdog", Fires())],
    ),
    "target-down-for-2m-fires-not-after-1m": (
        [
            series("up", {"job": "mlflow", "instance": "127.0.0.1:5000"}, "1 0 0 0 0 0"),
            series("up", {"job": "prometheus", "instance": "127.0.0.1:9090"}, "1x5"),
        ],
        [
            check("2m", "TargetDown"),
            check(
                "3m",
                "TargetDown",
                Fires(
                    {"job": "mlflow", "instance": "127.0.0.1:5000"},
                    summary="mlflow on 127.0.0.1:5000 is down",
                    description="Prometheus could not scrape mlflow (127.0.0.1:5000) for 2 minutes.",
                ),
            ),
        ],
    ),
    "target-back-up-within-2m-stays-silent": (
        [series("up", {"job": "mlflow", "instance": "127.0.0.1:5000"}, "1 0 1 0 1 0 1 1 1")],
        [check("8m", "TargetDown")],
    ),
    "rule-evaluation-failures-for-5m-fire": (
        [
            series(
                "prometheus_rule_evaluation_failures_total",
                {"job": "prometheus", "instance": "127.0.0.1:9090"},
                "0 0+1x15",
            ),
            series(
                "prometheus_rule_evaluation_failures_total", {"job": "prometheus", "instance": "10.0.0.2:9090"}, "3x15"
            ),
        ],
        [
            check("4m", "PrometheusRuleEvaluationFailures"),
            check(
                "10m",
                "PrometheusRuleEvaluationFailures",
                Fires(
                    {"job": "prometheus", "instance": "127.0.0.1:9090"},
                    summary="Prometheus 127.0.0.1:9090 fails to evaluate rules",
                ),
            ),
        ],
    ),
    "notifications-failing-for-15m-fire": (
        [
            series(
                "alertmanager_notifications_failed_total",
                {"job": "alertmanager", "instance": "127.0.0.1:9093", "integration": "email"},
                "0+1x30",
            ),
            series(
                "alertmanager_notifications_failed_total",
                {"job": "alertmanager", "instance": "127.0.0.1:9093", "integration": "slack"},
                "2x30",
            ),
        ],
        [
            check("10m", "AlertmanagerNotificationsFailing"),
            check(
                "20m",
                "AlertmanagerNotificationsFailing",
                Fires(
                    {"job": "alertmanager", "instance": "127.0.0.1:9093", "integration": "email"},
                    summary="Alertmanager cannot deliver to email",
                ),
            ),
        ],
    ),
    "disk-10-percent-free-for-10m-fires-warning": (
        filesystem(ROOT_FS, "10x30"),
        [
            check("9m", "HostDiskSpaceLow"),
            check("10m", "HostDiskSpaceLow", Fires(ROOT_FS, summary="/ on 127.0.0.1:9100 has 10% free")),
            check("30m", "HostDiskSpaceCritical"),
        ],
    ),
    "disk-50-percent-free-stays-silent": (
        filesystem(ROOT_FS, "50x30"),
        [check("30m", "HostDiskSpaceLow"), check("30m", "HostDiskSpaceCritical")],
    ),
    "disk-3-percent-free-fires-critical-after-5m": (
        filesystem(ROOT_FS, "3x30"),
        [
            check("4m", "HostDiskSpaceCritical"),
            check("5m", "HostDiskSpaceCritical", Fires(ROOT_FS, summary="/ on 127.0.0.1:9100 has 3% free")),
            check("10m", "HostDiskSpaceLow", Fires(ROOT_FS, summary="/ on 127.0.0.1:9100 has 3% free")),
        ],
    ),
    "full-tmpfs-or-read-only-filesystem-stays-silent": (
        filesystem({**NODE, "device": "tmpfs", "fstype": "tmpfs", "mountpoint": "/run"}, "1x30")
        + filesystem(
            {**ROOT_FS, "device": "/dev/loop0", "fstype": "ext4", "mountpoint": "/snap"}, "1x30", readonly="1x30"
        ),
        [check("30m", "HostDiskSpaceLow"), check("30m", "HostDiskSpaceCritical")],
    ),
    "memory-5-percent-available-for-10m-fires": (
        [
            series("node_memory_MemAvailable_bytes", NODE, "5x30"),
            series("node_memory_MemTotal_bytes", NODE, "100x30"),
        ],
        [
            check("9m", "HostMemoryPressure"),
            check("10m", "HostMemoryPressure", Fires(NODE, summary="127.0.0.1:9100 has 5% memory available")),
        ],
    ),
    "memory-50-percent-available-stays-silent": (
        [
            series("node_memory_MemAvailable_bytes", NODE, "50x30"),
            series("node_memory_MemTotal_bytes", NODE, "100x30"),
        ],
        [check("30m", "HostMemoryPressure")],
    ),
    "model-5-percent-errors-over-an-hour-fires": (
        # 95 good and 5 failed requests a minute for 70 minutes
        requests(MODEL, "0+95x70", "0+5x70"),
        [
            check(
                "70m",
                "ModelErrorBudgetBurn",
                Fires({"job": "model-iris"}, summary="model-iris answers errors 5% of the time"),
            )
        ],
    ),
    "model-0.05-percent-errors-stay-silent": (
        requests(MODEL, "0+9995x70", "0+5x70"),
        [check("70m", "ModelErrorBudgetBurn")],
    ),
    "model-5-minute-error-spike-after-a-clean-hour-stays-silent": (
        # 5% errors from minute 61 on: the 5m window burns, the 1h window does not (45 of ~6000 requests)
        requests(MODEL, "0+100x60 6095+95x9", "0x60 5+5x9"),
        [check("69m", "ModelErrorBudgetBurn")],
    ),
    "errors-of-services-other-than-models-stay-silent": (
        requests({**MODEL, "component": "api", "job": "api"}, "0+50x70", "0+50x70"),
        [check("70m", "ModelErrorBudgetBurn")],
    ),
    "model-mostly-slower-than-0.1s-fires": (
        # 20 of 100 requests a minute finish within 0.1s
        latency(MODEL, "0+20x70", "0+100x70"),
        [
            check(
                "70m",
                "ModelLatencyBudgetBurn",
                Fires({"job": "model-iris"}, summary="model-iris: 80% of requests are slower than the SLO"),
            )
        ],
    ),
    "model-fast-stays-silent": (
        latency(MODEL, "0+100x70", "0+100x70"),
        [check("70m", "ModelLatencyBudgetBurn")],
    ),
    "model-10-percent-slow-is-under-the-14.4x-burn-and-stays-silent": (
        latency(MODEL, "0+90x70", "0+100x70"),
        [check("70m", "ModelLatencyBudgetBurn")],
    ),
    "cost-projecting-511-usd-stays-silent": (
        # 0.5 + 0.2 USD an hour: 511 USD a month, under 80% (520) of 650
        hourly_cost(0.5, 0.2),
        [check("2h", "ProjectedMonthlyCostOver80PercentOfBudget")],
    ),
    "cost-projecting-547-usd-fires-80-percent-after-1h": (
        hourly_cost(0.5, 0.25),
        [
            check("30m", "ProjectedMonthlyCostOver80PercentOfBudget"),
            check(
                "70m",
                "ProjectedMonthlyCostOver80PercentOfBudget",
                Fires(summary="Cluster cost projects to 547.5 USD this month"),
            ),
            check("2h", "ProjectedMonthlyCostOver100PercentOfBudget"),
        ],
    ),
    "cost-projecting-730-usd-fires-80-and-100-percent": (
        hourly_cost(0.5, 0.5),
        [
            check("30m", "ProjectedMonthlyCostOver100PercentOfBudget"),
            check(
                "70m",
                "ProjectedMonthlyCostOver80PercentOfBudget",
                Fires(summary="Cluster cost projects to 730 USD this month"),
            ),
            check(
                "70m",
                "ProjectedMonthlyCostOver100PercentOfBudget",
                Fires(summary="Cluster cost projects to 730 USD this month"),
            ),
        ],
    ),
}


def promtool_test(rules_file, alert_rules, tmp_path, input_series, checks):
    """Write a promtool unit test file for `checks` next to a copy of the rules; return promtool's result."""
    alert_tests = []
    for c in checks:
        assert c["alertname"] in alert_rules, f"no alert named {c['alertname']} in the rules"
        rule = alert_rules[c["alertname"]]
        alert_tests.append(
            {
                "eval_time": c["eval_time"],
                "alertname": c["alertname"],
                "exp_alerts": [f.expected(c["alertname"], rule) for f in c["fires"]],
            }
        )
    return promtool_run(rules_file, tmp_path, input_series, alert_rule_test=alert_tests)


def promtool_run(rules_file, tmp_path, input_series, **tests):
    """Run one promtool unit test (alert_rule_test and/or promql_expr_test) against a copy of the rules."""
    shutil.copy(rules_file, tmp_path / "rules.yml")
    test_file = tmp_path / "test.yml"
    test_file.write_text(
        yaml.safe_dump(
            {
                "rule_files": ["rules.yml"],
                "evaluation_interval": "1m",
                "tests": [{"interval": "1m", "input_series": input_series, **tests}],
            },
            sort_keys=False,
        )
    )
    return run(tool("promtool"), "test", "rules", test_file.name, cwd=tmp_path)


@pytest.mark.parametrize(("input_series", "checks"), list(CASES.values()), ids=list(CASES))
def test_alert_fires_only_when_it_should(rules_file, alert_rules, tmp_path, input_series, checks):
    proc = promtool_test(rules_file, alert_rules, tmp_path, input_series, checks)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_alert_is_shown_firing_and_silent():
    firing, silent = set(), set()
    for _, checks in CASES.values():
        for c in checks:
            (firing if c["fires"] else silent).add(c["alertname"])
    assert firing == set(SEVERITY)
    assert silent == set(SEVERITY) - {"Watchdog"}


def test_promtool_reports_an_alert_that_does_not_fire_as_expected(rules_file, alert_rules, tmp_path):
    """The harness above can fail: a wrong expectation (Watchdog silent, TargetDown after 1m) is reported."""
    down = [series("up", {"job": "mlflow", "instance": "127.0.0.1:5000"}, "1 0 0 0")]
    proc = promtool_test(
        rules_file,
        alert_rules,
        tmp_path,
        down,
        [
            check("1m", "Watchdog"),
            check(
                "2m", "TargetDown", Fires({"job": "mlflow", "instance": "127.0.0.1:5000"}, summary="", description="")
            ),
        ],
    )
    assert proc.returncode != 0
    assert "alertname: Watchdog" in proc.stdout + proc.stderr
    assert "alertname: TargetDown" in proc.stdout + proc.stderr


def test_llm_tokens_and_their_cost_are_recorded_from_both_servers(rules_file, tmp_path):
    """At 1.006 USD/h: llama.cpp at 10 prompt + 40 completion tokens/s costs 1.006 / 180 USD per 1000 tokens;
    vLLM at 1 request/s costs 1.006 / 3600 USD per request; a server with no traffic has no cost sample."""
    llama = {"component": "llm-serving", "job": "llm-server", "instance": "127.0.0.1:8081"}
    vllm = {"component": "vllm", "job": "vllm", "instance": "10.0.0.5:8000"}
    idle = {"component": "idle-llm", "job": "idle", "instance": "127.0.0.1:8082"}
    input_series = [
        series("llamacpp:prompt_tokens_total", llama, "0+600x10"),
        series("llamacpp:tokens_predicted_total", llama, "0+2400x10"),
        series("vllm:prompt_tokens_total", vllm, "0+1200x10"),
        series("vllm:generation_tokens_total", vllm, "0+1200x10"),
        series("vllm:request_success_total", vllm, "0+60x10"),
        series("llamacpp:prompt_tokens_total", idle, "5x10"),
        series("llamacpp:tokens_predicted_total", idle, "7x10"),
    ]

    def sample(name, labels, value):
        return {"expr": name, "eval_time": "10m", "exp_samples": [{"labels": f"{name}{{{labels}}}", "value": value}]}

    tests = [
        {
            "expr": "llm:completion_tokens:rate5m",
            "eval_time": "10m",
            "exp_samples": [
                {"labels": 'llm:completion_tokens:rate5m{component="idle-llm"}', "value": 0},
                {"labels": 'llm:completion_tokens:rate5m{component="llm-serving"}', "value": 40},
                {"labels": 'llm:completion_tokens:rate5m{component="vllm"}', "value": 20},
            ],
        },
        {
            "expr": "llm:cost_usd_per_1k_tokens",
            "eval_time": "10m",
            "exp_samples": [
                {"labels": 'llm:cost_usd_per_1k_tokens{component="llm-serving"}', "value": 1.006 / 180},
                {"labels": 'llm:cost_usd_per_1k_tokens{component="vllm"}', "value": 1.006 / 144},
            ],
        },
        sample("llm:cost_usd_per_request", 'component="vllm"', 1.006 / 3600),
    ]
    proc = promtool_run(rules_file, tmp_path, input_series, promql_expr_test=tests)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- Alertmanager configuration --------------------------------------------------------------

EMAILS = ["platform-team@example.com", "oncall@example.com"]
SMTP_AUTH = {
    "observability_smtp_smarthost": "smtp.example.com:587",
    "observability_smtp_auth_username": "alertmanager@example.com",
    "observability_smtp_auth_password": SMTP_PASSWORD,
    "observability_smtp_require_tls": True,
}

# Receiver set-ups: overrides of the defaults, and whether alerts reach the `platform` receiver.
RECEIVER_SETUPS = {
    "emails-only": ({"budget_emails": EMAILS}, True),
    "slack-only": ({"budget_emails": [], "observability_alert_slack_webhook_url": WEBHOOK_URL}, True),
    "emails-and-slack-with-smtp-auth": (
        {"budget_emails": EMAILS, "observability_alert_slack_webhook_url": WEBHOOK_URL, **SMTP_AUTH},
        True,
    ),
    "smtp-auth": ({"budget_emails": EMAILS, **SMTP_AUTH}, True),
    "alerting-disabled": ({"observability_alerting_enabled": False, "budget_emails": []}, False),
    "alerting-disabled-with-receivers-set": (
        {
            "observability_alerting_enabled": False,
            "budget_emails": EMAILS,
            "observability_alert_slack_webhook_url": WEBHOOK_URL,
            **SMTP_AUTH,
        },
        False,
    ),
}


class Alertmanager:
    def __init__(self, path, overrides, enabled, platform_home):
        self.path, self.overrides, self.enabled = path, overrides, enabled
        self.text = path.read_text()
        self.config = yaml.safe_load(self.text)
        self.secret_dir = f"{platform_home}/secrets/alertmanager"

    def receiver(self, name):
        found = [r for r in self.config["receivers"] if r["name"] == name]
        assert len(found) == 1, f"receiver {name} defined {len(found)} times"
        return found[0]

    def route(self, *labels):
        return run(
            tool("amtool"), "config", "routes", "test", f"--config.file={self.path}", *labels, cwd=self.path.parent
        )


@pytest.fixture(scope="module", params=list(RECEIVER_SETUPS), ids=list(RECEIVER_SETUPS))
def alertmanager(request, tmp_path_factory):
    overrides, enabled = RECEIVER_SETUPS[request.param]
    directory = tmp_path_factory.mktemp(request.param)
    platform_home = directory / "home"
    render("alertmanager.yml.j2", directory / "alertmanager.yml", platform_home=str(platform_home), **overrides)
    return Alertmanager(directory / "alertmanager.yml", overrides, enabled, platform_home)


def test_amtool_accepts_the_configuration(alertmanager):
    proc = run(tool("amtool"), "check-config", alertmanager.path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_secrets_are_read_from_files_never_written_into_the_configuration(alertmanager):
    assert WEBHOOK_URL not in alertmanager.text
    assert "wEbHoOkToKeN" not in alertmanager.text
    assert SMTP_PASSWORD not in alertmanager.text
    assert "smtp_auth_password:" not in alertmanager.text
    assert "api_url:" not in alertmanager.text


def test_receivers_match_the_settings(alertmanager):
    o = alertmanager.overrides
    config = alertmanager.config
    assert alertmanager.receiver("none") == {"name": "none"}
    if not alertmanager.enabled:
        assert config["route"]["receiver"] == "none"
        assert [r["name"] for r in config["receivers"]] == ["none"]
        return
    assert config["route"]["receiver"] == "platform"
    platform = alertmanager.receiver("platform")
    if o["budget_emails"]:
        assert platform["email_configs"] == [{"to": ", ".join(EMAILS), "send_resolved": True}]
        assert config["global"]["smtp_from"] == "alertmanager@argoeks-dev.local"
    else:
        assert "email_configs" not in platform
        assert "smtp_smarthost" not in config["global"]
    if o.get("observability_alert_slack_webhook_url"):
        (slack,) = platform["slack_configs"]
        assert slack["api_url_file"] == f"{alertmanager.secret_dir}/slack-webhook-url"
        assert slack["channel"] == "#platform-alerts"
    else:
        assert "slack_configs" not in platform
    if o.get("observability_smtp_auth_username"):
        assert config["global"]["smtp_smarthost"] == "smtp.example.com:587"
        assert config["global"]["smtp_require_tls"] is True
        assert config["global"]["smtp_auth_username"] == "alertmanager@example.com"
        assert config["global"]["smtp_auth_password_file"] == f"{alertmanager.secret_dir}/smtp-password"
    else:
        assert "smtp_auth_username" not in config.get("global", {})
        assert "smtp_auth_password_file" not in config.get("global", {})


def test_secret_files_are_the_ones_the_role_writes():
    """alertmanager.yml reads slack-webhook-url and smtp-password; the role writes those files from the secrets."""
    secrets = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["_observability_secrets"]
    assert {s["file"]: s["value"] for s in secrets} == {
        "slack-webhook-url": "{{ observability_alert_slack_webhook_url }}",
        "smtp-password": "{{ observability_smtp_auth_password }}",
    }


@pytest.mark.parametrize(
    ("labels", "receiver_when_enabled"),
    [
        (["alertname=Watchdog", "severity=none"], "none"),
        (["alertname=TargetDown", "severity=critical", "job=mlflow"], "platform"),
        (["alertname=HostDiskSpaceLow", "severity=warning"], "platform"),
    ],
    ids=["severity-none", "severity-critical", "severity-warning"],
)
def test_amtool_routes_by_severity(alertmanager, labels, receiver_when_enabled):
    receiver = receiver_when_enabled if alertmanager.enabled else "none"
    proc = alertmanager.route(f"--verify.receivers={receiver}", *labels)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == receiver
