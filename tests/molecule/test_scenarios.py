"""Every molecule scenario: converge, idempotence, check mode, verify (testinfra), cleanup, destroy."""

import subprocess

import pytest

from tests.support import ROOT, VENV_BIN, free_ports, tool_env

SCENARIOS = sorted(p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml"))


@pytest.mark.molecule
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario(scenario, tmp_path):
    (aws_port,) = free_ports(1, also_plus=0)
    # Molecule keeps a scenario's state ("instances already created") under ~/.ansible/tmp, keyed by the
    # project directory's name only: a run that was killed would make the next one skip `create` and
    # converge against an emulator that is not running. Each test keeps that state in its own directory.
    env = tool_env(
        ARGOEKS_TEST_HOME=tmp_path / "home",
        ARGOEKS_TEST_AWS_PORT=aws_port,
        MOLECULE_EPHEMERAL_DIRECTORY=tmp_path / "molecule-state",
    )
    proc = subprocess.run(
        [str(VENV_BIN / "molecule"), "test", "-s", scenario],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"molecule test -s {scenario} failed:\n" + "\n".join(output.splitlines()[-120:])
    assert "passed" in output, "the verify step ran no testinfra test"


def test_there_are_scenarios():
    assert "state_backend" in SCENARIOS
