"""Helpers for tests that run the project's playbooks and services the way a user does."""

import fcntl
import json
import os
import re
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
RECAP = re.compile(r"ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")


def tool_env(**extra):
    """The environment ./argoeks gives ansible-playbook, molecule and the aws CLI."""
    env = dict(os.environ)
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "ANSIBLE_INVENTORY"):
        env.pop(var, None)
    env.update(
        PATH=f"{VENV_BIN}:{env.get('PATH', '')}",
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        PY_COLORS="0",
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _is_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# Ports handed out to running test processes on this machine ({port: pid}). A port that is free when
# one process looks may be bound by another's service a minute later: every process records what it
# took, under a lock, and skips what a live process holds (the two xdist workers, parallel runs).
PORT_CLAIMS = Path(os.environ.get("ARGOEKS_TEST_PORT_CLAIMS", "/tmp/argoeks-test-ports.json"))


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def free_ports(count, also_plus=10000, start=21000, end=29000):
    """`count` free loopback ports p for which p + also_plus is free too (SeaweedFS's gRPC ports)."""
    with open(PORT_CLAIMS.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            claims = {int(port): pid for port, pid in json.loads(PORT_CLAIMS.read_text()).items()}
        except (FileNotFoundError, ValueError):
            claims = {}
        claims = {port: pid for port, pid in claims.items() if _alive(pid)}
        taken = set(claims)
        ports = []
        port = start + (os.getpid() * 7919) % (end - start)
        for _ in range(end - start):
            port = start if port >= end else port + 1
            wanted = {port, port + also_plus} if also_plus else {port}
            if wanted & taken:
                continue
            if all(_is_free(p) for p in wanted):
                ports.append(port)
                taken |= wanted
                claims.update(dict.fromkeys(wanted, os.getpid()))
                if len(ports) == count:
                    PORT_CLAIMS.write_text(json.dumps(claims))
                    return ports
        raise RuntimeError("no free loopback ports")


@dataclass
class Run:
    rc: int
    output: str

    @property
    def recap(self):
        """(ok, changed, unreachable, failed) of the last host line of PLAY RECAP."""
        found = RECAP.findall(self.output)
        assert found, f"no PLAY RECAP in output:\n{self.tail()}"
        return tuple(int(n) for n in found[-1])

    @property
    def changed(self):
        return self.recap[1]

    @property
    def failed(self):
        return self.recap[3]

    def tail(self, lines=60):
        return "\n".join(self.output.splitlines()[-lines:])

    def changed_tasks(self):
        """Names of tasks that reported a change, to explain a failed idempotence check."""
        names, current = [], None
        for line in self.output.splitlines():
            if line.startswith("TASK ["):
                current = line
            elif line.startswith("changed:") and current and current not in names:
                names.append(current)
        return names


def playbook(playbook_name, *args, timeout=1800, env=None):
    """Run `ansible-playbook <playbook> <args>` from the repository root, as the README does."""
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), playbook_name, *args],
        cwd=ROOT,
        env=env or tool_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(proc.returncode, proc.stdout + proc.stderr)


def wait_until(predicate, timeout=60, interval=0.5, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def read_env_file(path):
    """KEY=value lines of a shell env file (values may be single-quoted)."""
    values = {}
    for line in Path(path).read_text().splitlines():
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        values[key] = value
    return values
