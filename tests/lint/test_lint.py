"""The linters the project promises to stay clean under, each a test that shows its findings."""

import subprocess

import pytest

from tests.support import ROOT, VENV_BIN, tool_env

LINTERS = {
    "ansible-lint (production profile)": [str(VENV_BIN / "ansible-lint"), "--nocolor", "-q"],
    "yamllint": [str(VENV_BIN / "yamllint"), "--strict", "."],
    "ruff check": [str(VENV_BIN / "ruff"), "check", "."],
    "ruff format": [str(VENV_BIN / "ruff"), "format", "--check", "."],
}


@pytest.mark.parametrize("name", list(LINTERS))
def test_linter_is_clean(name):
    proc = subprocess.run(
        LINTERS[name], cwd=ROOT, env=tool_env(), capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, f"{name} found problems:\n{proc.stdout}\n{proc.stderr}"
