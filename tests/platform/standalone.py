"""The standalone platform of a test module: its own home and ports, driven like a user does."""

import contextlib
import json
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import boto3
import yaml

from tests.support import ROOT, VENV_BIN, free_ports, playbook, read_env_file, tool_env

# What Phase 1 runs under supervisord on standalone.
SERVICES = ("aws-emulator", "object-store", "node-exporter", "alertmanager", "prometheus")
# What Phase 2 adds.
PHASE2_SERVICES = ("postgresql", "postgresql-exporter", "mlflow")
# What deploy_model.yml adds.
SERVING_SERVICES = ("model-server",)
# What the rest of a full phase2.yml adds (Feast, JupyterHub).
PHASE2_OTHER_SERVICES = ("feast-redis", "feast-server", "jupyterhub-proxy", "jupyterhub")
# The settings of the Phase 2 platform the test modules share (tests/platform/conftest.py): the modules restart
# services on purpose, so later phase2.yml runs do not wait on the checkpoints of Phase 1's health (its first
# bring-up does), and the Hub's idle culler runs with a timeout other than its default.
JUPYTERHUB_IDLE_TIMEOUT = 900
PHASE2_PLATFORM_VARS = {"verify_checkpoints_skip": True, "jupyterhub_idle_timeout": JUPYTERHUB_IDLE_TIMEOUT}


class Platform:
    def __init__(self, base: Path, **extra_vars):
        self.base = base
        self.home = base / "home"
        ports = free_ports(21)
        aws, s3, master, volume, filer, admin, prometheus, alertmanager, node, pg, pg_exporter, mlflow = ports[:12]
        self.vars = {
            "platform_home": str(self.home),
            "aws_emulator_port": aws,
            "object_store_s3_port": s3,
            "object_store_ports": {"master": master, "volume": volume, "filer": filer, "admin": admin},
            "observability_ports": {"prometheus": prometheus, "alertmanager": alertmanager, "node_exporter": node},
            "postgresql_port": pg,
            "postgresql_exporter_port": pg_exporter,
            "mlflow_port": mlflow,
            "model_serving_port": ports[12],
            # Feast: Redis, the feature server and its metrics.
            "feast_redis_port": ports[13],
            "feast_server_port": ports[14],
            "feast_metrics_port": ports[15],
            # JupyterHub: the proxy (public), the Hub's API and the proxy's control port.
            "jupyterhub_port": ports[16],
            "jupyterhub_hub_port": ports[17],
            "jupyterhub_proxy_api_port": ports[18],
            "llm_serving_port": ports[19],
            "rag_service_port": ports[20],
        }
        self.vars.update(extra_vars)
        self.vars_file = base / "test-vars.yml"
        self.vars_file.write_text(yaml.safe_dump(self.vars))
        # Every run's output (tests check no secret was ever printed) and the runs' durations by label.
        self.outputs = []
        self.timings = {}

    def run(self, playbook_name="phase1.yml", *args, timed=None):
        start = time.monotonic()
        result = playbook(playbook_name, "-e", f"@{self.vars_file}", *args)
        if timed:
            self.timings[timed] = round(time.monotonic() - start, 1)
            print(f"{timed}: {self.timings[timed]} s")
        self.outputs.append(result.output)
        return result

    @property
    def supervisorctl(self):
        return [
            str(self.home / "venvs/supervisor/bin/supervisorctl"),
            "-c",
            str(self.home / "supervisor/supervisord.conf"),
        ]

    def ctl(self, *args):
        return subprocess.run([*self.supervisorctl, *args], capture_output=True, text=True, check=False, timeout=120)

    def log_tail(self, service, lines=30):
        """The end of a service's supervisord log, for failure messages."""
        log = self.home / "logs" / f"{service}.log"
        if not log.exists():
            return f"(no {log})"
        return f"last lines of {log}:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    def aws_env(self):
        return read_env_file(self.home / "aws.env")

    def client(self, service):
        env = self.aws_env()
        endpoint = env["AWS_ENDPOINT_URL_S3"] if service == "s3" else env["AWS_ENDPOINT_URL"]
        return boto3.client(
            service,
            endpoint_url=endpoint,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_REGION"],
        )

    def aws_cli(self, *args):
        """The README's way: load aws.env, then run the aws CLI."""
        proc = subprocess.run(
            [str(VENV_BIN / "aws"), *args],
            env=tool_env(**self.aws_env()),
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout) if proc.stdout.strip() else None

    def healthy(self, services=SERVICES):
        status = self.ctl("status")
        return status.returncode == 0 and status.stdout.count("RUNNING") == len(services)

    def running(self, services):
        """Every one of these services is RUNNING (others may run too: a shared platform runs more)."""
        return all(self.pids().get(service) for service in services)

    def footprint(self):
        """What a run creates or restarts: the home's entries two levels deep (logs, sockets and scratch aside)
        and the pid of every supervisord program. Equal before and after a run: the run created nothing."""
        if not self.home.exists():
            return frozenset(), {}
        entries = frozenset(
            str(path.relative_to(self.home))
            for path in self.home.glob("*/*")
            if path.relative_to(self.home).parts[0] not in ("logs", "run", "tmp")
        )
        return entries, self.pids() if (self.home / "run/supervisor.sock").exists() else {}

    def pids(self):
        """{program: pid} of every RUNNING supervisord program (a changed pid means a restart)."""
        return dict(re.findall(r"^(\S+)\s+RUNNING\s+pid (\d+),", self.ctl("status").stdout, re.M))

    def url(self, service, path=""):
        return f"http://127.0.0.1:{self.vars['observability_ports'][service]}{path}"

    def stop_everything(self):
        if (self.home / "run/supervisor.sock").exists():
            self.ctl("shutdown")


@contextlib.contextmanager
def traversable_platform(prefix, **extra_vars):
    """A Platform in a directory other users can traverse, stopped and removed afterwards.

    PostgreSQL and Redis run as their own users, which must reach their data directories: pytest's own
    temporary root is private to root.
    """
    base = Path(tempfile.mkdtemp(prefix=prefix))
    base.chmod(0o711)
    platform = Platform(base, **extra_vars)
    try:
        yield platform
    finally:
        print("timings (s):", json.dumps(platform.timings))
        platform.stop_everything()
        shutil.rmtree(base, ignore_errors=True)


def assert_ok(run, what):
    assert run.rc == 0 and run.failed == 0, f"{what} failed:\n{run.tail()}"


def listening(port):
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def runbook_block(marker):
    """The fenced bash block of docs/runbooks/backup-restore.md that starts with `# <marker>`."""
    text = (ROOT / "docs/runbooks/backup-restore.md").read_text()
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        if block.startswith(f"# {marker}\n"):
            return block
    raise AssertionError(f"no bash block starting with '# {marker}' in the backup-restore runbook")
