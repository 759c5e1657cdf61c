"""Runs `feast serve` with its Prometheus metrics on the address and port given here.

Feast 0.67's `feast serve --metrics` always serves metrics on port 8000 of every interface; the platform
keeps every service on its loopback address and ports it chooses, so this launcher binds the metrics
server to --host:--metrics-port and otherwise runs Feast's own command line unchanged.
"""

import argparse
import sys
from wsgiref.simple_server import make_server


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6566)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--registry-ttl", type=int, default=60)
    parser.add_argument("--max-requests", type=int, default=1000, help="requests before a worker is replaced")
    parser.add_argument("--metrics-port", type=int, default=0, help="0: no metrics")
    args = parser.parse_args()

    if args.metrics_port:
        from feast import metrics

        if not hasattr(metrics, "_make_metrics_httpd"):
            sys.exit("this Feast release has no metrics server to bind; run without --metrics-port")

        def bind_metrics(_port, app):
            return make_server(args.host, args.metrics_port, app, handler_class=metrics._QuietWSGIRequestHandler)

        metrics._make_metrics_httpd = bind_metrics

    from feast.cli.cli import cli

    argv = ["--chdir", args.repo, "serve", "--host", args.host, "--port", str(args.port)]
    argv += ["--workers", str(args.workers), "--registry_ttl_sec", str(args.registry_ttl), "--no-access-log"]
    argv += ["--max-requests", str(args.max_requests)]
    if args.metrics_port:
        argv.append("--metrics")
    return cli.main(args=argv, prog_name="feast")


if __name__ == "__main__":
    sys.exit(main())
