#!/usr/bin/env python3
"""The platform's model server: one MLflow model served on the KServe V1 protocol.

A custom ``kserve.Model`` (KServe SDK) that loads a registered MLflow model with ``mlflow.pyfunc`` and answers

    POST /v1/models/<name>:predict   {"instances": [[5.1, 3.5, 1.4, 0.2]]}  ->  {"predictions": [0]}
    GET  /v1/models/<name>           {"name": "<name>", "ready": true}       (readiness)
    GET  /metrics                    Prometheus metrics

Every inference request (``:predict``, ``:explain``, V2 ``/infer``) is counted in ``http_requests_total{handler,
status}`` and timed in the histogram ``http_request_duration_seconds{handler}``, the names the platform's SLO
alerts and success metrics read. Responses carry ``x-model-version``: the registry version that answered.

Two ways to run it:

standalone (supervised on one host)
    ``--deployment FILE`` names the model to serve: ``{"name": ..., "version": ...}``. The server downloads
    ``models:/<name>/<version>`` from the MLflow registry (``MLFLOW_TRACKING_URI``) into ``--cache_dir`` once,
    loads it, and serves it. On SIGHUP it reads FILE again and, when it names another version, loads that one
    next to the running one and swaps it in only once it has answered a test prediction: requests never see a
    gap, and a version that fails to load leaves the old one serving. ``--status_file`` tells the outcome
    (``version`` serving now; ``error`` and ``failed`` of the last attempt that failed).

Kubernetes (a KServe ServingRuntime container)
    ``--model_dir /mnt/models`` (where KServe's storage initializer put the model's ``storageUri``) with
    ``--model_name`` and ``MODEL_VERSION``.

KServe's server listens on every interface; ``--bind`` (default 127.0.0.1) restricts it.
"""

import argparse
import asyncio
import json
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
import warnings
from pathlib import Path

import kserve
import kserve.model_server
import numpy as np
import pandas as pd
from kserve.errors import InvalidInput
from kserve.protocol.rest.server import RESTServer
from prometheus_client import Counter, Histogram

# A child of KServe's logger: its handlers (configured by ModelServer) print these lines too.
LOG = logging.getLogger("kserve.argoeks")

# Buckets from 1 ms to 10 s; 0.1 s is the latency SLO's boundary (observability_model_latency_slo_seconds).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
REQUESTS = Counter("http_requests_total", "Inference requests by handler and HTTP status.", ["handler", "status"])
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Latency of inference requests, from the first byte received to the last byte sent.",
    ["handler"],
    buckets=LATENCY_BUCKETS,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--deployment", type=Path, help="JSON file naming the registered model and version to serve")
    source.add_argument("--model_dir", type=Path, help="directory holding an MLflow model (KServe's /mnt/models)")
    parser.add_argument("--model_name", default=os.environ.get("MODEL_NAME", "model"), help="name with --model_dir")
    parser.add_argument("--model_version", default=os.environ.get("MODEL_VERSION", ""), help="version with --model_dir")
    parser.add_argument("--cache_dir", type=Path, help="where downloaded model versions are kept (--deployment)")
    parser.add_argument("--status_file", type=Path, help="JSON file telling which version serves (--deployment)")
    parser.add_argument("--keep_versions", type=int, default=2, help="downloaded versions kept in --cache_dir")
    parser.add_argument("--http_port", type=int, default=8080)
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on (0.0.0.0 in a pod)")
    parser.add_argument("--access_log", action="store_true", help="log every request (off: metrics count them)")
    args, _ = parser.parse_known_args(argv)
    if args.deployment and not args.cache_dir:
        parser.error("--deployment needs --cache_dir")
    return args


# ---- the model -----------------------------------------------------------------------------------------------


# Signature column types the forest path takes as they are: pyfunc casts these to float64 without loss.
FLOAT_COLUMNS = frozenset({"double", "float"})
# Probe rows a forest path is checked on before it may serve (split thresholds, their neighbours, NaN).
FOREST_PROBE_ROWS = 4096


class ForestPredictor:
    """A scikit-learn forest's ``predict`` without the per-tree dispatch cost; used only once proven equal.

    ``RandomForestClassifier.predict`` on one row takes ~5 ms with 100 trees (scikit-learn 1.9), of which
    the trees' traversal is ~0.3 ms: the rest is joblib dispatch and scikit-learn re-applying its config and
    warning filters and re-checking the input for every tree. This walks the same fitted trees
    (``tree_.predict``) and sums them in scikit-learn's order with its arithmetic: the mean of the trees'
    class fractions (classifiers) or values (regressors), argmax over ``classes_``. ``verified()`` compares
    it with the model's own ``predict`` on probe rows built from every split threshold and its two
    neighbouring floats (and NaN where the forest handles missing values); any difference and the server
    keeps the pyfunc path.
    """

    def __init__(self, forest):
        self.forest = forest
        self.trees = [estimator.tree_ for estimator in forest.estimators_]
        self.classifier = hasattr(forest, "classes_")
        # As scikit-learn decides per call: NaN goes down the trees only where they learnt missing values.
        self.allow_nan = bool(forest.estimators_[0]._support_missing_values(np.zeros((1, forest.n_features_in_))))

    @classmethod
    def for_model(cls, pyfunc_model, columns):
        """A predictor for pyfunc_model, or (None, reason) when the forest path does not apply."""
        from sklearn.ensemble import (
            ExtraTreesClassifier,
            ExtraTreesRegressor,
            RandomForestClassifier,
            RandomForestRegressor,
        )

        flavors = pyfunc_model.metadata.flavors
        if "sklearn" not in flavors or flavors.get("python_function", {}).get("predict_fn", "predict") != "predict":
            return None, "not a scikit-learn model served by predict"
        schema = pyfunc_model.metadata.get_input_schema()
        if columns is None or any(
            str(getattr(spec, "type", "")).lower().split(".")[-1] not in FLOAT_COLUMNS for spec in schema.inputs
        ):
            return None, "its signature has columns other than double/float"
        forest = pyfunc_model.get_raw_model()
        kinds = (RandomForestClassifier, ExtraTreesClassifier, RandomForestRegressor, ExtraTreesRegressor)
        if type(forest) not in kinds or forest.n_outputs_ != 1:
            return None, f"{type(forest).__name__} is not a single-output random/extra-trees forest"
        names = getattr(forest, "feature_names_in_", None)
        if names is not None and list(names) != list(columns):
            return None, "the signature's columns are not the forest's features in order"
        predictor = cls(forest)
        different = predictor.differences(columns)
        if different:
            return None, f"it answered differently from the model's predict on {different} probe rows"
        return predictor, f"verified equal to predict on {FOREST_PROBE_ROWS} probe rows"

    def predict(self, rows):
        """Predictions for rows (float32, C order, one column per feature)."""
        if not self.allow_nan and np.isnan(rows).any():
            raise ValueError("Input X contains NaN.")
        total = np.zeros((rows.shape[0], self.forest.n_classes_) if self.classifier else rows.shape[0])
        for tree in self.trees:
            values = tree.predict(rows)
            total += values[:, : self.forest.n_classes_] if self.classifier else values[:, 0]
        total /= len(self.trees)
        return self.forest.classes_.take(np.argmax(total, axis=1), axis=0) if self.classifier else total

    def differences(self, columns):
        """How many probe rows this predictor answers differently from the forest's own predict."""
        rng = np.random.default_rng(0)
        probes = np.empty((FOREST_PROBE_ROWS, len(columns)), dtype=np.float32)
        for feature in range(len(columns)):
            cuts = np.concatenate([tree.threshold[tree.feature == feature] for tree in self.trees])
            cuts = cuts[np.isfinite(cuts)].astype(np.float32)  # a split of missing values from the rest is at inf
            if cuts.size == 0:
                cuts = np.zeros(1, dtype=np.float32)
            below, above = np.nextafter(cuts, np.float32(-np.inf)), np.nextafter(cuts, np.float32(np.inf))
            near = np.concatenate([cuts, below, above])
            probes[:, feature] = rng.choice(near, FOREST_PROBE_ROWS)
        if self.allow_nan:
            probes[rng.random(probes.shape) < 0.05] = np.nan
        expected = self.forest.predict(pd.DataFrame(probes.astype(np.float64), columns=columns))
        # No warnings.catch_warnings() here: its filters are process-wide, and a reload runs this while the
        # server answers requests on other threads.
        actual = self.predict(np.ascontiguousarray(probes))
        return int(np.sum(expected != actual))


class Loaded:
    """One loaded model version: the pyfunc model, the columns its signature expects, the forest path."""

    def __init__(self, name, version, pyfunc_model):
        self.name = name
        self.version = str(version)
        self.model = pyfunc_model
        schema = pyfunc_model.metadata.get_input_schema()
        self.columns = schema.input_names() if schema is not None and schema.has_input_names() else None
        try:
            self.forest, self.forest_reason = ForestPredictor.for_model(pyfunc_model, self.columns)
        except Exception as error:  # the pyfunc path serves whatever the forest path cannot
            self.forest, self.forest_reason = None, f"{type(error).__name__}: {error}"

    def frame(self, instances):
        """The request's instances as the model wants them: float32 rows (forest path) or a DataFrame."""
        if not isinstance(instances, list) or not instances:
            raise InvalidInput('expected a non-empty list in "instances" (or "inputs")')
        if self.forest is not None:
            return self.rows(instances)
        if all(isinstance(row, dict) for row in instances):
            return pd.DataFrame(instances)
        rows = np.asarray(instances)
        if rows.ndim == 1:
            rows = rows.reshape(1, -1)
        if self.columns is not None:
            if rows.ndim != 2 or rows.shape[1] != len(self.columns):
                names = ", ".join(self.columns)
                raise InvalidInput(f"each instance needs {len(self.columns)} values ({names}); got shape {rows.shape}")
            return pd.DataFrame(rows, columns=self.columns)
        return rows

    def rows(self, instances):
        """Float32 rows in signature order, checked as pyfunc's schema enforcement would."""
        if all(isinstance(row, dict) for row in instances):
            missing = sorted({column for row in instances for column in self.columns if column not in row})
            if missing:
                raise InvalidInput(f"the model rejected the input: missing columns {missing}")
            instances = [[row[column] for column in self.columns] for row in instances]
        try:
            rows = np.asarray(instances, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise InvalidInput(f"the model rejected the input: {error}") from None
        if rows.ndim == 1:
            rows = rows.reshape(1, -1)
        if rows.ndim != 2 or rows.shape[1] != len(self.columns):
            names = ", ".join(self.columns)
            raise InvalidInput(f"each instance needs {len(self.columns)} values ({names}); got shape {rows.shape}")
        if np.isinf(rows).any():
            raise InvalidInput("the model rejected the input: Input X contains infinity")
        return np.ascontiguousarray(rows, dtype=np.float32)

    def call(self, frame):
        return self.forest.predict(frame) if self.forest is not None else self.model.predict(frame)

    def outputs(self, output):
        """The model's output as one JSON-able value per input row."""
        if hasattr(output, "to_dict") and hasattr(output, "columns"):
            return output.to_dict(orient="records")
        return output.tolist() if hasattr(output, "tolist") else list(output)

    def predict(self, instances):
        return self.outputs(self.call(self.frame(instances)))

    def predict_frames(self, frames):
        """Predictions for several requests' frames in one model call; one result (or exception) per frame.

        One call costs about as much for a few rows as for one (a forest walks its trees once per call), so
        rows of concurrent requests go together. When the joint call fails, or the model does not answer one
        output per row, each frame is predicted alone, so a bad request fails alone.
        """
        if len(frames) > 1:
            try:
                if all(isinstance(f, pd.DataFrame) for f in frames):
                    joint = pd.concat(frames, ignore_index=True)
                else:
                    joint = np.concatenate(frames)
                outputs = self.outputs(self.call(joint))
                if len(outputs) == len(joint):
                    results, start = [], 0
                    for frame in frames:
                        results.append(outputs[start : start + len(frame)])
                        start += len(frame)
                    return results
            except Exception:  # noqa: S110 - predicted one by one below, where the error belongs to its request
                pass
        results = []
        for frame in frames:
            try:
                results.append(self.outputs(self.call(frame)))
            except Exception as error:  # the model's own input checks (schema enforcement) raise their own types
                results.append(InvalidInput(f"the model rejected the input: {error}"))
        return results


class Batcher:
    """Runs one model call at a time; requests that arrive meanwhile go together into the next call.

    Nothing waits for a batch to fill: an idle server predicts a request at once. Under concurrent load the
    rows that queued during one call are predicted in the next, in KServe's thread pool (scikit-learn's tree
    code releases the GIL, so the event loop keeps taking requests on the other core).
    """

    def __init__(self, max_rows=256):
        self.max_rows = max_rows
        self.queue = None

    async def predict(self, loaded, frame):
        if self.queue is None:  # created in the server's event loop, on its first request
            self.queue = asyncio.Queue()
            self.worker = asyncio.get_running_loop().create_task(self.run())
        answer = asyncio.get_running_loop().create_future()
        await self.queue.put((loaded, frame, answer))
        return await answer

    async def run(self):
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            rows = len(batch[0][1])
            while not self.queue.empty() and rows < self.max_rows:
                batch.append(self.queue.get_nowait())
                rows += len(batch[-1][1])
            # A swap between two requests of one batch: each version predicts its own requests.
            for loaded in dict.fromkeys(item[0] for item in batch):
                items = [item for item in batch if item[0] is loaded]
                try:
                    results = await loop.run_in_executor(None, loaded.predict_frames, [item[1] for item in items])
                except Exception as error:  # anything else: every request of the call gets the error
                    results = [error] * len(items)
                for (_, _, answer), result in zip(items, results, strict=True):
                    if answer.done():
                        continue
                    if isinstance(result, Exception):
                        answer.set_exception(result)
                    else:
                        answer.set_result(result)


class MlflowModel(kserve.Model):
    """A kserve.Model whose loaded version can be replaced while it serves."""

    def __init__(self, name, loaded, batcher=None):
        super().__init__(name, return_response_headers=True)
        self.loaded = loaded
        self.batcher = batcher or Batcher()
        self.ready = True

    def load(self):
        self.ready = True
        return self.ready

    def swap(self, loaded):
        # One reference assignment: a request uses either the old version or the new one, never a mix.
        self.loaded = loaded

    async def predict(self, payload, headers=None, response_headers=None):
        loaded = self.loaded
        if not isinstance(payload, dict):
            raise InvalidInput('expected a JSON object with "instances"')
        frame = loaded.frame(payload.get("instances", payload.get("inputs")))
        predictions = await self.batcher.predict(loaded, frame)
        if response_headers is not None:
            response_headers["x-model-version"] = loaded.version
            response_headers["x-model-name"] = loaded.name
        return {"predictions": predictions}


# ---- loading from the registry ---------------------------------------------------------------------------------


def download(name, version, cache_dir):
    """models:/<name>/<version> in cache_dir/<name>/<version>, downloaded once (atomically)."""
    import mlflow.artifacts

    target = cache_dir / name / str(version)
    if (target / "MLmodel").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=target.parent))
    try:
        uri = f"models:/{name}/{version}"
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(staging)))
        if not (local / "MLmodel").exists():
            raise RuntimeError(f"models:/{name}/{version} holds no MLmodel file")
        shutil.rmtree(target, ignore_errors=True)
        local.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def load(name, version, path):
    """Load the model at path and check it answers before it may serve."""
    import mlflow.pyfunc

    started = time.monotonic()
    loaded = Loaded(name, version, mlflow.pyfunc.load_model(str(path)))
    if loaded.columns is not None:
        loaded.predict([[0.0] * len(loaded.columns)])
    LOG.info("loaded %s version %s from %s in %.1f s", name, version, path, time.monotonic() - started)
    LOG.info("forest path %s: %s", "on" if loaded.forest is not None else "off", loaded.forest_reason)
    return loaded


def prune(cache_dir, name, keep):
    """Keep the `keep` most recently used versions of name in the cache."""
    versions = sorted(
        (p for p in (cache_dir / name).iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in versions[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def write_json(path, content):
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")
    staging.replace(path)


class Deployment:
    """Serves what the deployment file names; reloads it on SIGHUP without a gap."""

    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.server = None
        self.model = None
        self.error = None
        self.failed = None
        # Counts the reports: a deploy waits for a report newer than the one before its signal.
        self.generation = 0

    def wanted(self):
        content = json.loads(self.args.deployment.read_text())
        return str(content["name"]), str(content["version"])

    def load_wanted(self):
        name, version = self.wanted()
        path = download(name, version, self.args.cache_dir)
        os.utime(path)
        return load(name, version, path)

    def start(self):
        with self.lock:
            self.model = MlflowModel(self.wanted()[0], self.load_wanted())
            self.report()
        return self.model

    def reload(self):
        with self.lock:
            try:
                name, version = self.wanted()
                current = self.model.loaded
                if (name, version) == (current.name, current.version):
                    LOG.info("reload: %s version %s is already serving", name, version)
                    self.error = self.failed = None
                    return
                loaded = self.load_wanted()
                if name == self.model.name:
                    self.model.swap(loaded)
                else:
                    renamed = MlflowModel(name, loaded)
                    self.server.registered_models.update(renamed)
                    self.server.registered_models.get_models().pop(self.model.name, None)
                    self.model = renamed
                self.error = self.failed = None
                LOG.info("now serving %s version %s (was %s version %s)", name, version, current.name, current.version)
                prune(self.args.cache_dir, name, self.args.keep_versions)
            except Exception as error:  # keep serving the old version whatever went wrong
                LOG.exception("reload failed; still serving %s version %s", self.model.name, self.model.loaded.version)
                self.error = f"{type(error).__name__}: {error}"
                try:
                    self.failed = dict(zip(("name", "version"), self.wanted(), strict=True))
                except Exception:  # an unreadable deployment file
                    self.failed = {"name": "?", "version": "?"}
            finally:
                self.report()

    def report(self):
        self.generation += 1
        if self.args.status_file:
            write_json(
                self.args.status_file,
                {
                    "name": self.model.name,
                    "version": self.model.loaded.version,
                    "error": self.error,
                    "failed": self.failed,
                    "pid": os.getpid(),
                    "generation": self.generation,
                    "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                },
            )


# ---- HTTP: metrics and the listen address ------------------------------------------------------------------------


def inference_handler(method, path):
    if method != "POST":
        return None
    for suffix, handler in ((":predict", "predict"), (":explain", "explain"), ("/infer", "infer")):
        if path.endswith(suffix):
            return handler
    return None


class RequestMetrics:
    """ASGI middleware: counts and times every inference request (other routes are not counted)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        handler = inference_handler(scope.get("method"), scope.get("path", "")) if scope["type"] == "http" else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_and_note(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            LATENCY.labels(handler).observe(time.perf_counter() - started)
            REQUESTS.labels(handler, str(status["code"])).inc()


def listen_on(address):
    """KServe's REST server binds 0.0.0.0; make the one ModelServer creates bind `address` instead."""

    class BoundRESTServer(RESTServer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.config.host = address

    kserve.model_server.RESTServer = BoundRESTServer


def main():
    args = parse_args()
    listen_on(args.bind)
    kserve.model_server.app.add_middleware(RequestMetrics)
    server = kserve.ModelServer(http_port=args.http_port, enable_grpc=False, workers=1, enable_latency_logging=False)
    if not args.access_log:
        # Two lines per request otherwise (uvicorn's access log, KServe's timing trace): the metrics count them.
        logging.getLogger("uvicorn.access").disabled = True
        logging.getLogger("kserve.trace").disabled = True
    # KServe 0.21 answers with ORJSONResponse, which FastAPI deprecates: not a concern of this server's users.
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")

    if args.deployment:
        deployment = Deployment(args)
        deployment.server = server
        # Installed first: a SIGHUP during the first load waits for it, then loads what the file names by then.
        signal.signal(signal.SIGHUP, lambda *_: threading.Thread(target=deployment.reload, daemon=True).start())
        model = deployment.start()
    else:
        model = MlflowModel(args.model_name, load(args.model_name, args.model_version or "?", args.model_dir))
    LOG.info("serving %s version %s on %s:%s", model.name, model.loaded.version, args.bind, args.http_port)
    server.start([model])


if __name__ == "__main__":
    main()
