"""Shared test set-up: makes argoeks.mlops importable as a collection from this checkout."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# ./argoeks setup links this checkout as .venv/collections/ansible_collections/argoeks/mlops.
COLLECTIONS = ROOT / ".venv" / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

# The longest modules (each brings up a platform or runs molecule) start first, so that the two workers
# finish together instead of one of them running a long module alone at the end. Within a module, and
# for every other module, the order stays as collected.
LONGEST_FIRST = (
    "tests/platform/test_phase2_serving_standalone.py",
    "tests/platform/test_phase2_jupyterhub_standalone.py",
    "tests/platform/test_phase2_mlflow_standalone.py",
    "tests/platform/test_phase2_feast_standalone.py",
    "tests/platform/test_phase2_pipelines_standalone.py",
    "tests/molecule/test_scenarios.py",
    "tests/platform/test_phase3_llm_standalone.py",
    "tests/platform/test_observability_standalone.py",
    "tests/platform/test_phase2_datalake_standalone.py",
    "tests/platform/test_phase1_standalone.py",
    "tests/platform/test_phase3_gpu_eks_contract.py",
)


def pytest_collection_modifyitems(items):
    rank = {path: position for position, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(LONGEST_FIRST)))


# Seconds per test module (set-up, calls and teardown), printed at the end of the run.
MODULE_SECONDS = {}


def pytest_runtest_logreport(report):
    module = report.nodeid.split("::")[0]
    MODULE_SECONDS[module] = MODULE_SECONDS.get(module, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    if not MODULE_SECONDS:
        return
    terminalreporter.section("seconds per test module")
    for module, seconds in sorted(MODULE_SECONDS.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"{seconds:8.1f}  {module}")
    terminalreporter.write_line(f"{sum(MODULE_SECONDS.values()):8.1f}  (all modules, summed over the workers)")
