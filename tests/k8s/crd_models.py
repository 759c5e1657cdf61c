"""Validation of custom resources against their projects' published CRD schemas, from npm packages.

The `@kubernetes-models/*` packages carry validators generated from the upstream CRDs (Karpenter's NodePool and
EC2NodeClass, ...). They are installed once, at pinned versions, into .venv/crd-models, and run by Node.js on the
objects given: every problem the upstream schema finds comes back as a line.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".venv" / "crd-models"
PACKAGES = {
    "@kubernetes-models/karpenter": "2.0.0",
    "@kubernetes-models/keda": "2.0.0",
    "@kubernetes-models/prometheus-operator": "6.0.0",
}
# apiVersion -> (package module, the kinds it validates)
MODELS = {
    "karpenter.sh/v1": ("@kubernetes-models/karpenter/karpenter.sh/v1", ("NodePool", "NodeClaim")),
    "karpenter.k8s.aws/v1": ("@kubernetes-models/karpenter/karpenter.k8s.aws/v1", ("EC2NodeClass",)),
    "keda.sh/v1alpha1": ("@kubernetes-models/keda/keda.sh/v1alpha1", ("ScaledObject", "TriggerAuthentication")),
    "monitoring.coreos.com/v1": (
        "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1",
        ("ServiceMonitor", "PodMonitor", "PrometheusRule"),
    ),
}

VALIDATE = """
const objects = JSON.parse(require("fs").readFileSync(0, "utf8"));
const models = %s;
(async () => {
  const problems = [];
  for (const obj of objects) {
    const where = `${obj.kind}/${(obj.metadata || {}).name}`;
    const known = models[obj.apiVersion];
    if (!known || !known[1].includes(obj.kind)) {
      problems.push(`${where}: no published schema for ${obj.apiVersion} ${obj.kind}`);
      continue;
    }
    const module = await import(known[0]);
    try { new module[obj.kind](obj).validate(); } catch (e) { problems.push(`${where}: ${e.message}`); }
  }
  console.log(JSON.stringify(problems));
})();
"""


def installed(cache: Path = CACHE) -> Path:
    """The package folder, installed with npm at the pinned versions when it is missing or other versions."""
    wanted = json.dumps(PACKAGES, sort_keys=True)
    stamp = cache / "packages.json"
    if stamp.is_file() and stamp.read_text() == wanted:
        return cache
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed to install the CRD schema packages " + ", ".join(PACKAGES))
    cache.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="crd-models-", dir=cache.parent))
    specs = [f"{name}@{version}" for name, version in PACKAGES.items()]
    proc = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--prefix", str(scratch), *specs],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        shutil.rmtree(scratch, ignore_errors=True)
        raise RuntimeError(f"npm install {' '.join(specs)} failed:\n{proc.stdout}\n{proc.stderr}")
    (scratch / "packages.json").write_text(wanted)
    # Another worker may have installed it meanwhile: keep the first complete one. Other versions go.
    if cache.is_dir() and (not stamp.is_file() or stamp.read_text() != wanted):
        shutil.rmtree(cache, ignore_errors=True)
    try:
        scratch.rename(cache)
    except OSError:
        shutil.rmtree(scratch, ignore_errors=True)
    return cache


def problems(objects: list[dict]) -> list[str]:
    """What the upstream schemas find wrong in the objects (empty: all valid)."""
    folder = installed()
    models = {api: [module, list(kinds)] for api, (module, kinds) in MODELS.items()}
    proc = subprocess.run(
        ["node", "--input-type=commonjs", "-e", VALIDATE % json.dumps(models)],
        input=json.dumps(objects),
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the schema validator failed:\n{proc.stderr}")
    return json.loads(proc.stdout)
