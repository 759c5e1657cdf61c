#!/usr/bin/python
# Copyright: argoeks maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

DOCUMENTATION = r"""
---
module: success_metrics
short_description: Measure the roadmap's success metrics from their real sources
version_added: 0.1.0
description:
  - Measures each success metric of the roadmap (Phases 1-3) from the system that knows it
    (Prometheus, Alertmanager, AWS Budgets, S3 and DynamoDB, MLflow, the model endpoint, records
    written by the deploy and onboarding playbooks) and compares it with its threshold.
  - Read-only; never reports a change; runs the same in check mode.
  - A metric whose component is not deployed reports C(not_deployed); one whose source has no
    data (for example cost data from a local AWS emulator) reports C(unavailable) with the reason.
    Neither counts as a breach. A source that should answer but does not is a C(fail).
  - No existing module measures these; the checks live in C(module_utils/metrics.py).
author:
  - argoeks maintainers
options:
  phases:
    description: Which phases' metrics to measure.
    type: list
    elements: int
    default: [1, 2, 3]
  thresholds:
    description: >-
      Thresholds by metric; missing keys take the roadmap's values (uptime_percent 99.9,
      train_hours 4, deploy_minutes 15, inference_p99_ms 100, onboarding_hours 24).
    type: dict
    default: {}
  window:
    description: Look-back window of the Prometheus-based metrics (a Prometheus duration).
    type: str
    default: 1h
  prometheus_url:
    description: Prometheus base URL; empty means not deployed.
    type: str
    default: ""
  alertmanager_url:
    description: Alertmanager base URL; empty means not deployed.
    type: str
    default: ""
  uptime_selector:
    description: Label selector limiting which targets count for uptime, like C({job!="test"}).
    type: str
    default: ""
  aws_emulated:
    description: AWS calls go to the local emulator (no cost data there).
    type: bool
    default: false
  budget_name:
    description: AWS Budget to compare month-to-date spend with.
    type: str
    default: ""
  state_bucket:
    description: Terraform state bucket (versioning must be on).
    type: str
    default: ""
  lock_table:
    description: Terraform lock table (point-in-time recovery must be on).
    type: str
    default: ""
  mlflow_url:
    description: MLflow tracking server; empty means not deployed.
    type: str
    default: ""
  model_endpoint:
    description: Prediction URL of the served model (KServe V1 C(:predict)); empty means not deployed.
    type: str
    default: ""
  model_payload:
    description: Request body for the model endpoint.
    type: dict
    default: {"instances": [[5.1, 3.5, 1.4, 0.2]]}
  model_selector:
    description: Label selector of the model server's latency histogram in Prometheus.
    type: str
    default: '{component="model-serving"}'
  probe_requests:
    description: Requests of the latency probe used when Prometheus has no history.
    type: int
    default: 50
  deploy_record:
    description: JSON file the deploy playbook writes (duration_seconds, model, version, finished_at).
    type: path
  onboarding_record:
    description: JSON file the onboarding check writes (duration_seconds, user).
    type: path
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Measure Phase 1 and 2
  argoeks.mlops.success_metrics:
    phases: [1, 2]
    prometheus_url: http://127.0.0.1:9090
    alertmanager_url: http://127.0.0.1:9093
    aws_emulated: true
    budget_name: argoeks-dev-monthly
    state_bucket: argoeks-terraform-state
    lock_table: argoeks-terraform-locks
    mlflow_url: http://127.0.0.1:5000
    thresholds: {inference_p99_ms: 100}
  register: metrics
"""

RETURN = r"""
results:
  description: One entry per metric.
  returned: always
  type: list
  elements: dict
  contains:
    metric: {description: Metric name, type: str, sample: inference_p99}
    phase: {description: Roadmap phase, type: int, sample: 2}
    status: {description: pass, fail, unavailable or not_deployed, type: str, sample: pass}
    value: {description: Measured value (null when not measured), type: raw, sample: 12.5}
    unit: {description: Unit of value and threshold, type: str, sample: ms}
    threshold: {description: Threshold the value is compared with, type: raw, sample: 100}
    comparison: {description: How value must compare with threshold (<= or >=), type: str, sample: "<="}
    source: {description: Where the value was measured, type: str}
    detail: {description: Why, when the status is not pass, type: str}
breaches:
  description: Names of the metrics that failed.
  returned: always
  type: list
  elements: str
counts:
  description: Number of results per status.
  returned: always
  type: dict
table:
  description: The results as aligned text lines, for people.
  returned: always
  type: list
  elements: str
"""

import json
import os

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.argoeks.mlops.plugins.module_utils import metrics as m
from ansible_collections.argoeks.mlops.plugins.module_utils.aws import retry_decorator

DEFAULT_THRESHOLDS = {
    "uptime_percent": 99.9,
    "train_hours": 4,
    "deploy_minutes": 15,
    "inference_p99_ms": 100,
    "onboarding_hours": 24,
    "llm_p99_seconds": 2,
    "token_cost_usd": 0.01,
    "gpu_utilisation_percent": 60,
    "hallucination_percent": 5,
}


def read_record(module, path):
    if not path or not os.path.exists(path):
        return None
    try:
        with open(path) as handle:
            record = json.load(handle)
        float(record["duration_seconds"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        module.fail_json(msg=f"{path} is not a valid record (needs duration_seconds): {error}")
    return record


def phase1(module, p, t):
    get = m.http_json
    results = [
        m.uptime(get, p["prometheus_url"], p["window"], float(t["uptime_percent"]), p["uptime_selector"]),
        m.alerting(get, p["prometheus_url"], p["alertmanager_url"]),
    ]
    retry = retry_decorator()
    if p["budget_name"]:
        budgets = None if p["aws_emulated"] else module.client("budgets", retry_decorator=retry)
        account = "" if p["aws_emulated"] else module.client("sts").get_caller_identity()["Account"]
        results.append(m.cost_vs_budget(budgets, account, p["budget_name"], p["aws_emulated"]))
    else:
        results.append(m.not_deployed("costs_within_budget", 1, "USD", None, "<=", "a budget"))
    if p["state_bucket"] and p["lock_table"]:
        backup = None if p["aws_emulated"] else module.client("backup", retry_decorator=retry)
        results.append(
            m.state_backup(
                module.client("s3", retry_decorator=retry),
                module.client("dynamodb", retry_decorator=retry),
                backup,
                p["state_bucket"],
                p["lock_table"],
            )
        )
    else:
        results.append(m.not_deployed("state_backup_automated", 1, "controls", 2, ">=", "a state backend"))
    return results


def phase2(module, p, t):
    get = m.http_json
    return [
        m.time_to_train(get, p["mlflow_url"], float(t["train_hours"])),
        m.time_to_deploy(read_record(module, p["deploy_record"]), float(t["deploy_minutes"])),
        m.inference_p99(
            get,
            p["prometheus_url"],
            p["model_selector"],
            p["window"],
            p["model_endpoint"],
            p["model_payload"],
            float(t["inference_p99_ms"]),
            p["probe_requests"],
        ),
        m.onboarding(read_record(module, p["onboarding_record"]), float(t["onboarding_hours"])),
    ]


def phase3(t):
    return [
        m.not_deployed("llm_inference_p99", 3, "s", float(t["llm_p99_seconds"]), "<=", "the LLM server (vLLM)"),
        m.not_deployed("token_cost_per_request", 3, "USD", float(t["token_cost_usd"]), "<=", "the LLM server"),
        m.not_deployed("gpu_utilisation", 3, "%", float(t["gpu_utilisation_percent"]), ">=", "GPU nodes"),
        m.not_deployed("hallucination_rate", 3, "%", float(t["hallucination_percent"]), "<=", "LLM evaluation"),
    ]


def table(results):
    """Aligned text lines: phase, metric, status, value, threshold, source or reason."""
    lines = [f"{'phase':<6}{'metric':<24}{'status':<14}{'value':<18}{'threshold':<16}source / reason"]
    for r in results:
        value = "-" if r["value"] is None else f"{r['value']:g} {r['unit']}".strip()
        threshold = "-" if r["threshold"] is None else f"{r['comparison']} {r['threshold']:g} {r['unit']}".strip()
        why = r["source"] if r["status"] == m.PASS else (r["detail"] or r["source"])
        lines.append(f"{r['phase']:<6}{r['metric']:<24}{r['status']:<14}{value:<18}{threshold:<16}{why}")
    return lines


def main():
    module = AnsibleAWSModule(
        argument_spec=dict(
            phases=dict(type="list", elements="int", default=[1, 2, 3]),
            thresholds=dict(type="dict", default={}),
            window=dict(type="str", default="1h"),
            prometheus_url=dict(type="str", default=""),
            alertmanager_url=dict(type="str", default=""),
            uptime_selector=dict(type="str", default=""),
            aws_emulated=dict(type="bool", default=False),
            budget_name=dict(type="str", default=""),
            state_bucket=dict(type="str", default=""),
            lock_table=dict(type="str", default=""),
            mlflow_url=dict(type="str", default=""),
            model_endpoint=dict(type="str", default=""),
            model_payload=dict(type="dict", default={"instances": [[5.1, 3.5, 1.4, 0.2]]}),
            model_selector=dict(type="str", default='{component="model-serving"}'),
            probe_requests=dict(type="int", default=50),
            deploy_record=dict(type="path"),
            onboarding_record=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    unknown = sorted(set(p["thresholds"]) - set(DEFAULT_THRESHOLDS))
    if unknown:
        known = ", ".join(DEFAULT_THRESHOLDS)
        module.fail_json(msg=f"thresholds: unknown metric(s) {', '.join(unknown)} (known: {known})")
    bad_phases = sorted(set(p["phases"]) - {1, 2, 3})
    if bad_phases:
        module.fail_json(msg=f"phases: {bad_phases} are not roadmap phases (accepted: 1, 2, 3)")
    thresholds = dict(DEFAULT_THRESHOLDS, **p["thresholds"])
    for name, value in thresholds.items():
        try:
            float(value)
        except (TypeError, ValueError):
            module.fail_json(msg=f"thresholds.{name}: {value!r} is not a number")

    results = []
    if 1 in p["phases"]:
        results += phase1(module, p, thresholds)
    if 2 in p["phases"]:
        results += phase2(module, p, thresholds)
    if 3 in p["phases"]:
        results += phase3(thresholds)
    statuses = (m.PASS, m.FAIL, m.UNAVAILABLE, m.NOT_DEPLOYED)
    counts = {status: sum(r["status"] == status for r in results) for status in statuses}
    module.exit_json(
        changed=False,
        results=results,
        breaches=[r["metric"] for r in results if r["status"] == m.FAIL],
        counts=counts,
        table=table(results),
    )


if __name__ == "__main__":
    main()
