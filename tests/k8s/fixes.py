"""Pure helpers that give kmock 0.8's emulator the API-server behaviour it lacks.

Each function restores one piece of what a real kube-apiserver does; the comment above it
says which. They hold no state: `emulator.py` wires them into the request handling.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Any

import jsonpatch
import yaml

# ---------------------------------------------------------------------------------------------
# URL parsing
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiPath:
    group: str
    version: str
    plural: str | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None


# Restores: /api/v1/namespaces is the Namespace collection (kmock reads "namespaces" as a scope),
# /api/v1/namespaces/NAME[/status] is one Namespace, /api/v1/namespaces/NS/PLURAL[/NAME[/SUB]].
def parse_api_path(path: str) -> ApiPath | None:
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest:
        return ApiPath(group, version)
    plural, name, sub = rest[0], rest[1] if len(rest) > 1 else None, "/".join(rest[2:]) or None
    return ApiPath(group, version, plural, namespace, name, sub)


# ---------------------------------------------------------------------------------------------
# Selectors
# ---------------------------------------------------------------------------------------------

_REQ = re.compile(
    r"""^\s*(?:
        (?P<notexists>!)\s*(?P<nkey>[\w./-]+)
      | (?P<skey>[\w./-]+)\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\)
      | (?P<ekey>[\w./-]+)\s*(?P<eqop>==|=|!=)\s*(?P<value>[\w./-]*)
      | (?P<key>[\w./-]+)
    )\s*$""",
    re.VERBOSE,
)


class SelectorError(ValueError):
    pass


def _split_requirements(selector: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return out


# Restores: the labelSelector query (=, ==, !=, in, notin, exists, !exists) that kmock ignores.
def match_label_selector(selector: str | None, labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    for req in _split_requirements(selector or ""):
        m = _REQ.match(req)
        if not m:
            raise SelectorError(f"unable to parse requirement: {req!r}")
        if m["notexists"]:
            ok = m["nkey"] not in labels
        elif m["setop"]:
            values = {v.strip() for v in m["values"].split(",") if v.strip()}
            ok = (labels.get(m["skey"]) in values) if m["setop"] == "in" else (labels.get(m["skey"]) not in values)
        elif m["eqop"]:
            equal = labels.get(m["ekey"]) == m["value"]
            ok = equal if m["eqop"] != "!=" else not equal
        else:
            ok = m["key"] in labels
        if not ok:
            return False
    return True


# Restores: the fieldSelector query (metadata.name, metadata.namespace, any dotted path; =, ==, !=).
def match_field_selector(selector: str | None, obj: dict[str, Any]) -> bool:
    for req in _split_requirements(selector or ""):
        m = re.match(r"^\s*([\w.]+)\s*(==|=|!=)\s*(.*?)\s*$", req)
        if not m:
            raise SelectorError(f"invalid field selector: {req!r}")
        path, op, value = m.groups()
        cur: Any = obj
        for part in path.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        actual = "" if cur is None else str(cur)
        if (actual == value) != (op != "!="):
            return False
    return True


# ---------------------------------------------------------------------------------------------
# Patches
# ---------------------------------------------------------------------------------------------


# Restores: RFC 7386 JSON merge patch (application/merge-patch+json): null deletes, dicts merge.
def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# Strategic merge patch is NOT emulated: its directives are dropped and the rest is applied as an
# RFC 7386 merge patch, so lists are replaced whole instead of merged by their merge keys.
def strip_strategic_directives(patch: Any) -> Any:
    if isinstance(patch, dict):
        return {
            k: strip_strategic_directives(v)
            for k, v in patch.items()
            if not k.startswith(("$setElementOrder/", "$deleteFromPrimitiveList/", "$retainKeys", "$patch"))
        }
    if isinstance(patch, list):
        return [strip_strategic_directives(v) for v in patch if not (isinstance(v, dict) and "$patch" in v)]
    return patch


# Restores: the three PATCH flavours a real server accepts besides apply (json, merge, strategic).
def apply_patch(content_type: str, live: dict[str, Any], body: bytes) -> dict[str, Any]:
    data = json.loads(body or b"null")
    if content_type.startswith("application/json-patch+json"):
        return jsonpatch.apply_patch(live, data)
    if content_type.startswith("application/strategic-merge-patch+json"):
        data = strip_strategic_directives(data)
    return merge_patch(live, data)


# Restores: request bodies in YAML (apply-patch+yaml) as well as JSON.
def load_body(body: bytes, content_type: str) -> Any:
    if not body:
        return None
    if "protobuf" in content_type:
        return decode_k8s_protobuf(body)
    if "yaml" in content_type:
        return yaml.safe_load(body)
    return json.loads(body)


# ---------------------------------------------------------------------------------------------
# Server-side apply: field ownership (dict leaves only; lists are atomic)
# ---------------------------------------------------------------------------------------------

FieldPath = tuple[str, ...]
_IDENTITY = {("apiVersion",), ("kind",), ("metadata", "name"), ("metadata", "namespace")}


def leaf_paths(obj: Any, prefix: FieldPath = ()) -> set[FieldPath]:
    if isinstance(obj, dict) and obj:
        out: set[FieldPath] = set()
        for key, value in obj.items():
            out |= leaf_paths(value, (*prefix, key))
        return out
    return {prefix} if prefix else set()


def get_path(obj: Any, path: FieldPath) -> Any:
    for part in path:
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def delete_path(obj: dict[str, Any], path: FieldPath) -> None:
    parents = [obj]
    for part in path[:-1]:
        nxt = parents[-1].get(part)
        if not isinstance(nxt, dict):
            return
        parents.append(nxt)
    parents[-1].pop(path[-1], None)
    # drop the dicts the deletion emptied, as a real server prunes empty owned maps
    for depth in range(len(path) - 1, 0, -1):
        if parents[depth] == {}:
            parents[depth - 1].pop(path[depth - 1], None)


def applied_paths(config: dict[str, Any]) -> set[FieldPath]:
    config = {k: v for k, v in config.items() if k != "status"}
    meta = {k: v for k, v in (config.get("metadata") or {}).items() if k not in ("resourceVersion", "managedFields")}
    return leaf_paths({**config, "metadata": meta}) - _IDENTITY


def _overlaps(a: FieldPath, b: FieldPath) -> bool:
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def path_text(path: FieldPath) -> str:
    return "." + ".".join(path)


# Restores: server-side apply — merge the config, drop fields this manager stopped applying,
# and 409 on fields another apply manager set to a different value unless force=true.
def server_side_apply(
    live: dict[str, Any] | None,
    config: dict[str, Any],
    manager: str,
    owners: dict[str, set[FieldPath]],
    force: bool,
) -> tuple[dict[str, Any], dict[str, set[FieldPath]], list[tuple[str, FieldPath]]]:
    live = copy.deepcopy(live) if live else {}
    owners = {m: set(p) for m, p in owners.items()}
    mine = applied_paths(config)
    conflicts: list[tuple[str, FieldPath]] = []
    for other, paths in owners.items():
        if other == manager:
            continue
        for p in list(paths):
            for q in mine:
                if _overlaps(p, q) and get_path(live, q) != get_path(config, q):
                    if force:
                        paths.discard(p)
                    else:
                        conflicts.append((other, q))
    if conflicts:
        return live, owners, conflicts
    still_owned = set().union(*(p for m, p in owners.items() if m != manager)) if owners else set()
    for p in owners.get(manager, set()) - mine:
        if not any(_overlaps(p, q) for q in still_owned | mine):
            delete_path(live, p)
    result = merge_patch(live, {k: v for k, v in config.items() if k != "status"})
    owners[manager] = mine
    return result, owners, []


def fields_v1(paths: set[FieldPath]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for part in path:
            node = node.setdefault(f"f:{part}", {})
    return tree


# ---------------------------------------------------------------------------------------------
# Protobuf (application/vnd.kubernetes.protobuf) request bodies: Secret and ConfigMap
# ---------------------------------------------------------------------------------------------


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            out.append((field, value))
        elif wire == 2:
            size, pos = _varint(buf, pos)
            out.append((field, buf[pos : pos + size]))
            pos += size
        elif wire == 1:
            out.append((field, buf[pos : pos + 8]))
            pos += 8
        elif wire == 5:
            out.append((field, buf[pos : pos + 4]))
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    return out


def _map_entry(buf: bytes) -> tuple[str, bytes]:
    d = dict(_fields(buf))
    return bytes(d.get(1, b"")).decode(), bytes(d.get(2, b""))


def _object_meta(buf: bytes) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    names = {1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"}
    for field, value in _fields(buf):
        if field in names and isinstance(value, bytes):
            meta[names[field]] = value.decode()
        elif field in (11, 12) and isinstance(value, bytes):
            k, v = _map_entry(value)
            meta.setdefault("labels" if field == 11 else "annotations", {})[k] = v.decode()
        elif field == 14 and isinstance(value, bytes):
            meta.setdefault("finalizers", []).append(value.decode())
    return meta


# Restores: decoding of protobuf bodies (client-go, e.g. Helm's release Secrets) for the core
# types Secret and ConfigMap; other kinds raise ValueError (answered as 415 by the emulator).
def decode_k8s_protobuf(body: bytes) -> dict[str, Any]:
    import base64

    if not body.startswith(b"k8s\x00"):
        raise ValueError("not a Kubernetes protobuf envelope")
    unknown = dict(_fields(body[4:]))
    type_meta = dict(_fields(bytes(unknown.get(1, b""))))
    api_version = bytes(type_meta.get(1, b"")).decode()
    kind = bytes(type_meta.get(2, b"")).decode()
    raw = bytes(unknown.get(2, b""))
    obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind}
    if (api_version, kind) not in (("v1", "Secret"), ("v1", "ConfigMap")):
        raise ValueError(f"protobuf decoding of {api_version}/{kind} is not emulated")
    for field, value in _fields(raw):
        if field == 1 and isinstance(value, bytes):
            obj["metadata"] = _object_meta(value)
        elif field == 2 and isinstance(value, bytes):
            k, v = _map_entry(value)
            encoded = base64.b64encode(v).decode() if kind == "Secret" else v.decode()
            obj.setdefault("data", {})[k] = encoded
        elif field == 3 and isinstance(value, bytes):
            if kind == "Secret":
                obj["type"] = value.decode()
            else:
                k, v = _map_entry(value)
                obj.setdefault("binaryData", {})[k] = base64.b64encode(v).decode()
        elif field == 4 and isinstance(value, bytes) and kind == "Secret":
            k, v = _map_entry(value)
            obj.setdefault("stringData", {})[k] = v.decode()
        elif isinstance(value, int) and field == (5 if kind == "Secret" else 4):
            obj["immutable"] = bool(value)
    return obj
