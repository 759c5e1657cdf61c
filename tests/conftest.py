"""Shared test set-up: makes argoeks.mlops importable as a collection from this checkout."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# ./argoeks setup links this checkout as .venv/collections/ansible_collections/argoeks/mlops.
COLLECTIONS = ROOT / ".venv" / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

# The modules that test the one Phase 2 platform they share (tests/platform/conftest.py), in the order they
# run, all on one worker: a module's teardowns must not take away what a later one reads (the model server
# stays until the end; MLflow and PostgreSQL serve everyone, so they go last), and the last one removes it.
PHASE2_PLATFORM_MODULES = (
    "tests/platform/test_phase2_serving_standalone.py",
    "tests/platform/test_phase2_pipelines_standalone.py",
    "tests/platform/test_phase2_jupyterhub_standalone.py",
    "tests/platform/test_phase2_feast_standalone.py",
    "tests/platform/test_phase2_mlflow_standalone.py",
    "tests/platform/test_phase2_platform_teardown.py",
)
PHASE2_PLATFORM_GROUP = "phase2-platform"

# The longest of the other modules (each brings up a platform of its own or runs molecule) start next, so
# that the two workers finish together instead of one of them running a long module alone at the end.
# Within a module, and for every other module, the order stays as collected.
LONGEST_FIRST = (
    *PHASE2_PLATFORM_MODULES,
    "tests/molecule/test_scenarios.py",
    "tests/platform/test_phase3_llm_standalone.py",
    "tests/platform/test_observability_standalone.py",
    "tests/platform/test_phase2_datalake_standalone.py",
    "tests/platform/test_phase1_standalone.py",
    "tests/platform/test_phase3_eks_contract.py",
)


def pytest_collection_modifyitems(items):
    rank = {path: position for position, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(LONGEST_FIRST)))


# pytest-xdist's scheduler: a test module runs whole on one worker (what `--dist loadfile` does: the module
# fixtures hold a platform each), and the modules of the shared Phase 2 platform run together on one, in the
# order above. pytest-xdist's own `xdist_group` marks are not used: with pytest 9 the group no longer reaches
# the node ids the scheduler splits on, and the shared modules ran split across the workers.
@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class ModuleOrSharedPlatformScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            module = nodeid.split("::")[0]
            return PHASE2_PLATFORM_GROUP if module in PHASE2_PLATFORM_MODULES else module

    return ModuleOrSharedPlatformScheduling(config, log)


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
