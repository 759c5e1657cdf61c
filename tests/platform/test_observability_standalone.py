"""Phase 1 observability on the standalone target, as a user sees it.

One platform for the module (own home and ports): bad alerting input fails in preflight, then
Prometheus scrapes every registered target, the status page shows them, a service registers
itself with one file, the test alert reaches Alertmanager, receivers and retention follow the
inventory, the TSDB survives restarts, and teardown keeps the data unless asked.
"""

import json
import time
import urllib.parse
import urllib.request

import pytest
import yaml

from tests.platform.standalone import Platform, assert_ok, listening
from tests.support import ROOT, wait_until

pytestmark = pytest.mark.platform

SCRAPE_PLAYBOOK = str(ROOT / "tests/platform/playbooks/scrape_target.yml")
WEBHOOK = "https://hooks.slack.com/services/T0000TEST/B0000TEST/s3cr3tW3bh00kT0k3n"


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    platform = Platform(tmp_path_factory.mktemp("observability"))
    yield platform
    platform.stop_everything()


def get_text(url):
    assert url.startswith("http://127.0.0.1:"), url
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback http only (asserted)
        return response.read().decode()


def get_json(url):
    return json.loads(get_text(url))


def prom_query(platform, query, at=None):
    params = {"query": query} | ({"time": f"{at:.3f}"} if at is not None else {})
    url = platform.url("prometheus", "/api/v1/query?" + urllib.parse.urlencode(params))
    body = get_json(url)
    assert body["status"] == "success", body
    return body["data"]["result"]


def active_targets(platform):
    return get_json(platform.url("prometheus", "/api/v1/targets?state=active"))["data"]["activeTargets"]


def registered(platform):
    return sorted(p.stem for p in (platform.home / "observability/targets").glob("*.yml"))


def all_targets_up(platform, jobs):
    targets = active_targets(platform)
    return sorted(t["labels"]["job"] for t in targets) == sorted(jobs) and all(t["health"] == "up" for t in targets)


def alerts(platform, name):
    query = urllib.parse.urlencode({"filter": f'alertname="{name}"'})
    return get_json(platform.url("alertmanager", f"/api/v2/alerts?{query}"))


# ---- bad input --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "variable", "accepted"),
    [
        (
            json.dumps({"observability_alert_slack_webhook_url": WEBHOOK.replace("https://", "http://")}),
            "observability_alert_slack_webhook_url",
            "accepted: an https webhook URL",
        ),
        (
            json.dumps({"observability_alert_slack_webhook_url": "hooks.slack.com/" + WEBHOOK[-20:]}),
            "observability_alert_slack_webhook_url",
            "accepted: an https webhook URL",
        ),
        (
            json.dumps({"observability_alert_email_to": []}),
            "observability_alert_email_to",
            "accepted: at least one email address or a Slack webhook URL",
        ),
        (
            json.dumps({"observability_retention_time": "two weeks"}),
            "observability_retention_time",
            "accepted: a number with a unit",
        ),
    ],
)
def test_bad_alerting_input_fails_in_preflight_and_creates_nothing(platform, extra, variable, accepted):
    run = platform.run("phase1.yml", "-e", extra, "-v")
    assert run.rc != 0
    assert "TASK [preflight : Validate the inventory" in run.output
    assert f"{variable}:" in run.output, run.tail()
    assert accepted in " ".join(run.output.split())
    assert WEBHOOK[-20:] not in run.output, "the webhook secret was printed"
    assert not platform.home.exists(), "preflight failed but the platform home was created"


def test_no_receiver_is_fine_when_alerting_is_disabled(platform):
    extra = json.dumps({"observability_alert_email_to": [], "observability_alerting_enabled": False})
    run = platform.run("phase1.yml", "--tags", "preflight", "-e", extra)
    assert_ok(run, "preflight with alerting disabled")


# ---- bring-up: every target scraped, status page, registration ----------------------------------------------


def test_phase1_runs_prometheus_alertmanager_and_node_exporter(platform):
    run = platform.run()
    assert_ok(run, "phase1.yml")
    assert platform.healthy(), platform.ctl("status").stdout
    summary = " ".join(run.output.split())
    assert f"status page: {platform.url('prometheus', '/consoles/platform.html')}" in summary
    assert "alerts go to: email:platform-team@example.com" in summary


def test_prometheus_scrapes_every_registered_target(platform):
    jobs = registered(platform)
    assert jobs == ["alertmanager", "node", "prometheus"]
    wait_until(lambda: all_targets_up(platform, jobs), timeout=90, what=f"targets {jobs} up")
    # The samples are really there: node_exporter's memory and Prometheus' own series.
    assert prom_query(platform, "node_memory_MemTotal_bytes")
    assert float(prom_query(platform, 'up{job="prometheus"}')[0]["value"][1]) == 1


def test_rules_are_loaded_and_the_watchdog_fires(platform):
    groups = get_json(platform.url("prometheus", "/api/v1/rules"))["data"]["groups"]
    names = {rule["name"] for group in groups for rule in group["rules"]}
    assert {"Watchdog", "TargetDown", "HostDiskSpaceLow", "HostMemoryPressure", "ModelErrorBudgetBurn"} <= names

    def evaluated_ok():
        groups = get_json(platform.url("prometheus", "/api/v1/rules"))["data"]["groups"]
        return all(rule["health"] == "ok" for group in groups for rule in group["rules"])

    wait_until(evaluated_ok, timeout=90, what="every rule evaluated without error")
    wait_until(lambda: alerts(platform, "Watchdog"), timeout=90, what="Watchdog in Alertmanager")


def test_status_page_shows_every_service_and_its_state(platform):
    page = get_text(platform.url("prometheus", "/consoles/platform.html"))
    services = page.split('<table id="services">')[1].split("</table>")[0]
    for job in registered(platform):
        port = {"node": "node_exporter"}.get(job, job)
        instance = f"127.0.0.1:{platform.vars['observability_ports'][port]}"
        assert f"<tr><td>{job}</td><td>{instance}</td>" in services
    assert services.count('class="up"') == 3 and "DOWN" not in services


def test_a_service_registers_with_one_file_without_a_restart(platform):
    pid_before = platform.ctl("pid", "prometheus").stdout.strip()
    node = f"127.0.0.1:{platform.vars['observability_ports']['node_exporter']}"
    extra = json.dumps({"name": "probe", "targets": [node], "labels": {"component": "model-serving"}})
    run = platform.run(SCRAPE_PLAYBOOK, "-e", extra)
    assert_ok(run, "registering a scrape target")
    assert "probe" in registered(platform)

    def probe_up():
        return [t for t in active_targets(platform) if t["labels"]["job"] == "probe" and t["health"] == "up"]

    wait_until(probe_up, timeout=90, what="the registered target scraped")
    assert probe_up()[0]["labels"]["component"] == "model-serving"
    assert platform.ctl("pid", "prometheus").stdout.strip() == pid_before, "registration restarted Prometheus"

    run = platform.run(SCRAPE_PLAYBOOK, "-e", '{"name": "probe", "state": "absent"}')
    assert_ok(run, "removing a scrape target")
    wait_until(lambda: not any(t["labels"]["job"] == "probe" for t in active_targets(platform)), timeout=90)


# ---- the test alert ---------------------------------------------------------------------------------------


def test_test_alert_reaches_alertmanager_and_the_budget_topic(platform):
    run = platform.run("test_alert.yml")
    assert_ok(run, "test_alert.yml")
    found = alerts(platform, "ArgoeksTestAlert")
    assert found, "the test alert is not in Alertmanager"
    assert [r["name"] for r in found[0]["receivers"]] == ["platform"]
    assert found[0]["status"]["state"] == "active"
    output = " ".join(run.output.split())
    assert "ArgoeksTestAlert reached Alertmanager; routed to: platform" in output
    assert "Published test message" in output and "to topic argoeks-dev-alerts" in output


# ---- success metrics (verify.yml) --------------------------------------------------------------------------


def metrics_report(platform):
    return json.loads((platform.home / "reports/success-metrics.json").read_text())


def test_verify_measures_every_phase1_metric_from_its_source(platform):
    run = platform.run("verify.yml")
    assert_ok(run, "verify.yml")
    results = {r["metric"]: r for r in metrics_report(platform)["results"]}
    assert results["uptime"]["status"] == "pass" and results["uptime"]["value"] >= 99.9
    assert f"127.0.0.1:{platform.vars['observability_ports']['prometheus']}" in results["uptime"]["source"]
    assert results["alerts_firing"]["status"] == "pass" and results["alerts_firing"]["value"] >= 10
    assert results["costs_within_budget"]["status"] == "unavailable"
    assert "emulator has no cost data" in results["costs_within_budget"]["detail"]
    assert results["state_backup_automated"]["status"] == "pass"
    assert {results[m]["status"] for m in ("llm_inference_p99", "gpu_utilisation")} == {"not_deployed"}
    html = (platform.home / "reports/success-metrics.html").read_text()
    assert '<td class="pass">pass</td>' in html and "state_backup_automated" in html

    again = platform.run("verify.yml")
    assert_ok(again, "second verify.yml")
    assert again.changed == 0, f"changed tasks: {again.changed_tasks()}"


def test_verify_reports_a_breach_with_the_measured_value(platform):
    run = platform.run("verify.yml", "-e", '{"verify_thresholds": {"uptime_percent": 100.5}}')
    assert run.rc != 0
    text = " ".join(run.output.split())
    assert "1 success metric(s) breached: uptime: measured 100 %, threshold >= 100.5 %" in text
    warn_only = json.dumps({"verify_thresholds": {"uptime_percent": 100.5}, "verify_warn_only": True})
    warn = platform.run("verify.yml", "-e", warn_only)
    assert_ok(warn, "verify.yml warn-only")
    assert [r["status"] for r in metrics_report(platform)["results"] if r["metric"] == "uptime"] == ["fail"]


def test_verify_says_why_when_the_alert_pipeline_is_down(platform):
    stopped = platform.ctl("stop", "alertmanager")
    assert stopped.returncode == 0, stopped.stdout
    try:
        wait_until(lambda: prom_query(platform, 'up{job="alertmanager"} == 0'), timeout=90, what="a failed scrape")
        run = platform.run("verify.yml")
        assert run.rc != 0
        text = " ".join(run.output.split())
        assert "alerts_firing:" in text and "is not answering" in text
    finally:
        platform.ctl("start", "alertmanager")
    wait_until(lambda: alerts(platform, "Watchdog"), timeout=120, what="Watchdog back in Alertmanager")
    # Uptime now counts the minute Alertmanager was stopped: only the alert pipeline must be back.
    assert_ok(platform.run("verify.yml", "-e", "verify_warn_only=true"), "verify.yml after Alertmanager is back")
    results = {r["metric"]: r for r in metrics_report(platform)["results"]}
    assert results["alerts_firing"]["status"] == "pass"
    assert results["uptime"]["value"] < 100, "the stopped Alertmanager must count against uptime"


# ---- receivers and retention follow the inventory; the webhook stays secret -----------------------------------


def test_slack_receiver_and_retention_follow_the_inventory_without_printing_the_webhook(platform):
    extra = json.dumps({"observability_alert_slack_webhook_url": WEBHOOK, "observability_retention_time": "30d"})
    run = platform.run("phase1.yml", "-e", extra, "--diff", "-v")
    assert_ok(run, "phase1.yml with a Slack webhook")
    assert WEBHOOK[-20:] not in run.output, "the webhook secret was printed"
    assert "slack:#platform-alerts" in run.output

    secret = platform.home / "secrets/alertmanager/slack-webhook-url"
    assert secret.read_text() == WEBHOOK
    assert oct(secret.stat().st_mode & 0o777) == "0o600"
    assert WEBHOOK not in (platform.home / "observability/alertmanager.yml").read_text()

    status = get_json(platform.url("alertmanager", "/api/v2/status"))
    config = yaml.safe_load(status["config"]["original"])
    platform_receiver = next(r for r in config["receivers"] if r["name"] == "platform")
    assert platform_receiver["slack_configs"][0]["api_url_file"] == str(secret)
    assert platform_receiver["email_configs"][0]["to"] == "platform-team@example.com"

    flags = get_json(platform.url("prometheus", "/api/v1/status/flags"))["data"]
    assert flags["storage.tsdb.retention.time"] == "30d"

    back = platform.run()
    assert_ok(back, "phase1.yml back to defaults")
    assert not secret.exists(), "the webhook file stayed after the webhook was unset"
    assert get_json(platform.url("prometheus", "/api/v1/status/flags"))["data"]["storage.tsdb.retention.time"] == "15d"


# ---- durability ------------------------------------------------------------------------------------------


def test_restarting_the_services_keeps_the_tsdb(platform):
    wait_until(lambda: prom_query(platform, 'up{job="node"}'), timeout=60, what="a node sample")
    before = time.time()
    samples_before = prom_query(platform, 'count_over_time(up{job="node"}[1h])', at=before)
    assert samples_before

    restarted = platform.ctl("restart", "prometheus", "alertmanager", "node-exporter")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    wait_until(platform.healthy, what="services RUNNING after restart")
    wait_until(lambda: _ready(platform), timeout=120, what="Prometheus ready after restart")

    samples_after = prom_query(platform, 'count_over_time(up{job="node"}[1h])', at=before)
    assert samples_after == samples_before, "samples written before the restart were lost"


def _ready(platform):
    try:
        return get_text(platform.url("prometheus", "/-/ready")).strip() != ""
    except OSError:
        return False


# ---- teardown ----------------------------------------------------------------------------------------------


def test_teardown_stops_the_stack_and_keeps_the_tsdb(platform):
    run = platform.run("teardown.yml", "-e", "state_backend_force_destroy=true")
    assert_ok(run, "teardown.yml")
    assert not any(listening(port) for port in platform.vars["observability_ports"].values())
    assert not (platform.home / "observability").exists()
    assert any((platform.home / "data/prometheus").iterdir()), "teardown deleted the TSDB without being asked"
    assert "set observability_delete_data=true to delete them" in " ".join(run.output.split())


def test_teardown_with_delete_data_removes_it(platform):
    run = platform.run(
        "teardown.yml",
        "-e",
        "state_backend_force_destroy=true object_store_delete_data=true observability_delete_data=true"
        " platform_base_delete_data=true",
    )
    assert_ok(run, "teardown.yml deleting data")
    assert not platform.home.exists()
