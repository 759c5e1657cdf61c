"""The Grafana dashboards of roadmap Phase 1, Day 8-10 ("Create custom dashboards") are provisionable.

roles/observability/files/dashboards/*.json: cluster overview, cost per namespace, ML workloads and GPU
utilisation. Every check is a function returning a list of problems, so the negative tests at the end
can feed the same functions broken copies. When promql-parser is installed every expression is also
parsed by a real PromQL parser; without it the bracket balance and token scan below still apply.
"""

import copy
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

try:
    import promql_parser
except ImportError:  # optional: the test extra pins it; the structural checks do not need it
    promql_parser = None

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = ROOT / "roles" / "observability" / "files" / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
PANEL_TYPES = {"timeseries", "stat", "gauge", "table"}
GRID_COLUMNS = 24
REQUIRED_KEYS = ("uid", "title", "schemaVersion", "panels", "templating")


@dataclass(frozen=True)
class Expected:
    uid: str
    metrics: frozenset  # allow-list: every metric name an expression may select
    required: frozenset  # key metrics the dashboard must query
    panels: dict  # panel title -> fieldConfig.defaults.unit


EXPECTED = {
    "cluster-overview.json": Expected(
        uid="argoeks-cluster-overview",
        metrics=frozenset(
            {
                "node_cpu_seconds_total",
                "node_memory_MemAvailable_bytes",
                "node_memory_MemTotal_bytes",
                "kube_node_status_condition",
                "kube_pod_status_phase",
                "kube_pod_container_status_restarts_total",
                "up",
            }
        ),
        required=frozenset(
            {
                "node_cpu_seconds_total",
                "node_memory_MemAvailable_bytes",
                "node_memory_MemTotal_bytes",
                "kube_pod_status_phase",
                "kube_pod_container_status_restarts_total",
                "up",
            }
        ),
        panels={
            "Nodes ready": "none",
            "Nodes not ready": "none",
            "Cluster CPU utilisation": "percentunit",
            "Cluster memory utilisation": "percentunit",
            "Prometheus targets up": "none",
            "Prometheus targets down": "none",
            "CPU utilisation per node": "percentunit",
            "Memory utilisation per node": "percentunit",
            "Pods by phase": "none",
            "Pods by phase per namespace": "none",
            "Container restarts per namespace (1h)": "none",
            "Top restarting containers": "none",
            "Scrape targets by job": "none",
        },
    ),
    "cost-per-namespace.json": Expected(
        uid="argoeks-cost-per-namespace",
        metrics=frozenset(
            {
                "container_cpu_allocation",
                "container_memory_allocation_bytes",
                "container_gpu_allocation",
                "node_cpu_hourly_cost",
                "node_ram_hourly_cost",
                "node_gpu_hourly_cost",
                "node_total_hourly_cost",
            }
        ),
        required=frozenset(
            {
                "container_cpu_allocation",
                "container_memory_allocation_bytes",
                "node_cpu_hourly_cost",
                "node_ram_hourly_cost",
                "node_total_hourly_cost",
            }
        ),
        panels={
            "Monthly budget": "currencyUSD",
            "Cluster cost per day": "currencyUSD",
            "Month-to-date cost": "currencyUSD",
            "Projected month cost": "currencyUSD",
            "Budget used (month-to-date)": "percentunit",
            "Projected budget use": "percentunit",
            "Hourly cost by namespace": "currencyUSD",
            "Daily cost by namespace": "currencyUSD",
            "Cost per namespace": "currencyUSD",
            "Hourly cost by resource": "currencyUSD",
            "Node hourly cost": "currencyUSD",
        },
    ),
    "ml-workloads.json": Expected(
        uid="argoeks-ml-workloads",
        metrics=frozenset(
            {
                "argoeks_model_requests_total",
                "argoeks_model_request_duration_seconds_bucket",
                "argoeks_feast_online_request_duration_seconds_bucket",
                "up",
            }
        ),
        required=frozenset(
            {
                "argoeks_model_requests_total",
                "argoeks_model_request_duration_seconds_bucket",
                "argoeks_feast_online_request_duration_seconds_bucket",
                "up",
            }
        ),
        panels={
            "Request rate": "reqps",
            "Error rate": "percentunit",
            "p99 latency": "s",
            "Models serving": "none",
            "MLflow tracking server up": "none",
            "Feast online p99 latency": "s",
            "Request rate by model": "reqps",
            "Error rate by model": "percentunit",
            "Model latency p50 / p95 / p99": "s",
            "Requests by status code": "reqps",
            "Feast online retrieval latency p50 / p95 / p99": "s",
            "MLflow tracking server targets up": "none",
        },
    ),
    "gpu-utilisation.json": Expected(
        uid="argoeks-gpu-utilisation",
        metrics=frozenset(
            {
                "DCGM_FI_DEV_GPU_UTIL",
                "DCGM_FI_DEV_FB_USED",
                "DCGM_FI_DEV_FB_FREE",
                "DCGM_FI_DEV_POWER_USAGE",
                "DCGM_FI_DEV_GPU_TEMP",
                "vllm:num_requests_running",
                "vllm:gpu_cache_usage_perc",
                "vllm:kv_cache_usage_perc",  # vLLM >= 0.10's name for gpu_cache_usage_perc
                "vllm:generation_tokens_total",
                "llm:cost_usd_per_1k_tokens",  # recording rules of templates/rules.yml.j2
                "llm:cost_usd_per_request",
            }
        ),
        required=frozenset(
            {
                "DCGM_FI_DEV_GPU_UTIL",
                "DCGM_FI_DEV_FB_USED",
                "DCGM_FI_DEV_FB_FREE",
                "DCGM_FI_DEV_POWER_USAGE",
                "DCGM_FI_DEV_GPU_TEMP",
                "vllm:num_requests_running",
                "vllm:gpu_cache_usage_perc",
                "vllm:generation_tokens_total",
            }
        ),
        panels={
            "GPU utilisation (1h avg, target > 60%)": "percent",
            "GPUs": "none",
            "GPU memory used": "percentunit",
            "GPU power draw": "watt",
            "Hottest GPU": "celsius",
            "GPU utilisation per GPU": "percent",
            "GPU memory used per GPU": "percentunit",
            "GPU power usage per GPU": "watt",
            "GPU temperature per GPU": "celsius",
            "vLLM requests running": "none",
            "vLLM KV cache usage": "percentunit",
            "vLLM generation throughput": "suffix: tok/s",
            "LLM cost per 1000 tokens": "currencyUSD",
            "LLM cost per request": "currencyUSD",
        },
    ),
}
NAMES = sorted(EXPECTED)

# Grafana's own variables, and what they stand for when an expression is parsed outside Grafana.
BUILTIN_VARIABLES = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
    "__from": "1700000000",
    "__to": "1700000000",
}
VARIABLE_REF = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]")
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
PAIRS = {")": "(", "]": "[", "}": "{"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS |= {"start", "end", "inf", "nan"}
RANGE_FUNCTIONS = re.compile(r"\b(rate|irate|increase|delta|idelta|deriv|resets|changes|\w+_over_time)\s*\(")
COUNTER_FUNCTIONS = re.compile(r"\b(rate|irate|increase)\s*\(")


# ----------------------------------------------------------------------------------------------- helpers
def load(name):
    return json.loads((DASHBOARD_DIR / name).read_text())


def all_panels(dash):
    """Panels, including those nested in collapsed rows."""
    for panel in dash.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def variables(dash):
    return {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}


def targets(dash):
    """(panel title, target) for every target of every panel."""
    for panel in all_panels(dash):
        for target in panel.get("targets") or []:
            yield panel.get("title"), target


def expressions(dash):
    return [(title, t["expr"]) for title, t in targets(dash) if isinstance(t.get("expr"), str) and t["expr"].strip()]


def variable_value(var):
    if var.get("type") == "query":
        return var.get("allValue") or ".*"
    value = (var.get("current") or {}).get("value", var.get("query", ""))
    return value[0] if isinstance(value, list) else str(value)


def substitute(expr, dash):
    """The expression as Prometheus sees it: Grafana variables replaced by plausible values."""
    defined = variables(dash)

    def value(match):
        name = next(g for g in match.groups() if g)
        if name in BUILTIN_VARIABLES:
            return BUILTIN_VARIABLES[name]
        return variable_value(defined[name]) if name in defined else match.group(0)

    return VARIABLE_REF.sub(value, expr)


def bracket_problems(expr):
    stack = []
    for ch in STRING.sub('""', expr):
        if ch in "([{":
            stack.append(ch)
        elif ch in PAIRS and (not stack or stack.pop() != PAIRS[ch]):
            return [f"unbalanced {ch!r}"]
    return [f"unclosed {''.join(stack)!r}"] if stack else []


def call_arguments(expr, pattern):
    """(function name, argument text) of every call whose name matches pattern."""
    text = STRING.sub(lambda m: "_" * len(m.group(0)), expr)  # same offsets, no brackets inside strings
    for match in pattern.finditer(text):
        depth, start = 0, match.end() - 1
        for i in range(start, len(text)):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            if depth == 0:
                yield match.group(1), expr[start + 1 : i]
                break


def scan_metric_names(expr):
    """Metric names selected by a (substituted) expression, found without a PromQL parser."""
    text = STRING.sub('""', expr)
    text = re.sub(r"\{[^{}]*\}", "{}", text)  # label matchers
    text = re.sub(r"\[[^\[\]]*\]", "[]", text)  # ranges and subquery steps
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.:])[A-Za-z_:][\w:]*", text):
        word = match.group(0)
        if word.lower() in KEYWORDS or text[match.end() :].lstrip().startswith("("):
            continue  # keyword, function or aggregation
        names.add(word)
    return names


def parsed_metric_names(expr):
    names = set()

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


# ----------------------------------------------------------------------------------------------- checks
def structure_problems(dash):
    problems = [f"missing top-level key {key!r}" for key in REQUIRED_KEYS if key not in dash]
    if dash.get("id") is not None:
        problems.append("top-level id must be null (Grafana assigns it)")
    if dash.get("schemaVersion") != 39:
        problems.append(f"schemaVersion {dash.get('schemaVersion')!r}, expected 39")
    if "argoeks" not in dash.get("tags", []):
        problems.append("tags lack 'argoeks'")
    names = [v.get("name") for v in dash.get("templating", {}).get("list", [])]
    if len(names) != len(set(names)):
        problems.append(f"duplicate template variables: {names}")
    ds = variables(dash).get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        problems.append("no 'datasource' template variable of type datasource querying prometheus")
    return problems


def panel_id_problems(dash):
    ids = [panel.get("id") for panel in all_panels(dash)]
    problems = [
        f"panel {p.get('title')!r} has id {p.get('id')!r}" for p in all_panels(dash) if type(p.get("id")) is not int
    ]
    duplicates = sorted({i for i in ids if ids.count(i) > 1 and i is not None})
    if duplicates:
        problems.append(f"duplicate panel ids {duplicates}")
    return problems


def layout_problems(dash):
    problems, boxes = [], []
    for panel in all_panels(dash):
        title, grid = panel.get("title"), panel.get("gridPos") or {}
        if not all(type(grid.get(k)) is int for k in "xywh"):
            problems.append(f"{title!r}: gridPos needs integer x, y, w, h, got {grid}")
            continue
        x, y, w, h = (grid[k] for k in "xywh")
        if x < 0 or y < 0 or w < 1 or h < 1 or x + w > GRID_COLUMNS:
            problems.append(f"{title!r}: gridPos {grid} outside the {GRID_COLUMNS}-column grid")
        boxes.append((title, x, y, w, h))
    for (t1, x1, y1, w1, h1), (t2, x2, y2, w2, h2) in itertools.combinations(boxes, 2):
        if x1 < x2 + w2 and x2 < x1 + w1 and y1 < y2 + h2 and y2 < y1 + h1:
            problems.append(f"panels {t1!r} and {t2!r} overlap")
    return problems


def datasource_problems(dash):
    problems = []
    for panel in all_panels(dash):
        title = panel.get("title")
        if panel.get("type") not in PANEL_TYPES:
            problems.append(f"{title!r}: panel type {panel.get('type')!r} not in {sorted(PANEL_TYPES)}")
        if panel.get("targets") and panel.get("datasource") != DATASOURCE:
            problems.append(f"{title!r}: panel datasource {panel.get('datasource')!r}, expected {DATASOURCE}")
        for target in panel.get("targets") or []:
            if target.get("datasource", DATASOURCE) != DATASOURCE:
                problems.append(f"{title!r} {target.get('refId')}: datasource {target['datasource']!r}")
    for var in variables(dash).values():
        if var.get("type") == "query" and var.get("datasource") != DATASOURCE:
            problems.append(f"variable {var.get('name')!r}: datasource {var.get('datasource')!r}")

    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "datasource" and value not in (DATASOURCE, None):
                    problems.append(f"{path}.datasource is {value!r}: hard-coded, not ${{datasource}}")
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{path}[{i}]")

    walk(dash, "$")
    return sorted(set(problems))


def field_config_problems(dash, expected_units):
    problems = []
    by_title = {panel.get("title"): panel for panel in all_panels(dash)}
    for panel in all_panels(dash):
        defaults = panel.get("fieldConfig", {}).get("defaults", {})
        if not defaults.get("unit"):
            problems.append(f"{panel.get('title')!r}: no fieldConfig.defaults.unit")
        steps = defaults.get("thresholds", {}).get("steps", [])
        values = [s.get("value") for s in steps[1:]]
        if steps and (steps[0].get("value") is not None or values != sorted(values)):
            problems.append(f"{panel.get('title')!r}: thresholds must start at null and ascend: {steps}")
    for title, unit in expected_units.items():
        if title not in by_title:
            problems.append(f"missing panel {title!r}")
            continue
        actual = by_title[title].get("fieldConfig", {}).get("defaults", {}).get("unit")
        if actual != unit:
            problems.append(f"{title!r}: unit {actual!r}, expected {unit!r}")
    return problems


def target_problems(dash):
    problems = []
    defined = set(variables(dash)) | set(BUILTIN_VARIABLES)
    for panel in all_panels(dash):
        title, refs = panel.get("title"), []
        if not panel.get("targets"):
            problems.append(f"{title!r}: no targets")
        for target in panel.get("targets") or []:
            ref = target.get("refId")
            refs.append(ref)
            where = f"{title!r} {ref}"
            if not ref:
                problems.append(f"{title!r}: target without refId")
            expr = target.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                problems.append(f"{where}: empty or missing expr")
                continue
            undefined = {next(g for g in m.groups() if g) for m in VARIABLE_REF.finditer(expr)} - defined
            if undefined:
                problems.append(f"{where}: undefined variables {sorted(undefined)}")
            promql = substitute(expr, dash)
            problems += [f"{where}: {p} in {expr}" for p in bracket_problems(promql)]
            for function, argument in call_arguments(promql, RANGE_FUNCTIONS):
                if "[" not in argument:
                    problems.append(f"{where}: {function}() over an instant vector: {argument}")
            for function, argument in call_arguments(promql, COUNTER_FUNCTIONS):
                gauges = {n for n in scan_metric_names(argument) if not n.endswith(("_total", "_bucket", "_count"))}
                if gauges:
                    problems.append(f"{where}: {function}() of non-counter {sorted(gauges)}")
        if len(refs) != len(set(refs)):
            problems.append(f"{title!r}: duplicate refIds {refs}")
    return problems


def metric_problems(dash, expected):
    used = set()
    for _, expr in expressions(dash):
        used |= scan_metric_names(substitute(expr, dash))
    problems = [f"metric {name!r} not in this dashboard's allow-list" for name in sorted(used - expected.metrics)]
    problems += [f"key metric {name!r} never queried" for name in sorted(expected.required - used)]
    return problems


def parse_problems(dash):
    problems = []
    for title, expr in expressions(dash):
        try:
            promql_parser.parse(substitute(expr, dash))
        except ValueError as err:
            problems.append(f"{title!r}: {err}: {expr}")
    return problems


ALL_CHECKS = (structure_problems, panel_id_problems, layout_problems, datasource_problems, target_problems)


# ----------------------------------------------------------------------------------------------- tests
def test_the_four_dashboards_exist():
    assert sorted(p.name for p in DASHBOARD_DIR.glob("*.json")) == NAMES


def test_uids_are_unique_and_expected():
    uids = {name: load(name).get("uid") for name in NAMES}
    assert uids == {name: expected.uid for name, expected in EXPECTED.items()}
    assert len(set(uids.values())) == len(uids)


@pytest.mark.parametrize("name", NAMES)
def test_json_is_valid_and_two_space_formatted(name):
    text = (DASHBOARD_DIR / name).read_text()
    assert text == json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", NAMES)
def test_dashboard_passes(name, check):
    assert check(load(name)) == []


@pytest.mark.parametrize("name", NAMES)
def test_panels_titles_and_units(name):
    assert field_config_problems(load(name), EXPECTED[name].panels) == []


@pytest.mark.parametrize("name", NAMES)
def test_metrics_are_allowed_and_key_metrics_queried(name):
    assert metric_problems(load(name), EXPECTED[name]) == []


@pytest.mark.skipif(promql_parser is None, reason="promql-parser not installed (test extra: promql-parser==0.12.0)")
@pytest.mark.parametrize("name", NAMES)
def test_every_expression_parses_as_promql(name):
    dash = load(name)
    assert parse_problems(dash) == []
    for _, expr in expressions(dash):  # the parser-free token scan sees the same metrics as the parser
        promql = substitute(expr, dash)
        assert scan_metric_names(promql) == parsed_metric_names(promql), expr


def test_ml_latency_quantiles_come_from_the_model_server_histograms():
    dash = load("ml-workloads.json")
    quantiles = {}
    for _, expr in expressions(dash):
        for _, argument in call_arguments(expr, re.compile(r"\b(histogram_quantile)\s*\(")):
            phi = float(argument.split(",", 1)[0])
            quantiles.setdefault(phi, set()).update(scan_metric_names(substitute(argument, dash)))
            assert re.search(r"\bby\s*\([^)]*\ble\b", argument), f"quantile without 'by (le)': {argument}"
    model, feast = (
        "argoeks_model_request_duration_seconds_bucket",
        "argoeks_feast_online_request_duration_seconds_bucket",
    )
    for phi in (0.5, 0.95, 0.99):
        assert model in quantiles.get(phi, set()), f"no histogram_quantile({phi}, ...) over {model}"
        assert feast in quantiles.get(phi, set()), f"no histogram_quantile({phi}, ...) over {feast}"


def test_ml_workloads_do_not_use_kserve_metric_names():
    for name in NAMES:
        for _, expr in expressions(load(name)):
            assert "revision_request" not in expr, expr


def test_gpu_utilisation_target_stat():
    """Roadmap success criterion "GPU utilization: > 60%": red below 60, green from 60."""
    dash = load("gpu-utilisation.json")
    stats = [
        panel
        for panel in all_panels(dash)
        if panel["type"] == "stat"
        and any(
            re.search(r"avg_over_time\(\s*DCGM_FI_DEV_GPU_UTIL\b[^\[]*\[1h\]\)", t["expr"]) for t in panel["targets"]
        )
    ]
    assert len(stats) == 1, "one stat averaging DCGM_FI_DEV_GPU_UTIL over 1h"
    defaults = stats[0]["fieldConfig"]["defaults"]
    assert defaults["unit"] == "percent"
    assert defaults["thresholds"]["mode"] == "absolute"
    assert defaults["thresholds"]["steps"] == [{"color": "red", "value": None}, {"color": "green", "value": 60}]


def test_gpu_panels_are_per_gpu_and_node():
    dash = load("gpu-utilisation.json")
    per_gpu = [t for title, t in targets(dash) if title.endswith("per GPU")]
    assert len(per_gpu) == 4
    for target in per_gpu:
        assert re.search(r"by \(Hostname, gpu\)", target["expr"]), target["expr"]
        assert "{{Hostname}}" in target["legendFormat"] and "{{gpu}}" in target["legendFormat"]


def test_cost_dashboard_uses_the_budget_variable():
    dash = load("cost-per-namespace.json")
    budget = variables(dash).get("budget_usd")
    assert budget is not None and budget["type"] in ("textbox", "constant", "custom")
    assert float(variable_value(budget)) == 650
    platform = yaml.safe_load((ROOT / "group_vars" / "all" / "platform.yml").read_text())
    assert float(variable_value(budget)) == float(platform["budget_monthly_limit_usd"])
    exprs = dict(expressions(dash))
    assert exprs["Monthly budget"] == "vector($budget_usd)"
    assert "/ $budget_usd" in exprs["Budget used (month-to-date)"]
    assert "sum by (namespace)" in exprs["Cost per namespace"]


# ----------------------------------------------------------------------------------------------- negative
def _overlap(dash):
    dash["panels"][1]["gridPos"] = dict(dash["panels"][0]["gridPos"], x=dash["panels"][0]["gridPos"]["x"] + 1)


def _too_wide(dash):
    dash["panels"][-1]["gridPos"].update(x=20, w=8)


def _no_expr(dash):
    del dash["panels"][0]["targets"][0]["expr"]


def _unbalanced(dash):
    dash["panels"][0]["targets"][0]["expr"] += ")"


def _instant_rate(dash):
    target = dash["panels"][2]["targets"][0]
    target["expr"] = target["expr"].replace("[$__rate_interval]", "")


def _undefined_variable(dash):
    dash["panels"][0]["targets"][0]["expr"] += ' * on () group_left () up{job="$nosuchvar"}'


def _duplicate_id(dash):
    dash["panels"][1]["id"] = dash["panels"][0]["id"]


def _hard_coded_datasource(dash):
    dash["panels"][0]["datasource"] = {"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}


def _metric_typo(dash):
    for panel in dash["panels"]:
        for target in panel["targets"]:
            target["expr"] = target["expr"].replace("node_cpu_seconds_total", "node_cpu_second_total")


def _dashboard_id(dash):
    dash["id"] = 7


BROKEN = {
    "overlapping panels": (_overlap, layout_problems),
    "panel beyond 24 columns": (_too_wide, layout_problems),
    "target without expr": (_no_expr, target_problems),
    "unbalanced parenthesis": (_unbalanced, target_problems),
    "rate over an instant vector": (_instant_rate, target_problems),
    "undefined variable": (_undefined_variable, target_problems),
    "duplicate panel id": (_duplicate_id, panel_id_problems),
    "hard-coded datasource uid": (_hard_coded_datasource, datasource_problems),
    "dashboard id set": (_dashboard_id, structure_problems),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_checks_catch_a_broken_dashboard(case):
    dash = copy.deepcopy(load("cluster-overview.json"))
    mutate, check = BROKEN[case]
    assert check(dash) == []
    mutate(dash)
    assert check(dash), f"{check.__name__} missed: {case}"


def test_metric_typo_is_caught():
    dash = copy.deepcopy(load("cluster-overview.json"))
    _metric_typo(dash)
    problems = metric_problems(dash, EXPECTED["cluster-overview.json"])
    assert "metric 'node_cpu_second_total' not in this dashboard's allow-list" in problems
    assert "key metric 'node_cpu_seconds_total' never queried" in problems
