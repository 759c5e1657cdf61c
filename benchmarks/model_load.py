#!/usr/bin/env python3
"""Load test of a model endpoint (KServe V1): N concurrent clients for T seconds; throughput and latency.

    .venv/bin/python benchmarks/model_load.py                       # the standalone endpoint, 8 clients, 30 s
    .venv/bin/python benchmarks/model_load.py --url http://127.0.0.1:8080/v1/models/iris-classifier:predict \
        --clients 16 --duration 60 --json

Each client keeps one HTTP/1.1 connection open and sends the next request as soon as the previous answer
arrived (closed loop), so throughput is what the server sustains at that concurrency. Latency is measured
by the client, from sending the request to reading the whole answer. The roadmap's target is P99 < 100 ms;
the clients run on the same host and share its CPUs with the server, so on a small host the numbers are
a pessimistic bound. Exit status 1 when any request failed.

In the same run it measures a baseline: a bare KServe custom model (benchmarks/bare_kserve_model.py) serving
the same model files from the same virtualenv, found through the standalone platform's home (the version
the server reports in model-serving/status.json). Both get 1 client and then --clients, alternately, and a
one-line comparison per concurrency shows the ratio, which stays meaningful on a busy machine where the
absolute numbers do not. --baseline off skips it; --baseline on fails when it cannot be started.
"""

import argparse
import contextlib
import http.client
import json
import math
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8080/v1/models/iris-classifier:predict"
DEFAULT_PAYLOAD = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
DEFAULT_PLATFORM_HOME = "/var/lib/argoeks"
BASELINE_SERVER = Path(__file__).resolve().parent / "bare_kserve_model.py"


def percentile(values, q):
    """Nearest-rank percentile of values (ms); nan when there are none."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass
class Result:
    clients: int
    seconds: float = 0.0
    latencies_ms: list = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    versions: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    # (monotonic time, status or error, model version) of every request, in completion order
    timeline: list = field(default_factory=list)

    @property
    def requests(self):
        return len(self.latencies_ms) + sum(self.errors.values())

    @property
    def failed(self):
        return sum(self.errors.values()) + sum(n for status, n in self.statuses.items() if status != 200)

    def summary(self):
        lat = self.latencies_ms
        return {
            "clients": self.clients,
            "seconds": round(self.seconds, 2),
            "requests": self.requests,
            "failed": self.failed,
            "throughput_rps": round(self.requests / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": round(percentile(lat, 50), 2),
            "p95_ms": round(percentile(lat, 95), 2),
            "p99_ms": round(percentile(lat, 99), 2),
            "max_ms": round(max(lat), 2) if lat else math.nan,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "versions": dict(sorted(self.versions.items())),
            "errors": dict(self.errors),
        }


class LoadTest:
    """Closed-loop clients against one URL; run() for a duration, or until stop is set."""

    def __init__(self, url, payload=None, clients=8, timeout=10.0):
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"expected an http:// URL, got {url!r}")
        self.host, self.port = parsed.hostname, parsed.port or 80
        self.path = parsed.path + (f"?{parsed.query}" if parsed.query else "")
        self.body = json.dumps(payload if payload is not None else DEFAULT_PAYLOAD).encode()
        self.clients = clients
        self.timeout = timeout
        self.lock = threading.Lock()

    def _client(self, result, stop, deadline):
        connection = None
        while not stop.is_set() and time.monotonic() < deadline:
            if connection is None:
                connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            started = time.perf_counter()
            try:
                connection.request("POST", self.path, self.body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                answer = response.read()
                elapsed = (time.perf_counter() - started) * 1000
                version = response.getheader("x-model-version", "-")
                if response.status == 200 and b"predictions" not in answer:
                    status = "no predictions"
                else:
                    status = response.status
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                connection = None
                with self.lock:
                    result.errors[type(error).__name__] += 1
                    result.timeline.append((time.monotonic(), type(error).__name__, "-"))
                time.sleep(0.01)
                continue
            with self.lock:
                result.latencies_ms.append(elapsed)
                result.statuses[status] += 1
                result.versions[version] += 1
                result.timeline.append((time.monotonic(), status, version))
        if connection is not None:
            connection.close()

    def run(self, duration=None, stop=None):
        stop = stop or threading.Event()
        deadline = time.monotonic() + duration if duration else math.inf
        result = Result(self.clients)
        threads = [
            threading.Thread(target=self._client, args=(result, stop, deadline), daemon=True)
            for _ in range(self.clients)
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        result.seconds = time.monotonic() - started
        return result


class BaselineUnavailable(Exception):
    """The bare KServe baseline cannot run here (named reason)."""


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def bare_kserve(platform_home, timeout=180):
    """The bare KServe model for what the platform serves now: yields its prediction URL."""
    home = Path(platform_home)
    python = home / "venvs/model-server/bin/python"
    status_file = home / "model-serving/status.json"
    if not python.exists() or not status_file.exists():
        raise BaselineUnavailable(f"no standalone model server under {home} (set --platform-home)")
    status = json.loads(status_file.read_text())
    model_dir = home / "model-serving/models" / status["name"] / str(status["version"])
    if not (model_dir / "MLmodel").exists():
        raise BaselineUnavailable(f"{model_dir} holds no MLmodel file")
    port = free_port()
    command = [str(python), str(BASELINE_SERVER), "--model_dir", str(model_dir), "--model_name", status["name"]]
    ready = f"http://127.0.0.1:{port}/v1/models/{status['name']}"
    with tempfile.TemporaryFile() as log:
        # The platform's own interpreter and this directory's script: no untrusted input.
        server = subprocess.Popen([*command, "--http_port", str(port)], stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        try:
            deadline = time.monotonic() + timeout
            while True:
                if server.poll() is not None:
                    log.seek(0)
                    raise BaselineUnavailable(f"the bare KServe model exited: {log.read().decode()[-500:]}")
                with contextlib.suppress(OSError), urllib.request.urlopen(ready, timeout=2) as answer:
                    if answer.status == 200:
                        break
                if time.monotonic() > deadline:
                    raise BaselineUnavailable(f"the bare KServe model did not answer {ready} within {timeout} s")
                time.sleep(0.5)
            yield f"{ready}:predict"
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()


def measure(url, payload, clients, duration, warmup):
    test = LoadTest(url, payload, clients=clients)
    if warmup > 0:
        test.run(warmup)
    return test.run(duration).summary()


def comparison(ours, bare):
    """One line: the endpoint against the bare KServe model at the same concurrency."""
    p99 = ours["p99_ms"] / bare["p99_ms"] if bare["p99_ms"] else math.nan
    rps = ours["throughput_rps"] / bare["throughput_rps"] if bare["throughput_rps"] else math.nan
    return (
        f"{ours['clients']} client(s): p99 {ours['p99_ms']} ms vs bare KServe {bare['p99_ms']} ms ({p99:.2f}x), "
        f"throughput {ours['throughput_rps']} vs {bare['throughput_rps']} req/s ({rps:.2f}x)"
    )


def print_summary(url, summary):
    print(f"endpoint:    {url}")
    print(f"load:        {summary['clients']} clients for {summary['seconds']} s")
    print(f"requests:    {summary['requests']} ({summary['failed']} failed)")
    print(f"throughput:  {summary['throughput_rps']} requests/s")
    print(
        f"latency:     p50 {summary['p50_ms']} ms, p95 {summary['p95_ms']} ms, "
        f"p99 {summary['p99_ms']} ms, max {summary['max_ms']} ms"
    )
    print(f"statuses:    {summary['statuses']}  versions: {summary['versions']}")
    if summary["errors"]:
        print(f"errors:      {summary['errors']}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL, help=f"prediction URL (default {DEFAULT_URL})")
    parser.add_argument("--payload", default=json.dumps(DEFAULT_PAYLOAD), help="request body (JSON)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load (default 30)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load first (default 2)")
    parser.add_argument(
        "--baseline",
        choices=("auto", "on", "off"),
        default="auto",
        help="also measure a bare KServe model of the same files: auto (when found), on (required), off",
    )
    parser.add_argument(
        "--platform-home",
        default=DEFAULT_PLATFORM_HOME,
        help=f"standalone platform home (default {DEFAULT_PLATFORM_HOME})",
    )
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.duration <= 0:
        parser.error("--clients must be at least 1 and --duration positive")
    payload = json.loads(args.payload)
    concurrencies = [args.clients]

    results = {"baseline": None}
    with contextlib.ExitStack() as stack:
        bare_url = None
        if args.baseline != "off":
            try:
                bare_url = stack.enter_context(bare_kserve(args.platform_home))
            except BaselineUnavailable as reason:
                if args.baseline == "on":
                    parser.exit(2, f"model_load.py: error: baseline unavailable: {reason}\n")
                results["baseline"] = {"skipped": str(reason)}
        if bare_url:
            concurrencies = sorted({1, args.clients})
            results["baseline"] = {}
        for clients in concurrencies:
            results[clients] = measure(args.url, payload, clients, args.duration, args.warmup)
            if bare_url:
                results["baseline"][clients] = measure(bare_url, payload, clients, args.duration, args.warmup)

    summary = results[args.clients]
    if args.json:
        output = dict(summary)
        if bare_url:
            output["baseline"] = {
                str(clients): {"bare": results["baseline"][clients], "ours": results[clients]}
                for clients in concurrencies
            }
        else:
            output["baseline"] = results["baseline"]
        print(json.dumps(output))
    else:
        print_summary(args.url, summary)
        if bare_url:
            for clients in concurrencies:
                print(f"baseline:    {comparison(results[clients], results['baseline'][clients])}")
        elif results["baseline"]:
            print(f"baseline:    skipped: {results['baseline']['skipped']}")
    failed = any(results[clients]["failed"] or not results[clients]["requests"] for clients in concurrencies)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
