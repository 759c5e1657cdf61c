"""Runs `feast serve` with its Prometheus metrics on the address and port given here.

Feast 0.67's `feast serve --metrics` always serves metrics on port 8000 of every interface; the platform
keeps every service on its loopback address and ports it chooses, so this launcher binds the metrics
server to --host:--metrics-port and otherwise runs Feast's own command line unchanged.

`feast serve` opens the SQL registry in Gunicorn's master, and the workers it forks inherit the
master's pooled PostgreSQL connections: two processes on one socket corrupt each other's protocol
stream ("server closed the connection unexpectedly" while a worker boots). Each worker therefore
drops the inherited pool after the fork (SQLAlchemy's documented remedy, `dispose(close=False)`) and
opens its own connections.
"""

import argparse
import sys
from wsgiref.simple_server import make_server


def drop_inherited_connections(store):
    """Forget the SQL registry's pooled connections inherited from the master, without closing them."""
    registry = getattr(store, "_registry", None)
    for engine_name in ("write_engine", "read_engine"):
        engine = getattr(registry, engine_name, None)
        if engine is not None:
            engine.dispose(close=False)


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

    from feast import feature_server
    from feast.cli.cli import cli

    serve_application = feature_server.FeastServeApplication
    feast_load_config = serve_application.load_config

    def load_config(self):
        feast_load_config(self)
        self.cfg.set("post_fork", lambda _server, _worker: drop_inherited_connections(self._store))

    serve_application.load_config = load_config

    argv = ["--chdir", args.repo, "serve", "--host", args.host, "--port", str(args.port)]
    argv += ["--workers", str(args.workers), "--registry_ttl_sec", str(args.registry_ttl), "--no-access-log"]
    argv += ["--max-requests", str(args.max_requests)]
    if args.metrics_port:
        argv.append("--metrics")
    return cli.main(args=argv, prog_name="feast")


if __name__ == "__main__":
    sys.exit(main())
