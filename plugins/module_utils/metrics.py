# Copyright: argoeks maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The roadmap's success metrics, each measured from its real source.

Every check returns a Result: the metric, the measured value and unit, the threshold, a status
(pass, fail, unavailable, not_deployed) and the source it was measured from, with a sentence
saying why when it is not a pass. Sources are passed in (an HTTP JSON getter, boto3 clients), so
the checks are the same in the module and in tests.
"""

import functools
import http.client
import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request

PASS, FAIL, UNAVAILABLE, NOT_DEPLOYED = "pass", "fail", "unavailable", "not_deployed"


class SourceError(Exception):
    """A source that should answer does not (down, refused, bad answer)."""


def result(metric, phase, status, value=None, unit="", threshold=None, comparison="", source="", detail=""):
    return {
        "metric": metric,
        "phase": phase,
        "status": status,
        "value": value,
        "unit": unit,
        "threshold": threshold,
        "comparison": comparison,
        "source": source,
        "detail": detail,
    }


def compare(value, comparison, threshold):
    return value >= threshold if comparison == ">=" else value <= threshold


def judged(metric, phase, value, unit, threshold, comparison, source, detail=""):
    """A measured value, passed or failed against its threshold."""
    ok = compare(value, comparison, threshold)
    if not ok and not detail:
        detail = f"measured {value:g} {unit}, threshold {comparison} {threshold:g} {unit}".replace("  ", " ")
    return result(metric, phase, PASS if ok else FAIL, value, unit, threshold, comparison, source, detail)


def http_json(url, data=None, timeout=10):
    """GET (or POST `data` as JSON) and decode the JSON answer; SourceError when it cannot."""
    if not url.startswith(("http://", "https://")):
        raise SourceError(f"{url} is not an http(s) URL")
    body = None if data is None else json.dumps(data).encode()
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=body, headers=headers)  # noqa: S310 - http(s) only, checked above
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) only
            return json.loads(response.read().decode())
    except urllib.error.HTTPError as error:
        raise SourceError(f"{url} answered HTTP {error.code}") from error
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise SourceError(f"{url} is not answering ({reason})") from error
    except http.client.HTTPException as error:  # something answers, but not HTTP (wrong port, cut-off body)
        raise SourceError(f"{url} did not answer HTTP ({type(error).__name__}: {str(error).strip()})") from error
    except ValueError as error:
        raise SourceError(f"{url} did not answer JSON") from error


def prometheus_query(get, prometheus_url, query):
    """The samples of an instant query, as [(labels, float)]."""
    url = f"{prometheus_url.rstrip('/')}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    answer = get(url)
    if answer.get("status") != "success":
        raise SourceError(f"Prometheus rejected {query!r}: {answer.get('error', answer)}")
    return [(item["metric"], float(item["value"][1])) for item in answer["data"]["result"]]


# ---- Phase 1 ------------------------------------------------------------------------------------


def uptime(get, prometheus_url, window, threshold, selector=""):
    """Share of scrapes in `window` that found the platform's services up (avg_over_time of up)."""
    source = f"Prometheus {prometheus_url}: avg_over_time(up{selector}[{window}])"
    if not prometheus_url:
        return result("uptime", 1, NOT_DEPLOYED, unit="%", threshold=threshold, comparison=">=", detail="no Prometheus")
    try:
        samples = prometheus_query(get, prometheus_url, f"avg(avg_over_time(up{selector}[{window}]))")
    except SourceError as error:
        return result(
            "uptime", 1, FAIL, unit="%", threshold=threshold, comparison=">=", source=source, detail=str(error)
        )
    if not samples or math.isnan(samples[0][1]):
        return result(
            "uptime",
            1,
            UNAVAILABLE,
            unit="%",
            threshold=threshold,
            comparison=">=",
            source=source,
            detail="no samples of up in the window yet",
        )
    return judged("uptime", 1, round(samples[0][1] * 100, 3), "%", threshold, ">=", source)


def alerting(get, prometheus_url, alertmanager_url):
    """Alert rules loaded and healthy, and the always-firing Watchdog delivered to Alertmanager."""
    source = f"Prometheus {prometheus_url}/api/v1/rules, Alertmanager {alertmanager_url}/api/v2/alerts"
    if not prometheus_url or not alertmanager_url:
        return result("alerts_firing", 1, NOT_DEPLOYED, unit="rules", detail="no Prometheus/Alertmanager")
    try:
        groups = get(f"{prometheus_url.rstrip('/')}/api/v1/rules")["data"]["groups"]
        watchdog = get(f"{alertmanager_url.rstrip('/')}/api/v2/alerts?filter=alertname%3D%22Watchdog%22")
    except (SourceError, KeyError) as error:
        return result("alerts_firing", 1, FAIL, unit="rules", source=source, detail=str(error))
    rules = [rule for group in groups for rule in group["rules"] if rule.get("type", "alerting") == "alerting"]
    broken = [rule["name"] for rule in rules if rule.get("health") not in ("ok", "unknown")]
    if not rules:
        return result("alerts_firing", 1, FAIL, 0, "rules", 1, ">=", source, "no alert rules are loaded")
    if broken:
        return result(
            "alerts_firing",
            1,
            FAIL,
            len(rules),
            "rules",
            1,
            ">=",
            source,
            f"rules failing to evaluate: {', '.join(broken)}",
        )
    if not watchdog:
        return result(
            "alerts_firing",
            1,
            FAIL,
            len(rules),
            "rules",
            1,
            ">=",
            source,
            "Watchdog is not in Alertmanager: alerts do not reach it",
        )
    return result(
        "alerts_firing",
        1,
        PASS,
        len(rules),
        "rules",
        1,
        ">=",
        source,
        "rules healthy; Watchdog delivered to Alertmanager",
    )


def cost_vs_budget(budgets, account, budget_name, emulated):
    """Month-to-date actual spend against the budget limit (AWS Budgets)."""
    source = f"AWS Budgets {budget_name}"
    if emulated:
        return result(
            "costs_within_budget",
            1,
            UNAVAILABLE,
            unit="USD",
            comparison="<=",
            source=source,
            detail="the local AWS emulator has no cost data (real AWS reports month-to-date spend)",
        )
    try:
        budget = budgets.describe_budget(AccountId=account, BudgetName=budget_name)["Budget"]
    except Exception as error:  # botocore errors: not found, access denied, endpoint down
        return result("costs_within_budget", 1, FAIL, unit="USD", comparison="<=", source=source, detail=str(error))
    limit = float(budget["BudgetLimit"]["Amount"])
    spend = budget.get("CalculatedSpend", {}).get("ActualSpend")
    if spend is None:
        return result(
            "costs_within_budget",
            1,
            UNAVAILABLE,
            unit="USD",
            threshold=limit,
            comparison="<=",
            source=source,
            detail="AWS has not calculated this budget's spend yet",
        )
    return judged("costs_within_budget", 1, round(float(spend["Amount"]), 2), "USD", limit, "<=", source)


def state_backup(s3, dynamodb, backup, bucket, table):
    """State bucket versioning, lock table point-in-time recovery, and any AWS Backup plan."""
    source = f"S3 {bucket} versioning, DynamoDB {table} PITR, AWS Backup plans"
    try:
        versioning = s3.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled"
        pitr = dynamodb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
        pitr_on = pitr.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus") == "ENABLED"
    except Exception as error:  # botocore errors: missing bucket/table, endpoint down
        return result("state_backup_automated", 1, FAIL, unit="controls", source=source, detail=str(error))
    plans = 0
    try:
        plans = len(backup.list_backup_plans().get("BackupPlansList", [])) if backup is not None else 0
    except Exception:  # AWS Backup is optional; an emulator may not have it
        plans = 0
    controls = {"bucket versioning": versioning, "lock table PITR": pitr_on}
    missing = [name for name, on in controls.items() if not on]
    detail = ", ".join(f"{name} {'on' if on else 'OFF'}" for name, on in controls.items())
    detail += f"; {plans} AWS Backup plan(s)"
    status = PASS if not missing else FAIL
    return result("state_backup_automated", 1, status, sum(controls.values()), "controls", 2, ">=", source, detail)


# ---- Phase 2 ------------------------------------------------------------------------------------


def time_to_train(get, mlflow_url, threshold_hours):
    """Duration of the longest finished MLflow run (end_time - start_time), in hours."""
    metric, source = "time_to_train", f"MLflow {mlflow_url} runs"
    if not mlflow_url:
        return result(
            metric,
            2,
            NOT_DEPLOYED,
            unit="h",
            threshold=threshold_hours,
            comparison="<=",
            detail="MLflow is not deployed",
        )
    base = mlflow_url.rstrip("/")
    try:
        experiments = get(f"{base}/api/2.0/mlflow/experiments/search", {"max_results": 1000}).get("experiments", [])
        ids = [e["experiment_id"] for e in experiments]
        runs = get(f"{base}/api/2.0/mlflow/runs/search", {"experiment_ids": ids, "max_results": 1000}).get("runs", [])
    except SourceError as error:
        return result(
            metric, 2, FAIL, unit="h", threshold=threshold_hours, comparison="<=", source=source, detail=str(error)
        )
    finished = [r["info"] for r in runs if r["info"].get("status") == "FINISHED" and r["info"].get("end_time")]
    if not finished:
        return result(
            metric,
            2,
            UNAVAILABLE,
            unit="h",
            threshold=threshold_hours,
            comparison="<=",
            source=source,
            detail="no finished run yet (train one: examples/mlflow/train_iris.py)",
        )
    longest = max(finished, key=lambda run: int(run["end_time"]) - int(run["start_time"]))
    hours = (int(longest["end_time"]) - int(longest["start_time"])) / 3_600_000
    detail = f"longest of {len(finished)} finished run(s): {longest.get('run_name', longest['run_id'])}"
    return judged(metric, 2, round(hours, 4), "h", threshold_hours, "<=", source, detail)


def time_to_deploy(record, threshold_minutes):
    """The last deploy's duration, as recorded by the deploy playbook ({'duration_seconds': ...})."""
    metric = "time_to_deploy"
    if record is None:
        return result(
            metric,
            2,
            NOT_DEPLOYED,
            unit="min",
            threshold=threshold_minutes,
            comparison="<=",
            detail="no model deploy recorded (deploy_model.yml writes it)",
        )
    minutes = float(record["duration_seconds"]) / 60
    model, version = record.get("model", "?"), record.get("version", "?")
    source = f"deploy record of {model} version {version} ({record.get('finished_at', '?')})"
    return judged(metric, 2, round(minutes, 3), "min", threshold_minutes, "<=", source)


def percentile(values, q):
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(0, math.ceil(q / 100 * len(ordered)) - 1)
    return ordered[rank]


def inference_p99(get, prometheus_url, selector, window, endpoint, payload, threshold_ms, probe_requests=50, post=None):
    """Model inference P99 from the model server's latency histogram; a bounded probe without history.

    The endpoint must answer either way: a server that is down is a failure whatever the history says.
    """
    metric = "inference_p99"
    # Every outcome without a measured value carries the same metric, unit, threshold and comparison.
    unmeasured = functools.partial(result, metric, 2, unit="ms", threshold=threshold_ms, comparison="<=")
    if not endpoint:
        return unmeasured(NOT_DEPLOYED, detail="no model endpoint deployed")
    post = post or http_json
    try:
        post(endpoint, payload)
    except SourceError as error:
        return unmeasured(FAIL, source=endpoint, detail=f"the model endpoint does not answer: {error}")
    timings = []
    for _ in range(probe_requests):
        started = time.perf_counter()
        try:
            post(endpoint, payload)
        except SourceError as error:
            return unmeasured(FAIL, source=endpoint, detail=f"the model endpoint failed during the probe: {error}")
        timings.append(round((time.perf_counter() - started) * 1000, 3))
    p50, p99 = percentile(timings, 50), percentile(timings, 99)
    probe = f"p50 {p50:.1f} ms, p99 {p99:.1f} ms over {len(timings)} probe requests"
    if prometheus_url:
        buckets = f"rate(http_request_duration_seconds_bucket{selector}[{window}])"
        query = f"histogram_quantile(0.99, sum by (le) ({buckets}))"
        try:
            samples = prometheus_query(get, prometheus_url, query)
        except SourceError:
            samples = []
        if samples and not math.isnan(samples[0][1]):
            value = round(samples[0][1] * 1000, 3)
            source = f"Prometheus {prometheus_url}: {query}"
            return judged(metric, 2, value, "ms", threshold_ms, "<=", source, f"server-side p99; client {probe}") | {
                "samples_ms": timings
            }
    value = percentile(timings, 99)
    source = f"probe of {len(timings)} requests to {endpoint}"
    return judged(metric, 2, value, "ms", threshold_ms, "<=", source, f"no latency history in Prometheus; {probe}") | {
        "samples_ms": timings
    }


def onboarding(record, threshold_hours):
    """The scripted new-user path (user -> notebook -> logged run), as recorded by its playbook."""
    metric = "developer_onboarding"
    if record is None:
        return result(
            metric,
            2,
            NOT_DEPLOYED,
            unit="h",
            threshold=threshold_hours,
            comparison="<=",
            detail="no onboarding run recorded (JupyterHub's onboarding check writes it)",
        )
    hours = float(record["duration_seconds"]) / 3600
    source = f"onboarding record of {record.get('user', '?')}"
    return judged(metric, 2, round(hours, 5), "h", threshold_hours, "<=", source)


def not_deployed(metric, phase, unit, threshold, comparison, what):
    return result(
        metric,
        phase,
        NOT_DEPLOYED,
        unit=unit,
        threshold=threshold,
        comparison=comparison,
        detail=f"{what} is not deployed yet",
    )
