"""Feast online retrieval latency: p50/p99 for 1 and 100 entities, through the feature server (HTTP) and
through the Feast SDK (the deployed repository's Redis online store).

Run it with the Feast virtualenv's Python (the SDK part needs Feast; the HTTP part needs nothing else):

    /var/lib/argoeks/venvs/feast/bin/python benchmarks/feast_online.py
    /var/lib/argoeks/venvs/feast/bin/python benchmarks/feast_online.py --iterations 2000 --json

Defaults fit the standalone platform: the feature server on 127.0.0.1:6566, the repository and its settings
(feast.env: passwords, endpoints) under /var/lib/argoeks/feast. Entities are the sample users (user_id 1001-1200).
"""

import argparse
import http.client
import json
import os
import random
import shlex
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

FEATURES = ["user_features:age", "user_features:country"]


def percentile(samples, q):
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def summary(name, entities, samples):
    ms = [s * 1000 for s in samples]
    return {
        "path": name,
        "entities": entities,
        "requests": len(ms),
        "p50_ms": round(percentile(ms, 50), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }


def entity_batches(ids, size, count, seed=7):
    rng = random.Random(seed)  # noqa: S311 - which users to ask for, not a secret
    return [rng.sample(ids, size) for _ in range(count)]


def post(connection, body, headers, reconnects):
    """One request on the kept-alive connection; a connection the server closed (a worker replaced after its
    max requests) is opened again once and counted."""
    for attempt in range(2):
        try:
            start = time.perf_counter()
            connection.request("POST", "/get-online-features", body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            return response, payload, time.perf_counter() - start
        except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
            connection.close()
            reconnects.append(1)
            if attempt:
                raise
    raise AssertionError("unreachable")


def bench_http(url, ids, size, iterations, warmup, reconnects):
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=30)
    headers = {"Content-Type": "application/json"}
    samples = []
    for i, batch in enumerate(entity_batches(ids, size, iterations + warmup)):
        body = json.dumps({"features": FEATURES, "entities": {"user_id": batch}})
        response, payload, elapsed = post(connection, body, headers, reconnects)
        if response.status != 200:
            sys.exit(f"feature server answered {response.status}: {payload[:300]!r}")
        if i == 0:
            values = json.loads(payload)["results"]
            if all(v is None for result in values[1:] for v in result["values"]):
                sys.exit("the feature server returned no values: materialise first (feast materialize-incremental)")
        if i >= warmup:
            samples.append(elapsed)
    connection.close()
    return samples


def bench_sdk(store, ids, size, iterations, warmup):
    samples = []
    for i, batch in enumerate(entity_batches(ids, size, iterations + warmup)):
        rows = [{"user_id": user_id} for user_id in batch]
        start = time.perf_counter()
        store.get_online_features(features=FEATURES, entity_rows=rows).to_dict()
        elapsed = time.perf_counter() - start
        if i >= warmup:
            samples.append(elapsed)
    return samples


def load_env_file(path):
    for line in Path(path).read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            os.environ[key] = shlex.split(value)[0] if value else ""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:6566", help="the feature server")
    parser.add_argument("--repo", default="/var/lib/argoeks/feast/feature_repo", help="the deployed repository")
    parser.add_argument("--env-file", help="settings of the repository (default: feast.env next to it)")
    parser.add_argument("--iterations", type=int, default=1000, help="measured requests per case")
    parser.add_argument("--warmup", type=int, default=50, help="requests before measuring")
    parser.add_argument("--entities", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--first-id", type=int, default=1001)
    parser.add_argument("--last-id", type=int, default=1200)
    parser.add_argument("--no-sdk", action="store_true", help="only the feature server")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    ids = list(range(args.first_id, args.last_id + 1))

    reconnects = []
    results = [
        summary("http", n, bench_http(args.url, ids, n, args.iterations, args.warmup, reconnects))
        for n in args.entities
    ]
    sdk_note = ""
    if not args.no_sdk:
        try:
            from feast import FeatureStore
        except ImportError:
            sdk_note = "SDK skipped: run with the Feast virtualenv's python for the SDK numbers"
        else:
            load_env_file(args.env_file or Path(args.repo).parent / "feast.env")
            store = FeatureStore(repo_path=args.repo)
            results += [
                summary("sdk", n, bench_sdk(store, ids, n, args.iterations, args.warmup)) for n in args.entities
            ]

    if args.json:
        print(json.dumps({"results": results, "note": sdk_note, "reconnects": len(reconnects)}))
        return 0
    features = ", ".join(FEATURES)
    print(f"Feast online retrieval ({features}): {args.iterations} requests per case after {args.warmup} warm-up")
    print(f"{'path':<6} {'entities':>8} {'p50 ms':>9} {'p99 ms':>9} {'mean ms':>9}")
    for r in results:
        print(f"{r['path']:<6} {r['entities']:>8} {r['p50_ms']:>9.3f} {r['p99_ms']:>9.3f} {r['mean_ms']:>9.3f}")
    if reconnects:
        print(f"{len(reconnects)} reconnection(s): the server replaced a worker (feast serve --max-requests)")
    if sdk_note:
        print(sdk_note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
