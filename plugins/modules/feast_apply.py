#!/usr/bin/python
# Copyright: argoeks maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

DOCUMENTATION = r"""
---
module: feast_apply
short_description: Apply a Feast feature repository to its registry only when it differs, and materialise it
version_added: 0.1.0
description:
  - Computes what C(feast apply) would change in the registry of a Feast feature repository (the C(feast plan)
    view - objects created, updated or deleted, with the properties that differ) and applies the repository
    only when something differs. A rerun with the same definitions reports no change.
  - The plan is the C(--diff) output and, in check mode, all that happens. The plan is taken again by
    C(feast apply) itself, so what is applied is what Feast decides, the same as on the command line.
  - A repository Feast cannot load (a Python error in a definition, an invalid object, a data source it cannot
    read) fails the task with Feast's message and where in the repository it comes from; the registry is not
    touched, because nothing is applied before the whole repository has been loaded and planned.
  - Optionally runs C(feast materialize-incremental) up to O(end_time) and reports, per feature view, the window
    and the number of rows written to the online store.
  - O(state=absent) runs C(feast teardown). B(Like the command, it removes every project of the registry) and the
    project's tables or keys in the online store; the offline data is not touched.
  - The module runs in Ansible's Python, which has no Feast. It drives Feast through O(python), the interpreter
    of the virtualenv Feast is installed in, running a small helper script there that uses the Feast SDK's
    plan and apply API (the functions behind C(feast plan), C(feast apply), C(feast materialize-incremental) and
    C(feast teardown)) and prints its result as JSON. That virtualenv must hold the Feast release and the extras
    the repository's stores need (for example C(feast[redis,postgres]) and C(s3fs)).
author:
  - argoeks maintainers
options:
  repo_path:
    description: The feature repository (the directory holding C(feature_store.yaml) and the definitions).
    type: path
    required: true
  python:
    description:
      - Python interpreter of the virtualenv Feast is installed in, such as C(/var/lib/argoeks/venvs/feast/bin/python).
    type: path
    required: true
  fs_yaml_file:
    description: The repository's configuration file; defaults to C(feature_store.yaml) in O(repo_path).
    type: path
  state:
    description:
      - V(present) applies the repository; V(absent) tears down what the registry holds (C(feast teardown)).
    type: str
    choices: [present, absent]
    default: present
  materialize_incremental:
    description:
      - After applying, load the rows that arrived since the last materialisation (or, the first time, within
        each feature view's TTL) up to O(end_time) from the offline store into the online store.
      - Reports a change when rows were written. Moving the materialisation watermark alone is not a change.
      - Not run in check mode.
    type: bool
    default: false
  end_time:
    description:
      - End of the materialisation window, an ISO 8601 date or date and time, such as V(2026-11-26) (midnight) or
        V(2026-11-26T12:00:00Z). Without a time zone it is UTC. Defaults to now.
    type: str
  skip_source_validation:
    description: Do not check that the feature views' sources can be read (C(feast apply --skip-source-validation)).
    type: bool
    default: false
  environment:
    description:
      - Environment variables for Feast, added to the task's environment. C(feature_store.yaml) may refer to them as
        C(${NAME}), which keeps passwords out of the repository.
      - Never logged, and each value is masked wherever it appears in the result; give settings that are not secret
        (endpoints, paths) through the task's C(environment) keyword instead, which Feast sees as well.
    type: dict
    default: {}
  timeout:
    description: Seconds Feast may take for the whole task before it is stopped.
    type: int
    default: 900
notes:
  - Supports C(check_mode) and C(diff). In check mode the registry is read, never written; a SQL registry creates its
    (empty) tables when Feast first connects to it.
  - The comparison is Feast's own (C(feast plan)), without the bookkeeping timestamps Feast stamps on every object.
seealso:
  - name: Feast CLI reference
    description: feast plan, apply, materialize-incremental and teardown.
    link: https://docs.feast.dev/reference/feast-cli-commands
"""

EXAMPLES = r"""
- name: Apply the feature repository, then materialise what is new
  argoeks.mlops.feast_apply:
    repo_path: /var/lib/argoeks/feast/feature_repo
    python: /var/lib/argoeks/venvs/feast/bin/python
    materialize_incremental: true
    environment:
      FEAST_REDIS_PASSWORD: "{{ redis_password }}"
  no_log: false
  register: feast

- name: The roadmap's `feast materialize-incremental $(date +%Y-%m-%d)`
  argoeks.mlops.feast_apply:
    repo_path: /srv/feature_repo
    python: /srv/venvs/feast/bin/python
    materialize_incremental: true
    end_time: "{{ now(utc=true).strftime('%Y-%m-%d') }}"

- name: What would change (nothing is applied)
  argoeks.mlops.feast_apply:
    repo_path: /srv/feature_repo
    python: /srv/venvs/feast/bin/python
  check_mode: true
  diff: true

- name: Tear the registry down (feast teardown)
  argoeks.mlops.feast_apply:
    repo_path: /srv/feature_repo
    python: /srv/venvs/feast/bin/python
    state: absent
"""

RETURN = r"""
project:
  description: The Feast project of the repository.
  returned: always
  type: str
  sample: mlops_dev
feast_version:
  description: The Feast release that ran.
  returned: always
  type: str
  sample: 0.67.0
plan:
  description: What applying the repository changes (changed), or would change (check mode); empty lists when nothing.
  returned: when state is present
  type: dict
  contains:
    objects:
      description: Registry objects that are created, updated or deleted, deletions first.
      type: list
      elements: dict
      sample:
        - type: feature view
          name: user_features
          action: update
          changes: [{"property": "ttl", "before": "86400s", "after": "172800s"}]
    infra:
      description: Infrastructure objects (online store tables) that are created, updated or deleted.
      type: list
      elements: dict
      sample: []
registry:
  description: Names of the project's objects in the registry after the task (before it, on state=absent).
  returned: always
  type: dict
  sample:
    entities: [user_id]
    data_sources: [user_features_source]
    feature_views: [user_features]
    on_demand_feature_views: []
    stream_feature_views: []
    feature_services: []
materialized:
  description: The materialisation, per feature view its window and the rows written to the online store.
  returned: when materialize_incremental is true, not in check mode
  type: dict
  sample:
    end_time: "2026-11-26T09:41:39+00:00"
    rows: 200
    views:
      - {"name": "user_features", "start": "2026-11-25T09:41:39+00:00", "end": "2026-11-26T09:41:39+00:00", "rows": 200}
removed_projects:
  description: Projects removed from the registry (to be removed, in check mode).
  returned: when state is absent
  type: list
  elements: str
  sample: [mlops_dev]
output:
  description: What Feast printed, as on the command line (without colours).
  returned: always
  type: list
  elements: str
"""

import json
import os
import re
from datetime import datetime

from ansible.module_utils.basic import AnsibleModule

# Runs in the Feast virtualenv (python option): reads the request as JSON on stdin and writes one JSON
# document to stdout. Everything Feast prints goes to stderr, or into "feast_output".
HELPER = r"""
import contextlib
import io
import json
import os
import sys
import traceback
from datetime import datetime, timedelta, timezone
from pathlib import Path

REQUEST = json.load(sys.stdin)
_RESULT_FD = os.dup(1)
os.dup2(2, 1)
_OUTPUT = io.StringIO()
_NOISE = {"created_timestamp", "last_updated_timestamp"}


def _finish(result):
    result["feast_output"] = _OUTPUT.getvalue()
    with os.fdopen(_RESULT_FD, "w") as out:
        out.write(json.dumps(result, default=str))
    sys.exit(0)


def _in_repo(filename):
    repo = os.path.realpath(REQUEST["repo_path"])
    return bool(filename) and os.path.realpath(filename).startswith(repo + os.sep)


def _location(exc):
    repo = os.path.realpath(REQUEST["repo_path"])
    if isinstance(exc, SyntaxError) and _in_repo(exc.filename):
        return "%s:%s" % (os.path.relpath(os.path.realpath(exc.filename), repo), exc.lineno)
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _in_repo(f.filename)]
    if frames:
        return "%s:%s" % (os.path.relpath(os.path.realpath(frames[-1].filename), repo), frames[-1].lineno)
    return ""


def _fail(stage, exc):
    message = str(exc).strip()
    if isinstance(exc, SystemExit):
        printed = [line for line in _OUTPUT.getvalue().splitlines() if line.strip()]
        message = printed[-1] if printed else "exited with %s" % exc.code
    _finish({"ok": False, "stage": stage, "error_type": type(exc).__name__, "error": message or type(exc).__name__,
             "location": _location(exc), "traceback": traceback.format_exc(limit=-6)})


def _plain(value):
    from google.protobuf.json_format import MessageToDict
    from google.protobuf.message import Message

    if isinstance(value, Message):
        return MessageToDict(value, preserving_proto_field_name=True)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "__iter__"):
        return [_plain(v) for v in value]
    return str(value)


def _clean(value):
    if isinstance(value, dict):
        cleaned = {k: _clean(v) for k, v in value.items() if k not in _NOISE}
        return {k: v for k, v in cleaned.items() if not (k == "meta" and v == {})}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _changes(property_diffs):
    changes = []
    for diff in property_diffs:
        before, after = _clean(_plain(diff.val_existing)), _clean(_plain(diff.val_declared))
        if before != after:
            changes.append({"property": diff.property_name, "before": before, "after": after})
    return changes


def _entries(diffs, kind_of, changes_of):
    from feast.diff.property_diff import TransitionType
    from feast.feature_view import DUMMY_ENTITY_NAME

    actions = {TransitionType.CREATE: "create", TransitionType.DELETE: "delete", TransitionType.UPDATE: "update"}
    entries = []
    for diff in diffs:
        if diff.transition_type not in actions or diff.name == DUMMY_ENTITY_NAME:
            continue
        entry = {"type": kind_of(diff), "name": diff.name, "action": actions[diff.transition_type],
                 "changes": changes_of(diff) if diff.transition_type == TransitionType.UPDATE else []}
        if entry["action"] == "update" and not entry["changes"]:
            continue
        entries.append(entry)
    order = {"delete": 0, "update": 1, "create": 2}
    return sorted(entries, key=lambda e: (order[e["action"]], e["type"], e["name"]))


def _plan(registry_diff, infra_diff):
    return {
        "objects": _entries(registry_diff.feast_object_diffs, lambda d: d.feast_object_type.value,
                            lambda d: _changes(d.feast_object_property_diffs)),
        "infra": _entries(infra_diff.infra_object_diffs, lambda d: str(d.infra_object_type),
                          lambda d: _changes(d.infra_object_property_diffs)),
    }


def _inventory(store):
    registry, project = store.registry, store.project
    found = {
        "entities": [e.name for e in registry.list_entities(project, allow_cache=False) if e.name != "__dummy"],
        "data_sources": [d.name for d in registry.list_data_sources(project, allow_cache=False)],
        "feature_views": [v.name for v in registry.list_feature_views(project, allow_cache=False)],
        "on_demand_feature_views": [v.name for v in registry.list_on_demand_feature_views(project, allow_cache=False)],
        "stream_feature_views": [v.name for v in registry.list_stream_feature_views(project, allow_cache=False)],
        "feature_services": [s.name for s in registry.list_feature_services(project, allow_cache=False)],
    }
    return {kind: sorted(names) for kind, names in found.items()}


def _end_time():
    text = REQUEST.get("end_time")
    if not text:
        return datetime.now(timezone.utc)
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _materialize(store):
    from feast.utils import make_tzaware

    end = _end_time()
    now = datetime.now(timezone.utc)
    windows = {}
    for view in store.list_feature_views(allow_cache=False):
        if not view.online:
            continue
        start = view.most_recent_end_time
        if start is None:
            ttl = view.ttl if view.ttl and view.ttl.total_seconds() > 0 else timedelta(weeks=52)
            start = now - ttl
        windows[view.name] = make_tzaware(start)
    counts = dict.fromkeys(windows, 0)
    store_class = type(store._get_provider().online_store)
    original = store_class.online_write_batch

    def counting(self, config, table, data, progress):
        counts[table.name] = counts.get(table.name, 0) + len(data)
        return original(self, config, table, data, progress)

    store_class.online_write_batch = counting
    try:
        store.materialize_incremental(end_date=end)
    finally:
        store_class.online_write_batch = original
    views = [{"name": name, "start": windows[name].isoformat(), "end": end.isoformat(), "rows": counts.get(name, 0)}
             for name in sorted(windows)]
    return {"end_time": end.isoformat(), "views": views, "rows": sum(v["rows"] for v in views)}


def main():
    repo_path = REQUEST["repo_path"]
    fs_yaml = Path(REQUEST.get("fs_yaml_file") or os.path.join(repo_path, "feature_store.yaml"))
    action = REQUEST["action"]
    sys.path.insert(0, repo_path)
    with contextlib.redirect_stdout(_OUTPUT):
        try:
            import feast
        except BaseException as exc:
            _fail("import", exc)
        try:
            from feast import repo_operations
            from feast.feature_store import FeatureStore
            from feast.repo_config import load_repo_config

            config = load_repo_config(Path(repo_path), fs_yaml)
        except BaseException as exc:
            _fail("config", exc)

        def store():
            return FeatureStore(repo_path=repo_path, fs_yaml_file=fs_yaml)

        result = {"ok": True, "feast_version": feast.__version__, "project": config.project}
        if action in ("teardown", "teardown_plan"):
            try:
                current = store()
                result["registry"] = _inventory(current)
                result["removed_projects"] = sorted(p.name for p in current.registry.list_projects(allow_cache=False))
                result["changed"] = bool(result["removed_projects"]) or any(result["registry"].values())
                if result["changed"] and action == "teardown":
                    current.teardown()
            except BaseException as exc:
                _fail("teardown", exc)
            _finish(result)

        try:
            os.chdir(repo_path)
            repo = repo_operations._get_repo_contents(Path(repo_path), config.project, config)
        except BaseException as exc:
            _fail("load", exc)
        try:
            planner = store()
            if not REQUEST.get("skip_source_validation"):
                provider = planner._get_provider()
                for view in repo.feature_views:
                    if view.batch_source is not None:
                        provider.validate_data_source(planner.config, view.batch_source)
            registry_diff, infra_diff, _ = planner.plan(repo)
            result["plan"] = _plan(registry_diff, infra_diff)
        except BaseException as exc:
            _fail("plan", exc)
        result["changed"] = bool(result["plan"]["objects"] or result["plan"]["infra"])
        if action != "apply":
            try:
                result["registry"] = _inventory(planner)
            except BaseException as exc:
                _fail("plan", exc)
            _finish(result)

        if result["changed"]:
            try:
                applier = store()
                repo_operations.apply_total_with_repo_instance(
                    applier, config.project, applier.registry, repo, skip_source_validation=True
                )
            except BaseException as exc:
                _fail("apply", exc)
        if REQUEST.get("materialize"):
            try:
                result["materialized"] = _materialize(store())
            except BaseException as exc:
                _fail("materialize", exc)
        try:
            result["registry"] = _inventory(store())
        except BaseException as exc:
            _fail("apply", exc)
    _finish(result)


main()
"""

ANSI = re.compile(r"\x1b\[[0-9;]*m")
SYMBOLS = {"create": "+", "update": "~", "delete": "-"}
STAGES = {
    "config": "could not read its configuration",
    "load": "could not load its definitions",
    "plan": "rejected its definitions",
    "apply": "failed while applying it",
    "materialize": "failed to materialise it",
    "teardown": "failed to tear it down",
}


def show(value):
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def plan_text(project, plan):
    """The plan as text: one line per object, one indented line per changed property."""
    lines = []
    for section, entries in (("registry", plan.get("objects", [])), ("infrastructure", plan.get("infra", []))):
        if not entries:
            continue
        lines.append(f"{section} of Feast project {project}:")
        for entry in entries:
            lines.append(f"{SYMBOLS[entry['action']]} {entry['type']} {entry['name']}")
            lines.extend(f"    {c['property']}: {show(c['before'])} -> {show(c['after'])}" for c in entry["changes"])
    return "\n".join(lines) + "\n" if lines else ""


def teardown_text(project, result):
    lines = [f"- project {name}" for name in result.get("removed_projects", [])]
    for kind, names in sorted(result.get("registry", {}).items()):
        lines.extend(f"- {kind.replace('_', ' ').rstrip('s')} {name}" for name in names)
    return f"registry of Feast project {project}:\n" + "\n".join(lines) + "\n" if lines else ""


def validate(module):
    params = module.params
    repo = params["repo_path"]
    fs_yaml = params["fs_yaml_file"] or os.path.join(repo, "feature_store.yaml")
    problems = []
    if not os.path.isdir(repo):
        problems.append(f"repo_path {repo} is not a directory")
    elif not os.path.isfile(fs_yaml):
        problems.append(f"{fs_yaml} does not exist (fs_yaml_file: the repository's feature_store.yaml)")
    if not (os.path.isfile(params["python"]) and os.access(params["python"], os.X_OK)):
        problems.append(f"python {params['python']} is not an executable file (give the Feast virtualenv's bin/python)")
    if params["end_time"]:
        try:
            datetime.fromisoformat(params["end_time"].replace("Z", "+00:00"))
        except ValueError:
            problems.append(
                f"end_time '{params['end_time']}' is not an ISO 8601 date or date and time "
                "(accepted: 2026-11-26, 2026-11-26T12:00:00, 2026-11-26T12:00:00Z)"
            )
    if params["state"] == "absent" and (params["materialize_incremental"] or params["end_time"]):
        problems.append("materialize_incremental and end_time go with state=present, not state=absent")
    if params["timeout"] < 1:
        problems.append(f"timeout {params['timeout']} must be at least 1 second")
    for name in params["environment"]:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", str(name)):
            problems.append(f"environment: '{name}' is not a variable name")
    if problems:
        module.fail_json(msg="feast_apply: " + "; ".join(problems))
    return fs_yaml


def run_helper(module, request):
    params = module.params
    helper = os.path.join(module.tmpdir, "argoeks_feast_helper.py")
    with open(helper, "w") as handle:
        handle.write(HELPER)
    command = [params["python"], "-B", helper]
    timeout_bin = module.get_bin_path("timeout")
    if timeout_bin:
        command = [timeout_bin, "--kill-after=30", str(params["timeout"]), *command]
    env = {str(k): str(v) for k, v in params["environment"].items()}
    env.update(PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    rc, out, err = module.run_command(command, data=json.dumps(request), environ_update=env, cwd=params["repo_path"])
    if rc in (124, 137) and timeout_bin:
        module.fail_json(msg=f"feast_apply: Feast did not finish within {params['timeout']} seconds (timeout)", rc=rc)
    try:
        result = json.loads(out)
    except ValueError:
        tail = "\n".join(err.strip().splitlines()[-15:])
        module.fail_json(msg=f"feast_apply: could not run Feast with {params['python']} (rc={rc}):\n{tail}", rc=rc)
    result["output"] = [ANSI.sub("", line) for line in result.pop("feast_output", "").splitlines() if line.strip()]
    if not result.get("ok") and result["stage"] == "import":
        module.fail_json(
            msg=(
                f"feast_apply: Feast is not installed for {params['python']} "
                f"({result['error_type']}: {result['error']}): "
                "install it into that virtualenv, with the extras the repository's stores need"
            ),
            stage="import",
        )
    if not result.get("ok"):
        where = f" (at {result['location']} in the repository)" if result.get("location") else ""
        untouched = (
            " Nothing was applied: the registry is as it was." if result["stage"] in ("config", "load", "plan") else ""
        )
        module.fail_json(
            msg=(
                f"feast_apply: Feast {STAGES.get(result['stage'], 'failed')} ({params['repo_path']}): "
                f"{result['error_type']}: {result['error']}{where}.{untouched}"
            ),
            stage=result["stage"],
            error=result["error"],
            error_type=result["error_type"],
            location=result.get("location", ""),
            traceback=result.get("traceback", ""),
            output=result["output"],
        )
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            repo_path=dict(type="path", required=True),
            python=dict(type="path", required=True),
            fs_yaml_file=dict(type="path"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            materialize_incremental=dict(type="bool", default=False),
            end_time=dict(type="str"),
            skip_source_validation=dict(type="bool", default=False),
            environment=dict(type="dict", default={}, no_log=True),
            timeout=dict(type="int", default=900),
        ),
        supports_check_mode=True,
    )
    fs_yaml = validate(module)
    params = module.params
    request = {
        "repo_path": os.path.realpath(params["repo_path"]),
        "fs_yaml_file": os.path.realpath(fs_yaml),
        "skip_source_validation": params["skip_source_validation"],
        "end_time": params["end_time"],
    }

    if params["state"] == "absent":
        result = run_helper(module, dict(request, action="teardown_plan" if module.check_mode else "teardown"))
        text = teardown_text(result["project"], result)
        module.exit_json(
            changed=result["changed"],
            project=result["project"],
            feast_version=result["feast_version"],
            registry=result["registry"],
            removed_projects=result["removed_projects"],
            output=result["output"],
            **({"diff": {"prepared": text}} if text else {}),
        )

    action = "plan" if module.check_mode else "apply"
    result = run_helper(module, dict(request, action=action, materialize=params["materialize_incremental"]))
    text = plan_text(result["project"], result["plan"])
    materialized = result.get("materialized")
    changed = result["changed"] or bool(materialized and materialized["rows"] > 0)
    outcome = dict(
        changed=changed,
        project=result["project"],
        feast_version=result["feast_version"],
        plan=result["plan"],
        registry=result.get("registry", {}),
        output=result["output"],
    )
    if text:
        outcome["diff"] = {"prepared": text}
    if materialized is not None:
        outcome["materialized"] = materialized
    module.exit_json(**outcome)


if __name__ == "__main__":
    main()
