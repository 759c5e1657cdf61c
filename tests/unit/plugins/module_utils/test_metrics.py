"""The success metrics of module_utils/metrics.py, each measured from answers shaped like its real source.

Prometheus, Alertmanager and MLflow answer through fake getters returning their APIs' JSON; the HTTP
client and the latency probe talk to real HTTP servers on 127.0.0.1; S3, DynamoDB and AWS Backup are
moto's in-process AWS.
"""

import json
import math
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from moto import mock_aws

from ansible_collections.argoeks.mlops.plugins.module_utils import metrics as m

PROMETHEUS = "http://prometheus.test:9090"
ALERTMANAGER = "http://alertmanager.test:9093"
MLFLOW = "http://mlflow.test:5000"
EVALUATED_AT = 1718000000.123
HOUR_MS = 3_600_000
PAYLOAD = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
P99_QUERY = (
    'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{component="model-serving"}[5m])))'
)


# ---- answers shaped like the real APIs ----------------------------------------------------------


def vector(*values, labels=None):
    """A Prometheus /api/v1/query answer: one instant-vector sample per value (values are strings there)."""
    samples = [{"metric": labels or {}, "value": [EVALUATED_AT, str(value)]} for value in values]
    return {"status": "success", "data": {"resultType": "vector", "result": samples}}


def alert_rule(name, health="ok", **extra):
    """One alerting rule as Prometheus /api/v1/rules lists it."""
    rule = {
        "state": "inactive",
        "name": name,
        "query": f"{name.lower()}_condition > 0",
        "duration": 300,
        "keepFiringFor": 0,
        "labels": {"severity": "warning"},
        "annotations": {"summary": name},
        "alerts": [],
        "health": health,
        "evaluationTime": 0.000412,
        "lastEvaluation": "2024-06-10T06:13:20.123Z",
        "type": "alerting",
    }
    return rule | extra


def recording_rule(name):
    return {
        "name": name,
        "query": "avg by (job) (up)",
        "labels": {},
        "health": "ok",
        "evaluationTime": 0.000201,
        "lastEvaluation": "2024-06-10T06:13:20.123Z",
        "type": "recording",
    }


def rules_answer(*rules):
    """Prometheus /api/v1/rules with the rules in one group."""
    group = {
        "name": "argoeks.rules",
        "file": "/etc/prometheus/rules/argoeks.yml",
        "rules": list(rules),
        "interval": 30,
        "limit": 0,
        "evaluationTime": 0.001,
        "lastEvaluation": "2024-06-10T06:13:20.123Z",
    }
    return {"status": "success", "data": {"groups": [group]}}


WATCHDOG = [
    {
        "annotations": {"summary": "An alert that should always be firing, to prove the pipeline works."},
        "endsAt": "2024-06-10T06:17:20.123Z",
        "fingerprint": "e8f2ad0f1fa4ec3e",
        "receivers": [{"name": "null"}],
        "startsAt": "2024-06-10T05:00:20.123Z",
        "status": {"inhibitedBy": [], "silencedBy": [], "state": "active"},
        "updatedAt": "2024-06-10T06:13:20.130Z",
        "generatorURL": "http://prometheus.test:9090/graph?g0.expr=vector%281%29",
        "labels": {"alertname": "Watchdog", "severity": "none"},
    }
]


def experiment(experiment_id, name):
    return {
        "experiment_id": experiment_id,
        "name": name,
        "artifact_location": f"s3://argoeks-mlflow/{experiment_id}",
        "lifecycle_stage": "active",
        "last_update_time": 1717990000000,
        "creation_time": 1717990000000,
    }


def mlflow_run(run_id, status, start, end=None, name=None, experiment_id="1"):
    """A run as MLflow's runs/search returns it; a run that has not ended has no end_time."""
    info = {
        "run_uuid": run_id,
        "run_id": run_id,
        "experiment_id": experiment_id,
        "user_id": "alice",
        "status": status,
        "start_time": start,
        "artifact_uri": f"s3://argoeks-mlflow/{experiment_id}/{run_id}/artifacts",
        "lifecycle_stage": "active",
    }
    if name is not None:
        info["run_name"] = name
    if end is not None:
        info["end_time"] = end
    return {"info": info, "data": {"metrics": [], "params": [], "tags": []}, "inputs": {}}


class FakeGet:
    """A `get(url, data=None)` answering by URL path, and /api/v1/query by its PromQL; records every call.

    An unexpected request raises AssertionError (never KeyError, which the checks treat as a bad answer).
    """

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def __call__(self, url, data=None):
        self.calls.append((url, data))
        parts = urlsplit(url)
        key = parse_qs(parts.query)["query"][0] if parts.path.endswith("/api/v1/query") else parts.path
        if key not in self.answers:
            raise AssertionError(f"unexpected request {url}")
        answer = self.answers[key]
        if isinstance(answer, Exception):
            raise answer
        return answer


# ---- real HTTP servers on 127.0.0.1 -------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.answer()

    def do_POST(self):
        self.answer()

    def answer(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests.append(
            {"method": self.command, "path": self.path, "content_type": self.headers["Content-Type"], "body": body}
        )
        route = self.server.routes.get(urlsplit(self.path).path)
        if route is None:
            status, answer = 404, {"error": "no such route"}
        else:
            status, answer = route(self) if callable(route) else route
        time.sleep(self.server.delay)
        payload = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


class JSONServer(ThreadingHTTPServer):
    """Answers {path: (status, JSON-able or bytes)} or {path: callable(handler) -> (status, answer)}."""

    daemon_threads = True

    def __init__(self, routes, delay):
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes, self.delay, self.requests = routes, delay, []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request, client_address):
        pass  # a client that gave up waiting (the timeout test) leaves a broken pipe behind


@pytest.fixture
def serve():
    """serve(routes, delay=0) -> a running JSONServer, stopped after the test."""
    running = []

    def start(routes, delay=0.0):
        server = JSONServer(routes, delay)
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
def refused_url():
    """A URL whose port is bound but not listening, so connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


# ---- http_json ----------------------------------------------------------------------------------


def test_http_json_gets_and_decodes(serve):
    server = serve({"/api/v1/query": (200, vector(1))})
    assert m.http_json(f"{server.url}/api/v1/query?query=up") == vector(1)
    assert [(r["method"], r["path"], r["body"]) for r in server.requests] == [("GET", "/api/v1/query?query=up", b"")]


def test_http_json_posts_data_as_json(serve):
    server = serve({"/api/2.0/mlflow/runs/search": (200, {"runs": []})})
    data = {"experiment_ids": ["1"], "max_results": 1000}
    assert m.http_json(f"{server.url}/api/2.0/mlflow/runs/search", data) == {"runs": []}
    (request,) = server.requests
    assert request["method"] == "POST"
    assert request["content_type"] == "application/json"
    assert json.loads(request["body"]) == data


@pytest.mark.parametrize("code", [404, 500, 503])
def test_http_error_names_the_code(serve, code):
    server = serve({"/api/v1/rules": (code, b"boom")})
    url = f"{server.url}/api/v1/rules"
    with pytest.raises(m.SourceError, match=f"answered HTTP {code}") as raised:
        m.http_json(url)
    assert str(raised.value).startswith(url)


def test_refused_connection_says_the_url_is_not_answering(refused_url):
    with pytest.raises(m.SourceError) as raised:
        m.http_json(f"{refused_url}/api/v1/query")
    assert f"{refused_url}/api/v1/query is not answering" in str(raised.value)
    assert "refused" in str(raised.value).lower()


def test_slow_source_times_out_as_not_answering(serve):
    server = serve({"/api/v1/query": (200, vector(1))}, delay=1.0)
    with pytest.raises(m.SourceError, match=r"is not answering.*timed out"):
        m.http_json(f"{server.url}/api/v1/query", timeout=0.2)


def test_answer_that_is_not_json(serve):
    server = serve({"/": (200, b"<html>Grafana</html>")})
    with pytest.raises(m.SourceError, match="did not answer JSON"):
        m.http_json(f"{server.url}/")


def test_answer_that_is_not_http_is_a_source_error():
    """Something else on the port (here a Redis-like line protocol) is a SourceError, not a crash."""
    listener = socket.create_server(("127.0.0.1", 0))

    def answer_once():
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"-ERR unknown command 'GET'\r\n")

    thread = threading.Thread(target=answer_once, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/api/v1/query"
    try:
        with pytest.raises(m.SourceError, match="did not answer HTTP") as raised:
            m.http_json(url)
    finally:
        thread.join(5)
        listener.close()
    assert str(raised.value).startswith(url)


@pytest.mark.parametrize("url", ["prometheus.test:9090/api/v1/query", "file:///etc/passwd", "ftp://x.test/a"])
def test_only_http_urls_are_fetched(url):
    with pytest.raises(m.SourceError, match="is not an http\\(s\\) URL"):
        m.http_json(url)


# ---- prometheus_query ---------------------------------------------------------------------------


def test_prometheus_query_returns_labels_and_floats():
    get = FakeGet({"up": vector(1, 0, labels={"job": "mlflow"})})
    assert m.prometheus_query(get, PROMETHEUS + "/", "up") == [({"job": "mlflow"}, 1.0), ({"job": "mlflow"}, 0.0)]
    ((url, data),) = get.calls
    assert url.startswith(f"{PROMETHEUS}/api/v1/query?")
    assert data is None


def test_prometheus_query_encodes_the_promql(serve):
    query = 'avg(avg_over_time(up{job!="test"}[1h]))'
    server = serve({"/api/v1/query": (200, vector("0.5"))})
    assert m.prometheus_query(m.http_json, server.url, query) == [({}, 0.5)]
    assert parse_qs(urlsplit(server.requests[0]["path"]).query) == {"query": [query]}


def test_prometheus_error_answer_is_a_source_error():
    error = {"status": "error", "errorType": "bad_data", "error": 'invalid parameter "query": parse error'}
    with pytest.raises(m.SourceError, match=r"Prometheus rejected 'up\{': invalid parameter .*parse error"):
        m.prometheus_query(FakeGet({"up{": error}), PROMETHEUS, "up{")


# ---- uptime -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("share", "status", "percent"),
    [("1", m.PASS, 100.0), ("0.999", m.PASS, 99.9), ("0.99899", m.FAIL, 99.899), ("0", m.FAIL, 0.0)],
)
def test_uptime_against_its_threshold(share, status, percent):
    get = FakeGet({"avg(avg_over_time(up[1h]))": vector(share)})
    r = m.uptime(get, PROMETHEUS, "1h", 99.9)
    assert (r["metric"], r["phase"], r["status"], r["value"]) == ("uptime", 1, status, percent)
    assert (r["unit"], r["threshold"], r["comparison"]) == ("%", 99.9, ">=")
    assert r["source"] == f"Prometheus {PROMETHEUS}: avg_over_time(up[1h])"


def test_uptime_breach_says_measured_and_threshold():
    r = m.uptime(FakeGet({"avg(avg_over_time(up[1h]))": vector("0.99899")}), PROMETHEUS, "1h", 99.9)
    assert r["detail"] == "measured 99.899 %, threshold >= 99.9 %"


def test_uptime_query_uses_selector_and_window():
    get = FakeGet({'avg(avg_over_time(up{job!="test"}[30m]))': vector("0.9995")})
    r = m.uptime(get, PROMETHEUS, "30m", 99.9, '{job!="test"}')
    assert r["status"] == m.PASS
    assert r["value"] == 99.95


@pytest.mark.parametrize("answer", [vector(), vector("NaN")], ids=["no-samples", "nan"])
def test_uptime_without_samples_is_unavailable(answer):
    r = m.uptime(FakeGet({"avg(avg_over_time(up[1h]))": answer}), PROMETHEUS, "1h", 99.9)
    assert r["status"] == m.UNAVAILABLE
    assert r["value"] is None
    assert "no samples" in r["detail"]


def test_uptime_without_prometheus_is_not_deployed():
    get = FakeGet({})
    r = m.uptime(get, "", "1h", 99.9)
    assert r["status"] == m.NOT_DEPLOYED
    assert r["threshold"] == 99.9
    assert get.calls == []


def test_uptime_with_prometheus_down_fails_naming_the_url(refused_url):
    r = m.uptime(m.http_json, refused_url, "1h", 99.9)
    assert r["status"] == m.FAIL
    assert r["value"] is None
    assert f"{refused_url}/api/v1/query" in r["detail"]
    assert "is not answering" in r["detail"]


def test_uptime_with_prometheus_erroring_fails_naming_the_code(serve):
    server = serve({"/api/v1/query": (500, {"status": "error", "error": "storage down"})})
    r = m.uptime(m.http_json, server.url, "1h", 99.9)
    assert r["status"] == m.FAIL
    assert "answered HTTP 500" in r["detail"]


def test_uptime_query_rejected_fails():
    error = {"status": "error", "errorType": "bad_data", "error": "parse error"}
    r = m.uptime(FakeGet({"avg(avg_over_time(up[1x]))": error}), PROMETHEUS, "1x", 99.9)
    assert r["status"] == m.FAIL
    assert "Prometheus rejected" in r["detail"]


# ---- alerting -----------------------------------------------------------------------------------


def alerting_sources(rules, alerts):
    return FakeGet({"/api/v1/rules": rules, "/api/v2/alerts": alerts})


def test_alerting_passes_with_healthy_rules_and_watchdog_delivered():
    rules = rules_answer(
        alert_rule("TargetDown"), alert_rule("Watchdog", state="firing"), alert_rule("NewRule", health="unknown")
    )
    get = alerting_sources(rules, WATCHDOG)
    r = m.alerting(get, PROMETHEUS, ALERTMANAGER + "/")
    assert r["status"] == m.PASS
    assert (r["metric"], r["value"], r["threshold"], r["comparison"]) == ("alerts_firing", 3, 1, ">=")
    assert "Watchdog delivered" in r["detail"]
    (rules_url, _), (alerts_url, _) = get.calls
    assert rules_url == f"{PROMETHEUS}/api/v1/rules"
    assert alerts_url.startswith(f"{ALERTMANAGER}/api/v2/alerts?")
    assert parse_qs(urlsplit(alerts_url).query) == {"filter": ['alertname="Watchdog"']}


def test_recording_rules_are_not_counted_as_alert_rules():
    rules = rules_answer(recording_rule("job:up:avg"), alert_rule("TargetDown"), recording_rule("job:errors:rate5m"))
    r = m.alerting(alerting_sources(rules, WATCHDOG), PROMETHEUS, ALERTMANAGER)
    assert r["status"] == m.PASS
    assert r["value"] == 1


def test_rules_failing_to_evaluate_are_named():
    rules = rules_answer(
        alert_rule("TargetDown"),
        alert_rule("DiskFull", health="err", lastError="vector contains metrics with the same labelset"),
        alert_rule("HighLatency", health="err", lastError="query timed out"),
    )
    r = m.alerting(alerting_sources(rules, WATCHDOG), PROMETHEUS, ALERTMANAGER)
    assert r["status"] == m.FAIL
    assert r["value"] == 3
    assert r["detail"] == "rules failing to evaluate: DiskFull, HighLatency"


def test_no_alert_rules_loaded_fails():
    r = m.alerting(alerting_sources(rules_answer(recording_rule("job:up:avg")), WATCHDOG), PROMETHEUS, ALERTMANAGER)
    assert r["status"] == m.FAIL
    assert r["value"] == 0
    assert r["detail"] == "no alert rules are loaded"


def test_watchdog_missing_means_alerts_do_not_reach_alertmanager():
    r = m.alerting(alerting_sources(rules_answer(alert_rule("TargetDown")), []), PROMETHEUS, ALERTMANAGER)
    assert r["status"] == m.FAIL
    assert r["value"] == 1
    assert "alerts do not reach" in r["detail"]
    assert "Watchdog" in r["detail"]


@pytest.mark.parametrize(("prometheus", "alertmanager"), [("", ALERTMANAGER), (PROMETHEUS, ""), ("", "")])
def test_alerting_without_prometheus_or_alertmanager_is_not_deployed(prometheus, alertmanager):
    get = FakeGet({})
    r = m.alerting(get, prometheus, alertmanager)
    assert r["status"] == m.NOT_DEPLOYED
    assert get.calls == []


def test_alertmanager_down_fails_naming_it(serve, refused_url):
    prometheus = serve({"/api/v1/rules": (200, rules_answer(alert_rule("TargetDown")))})
    r = m.alerting(m.http_json, prometheus.url, refused_url)
    assert r["status"] == m.FAIL
    assert f"{refused_url}/api/v2/alerts" in r["detail"]
    assert "is not answering" in r["detail"]


def test_answer_without_rule_groups_fails():
    r = m.alerting(alerting_sources({"status": "success", "data": {}}, WATCHDOG), PROMETHEUS, ALERTMANAGER)
    assert r["status"] == m.FAIL
    assert "groups" in r["detail"]


# ---- cost_vs_budget -----------------------------------------------------------------------------


class FakeBudgets:
    """describe_budget answering as AWS Budgets does; records its arguments."""

    def __init__(self, spend=None, limit="650.0"):
        self.spend, self.limit, self.calls = spend, limit, []

    def describe_budget(self, **kwargs):
        self.calls.append(kwargs)
        budget = {
            "BudgetName": kwargs["BudgetName"],
            "BudgetLimit": {"Amount": self.limit, "Unit": "USD"},
            "TimeUnit": "MONTHLY",
            "BudgetType": "COST",
            "TimePeriod": {"Start": "2024-06-01T00:00:00Z", "End": "2087-06-15T00:00:00Z"},
        }
        if self.spend is not None:
            budget["CalculatedSpend"] = {
                "ActualSpend": {"Amount": self.spend, "Unit": "USD"},
                "ForecastedSpend": {"Amount": "700.0", "Unit": "USD"},
            }
        return {"Budget": budget}


def test_emulated_aws_has_no_cost_data():
    r = m.cost_vs_budget(None, "", "argoeks-dev-monthly", emulated=True)
    assert r["status"] == m.UNAVAILABLE
    assert r["metric"] == "costs_within_budget"
    assert "emulator has no cost data" in r["detail"]


@pytest.mark.parametrize(
    ("spend", "status", "value"),
    [("123.456", m.PASS, 123.46), ("650.0", m.PASS, 650.0), ("650.01", m.FAIL, 650.01)],
)
def test_month_to_date_spend_against_the_limit(spend, status, value):
    budgets = FakeBudgets(spend)
    r = m.cost_vs_budget(budgets, "123456789012", "argoeks-dev-monthly", emulated=False)
    assert (r["status"], r["value"], r["threshold"], r["comparison"], r["unit"]) == (status, value, 650.0, "<=", "USD")
    assert budgets.calls == [{"AccountId": "123456789012", "BudgetName": "argoeks-dev-monthly"}]


def test_spend_over_budget_says_measured_and_limit():
    r = m.cost_vs_budget(FakeBudgets("650.01"), "123456789012", "argoeks-dev-monthly", emulated=False)
    assert r["detail"] == "measured 650.01 USD, threshold <= 650 USD"


def test_spend_not_calculated_yet_is_unavailable():
    r = m.cost_vs_budget(FakeBudgets(spend=None), "123456789012", "argoeks-dev-monthly", emulated=False)
    assert r["status"] == m.UNAVAILABLE
    assert r["threshold"] == 650.0
    assert "not calculated" in r["detail"]


def test_missing_budget_fails_with_the_aws_error(aws_env):
    with mock_aws():
        budgets = boto3.client("budgets", region_name="us-east-1")
        r = m.cost_vs_budget(budgets, "123456789012", "argoeks-nope", emulated=False)
    assert r["status"] == m.FAIL
    assert "NotFoundException" in r["detail"]
    assert "argoeks-nope" in r["detail"]


# ---- state_backup (moto) ------------------------------------------------------------------------

BUCKET, TABLE = "argoeks-terraform-state", "argoeks-terraform-locks"


@pytest.fixture
def aws(aws_env):
    with mock_aws():
        yield {name: boto3.client(name, region_name="us-east-1") for name in ("s3", "dynamodb", "backup")}


def state_backend(aws, versioning="Enabled", pitr=True):
    aws["s3"].create_bucket(Bucket=BUCKET)
    if versioning:
        aws["s3"].put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        if versioning == "Suspended":
            aws["s3"].put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Suspended"})
    aws["dynamodb"].create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    if pitr:
        aws["dynamodb"].update_continuous_backups(
            TableName=TABLE, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )


def test_versioning_and_pitr_on_pass(aws):
    state_backend(aws)
    aws["backup"].create_backup_plan(
        BackupPlan={
            "BackupPlanName": "argoeks-state",
            "Rules": [
                {"RuleName": "daily", "TargetBackupVaultName": "Default", "ScheduleExpression": "cron(0 5 * * ? *)"}
            ],
        }
    )
    r = m.state_backup(aws["s3"], aws["dynamodb"], aws["backup"], BUCKET, TABLE)
    assert r["status"] == m.PASS
    assert (r["metric"], r["value"], r["threshold"], r["comparison"]) == ("state_backup_automated", 2, 2, ">=")
    assert r["detail"] == "bucket versioning on, lock table PITR on; 1 AWS Backup plan(s)"


@pytest.mark.parametrize(
    ("versioning", "pitr", "value", "off"),
    [
        (None, True, 1, ["bucket versioning OFF"]),
        ("Suspended", True, 1, ["bucket versioning OFF"]),
        ("Enabled", False, 1, ["lock table PITR OFF"]),
        (None, False, 0, ["bucket versioning OFF", "lock table PITR OFF"]),
    ],
)
def test_a_control_off_fails_naming_it(aws, versioning, pitr, value, off):
    state_backend(aws, versioning, pitr)
    r = m.state_backup(aws["s3"], aws["dynamodb"], aws["backup"], BUCKET, TABLE)
    assert r["status"] == m.FAIL
    assert r["value"] == value
    for control in off:
        assert control in r["detail"]
    assert r["detail"].count("OFF") == len(off)


def test_missing_state_bucket_fails_with_the_aws_error(aws):
    r = m.state_backup(aws["s3"], aws["dynamodb"], aws["backup"], "argoeks-no-such-bucket", TABLE)
    assert r["status"] == m.FAIL
    assert "NoSuchBucket" in r["detail"]


class BackupUnavailable:
    def list_backup_plans(self):
        raise RuntimeError("backup is not emulated")


@pytest.mark.parametrize("backup", [None, BackupUnavailable()], ids=["no-client", "client-errors"])
def test_aws_backup_is_optional(aws, backup):
    state_backend(aws)
    r = m.state_backup(aws["s3"], aws["dynamodb"], backup, BUCKET, TABLE)
    assert r["status"] == m.PASS
    assert r["detail"].endswith("; 0 AWS Backup plan(s)")


# ---- time_to_train ------------------------------------------------------------------------------

START = 1718000000000


EXPERIMENTS = [experiment("1", "iris"), experiment("2", "wine")]


def mlflow(runs, experiments=EXPERIMENTS):
    return FakeGet(
        {
            "/api/2.0/mlflow/experiments/search": {"experiments": experiments},
            "/api/2.0/mlflow/runs/search": {"runs": runs, "next_page_token": ""},
        }
    )


def test_time_to_train_is_the_longest_finished_run():
    get = mlflow(
        [
            mlflow_run("a1", "FINISHED", START, START + HOUR_MS, name="quick-iris"),
            mlflow_run("b2", "FINISHED", START, START + int(2.5 * HOUR_MS), name="deep-wine", experiment_id="2"),
            mlflow_run("c3", "RUNNING", START - 10 * HOUR_MS, name="still-going"),
            mlflow_run("d4", "FAILED", START, START + 9 * HOUR_MS, name="crashed"),
            mlflow_run("e5", "KILLED", START, START + 8 * HOUR_MS, name="stopped"),
        ]
    )
    r = m.time_to_train(get, MLFLOW + "/", 4)
    assert r["status"] == m.PASS
    assert (r["metric"], r["phase"], r["value"], r["unit"], r["threshold"], r["comparison"]) == (
        "time_to_train",
        2,
        2.5,
        "h",
        4,
        "<=",
    )
    assert r["detail"] == "longest of 2 finished run(s): deep-wine"
    (experiments_url, experiments_body), (runs_url, runs_body) = get.calls
    assert experiments_url == f"{MLFLOW}/api/2.0/mlflow/experiments/search"
    assert experiments_body == {"max_results": 1000}
    assert runs_url == f"{MLFLOW}/api/2.0/mlflow/runs/search"
    assert runs_body == {"experiment_ids": ["1", "2"], "max_results": 1000}


@pytest.mark.parametrize(
    ("duration_ms", "status", "hours"),
    [(4 * HOUR_MS, m.PASS, 4.0), (4 * HOUR_MS + 36_000, m.FAIL, 4.01)],
)
def test_time_to_train_at_the_threshold(duration_ms, status, hours):
    # times as strings and no run_name: what older MLflow servers answer
    run = mlflow_run("0f1e2d", "FINISHED", str(START), str(START + duration_ms))
    r = m.time_to_train(mlflow([run]), MLFLOW, 4)
    assert (r["status"], r["value"]) == (status, hours)
    assert r["detail"] == "longest of 1 finished run(s): 0f1e2d"


@pytest.mark.parametrize(
    "runs",
    [[], [mlflow_run("r", "RUNNING", START), mlflow_run("f", "FAILED", START, START + HOUR_MS)]],
    ids=["no-runs", "none-finished"],
)
def test_time_to_train_without_a_finished_run_is_unavailable(runs):
    r = m.time_to_train(mlflow(runs), MLFLOW, 4)
    assert r["status"] == m.UNAVAILABLE
    assert "no finished run" in r["detail"]


def test_time_to_train_with_empty_mlflow_answers_is_unavailable():
    # MLflow leaves empty repeated fields out of its answers
    get = FakeGet({"/api/2.0/mlflow/experiments/search": {}, "/api/2.0/mlflow/runs/search": {}})
    assert m.time_to_train(get, MLFLOW, 4)["status"] == m.UNAVAILABLE


def test_time_to_train_without_mlflow_is_not_deployed():
    get = FakeGet({})
    r = m.time_to_train(get, "", 4)
    assert r["status"] == m.NOT_DEPLOYED
    assert get.calls == []


def test_time_to_train_with_mlflow_down_fails(refused_url):
    r = m.time_to_train(m.http_json, refused_url, 4)
    assert r["status"] == m.FAIL
    assert f"{refused_url}/api/2.0/mlflow/experiments/search is not answering" in r["detail"]


# ---- time_to_deploy and onboarding (records) ----------------------------------------------------

DEPLOY = {"model": "iris", "version": "3", "finished_at": "2024-06-10T06:13:20Z"}


@pytest.mark.parametrize(
    ("seconds", "status", "minutes"),
    [(600, m.PASS, 10.0), ("600", m.PASS, 10.0), (900, m.PASS, 15.0), (901, m.FAIL, 15.017)],
)
def test_time_to_deploy_from_the_record(seconds, status, minutes):
    r = m.time_to_deploy(DEPLOY | {"duration_seconds": seconds}, 15)
    assert (r["metric"], r["status"], r["value"], r["unit"], r["threshold"]) == (
        "time_to_deploy",
        status,
        minutes,
        "min",
        15,
    )
    assert r["source"] == "deploy record of iris version 3 (2024-06-10T06:13:20Z)"


def test_slow_deploy_says_measured_and_threshold():
    assert m.time_to_deploy(DEPLOY | {"duration_seconds": 901}, 15)["detail"] == (
        "measured 15.017 min, threshold <= 15 min"
    )


def test_no_deploy_record_is_not_deployed():
    r = m.time_to_deploy(None, 15)
    assert r["status"] == m.NOT_DEPLOYED
    assert r["value"] is None
    assert "no model deploy recorded" in r["detail"]


@pytest.mark.parametrize(
    ("seconds", "status", "hours"),
    [(1800, m.PASS, 0.5), (86400, m.PASS, 24.0), (86401, m.FAIL, 24.00028)],
)
def test_onboarding_from_the_record(seconds, status, hours):
    r = m.onboarding({"duration_seconds": seconds, "user": "newcomer"}, 24)
    assert (r["metric"], r["status"], r["value"], r["unit"], r["threshold"]) == (
        "developer_onboarding",
        status,
        hours,
        "h",
        24,
    )
    assert r["source"] == "onboarding record of newcomer"


def test_no_onboarding_record_is_not_deployed():
    r = m.onboarding(None, 24)
    assert r["status"] == m.NOT_DEPLOYED
    assert "no onboarding run recorded" in r["detail"]


def test_not_deployed_names_what_is_missing():
    r = m.not_deployed("gpu_utilisation", 3, "%", 60.0, ">=", "GPU nodes")
    assert r == {
        "metric": "gpu_utilisation",
        "phase": 3,
        "status": m.NOT_DEPLOYED,
        "value": None,
        "unit": "%",
        "threshold": 60.0,
        "comparison": ">=",
        "source": "",
        "detail": "GPU nodes is not deployed yet",
    }


# ---- percentile ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        (list(range(1, 101)), 99, 99),
        (list(range(1, 101)), 50, 50),
        (list(range(100, 0, -1)), 99, 99),
        (list(range(1, 51)), 99, 50),
        ([10, 20, 30, 40], 25, 10),
        ([10, 20, 30, 40], 50, 20),
        ([10, 20, 30, 40], 75, 30),
        ([10, 20, 30, 40], 100, 40),
        ([3.5, 1.25, 2.0], 50, 2.0),
        ([5, 1, 4], 0, 1),
        ([7], 99, 7),
    ],
)
def test_percentile_nearest_rank(values, q, expected):
    assert m.percentile(values, q) == expected


def test_percentile_of_nothing_is_nan():
    assert math.isnan(m.percentile([], 99))


# ---- inference_p99 ------------------------------------------------------------------------------

PREDICT = "/v1/models/iris:predict"


@pytest.fixture
def model(serve):
    """A KServe V1 model server that takes at least 2 ms per prediction."""
    return serve({PREDICT: (200, {"predictions": [0]})}, delay=0.002)


def p99(get, endpoint, threshold_ms=100.0, prometheus=PROMETHEUS, requests=5, post=None):
    return m.inference_p99(
        get, prometheus, '{component="model-serving"}', "5m", endpoint, PAYLOAD, threshold_ms, requests, post
    )


def test_inference_without_endpoint_is_not_deployed():
    posts = []
    r = m.inference_p99(FakeGet({}), PROMETHEUS, "", "5m", "", PAYLOAD, 100.0, 5, lambda *a: posts.append(a))
    assert r["status"] == m.NOT_DEPLOYED
    assert posts == []


def test_endpoint_down_fails_whatever_the_history_says(refused_url):
    get = FakeGet({P99_QUERY: vector("0.010")})
    endpoint = f"{refused_url}{PREDICT}"
    r = p99(get, endpoint)
    assert r["status"] == m.FAIL
    assert r["value"] is None
    assert r["source"] == endpoint
    assert r["detail"].startswith("the model endpoint does not answer:")
    assert "is not answering" in r["detail"]
    assert get.calls == []


def test_endpoint_failing_during_the_probe_fails(serve):
    def flaky(handler):
        return (200, {"predictions": [0]}) if len(handler.server.requests) <= 3 else (500, b"OOMKilled")

    server = serve({PREDICT: flaky})
    r = p99(FakeGet({P99_QUERY: vector("0.010")}), server.url + PREDICT)
    assert r["status"] == m.FAIL
    assert r["detail"].startswith("the model endpoint failed during the probe:")
    assert "answered HTTP 500" in r["detail"]
    assert len(server.requests) == 4


def test_prometheus_history_is_preferred_over_the_probe(model):
    r = p99(FakeGet({P99_QUERY: vector("0.042")}), model.url + PREDICT, requests=5)
    assert r["status"] == m.PASS
    assert (r["metric"], r["phase"], r["value"], r["unit"], r["threshold"]) == ("inference_p99", 2, 42.0, "ms", 100.0)
    assert r["source"] == f"Prometheus {PROMETHEUS}: {P99_QUERY}"
    assert r["detail"].startswith("server-side p99; client p50 ")
    assert r["detail"].endswith(" over 5 probe requests")
    assert len(r["samples_ms"]) == 5
    assert all(sample >= 2 for sample in r["samples_ms"])
    # one request to see the endpoint answers, then the probe; every one carries the payload
    assert len(model.requests) == 6
    assert all(req["method"] == "POST" and json.loads(req["body"]) == PAYLOAD for req in model.requests)


def test_prometheus_history_over_the_threshold_fails_although_the_probe_is_fast(model):
    r = p99(FakeGet({P99_QUERY: vector("0.25")}), model.url + PREDICT)
    assert r["status"] == m.FAIL
    assert r["value"] == 250.0
    assert r["source"].startswith("Prometheus")


@pytest.mark.parametrize(
    ("prometheus", "answer"),
    [
        (PROMETHEUS, vector()),
        (PROMETHEUS, vector("NaN")),
        (PROMETHEUS, m.SourceError(f"{PROMETHEUS}/api/v1/query is not answering")),
        ("", None),
    ],
    ids=["no-samples", "nan", "prometheus-down", "no-prometheus"],
)
def test_probe_p99_is_compared_without_history(model, prometheus, answer):
    get = FakeGet({P99_QUERY: answer})
    endpoint = model.url + PREDICT
    r = p99(get, endpoint, threshold_ms=10_000.0, prometheus=prometheus, requests=5)
    assert r["status"] == m.PASS
    assert len(r["samples_ms"]) == 5
    assert r["value"] == max(r["samples_ms"])  # nearest-rank p99 of 5 samples
    assert r["source"] == f"probe of 5 requests to {endpoint}"
    assert r["detail"].startswith("no latency history in Prometheus; ")
    assert len(get.calls) == (1 if prometheus else 0)


def test_probe_over_a_tiny_threshold_is_a_breach_with_the_measured_value(model):
    r = p99(FakeGet({P99_QUERY: vector()}), model.url + PREDICT, threshold_ms=0.1)
    assert r["status"] == m.FAIL
    assert r["threshold"] == 0.1
    assert r["value"] >= 2  # the server takes at least 2 ms
    assert r["value"] == max(r["samples_ms"])
    assert f"p99 {r['value']:.1f} ms over 5 probe requests" in r["detail"]


def test_probe_uses_the_given_post():
    posts = []

    def post(url, data):
        posts.append((url, data))
        return {"predictions": [0]}

    r = p99(FakeGet({}), "http://model.test/v1/models/iris:predict", prometheus="", requests=3, post=post)
    assert r["status"] == m.PASS
    assert posts == [("http://model.test/v1/models/iris:predict", PAYLOAD)] * 4
    assert len(r["samples_ms"]) == 3
