"""A Kubernetes API emulator for tests: kmock 0.8's `KubernetesEmulator` plus the fixes in fixes.py.

`KubeEmulator` serves it over plain HTTP on 127.0.0.1 (a free port) from a background thread and
writes a kubeconfig for it, so kubectl, kubernetes.core (k8s, k8s_info, helm) and Helm 3 can run
against it. What it is not: no schema validation, defaulting, strategic merge (merge patch instead),
admission, controllers, garbage collection of owned objects, or authn/authz.

From kmock it takes the HTTP handler plumbing (request parsing, Status error rendering), the bundled
discovery data of the built-in resources (a recent K3s) and the object store (`.objects`, with each
object's history). The API semantics are the overrides below.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import hashlib
import json
import threading
import uuid
import warnings
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import kmock
import kmock._internal.parsing as kmock_parsing
import yaml

from . import fixes

KMOCK_VERSION = "0.8"
if kmock.__version__ != KMOCK_VERSION:
    raise ImportError(
        f"tests/k8s needs kmock=={KMOCK_VERSION} (its fixes use kmock internals); found {kmock.__version__}. "
        f"Install it with: pip install kmock=={KMOCK_VERSION}"
    )


# Restores: kmock's own request parsing of /api/v1/namespaces (it crashes with "not enough values to
# unpack" before any handler runs); kmock.Request gets its k8s fields from the fixed parser.
def _kmock_parse_path(path: str) -> kmock_parsing.ParsedPath:
    api = fixes.parse_api_path(path)
    if api is None:
        return kmock_parsing.ParsedPath()
    return kmock_parsing.ParsedPath(api.group, api.version, api.plural, api.namespace, api.name, api.subresource)


kmock_parsing.parse_path = _kmock_parse_path
_kmock_request_parse = kmock.Request._parse.__func__


# Restores: binary (protobuf) request bodies; kmock decodes every body as UTF-8 text and fails.
async def _parse_request(cls: type[kmock.Request], raw_request: Any, *, id: int = 0) -> kmock.Request:
    body = await raw_request.read()
    if "protobuf" not in (raw_request.content_type or ""):
        return await _kmock_request_parse(cls, raw_request, id=id)
    request = await _kmock_request_parse(cls, _BinaryBody(raw_request), id=id)
    object.__setattr__(request, "body", body)
    return request


class _BinaryBody:
    """A view of an aiohttp request whose body reads as empty text, for kmock's parser."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    async def read(self) -> bytes:
        return b""

    async def text(self) -> str:
        return ""

    async def json(self) -> Any:
        raise ValueError("binary body")

    async def post(self) -> Any:
        return None


kmock.Request._parse = classmethod(_parse_request)

SERVER_VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0-kmock", "platform": "linux/amd64"}
OPENAPI_V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
SEED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
CRD = kmock.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
NAMESPACES = kmock.resource("", "v1", "namespaces")
NAMESPACE_FINALIZE_DELAY = 0.3  # seconds a deleted namespace stays Terminating


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _version_priority(version: str) -> tuple[int, int, int]:
    # Restores: Kubernetes version ordering (v2 > v1 > v1beta2 > v1alpha1) for preferredVersion.
    import re

    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not m:
        return (-1, 0, 0)
    stage = {"alpha": 0, "beta": 1, None: 2}[m[2]]
    return (stage, int(m[1]), int(m[3] or 0))


class ApiError(kmock.KubernetesError):
    """A failure answered as a real API server's `Status` (reason is the Go StatusReason)."""


def not_found(plural: str, group: str, name: str) -> ApiError:
    res = f"{plural}.{group}" if group else plural
    return ApiError(404, "NotFound", f'{res} "{name}" not found', {"name": name, "group": group, "kind": plural})


NO_RESOURCE = ApiError(404, "NotFound", "the server could not find the requested resource", {})


@attrs.define(kw_only=True)
class FixedKubernetesEmulator(kmock.KubernetesEmulator):
    """kmock's emulator with the request handling of a real API server (see the module docstring)."""

    port: int = 0
    _rv: int = attrs.field(default=0, init=False)
    _owners: dict[Any, dict[str, set[fixes.FieldPath]]] = attrs.field(factory=dict, init=False)
    _events: list[tuple[int, Any, str, dict[str, Any]]] = attrs.field(factory=list, init=False)
    stopping: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        # Restores: discovery of all built-in resources (kinds, scopes, verbs), from kmock's bundled data.
        with warnings.catch_warnings():  # kmock reads its data with a deprecated importlib call
            warnings.simplefilter("ignore", DeprecationWarning)
            self.resources.load_bundled()
        # Restores: the namespaces every cluster starts with.
        for ns in SEED_NAMESPACES:
            self._write((NAMESPACES, None, ns), self._new_meta({"apiVersion": "v1", "kind": "Namespace"}, ns, None))

    # ----------------------------------------------------------------------------------- store

    def _read(self, key: Any) -> dict[str, Any] | None:
        obj = self.objects._objects.get(key)
        return None if obj is None or obj.deleted else copy.deepcopy(obj.raw)

    def _write(self, key: Any, data: dict[str, Any], event: str = "ADDED") -> dict[str, Any]:
        if key in self.objects:
            self.objects[key].create(copy.deepcopy(data))
        else:
            self.objects[key] = copy.deepcopy(data)
        self._events.append((self._rv, key, event, copy.deepcopy(data)))
        return data

    def _remove(self, key: Any) -> None:
        last = self._read(key) or {}
        self.objects[key].delete()
        self._owners.pop(key, None)
        self._rv += 1
        self._events.append((self._rv, key, "DELETED", last))

    def _keys(self, res: Any, namespace: str | None) -> list[Any]:
        return [
            key
            for key, obj in self.objects.items()
            if key[0] == res and (namespace is None or key[1] == namespace) and not obj.deleted
        ]

    def _new_meta(self, data: dict[str, Any], name: str, namespace: str | None) -> dict[str, Any]:
        # Restores: server-set metadata (uid, creationTimestamp, resourceVersion, generation).
        self._rv += 1
        meta = data.setdefault("metadata", {})
        meta.update(name=name, uid=str(uuid.uuid4()), creationTimestamp=_now(), resourceVersion=str(self._rv))
        meta["generation"] = 1
        if namespace is not None:
            meta["namespace"] = namespace
        if data.get("kind") == "Namespace":
            data["spec"] = {"finalizers": ["kubernetes"]}
            data["status"] = {"phase": "Active"}
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        return data

    # ------------------------------------------------------------------------------- responses

    @staticmethod
    def _json(data: Any, status: int = 200) -> aiohttp.web.Response:
        return aiohttp.web.json_response(data, status=status)

    async def _render_error(self, exc: Exception) -> aiohttp.web.StreamResponse:
        # Restores: Status bodies with the Go reason names (NotFound, AlreadyExists, ...), no traceback.
        if isinstance(exc, kmock.KubernetesError):
            code, reason, message, details = exc.status, exc.reason, exc.message, exc.details
        else:
            code, reason, message, details = 500, "InternalError", f"{type(exc).__name__}: {exc}", None
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message}
        body.update(reason=reason, code=code)
        if details:
            body["details"] = details
        return self._json(body, status=code)

    # ------------------------------------------------------------------------------- discovery

    def _gvs(self) -> dict[str, dict[str, list[tuple[Any, kmock.ResourceInfo]]]]:
        groups: dict[str, dict[str, list[tuple[Any, kmock.ResourceInfo]]]] = {}
        for res in self.resources:
            groups.setdefault(res.group, {}).setdefault(res.version, []).append((res, self.resources[res]))
        return groups

    def _api_group(self, group: str, versions: list[str]) -> dict[str, Any]:
        ordered = sorted(versions, key=_version_priority, reverse=True)
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in ordered]
        return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}

    # Restores: /api, /apis, /apis/G, /api/v1 and /apis/G/V discovery, incl. CRDs created at runtime.
    def _discovery(self, path: str) -> dict[str, Any]:
        groups = self._gvs()
        parts = [p for p in path.split("/") if p]
        if parts == ["api"]:
            addr = [{"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.port}"}]
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": addr}
        if parts == ["apis"]:
            items = [self._api_group(g, list(vs)) for g, vs in sorted(groups.items()) if g]
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": items}
        if len(parts) == 2 and parts[0] == "apis" and parts[1] in groups:
            return {"kind": "APIGroup", "apiVersion": "v1", **self._api_group(parts[1], list(groups[parts[1]]))}
        group, version = ("", parts[1]) if parts[0] == "api" and len(parts) == 2 else (parts[1], parts[2])
        if len(parts) not in (2, 3) or version not in groups.get(group, {}):
            raise NO_RESOURCE
        resources = []
        for res, info in sorted(groups[group][version], key=lambda ri: ri[0].plural):
            entry = {
                "name": res.plural,
                "singularName": info.singular or "",
                "namespaced": bool(info.namespaced),
                "kind": info.kind or res.plural.capitalize(),
                "verbs": sorted(info.verbs or ALL_VERBS),
            }
            if info.shortnames:
                entry["shortNames"] = sorted(info.shortnames)
            if info.categories:
                entry["categories"] = sorted(info.categories)
            resources.append(entry)
            for sub in sorted(info.subresources):
                verbs = ["get", "patch", "update"] if sub in ("status", "scale") else ["create", "get"]
                sub_kind = {"scale": "Scale"}.get(sub, entry["kind"])
                resources.append({**entry, "name": f"{res.plural}/{sub}", "kind": sub_kind, "verbs": verbs})
                for extra in ("shortNames", "categories"):
                    resources[-1].pop(extra, None)
        gv = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}

    # Restores: an OpenAPI v3 index whose PATCH operations declare the fieldValidation parameter, so
    # kubectl leaves validation to the server (not emulated) instead of failing to download schemas.
    # There are no schemas: kubectl falls back to built-in types (strategic merge) or merge patches.
    def _openapi_v3(self, path: str) -> dict[str, Any]:
        groups = self._gvs()
        if path == "/openapi/v3":
            index = {}
            for group, versions in groups.items():
                for version, resources in versions.items():
                    gv_path = f"apis/{group}/{version}" if group else f"api/{version}"
                    digest = hashlib.sha256(repr(sorted(str(r) for r, _ in resources)).encode()).hexdigest()
                    index[gv_path] = {"serverRelativeURL": f"/openapi/v3/{gv_path}?hash={digest[:32].upper()}"}
            return {"paths": index}
        parts = path.split("/")[3:]
        group, version = ("", parts[1]) if parts[:1] == ["api"] and len(parts) == 2 else (parts[1], parts[-1])
        if len(parts) not in (2, 3) or version not in groups.get(group, {}):
            raise NO_RESOURCE
        params = [
            {"name": n, "in": "query", "schema": {"type": "string"}}
            for n in ("dryRun", "fieldManager", "fieldValidation", "force")
        ]
        paths = {}
        for res, info in groups[group][version]:
            prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
            scope = "/namespaces/{namespace}" if info.namespaced else ""
            gvk = {"group": group, "version": version, "kind": info.kind}
            operation = {
                "x-kubernetes-group-version-kind": gvk,
                "x-kubernetes-action": "patch",
                "parameters": params,
                "responses": {"200": {"description": "OK"}},
            }
            paths[f"{prefix}{scope}/{res.plural}/{{name}}"] = {"patch": operation}
        info_block = {"title": "Kubernetes (kmock emulator)", "version": SERVER_VERSION["gitVersion"]}
        return {"openapi": "3.0.0", "info": info_block, "paths": paths, "components": {"schemas": {}}}

    # ------------------------------------------------------------------------------ dispatching

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        path = request.url.path.rstrip("/") or "/"
        if path == "/version":
            return self._json(SERVER_VERSION)
        if path in ("/healthz", "/livez", "/readyz"):
            return aiohttp.web.Response(text="ok")
        if path == "/":
            return self._json({"paths": ["/api", "/api/v1", "/apis", "/version"]})
        if path == "/openapi/v3" or path.startswith("/openapi/v3/"):
            return self._json(self._openapi_v3(path))
        if path == "/openapi/v2":
            # Restores: an OpenAPI v2 document kubectl can load (an empty protobuf Document: no schemas),
            # so client-side validation of kinds the server does not know is skipped, as for real CRs.
            return aiohttp.web.Response(body=b"", headers={"Content-Type": OPENAPI_V2_PROTOBUF})
        api = fixes.parse_api_path(path)
        if path in ("/api", "/apis") or (path.startswith("/apis/") and path.count("/") == 2):
            return self._json(self._discovery(path))
        if api is None:
            raise NO_RESOURCE
        if api.plural is None:
            return self._json(self._discovery(path))
        return await self._serve_resource(request, api)

    def _info(self, api: fixes.ApiPath) -> tuple[Any, kmock.ResourceInfo]:
        res = kmock.resource(api.group, api.version, api.plural)
        if res not in self.resources:
            raise NO_RESOURCE
        info = self.resources[res]
        if api.namespace is not None and not info.namespaced:
            raise NO_RESOURCE
        if api.subresource and api.subresource not in info.subresources:
            raise NO_RESOURCE
        return res, info

    async def _serve_resource(self, request: kmock.Request, api: fixes.ApiPath) -> aiohttp.web.StreamResponse:
        res, info = self._info(api)
        params = request.params
        method = request.method.value if hasattr(request.method, "value") else str(request.method)
        dry_run = params.get("dryRun") == "All"
        ctype = request.headers.get("Content-Type", "application/json")
        try:
            body = fixes.load_body(request.body, ctype) if method in ("POST", "PUT", "PATCH") else None
        except (ValueError, yaml.YAMLError) as e:
            code, reason = (415, "UnsupportedMediaType") if "protobuf" in ctype else (400, "BadRequest")
            raise ApiError(code, reason, f"the body of the request could not be decoded: {e}", {}) from e
        try:
            if method == "GET" and params.get("watch") in ("true", "1"):
                return await self._watch(request, res, info, api)
            if method == "GET" and api.name is None:
                return self._json(self._list(res, info, api, params))
            if method == "GET":
                return self._json(self._get(res, info, api))
            if method == "POST" and api.name is None:
                return self._json(self._create(res, info, api, body, params, dry_run), status=201)
            if method == "PUT" and api.name is not None:
                return self._json(self._replace(res, info, api, body, params, dry_run))
            if method == "PATCH" and api.name is not None:
                obj, created = self._patch(res, info, api, request.body, body, ctype, params, dry_run)
                return self._json(obj, status=201 if created else 200)
            if method == "DELETE" and api.name is not None:
                return self._json(self._delete(res, info, api, dry_run))
            if method == "DELETE":
                return self._json(self._delete_collection(res, info, api, params, dry_run))
        except fixes.SelectorError as e:
            raise ApiError(400, "BadRequest", str(e), {}) from e
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {})

    # ---------------------------------------------------------------------------------- reading

    def _key(self, res: Any, info: kmock.ResourceInfo, namespace: str | None, name: str) -> Any:
        return (res, namespace if info.namespaced else None, name)

    def _decorate(self, obj: dict[str, Any], res: Any, info: kmock.ResourceInfo) -> dict[str, Any]:
        obj["apiVersion"] = f"{res.group}/{res.version}" if res.group else res.version
        obj["kind"] = info.kind
        key = self._key(res, info, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        owners = self._owners.get(key) or {}
        if owners:
            obj["metadata"]["managedFields"] = [
                {
                    "manager": manager,
                    "operation": "Apply",
                    "apiVersion": obj["apiVersion"],
                    "time": obj["metadata"].get("creationTimestamp"),
                    "fieldsType": "FieldsV1",
                    "fieldsV1": fixes.fields_v1(paths),
                }
                for manager, paths in sorted(owners.items())
            ]
        return obj

    def _get(self, res: Any, info: kmock.ResourceInfo, api: fixes.ApiPath) -> dict[str, Any]:
        obj = self._read(self._key(res, info, api.namespace, api.name))
        if obj is None:
            raise not_found(res.plural, res.group, api.name)
        return self._decorate(obj, res, info)

    def _select(self, res: Any, info: kmock.ResourceInfo, api: fixes.ApiPath, params: Any) -> list[Any]:
        keys = []
        for key in self._keys(res, api.namespace if info.namespaced else None):
            obj = self._read(key)
            if fixes.match_label_selector(params.get("labelSelector"), obj["metadata"].get("labels")) and (
                fixes.match_field_selector(params.get("fieldSelector"), obj)
            ):
                keys.append(key)
        return sorted(keys, key=lambda k: (k[1] or "", k[2]))

    # Restores: lists with kind XList, apiVersion, a real resourceVersion, filtered by the selectors.
    def _list(self, res: Any, info: kmock.ResourceInfo, api: fixes.ApiPath, params: Any) -> dict[str, Any]:
        items = [self._decorate(self._read(k), res, info) for k in self._select(res, info, api, params)]
        gv = f"{res.group}/{res.version}" if res.group else res.version
        meta = {"resourceVersion": str(self._rv)}
        return {"kind": f"{info.kind}List", "apiVersion": gv, "metadata": meta, "items": items}

    # Restores: watch streams (initial ADDED events, then changes) that end at timeoutSeconds.
    async def _watch(
        self, request: kmock.Request, res: Any, info: kmock.ResourceInfo, api: fixes.ApiPath
    ) -> aiohttp.web.StreamResponse:
        params = request.params
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request._raw_request)
        since = params.get("resourceVersion")
        namespace = api.namespace if info.namespaced else None

        def wanted(key: Any, obj: dict[str, Any]) -> bool:
            return (
                key[0] == res
                and (namespace is None or key[1] == namespace)
                and (api.name is None or key[2] == api.name)
                and fixes.match_label_selector(params.get("labelSelector"), obj["metadata"].get("labels"))
                and fixes.match_field_selector(params.get("fieldSelector"), obj)
            )

        async def send(kind: str, obj: dict[str, Any]) -> None:
            await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")

        if since in (None, "", "0"):
            for key in self._select(res, info, api, params):
                if api.name is None or key[2] == api.name:
                    await send("ADDED", self._decorate(self._read(key), res, info))
            position = len(self._events)
        else:
            position = next((i for i, e in enumerate(self._events) if e[0] > int(since)), len(self._events))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(float(params.get("timeoutSeconds", 300)), 300)
        with contextlib.suppress(ConnectionError):
            while not self.stopping and loop.time() < deadline:
                while position < len(self._events):
                    _, key, kind, obj = self._events[position]
                    position += 1
                    if obj and wanted(key, obj):
                        await send(kind, self._decorate(copy.deepcopy(obj), res, info))
                await asyncio.sleep(0.05)
            await response.write_eof()
        return response

    # ---------------------------------------------------------------------------------- writing

    def _check_namespace(self, info: kmock.ResourceInfo, namespace: str | None) -> None:
        if not info.namespaced:
            return
        ns = self._read((NAMESPACES, None, namespace))
        if ns is None:
            # Restores: creating in a namespace that does not exist is a 404 NotFound.
            raise not_found("namespaces", "", namespace or "")
        if ns["metadata"].get("deletionTimestamp"):
            # Restores: a Terminating namespace refuses new content (403 Forbidden).
            msg = f"unable to create new content in namespace {namespace} because it is being terminated"
            raise ApiError(403, "Forbidden", msg, {"name": namespace, "kind": "namespaces"})

    def _check_body(self, res: Any, info: kmock.ResourceInfo, api: fixes.ApiPath, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the request body must be a JSON or YAML object", {})
        gv = f"{res.group}/{res.version}" if res.group else res.version
        if body.get("kind") not in (None, info.kind) or body.get("apiVersion") not in (None, gv):
            msg = (
                f"the API version in the data ({body.get('apiVersion')}) does not match the expected API version ({gv})"
            )
            raise ApiError(400, "BadRequest", msg, {})
        meta = body.setdefault("metadata", {})
        if info.namespaced:
            if meta.get("namespace") not in (None, "", api.namespace):
                msg = "the namespace of the provided object does not match the namespace sent on the request"
                raise ApiError(400, "BadRequest", msg, {})
            if api.namespace is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        else:
            meta.pop("namespace", None)
        body["apiVersion"], body["kind"] = gv, info.kind
        return body

    def _create(
        self, res: Any, info: kmock.ResourceInfo, api: fixes.ApiPath, body: Any, params: Any, dry_run: bool
    ) -> dict[str, Any]:
        body = self._check_body(res, info, api, body)
        meta = body["metadata"]
        name = meta.get("name") or (meta.get("generateName") and meta["generateName"] + uuid.uuid4().hex[:5])
        if not name:
            msg = f'{info.kind} "" is invalid: metadata.name: Required value: name or generateName is required'
            raise ApiError(422, "Invalid", msg, {"kind": info.kind})
        self._check_namespace(info, api.namespace)
        key = self._key(res, info, api.namespace, name)
        if self._read(key) is not None:
            # Restores: 409 AlreadyExists on a duplicate create.
            res_name = f"{res.plural}.{res.group}" if res.group else res.plural
            details = {"name": name, "group": res.group, "kind": res.plural}
            raise ApiError(409, "AlreadyExists", f'{res_name} "{name}" already exists', details)
        for server_set in ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields"):
            meta.pop(server_set, None)
        obj = copy.deepcopy(body)
        if dry_run:
            rv = self._rv
            obj = self._new_meta(obj, name, api.namespace if info.namespaced else None)
            self._rv = rv
            obj["metadata"]["resourceVersion"] = ""
            return self._decorate(obj, res, info)
        obj = self._new_meta(obj, name, api.namespace if info.namespaced else None)
        self._after_write(res, obj)
        self._write(key, obj)
        return self._decorate(copy.deepcopy(obj), res, info)

    def _store_update(
        self,
        res: Any,
        info: kmock.ResourceInfo,
        key: Any,
        old: dict[str, Any],
        new: dict[str, Any],
        dry_run: bool,
        status_write: bool = False,
    ) -> dict[str, Any]:
        """Persist `new` over `old` the way a real server does and return what it answers."""
        meta = new.setdefault("metadata", {})
        for kept in ("uid", "creationTimestamp", "name", "namespace", "deletionTimestamp"):
            if kept in old["metadata"]:
                meta[kept] = old["metadata"][kept]
            else:
                meta.pop(kept, None)
        meta.pop("managedFields", None)
        new["apiVersion"], new["kind"] = old.get("apiVersion"), old.get("kind")
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        meta["generation"] = old["metadata"].get("generation", 1)
        if "status" in info.subresources and not status_write:
            # Restores: the main resource ignores status changes when a status subresource exists.
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        if new == old:
            # Restores: a no-op write changes nothing (same resourceVersion), so re-applies are idempotent.
            return self._decorate(new, res, info)
        body_old = {k: v for k, v in old.items() if k not in ("metadata", "status")}
        body_new = {k: v for k, v in new.items() if k not in ("metadata", "status")}
        if body_old != body_new:
            meta["generation"] = meta["generation"] + 1  # Restores: generation counts spec changes.
        if dry_run:
            return self._decorate(new, res, info)
        self._rv += 1
        meta["resourceVersion"] = str(self._rv)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            # Restores: removing the last finalizer of a deleting object deletes it.
            self._remove(key)
            return self._decorate(new, res, info)
        self._after_write(res, new)
        self._write(key, new, "MODIFIED")
        return self._decorate(copy.deepcopy(new), res, info)

    def _status_only(self, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        # Restores: the status subresource writes .status only.
        result = copy.deepcopy(old)
        result["status"] = new.get("status")
        if result["status"] is None:
            result.pop("status")
        return result

    def _replace(
        self, res: Any, info: kmock.ResourceInfo, api: fixes.ApiPath, body: Any, params: Any, dry_run: bool
    ) -> dict[str, Any]:
        # Restores: PUT replaces an object, with optimistic concurrency on metadata.resourceVersion.
        body = self._check_body(res, info, api, body)
        key = self._key(res, info, api.namespace, api.name)
        old = self._read(key)
        if old is None:
            raise not_found(res.plural, res.group, api.name)
        if body["metadata"].get("name") not in (None, api.name):
            raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL", {})
        rv = body["metadata"].get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            msg = (
                f'Operation cannot be fulfilled on {res.plural} "{api.name}": the object has been modified;'
                " please apply your changes to the latest version and try again"
            )
            raise ApiError(409, "Conflict", msg, {"name": api.name, "group": res.group, "kind": res.plural})
        if api.subresource == "status":
            return self._store_update(res, info, key, old, self._status_only(old, body), dry_run, True)
        return self._store_update(res, info, key, old, body, dry_run)

    def _patch(
        self,
        res: Any,
        info: kmock.ResourceInfo,
        api: fixes.ApiPath,
        raw: bytes,
        body: Any,
        ctype: str,
        params: Any,
        dry_run: bool,
    ) -> tuple[dict[str, Any], bool]:
        key = self._key(res, info, api.namespace, api.name)
        old = self._read(key)
        force = params.get("force") in ("true", "1")
        manager = params.get("fieldManager")
        if ctype.startswith("application/apply-patch"):
            # Restores: server-side apply — requires fieldManager, creates when absent, merges when present.
            if not manager:
                msg = (
                    'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch'
                )
                raise ApiError(422, "Invalid", msg, {})
            config = self._check_body(res, info, api, body)
            if config["metadata"].get("name") not in (None, api.name):
                raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL", {})
            config["metadata"]["name"] = api.name
            merged, owners, conflicts = fixes.server_side_apply(
                old, config, manager, self._owners.get(key, {}) if old else {}, force
            )
            if conflicts:
                fields = [f'conflict with "{m}": {fixes.path_text(p)}' for m, p in conflicts]
                msg = f"Apply failed with {len(conflicts)} conflict{'s' if len(conflicts) > 1 else ''}: " + "\n".join(
                    fields
                )
                causes = [
                    {"type": "FieldManagerConflict", "message": f'conflict with "{m}"', "field": fixes.path_text(p)}
                    for m, p in conflicts
                ]
                raise ApiError(409, "Conflict", msg, {"causes": causes})
            if old is None:
                obj = self._create(res, info, api, merged, params, dry_run)
                if not dry_run:
                    self._owners[key] = owners
                    obj = self._get(res, info, api)
                return obj, True
            if not dry_run:
                self._owners[key] = owners
            return self._store_update(res, info, key, old, merged, dry_run), False
        if force:
            raise ApiError(422, "Invalid", "force: Forbidden: may not be specified for non-apply patch", {})
        if old is None:
            raise not_found(res.plural, res.group, api.name)
        try:
            new = fixes.apply_patch(ctype, copy.deepcopy(old), raw)
        except Exception as e:  # jsonpatch / JSON errors are the client's fault, like a real server's 422
            raise ApiError(422, "Invalid", f"the patch could not be applied: {e}", {}) from e
        if api.subresource == "status":
            return self._store_update(res, info, key, old, self._status_only(old, new), dry_run, True), False
        return self._store_update(res, info, key, old, new, dry_run), False

    def _delete(self, res: Any, info: kmock.ResourceInfo, api: fixes.ApiPath, dry_run: bool) -> dict[str, Any]:
        key = self._key(res, info, api.namespace, api.name)
        old = self._read(key)
        if old is None:
            raise not_found(res.plural, res.group, api.name)
        if old["metadata"].get("finalizers"):
            # Restores: objects with finalizers are only marked (deletionTimestamp) until they are removed.
            if not dry_run and not old["metadata"].get("deletionTimestamp"):
                old["metadata"]["deletionTimestamp"] = _now()
                self._rv += 1
                old["metadata"]["resourceVersion"] = str(self._rv)
                self._write(key, old, "MODIFIED")
            return self._decorate(old, res, info)
        if res == NAMESPACES:
            # Restores: a deleted namespace is Terminating until its content is gone (the namespace
            # controller's job, done here a moment later), and only then disappears.
            if not dry_run and not old["metadata"].get("deletionTimestamp"):
                old["metadata"]["deletionTimestamp"] = _now()
                old["status"] = {"phase": "Terminating"}
                self._rv += 1
                old["metadata"]["resourceVersion"] = str(self._rv)
                self._write(key, old, "MODIFIED")
                asyncio.get_running_loop().call_later(NAMESPACE_FINALIZE_DELAY, self._finalize_namespace, key)
            return self._decorate(old, res, info)
        if not dry_run:
            self._cascade(res, old)
            self._remove(key)
        details = {"name": api.name, "group": res.group, "kind": res.plural, "uid": old["metadata"]["uid"]}
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}

    def _delete_collection(
        self, res: Any, info: kmock.ResourceInfo, api: fixes.ApiPath, params: Any, dry_run: bool
    ) -> dict[str, Any]:
        # Restores: DELETE on a collection (deletecollection) honouring the selectors; answers the list.
        listing = self._list(res, info, api, params)
        for item in listing["items"]:
            meta = item["metadata"]
            sub = fixes.ApiPath(api.group, api.version, api.plural, meta.get("namespace"), meta["name"])
            self._delete(res, info, sub, dry_run)
        return listing

    # ------------------------------------------------------------------------- side effects

    def _after_write(self, res: Any, obj: dict[str, Any]) -> None:
        if res == CRD:
            self._register_crd(obj)

    # Restores: a CRD makes its kind discoverable and servable at once (and reports Established).
    def _register_crd(self, crd: dict[str, Any]) -> None:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        for version in spec.get("versions") or []:
            if not version.get("served", True):
                continue
            res = kmock.resource(spec.get("group"), version["name"], names.get("plural"))
            self.resources[res] = kmock.ResourceInfo(
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                kind=names.get("kind"),
                singular=names.get("singular") or (names.get("kind") or "").lower(),
                verbs=ALL_VERBS,
                shortnames=names.get("shortNames") or [],
                categories=names.get("categories") or [],
                subresources=[s for s in (version.get("subresources") or {}) if s in ("status", "scale")],
            )
        accepted = {**names, "singular": names.get("singular") or (names.get("kind") or "").lower()}
        accepted.setdefault("listKind", f"{names.get('kind')}List")
        now = _now()
        crd["status"] = {
            "acceptedNames": accepted,
            "storedVersions": [v["name"] for v in spec.get("versions") or [] if v.get("storage")],
            "conditions": [
                {"type": t, "status": "True", "reason": r, "message": m, "lastTransitionTime": now}
                for t, r, m in (
                    ("NamesAccepted", "NoConflicts", "no conflicts found"),
                    ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
                )
            ],
        }

    def _finalize_namespace(self, key: Any) -> None:
        ns = key[2]
        for k in [k for k, o in self.objects.items() if k[1] == ns and not o.deleted]:
            self._remove(k)
        if self._read(key) is not None:
            self._remove(key)

    def _cascade(self, res: Any, obj: dict[str, Any]) -> None:
        if res == CRD:
            # Restores: deleting a CRD removes its resources and all their objects.
            spec = obj.get("spec") or {}
            plural = (spec.get("names") or {}).get("plural")
            for r in [r for r in self.resources if r.group == spec.get("group") and r.plural == plural]:
                for key in [k for k, o in self.objects.items() if k[0] == r and not o.deleted]:
                    self._remove(key)
                del self.resources[r]


KUBECONFIG_TEMPLATE = """\
apiVersion: v1
kind: Config
clusters:
- name: kmock
  cluster:
    server: {url}
users:
- name: kmock
  user:
    token: kmock-dummy-token
contexts:
- name: kmock
  context:
    cluster: kmock
    user: kmock
    namespace: default
current-context: kmock
"""


class KubeEmulator:
    """Serves `FixedKubernetesEmulator` on http://127.0.0.1:<free port> from a background thread.

    Use as a context manager or call start()/stop(). `kubeconfig` is written on start.
    """

    def __init__(self, kubeconfig: str | Path | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.kubeconfig = Path(kubeconfig) if kubeconfig else None
        self.handler = FixedKubernetesEmulator()
        self.port = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def objects(self) -> kmock.ObjectsArray:
        return self.handler.objects

    def start(self, timeout: float = 10.0) -> KubeEmulator:
        self._thread = threading.Thread(target=self._run, name="kube-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the Kubernetes emulator did not start in time")
        if self._error is not None:
            raise RuntimeError("the Kubernetes emulator failed to start") from self._error
        if self.kubeconfig is not None:
            self.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
            self.kubeconfig.write_text(KUBECONFIG_TEMPLATE.format(url=self.url))
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is None or self._loop is None or self._stop is None:
            return
        self.handler.stopping = True
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        self._thread = None

    def __enter__(self) -> KubeEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as e:  # reported to start() if it happens before ready
            self._error = e
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        # kmock.Server is not used: it also patches aiohttp's resolver process-wide.
        runner = aiohttp.web.ServerRunner(aiohttp.web.Server(self.handler), shutdown_timeout=1, access_log=None)
        async with self.handler:
            await runner.setup()
            try:
                site = aiohttp.web.TCPSite(runner, self.host, 0)
                await site.start()
                self.port = self.handler.port = runner.addresses[0][1]
                self._ready.set()
                await self._stop.wait()
            finally:
                await runner.cleanup()
