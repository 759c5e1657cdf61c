#!/usr/bin/env python3
"""Validate rendered Kubernetes manifests offline, reporting every error with the field it is in.

    python tools/validate_manifests.py RENDER_DIR [--kubernetes-version 1.32] [--crds DIR]

- Built-in kinds are checked against the Kubernetes JSON schemas of that version shipped by
  kubernetes-validate, strictly (unknown fields are errors), and every error is reported, not
  only the first.
- Custom resources are checked against the openAPIV3Schema of their CustomResourceDefinition,
  found among the rendered manifests or in --crds; unknown fields are errors there too (as with
  `kubectl apply --validate=strict`). A custom resource whose CRD is in neither place is an error,
  and so is one that comes before its CRD in the same file (it would fail to apply).

- Helm values files, which render mode writes to RENDER_DIR/values/, are not manifests and are
  skipped.

Exit status 0 when everything is valid, 1 otherwise. Produce RENDER_DIR with render mode:
    ansible-playbook -i inventories/dev phase1.yml -e k8s_render_dir=RENDER_DIR
"""

import argparse
import copy
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import kubernetes_validate.utils as kv
import yaml
from referencing import Registry, Resource


@dataclass
class Problem:
    source: str
    obj: str
    path: str
    message: str

    def __str__(self):
        return f"{self.source}: {self.obj}: {self.path or '<root>'}: {self.message}"


def load_objects(paths):
    """(file, index, object) for every YAML document in the given files, in order."""
    for path in paths:
        for index, obj in enumerate(yaml.safe_load_all(path.read_text())):
            if obj:
                yield path, index, obj


def describe(obj):
    meta = obj.get("metadata") or {}
    where = f"{meta.get('namespace')}/" if meta.get("namespace") else ""
    return f"{obj.get('kind', '?')} {where}{meta.get('name', '?')}"


def field_path(error):
    return ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in error.absolute_path).replace(".[", "[")


class BuiltinSchemas:
    def __init__(self, kubernetes_version):
        versions = [v for v in kv.all_versions() if kv.major_minor(v) <= kv.major_minor(kubernetes_version)]
        if not versions:
            raise SystemExit(f"no Kubernetes schemas for version {kubernetes_version}")
        self.schema_dir = f"v{versions[-1]}-local-strict"
        self.version = kubernetes_version
        definitions = kv.schema_contents(f"kubernetes-json-schema/{self.schema_dir}/_definitions.json", self.version)
        self.registry = Resource.from_contents(definitions) @ Registry()
        self.cache = {}

    def validator(self, obj):
        """The strict validator of obj's kind, or None for kinds Kubernetes does not define."""
        api_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", obj["apiVersion"])
        name = f"kubernetes-json-schema/{self.schema_dir}/{obj['kind'].lower()}-{api_version}.json"
        if name not in self.cache:
            try:
                schema = kv.schema_contents(name, self.version)
            except (FileNotFoundError, kv.VersionNotSupportedError):
                self.cache[name] = None
            else:
                registry = Resource.from_contents(schema) @ self.registry
                self.cache[name] = jsonschema.Draft202012Validator(schema, registry=registry)
        return self.cache[name]


def strict_crd_schema(schema):
    """openAPIV3Schema with unknown fields forbidden wherever the CRD lists properties."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if not isinstance(node, dict):
            return
        if (
            node.get("type") == "object"
            and "properties" in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
            and "additionalProperties" not in node
        ):
            node["additionalProperties"] = False
        for key in ("properties", "patternProperties"):
            for child in (node.get(key) or {}).values():
                walk(child)
        for key in ("items", "additionalProperties", "not"):
            walk(node.get(key))
        for key in ("allOf", "anyOf", "oneOf"):
            for child in node.get(key) or []:
                walk(child)

    walk(schema)
    # Every object carries apiVersion, kind and metadata, which CRD schemas need not list.
    schema.setdefault("properties", {})
    for key in ("apiVersion", "kind"):
        schema["properties"].setdefault(key, {"type": "string"})
    schema["properties"].setdefault("metadata", {"type": "object"})
    return schema


def crd_validators(objects):
    """(group, version, kind) -> validator for every CRD among objects."""
    found = {}
    for _, _, obj in objects:
        if obj.get("kind") != "CustomResourceDefinition":
            continue
        spec = obj.get("spec") or {}
        for version in spec.get("versions") or []:
            schema = ((version.get("schema") or {}).get("openAPIV3Schema")) or {"type": "object"}
            key = (spec.get("group"), version.get("name"), (spec.get("names") or {}).get("kind"))
            found[key] = jsonschema.Draft7Validator(strict_crd_schema(schema))
    return found


# Subdirectories of a render directory that hold no manifests (Helm values of the releases).
NOT_MANIFESTS = ("values",)


def manifest_files(render_dir):
    root = Path(render_dir)
    files = sorted(root.glob("**/*.yaml")) + sorted(root.glob("**/*.yml"))
    return [f for f in files if f.relative_to(root).parts[0] not in NOT_MANIFESTS]


def validate(render_dir, kubernetes_version="1.32", crd_dirs=()):
    files = manifest_files(render_dir)
    objects = list(load_objects(files))
    extra_crds = [o for d in crd_dirs for o in load_objects(sorted(Path(d).glob("**/*.y*ml")))]
    crds = crd_validators(extra_crds + objects)
    builtin = BuiltinSchemas(kubernetes_version)
    problems = []
    seen_crds = {key for key in crd_validators(extra_crds)}

    for path, index, obj in objects:
        source = f"{path.name}#{index + 1}"
        if not isinstance(obj, dict) or "apiVersion" not in obj or "kind" not in obj:
            problems.append(Problem(source, "?", "", "not a Kubernetes object (needs apiVersion and kind)"))
            continue
        if obj["kind"] == "CustomResourceDefinition":
            seen_crds |= set(crd_validators([(path, index, obj)]))
        group, _, version = obj["apiVersion"].rpartition("/")
        validator = builtin.validator(obj)
        if validator is None:
            key = (group, version, obj["kind"])
            if key not in crds:
                problems.append(
                    Problem(
                        source,
                        describe(obj),
                        "apiVersion",
                        f"no schema for kind {obj['kind']} in {obj['apiVersion']}: neither a Kubernetes "
                        f"{kubernetes_version} kind nor a CustomResourceDefinition in the manifests",
                    )
                )
                continue
            if key not in seen_crds:
                problems.append(
                    Problem(
                        source,
                        describe(obj),
                        "kind",
                        f"custom resource {obj['kind']} comes before its CustomResourceDefinition",
                    )
                )
            validator = crds[key]
        for error in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path)):
            problems.append(Problem(source, describe(obj), field_path(error), error.message))
    return objects, problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("render_dir")
    parser.add_argument("--kubernetes-version", default="1.32")
    parser.add_argument("--crds", action="append", default=[], help="directory of extra CRDs")
    args = parser.parse_args(argv)
    objects, problems = validate(args.render_dir, args.kubernetes_version, args.crds)
    for problem in problems:
        print(problem)
    print(f"{len(objects)} objects, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
