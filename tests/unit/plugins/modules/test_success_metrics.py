"""argoeks.mlops.success_metrics run in-process: Prometheus and Alertmanager as a real HTTP server on
127.0.0.1 answering their APIs' JSON, S3, DynamoDB, STS and Budgets as moto's in-process AWS."""

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from moto import mock_aws

from ansible_collections.argoeks.mlops.plugins.modules import success_metrics
from tests.unit.conftest import ModuleFailed

BUCKET, TABLE, BUDGET = "argoeks-terraform-state", "argoeks-terraform-locks", "argoeks-dev-monthly"
UPTIME_QUERY = "avg(avg_over_time(up[1h]))"
PREDICT = "/v1/models/iris:predict"


# ---- a Prometheus/Alertmanager stand-in ---------------------------------------------------------


def vector(*values):
    samples = [{"metric": {}, "value": [1718000000.123, str(value)]} for value in values]
    return {"status": "success", "data": {"resultType": "vector", "result": samples}}


RULES = {
    "status": "success",
    "data": {
        "groups": [
            {
                "name": "argoeks.rules",
                "file": "/etc/prometheus/rules/argoeks.yml",
                "rules": [
                    {
                        "state": state,
                        "name": name,
                        "query": query,
                        "duration": 300,
                        "labels": {"severity": "warning"},
                        "annotations": {},
                        "alerts": [],
                        "health": "ok",
                        "evaluationTime": 0.0004,
                        "lastEvaluation": "2024-06-10T06:13:20.123Z",
                        "type": "alerting",
                    }
                    for name, query, state in [
                        ("TargetDown", "up == 0", "inactive"),
                        ("Watchdog", "vector(1)", "firing"),
                    ]
                ],
                "interval": 30,
            }
        ]
    },
}
WATCHDOG = [
    {
        "annotations": {},
        "endsAt": "2024-06-10T06:17:20.123Z",
        "fingerprint": "e8f2ad0f1fa4ec3e",
        "receivers": [{"name": "null"}],
        "startsAt": "2024-06-10T05:00:20.123Z",
        "status": {"inhibitedBy": [], "silencedBy": [], "state": "active"},
        "updatedAt": "2024-06-10T06:13:20.130Z",
        "labels": {"alertname": "Watchdog", "severity": "none"},
    }
]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.answer()

    def do_POST(self):
        self.answer()

    def answer(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = urlsplit(self.path)
        self.server.requests.append((self.command, parts.path, parse_qs(parts.query), body))
        if parts.path == "/api/v1/query":
            query = parse_qs(parts.query)["query"][0]
            found = query in self.server.queries
            status, answer = (200, self.server.queries[query]) if found else (400, {"status": "error", "error": query})
        elif parts.path in self.server.routes:
            status, answer = self.server.routes[parts.path]
        else:
            status, answer = 404, {"error": "no such route"}
        time.sleep(self.server.delay)
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    """serve(routes, queries={}, delay=0) -> a running server: routes by path, Prometheus queries by PromQL."""
    running = []

    def start(routes, queries=None, delay=0.0):
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.routes, server.queries, server.delay, server.requests = routes, queries or {}, delay, []
        server.url = f"http://127.0.0.1:{server.server_address[1]}"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        running.append((server, thread))
        return server

    yield start
    for server, thread in running:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def monitoring(serve):
    """Prometheus and Alertmanager of a healthy platform: everything up, rules ok, Watchdog delivered."""
    return serve(
        {"/api/v1/rules": (200, RULES), "/api/v2/alerts": (200, WATCHDOG)},
        {UPTIME_QUERY: vector(1)},
    )


# ---- AWS (moto) ---------------------------------------------------------------------------------


@pytest.fixture
def aws(aws_env):
    with mock_aws():
        yield {name: boto3.client(name, region_name="us-east-1") for name in ("s3", "dynamodb", "budgets", "sts")}


def state_backend(aws, versioning=True):
    aws["s3"].create_bucket(Bucket=BUCKET)
    if versioning:
        aws["s3"].put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    aws["dynamodb"].create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    aws["dynamodb"].update_continuous_backups(
        TableName=TABLE, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )


def phase1_args(monitoring, **extra):
    url = monitoring.url if monitoring else ""
    return {
        "phases": [1],
        "prometheus_url": url,
        "alertmanager_url": url,
        "aws_emulated": True,
        "budget_name": BUDGET,
        "state_bucket": BUCKET,
        "lock_table": TABLE,
    } | extra


def by_metric(result):
    return {r["metric"]: r for r in result["results"]}


# ---- Phase 1 ------------------------------------------------------------------------------------


def test_phase1_measures_each_metric_from_its_source(aws, monitoring, run_module):
    state_backend(aws)
    result = run_module(success_metrics, phase1_args(monitoring))

    assert result["changed"] is False
    results = by_metric(result)
    assert list(results) == ["uptime", "alerts_firing", "costs_within_budget", "state_backup_automated"]
    assert {name: r["status"] for name, r in results.items()} == {
        "uptime": "pass",
        "alerts_firing": "pass",
        "costs_within_budget": "unavailable",
        "state_backup_automated": "pass",
    }
    assert all(r["phase"] == 1 for r in result["results"])
    assert results["uptime"]["value"] == 100.0
    assert results["alerts_firing"]["value"] == 2
    assert "emulator has no cost data" in results["costs_within_budget"]["detail"]
    assert results["state_backup_automated"]["detail"].startswith("bucket versioning on, lock table PITR on")
    assert result["breaches"] == []
    assert result["counts"] == {"pass": 3, "fail": 0, "unavailable": 1, "not_deployed": 0}
    asked = [(method, path) for method, path, _, _ in monitoring.requests]
    assert asked == [("GET", "/api/v1/query"), ("GET", "/api/v1/rules"), ("GET", "/api/v2/alerts")]


def test_table_has_a_header_and_one_aligned_line_per_metric(aws, monitoring, run_module):
    state_backend(aws, versioning=False)
    result = run_module(success_metrics, phase1_args(monitoring))

    header, *lines = result["table"]
    assert len(lines) == len(result["results"]) == 4
    columns = [header.index(name) for name in ("metric", "status", "value", "threshold", "source / reason")]
    assert header.startswith("phase")
    cuts = [0, *columns]
    for line, r in zip(lines, result["results"], strict=True):
        # every field starts exactly under its header
        assert all(line[col - 1] == " " and line[col] != " " for col in columns), (header, line)
        fields = [line[start:end].strip() for start, end in zip(cuts, [*columns, None], strict=True)]
        phase, metric, status, value, threshold, why = fields
        assert (phase, metric, status) == (str(r["phase"]), r["metric"], r["status"])
        assert why == (r["source"] if r["status"] == "pass" else r["detail"])
        if r["value"] is None:
            assert value == "-"
        else:
            assert value == f"{r['value']:g} {r['unit']}".strip()
        if r["threshold"] is None:
            assert threshold == "-"
        else:
            assert threshold == f"{r['comparison']} {r['threshold']:g} {r['unit']}".strip()
    rows = {line.split()[1]: line for line in lines}
    assert "100 %" in rows["uptime"]
    assert ">= 99.9 %" in rows["uptime"]
    assert "bucket versioning OFF" in rows["state_backup_automated"]


def test_check_mode_measures_the_same(aws, monitoring, run_module):
    state_backend(aws)
    normal = run_module(success_metrics, phase1_args(monitoring))
    checked = run_module(success_metrics, phase1_args(monitoring), check_mode=True)
    assert checked["changed"] is False
    for key in ("results", "breaches", "counts", "table"):
        assert checked[key] == normal[key]
    assert len(monitoring.requests) == 6  # both runs asked the sources


def test_cost_and_backup_from_real_aws_apis(aws, monitoring, run_module):
    state_backend(aws)
    account = aws["sts"].get_caller_identity()["Account"]
    aws["budgets"].create_budget(
        AccountId=account,
        Budget={
            "BudgetName": BUDGET,
            "BudgetLimit": {"Amount": "650", "Unit": "USD"},
            "TimeUnit": "MONTHLY",
            "BudgetType": "COST",
        },
    )
    result = run_module(success_metrics, phase1_args(monitoring, aws_emulated=False))

    cost = by_metric(result)["costs_within_budget"]
    assert (cost["status"], cost["value"], cost["threshold"]) == ("pass", 0.0, 650.0)
    assert cost["source"] == f"AWS Budgets {BUDGET}"
    backup = by_metric(result)["state_backup_automated"]
    assert backup["status"] == "pass"
    assert backup["detail"] == "bucket versioning on, lock table PITR on; 0 AWS Backup plan(s)"


def test_breaches_list_the_failed_metrics(aws, serve, run_module):
    state_backend(aws, versioning=False)
    monitoring = serve({"/api/v1/rules": (200, RULES), "/api/v2/alerts": (200, [])}, {UPTIME_QUERY: vector("0.95")})
    result = run_module(success_metrics, phase1_args(monitoring))

    assert result["changed"] is False
    assert result["breaches"] == ["uptime", "alerts_firing", "state_backup_automated"]
    assert result["counts"] == {"pass": 0, "fail": 3, "unavailable": 1, "not_deployed": 0}
    results = by_metric(result)
    assert results["uptime"]["value"] == 95.0
    assert results["uptime"]["detail"] == "measured 95 %, threshold >= 99.9 %"
    assert "alerts do not reach" in results["alerts_firing"]["detail"]


def test_thresholds_are_applied(aws, serve, run_module):
    monitoring = serve(
        {"/api/v1/rules": (200, RULES), "/api/v2/alerts": (200, WATCHDOG)}, {UPTIME_QUERY: vector("0.95")}
    )
    result = run_module(success_metrics, phase1_args(monitoring, thresholds={"uptime_percent": 95}))
    uptime = by_metric(result)["uptime"]
    assert (uptime["status"], uptime["threshold"]) == ("pass", 95.0)


def test_window_and_selector_reach_prometheus(aws, serve, run_module):
    query = 'avg(avg_over_time(up{job!="test"}[30m]))'
    monitoring = serve({"/api/v1/rules": (200, RULES), "/api/v2/alerts": (200, WATCHDOG)}, {query: vector("0.9995")})
    result = run_module(
        success_metrics, phase1_args(monitoring, window="30m", uptime_selector='{job!="test"}', budget_name="")
    )
    uptime = by_metric(result)["uptime"]
    assert (uptime["status"], uptime["value"]) == ("pass", 99.95)
    assert by_metric(result)["costs_within_budget"]["status"] == "not_deployed"


def test_monitoring_down_fails_saying_it_does_not_answer(aws, run_module):
    state_backend(aws)
    with socket.socket() as bound:  # bound, never listening: connections are refused
        bound.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{bound.getsockname()[1]}"
        result = run_module(success_metrics, phase1_args(monitoring=None, prometheus_url=url, alertmanager_url=url))
    results = by_metric(result)
    assert results["uptime"]["status"] == "fail"
    assert results["uptime"]["detail"].startswith(f"{url}/api/v1/query?query=")
    assert "is not answering" in results["uptime"]["detail"]
    assert f"{url}/api/v1/rules is not answering" in results["alerts_firing"]["detail"]
    assert results["alerts_firing"]["status"] == "fail"
    assert result["breaches"] == ["uptime", "alerts_firing"]


def test_nothing_configured_is_not_deployed_and_no_breach(aws, run_module):
    result = run_module(success_metrics, {"phases": [1, 2]})
    assert {r["status"] for r in result["results"]} == {"not_deployed"}
    assert len(result["results"]) == 8
    assert result["breaches"] == []
    assert result["counts"]["not_deployed"] == 8


# ---- Phase 2 and 3 ------------------------------------------------------------------------------


def test_phase3_reports_four_not_deployed(aws, run_module):
    result = run_module(success_metrics, {"phases": [3], "thresholds": {"gpu_utilisation_percent": 75}})
    assert [(r["metric"], r["phase"], r["status"]) for r in result["results"]] == [
        ("llm_inference_p99", 3, "not_deployed"),
        ("token_cost_per_request", 3, "not_deployed"),
        ("gpu_utilisation", 3, "not_deployed"),
        ("hallucination_rate", 3, "not_deployed"),
    ]
    assert by_metric(result)["gpu_utilisation"]["threshold"] == 75.0
    assert result["counts"] == {"pass": 0, "fail": 0, "unavailable": 0, "not_deployed": 4}
    assert result["breaches"] == []
    assert len(result["table"]) == 5


def test_phase2_from_records_and_the_model_endpoint(aws, serve, tmp_path, run_module):
    model = serve({PREDICT: (200, {"predictions": [0]})}, delay=0.002)
    deploy = tmp_path / "deploy.json"
    deploy.write_text(json.dumps({"duration_seconds": 600, "model": "iris", "version": "2", "finished_at": "now"}))
    onboarding = tmp_path / "onboarding.json"
    onboarding.write_text(json.dumps({"duration_seconds": 5400, "user": "newcomer"}))
    args = {
        "phases": [2],
        "model_endpoint": model.url + PREDICT,
        "probe_requests": 4,
        "deploy_record": str(deploy),
        "onboarding_record": str(onboarding),
        "thresholds": {"inference_p99_ms": 0.1},
    }
    result = run_module(success_metrics, args)

    results = by_metric(result)
    assert results["time_to_train"]["status"] == "not_deployed"
    assert (results["time_to_deploy"]["status"], results["time_to_deploy"]["value"]) == ("pass", 10.0)
    assert results["time_to_deploy"]["source"] == "deploy record of iris version 2 (now)"
    assert (results["developer_onboarding"]["status"], results["developer_onboarding"]["value"]) == ("pass", 1.5)
    p99 = results["inference_p99"]
    assert p99["status"] == "fail"
    assert p99["value"] >= 2
    assert len(p99["samples_ms"]) == 4
    assert len(model.requests) == 5
    assert f"p99 {p99['value']:.1f} ms over 4 probe requests" in p99["detail"]
    assert result["breaches"] == ["inference_p99"]


def test_slow_deploy_is_a_breach(aws, tmp_path, run_module):
    deploy = tmp_path / "deploy.json"
    deploy.write_text(json.dumps({"duration_seconds": 1200, "model": "iris", "version": "2"}))
    result = run_module(success_metrics, {"phases": [2], "deploy_record": str(deploy)})
    deploy_metric = by_metric(result)["time_to_deploy"]
    assert (deploy_metric["status"], deploy_metric["value"], deploy_metric["threshold"]) == ("fail", 20.0, 15.0)
    assert result["breaches"] == ["time_to_deploy"]


def test_missing_record_file_is_not_deployed(aws, tmp_path, run_module):
    result = run_module(success_metrics, {"phases": [2], "deploy_record": str(tmp_path / "never-written.json")})
    assert by_metric(result)["time_to_deploy"]["status"] == "not_deployed"


# ---- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    ['{"duration_seconds": 12', '{"model": "iris"}', '{"duration_seconds": "soon"}', "[1, 2]"],
    ids=["not-json", "no-duration", "duration-not-a-number", "not-an-object"],
)
def test_malformed_deploy_record_fails_naming_the_file(aws, tmp_path, run_module, content):
    deploy = tmp_path / "deploy.json"
    deploy.write_text(content)
    with pytest.raises(ModuleFailed) as failed:
        run_module(success_metrics, {"phases": [2], "deploy_record": str(deploy)})
    assert failed.value.result["msg"].startswith(f"{deploy} is not a valid record (needs duration_seconds)")


def test_unknown_threshold_fails_naming_it(aws, run_module):
    with pytest.raises(ModuleFailed) as failed:
        run_module(success_metrics, {"phases": [3], "thresholds": {"uptime_percent": 99, "p99_latency": 5}})
    msg = failed.value.result["msg"]
    assert "unknown metric(s) p99_latency" in msg
    assert "uptime_percent" in msg.split("known:")[1]


def test_threshold_that_is_not_a_number_fails(aws, run_module):
    with pytest.raises(ModuleFailed) as failed:
        run_module(success_metrics, {"phases": [3], "thresholds": {"train_hours": "soon"}})
    assert failed.value.result["msg"] == "thresholds.train_hours: 'soon' is not a number"


@pytest.mark.parametrize("phases", [[4], [0, 1], [1, 2, 3, 5]])
def test_bad_phase_fails(aws, run_module, phases):
    with pytest.raises(ModuleFailed) as failed:
        run_module(success_metrics, {"phases": phases})
    bad = sorted(set(phases) - {1, 2, 3})
    assert failed.value.result["msg"] == f"phases: {bad} are not roadmap phases (accepted: 1, 2, 3)"
