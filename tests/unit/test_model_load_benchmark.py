"""benchmarks/model_load.py: closed-loop clients, counted statuses and versions, percentiles, exit status.

Runs against a small HTTP server in the test process that answers like a KServe V1 endpoint (the platform
test runs the benchmark against the real model server).
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import model_load


class Endpoint(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    status = 200

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        body = json.dumps({"predictions": [0] * len(request["instances"])}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-model-version", "7")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/models/iris-classifier:predict"
    server.shutdown()
    Endpoint.status = 200


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert (model_load.percentile(values, 50), model_load.percentile(values, 99)) == (50, 99)
    assert model_load.percentile([3.0], 99) == 3.0


def test_load_test_counts_requests_statuses_and_versions(endpoint):
    result = model_load.LoadTest(endpoint, clients=3).run(duration=0.5)
    summary = result.summary()
    assert summary["requests"] > 0 and summary["failed"] == 0
    assert summary["statuses"] == {"200": summary["requests"]}
    assert summary["versions"] == {"7": summary["requests"]}
    assert summary["p50_ms"] <= summary["p95_ms"] <= summary["p99_ms"] <= summary["max_ms"]
    assert summary["throughput_rps"] > 0


def test_main_prints_json_and_exits_1_on_failed_requests(endpoint, capsys):
    assert model_load.main(["--url", endpoint, "--clients", "2", "--duration", "0.3", "--warmup", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["failed"] == 0
    Endpoint.status = 500
    assert model_load.main(["--url", endpoint, "--duration", "0.3", "--warmup", "0"]) == 1
    assert "failed)" in capsys.readouterr().out


def test_unreachable_endpoint_counts_errors():
    result = model_load.LoadTest("http://127.0.0.1:9/v1/models/m:predict", clients=1, timeout=0.2).run(duration=0.3)
    assert result.summary()["errors"] and result.failed > 0
