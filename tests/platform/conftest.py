"""The Phase 2 platform that the Phase 2 test modules share.

site.yml brings it up from nothing once per test run (what `./argoeks up` runs: Phase 1, every Phase 2 role
and a first served model); the modules of PHASE2_PLATFORM_MODULES (tests/conftest.py) then test it in
that order on one worker, each tearing down only its own component at its end, and the last one removes
everything. Modules whose tests need a platform of their own (Phase 1, observability, the data lake, the
LLM) keep one.
"""

import pytest

from tests.platform.standalone import PHASE2_PLATFORM_VARS, assert_ok, traversable_platform


@pytest.fixture(scope="session")
def phase2_platform():
    """The shared platform, after its first site.yml from nothing (`platform.bring_up`, asserted by the
    serving module's first test; the other modules' fixtures require it to have succeeded)."""
    with traversable_platform("argoeks-phase2-", **PHASE2_PLATFORM_VARS) as platform:
        platform.bring_up = platform.run(
            "site.yml",
            "-e",
            "verify_checkpoints_skip=false",
            timed="site.yml (Phase 1, all of Phase 2, first model) from nothing",
        )
        yield platform


@pytest.fixture(scope="module")
def shared_platform(phase2_platform):
    """The shared platform for a module that needs it up."""
    assert_ok(phase2_platform.bring_up, "site.yml (the shared platform's bring-up)")
    return phase2_platform
