"""Every module's DOCUMENTATION, EXAMPLES and RETURN parse, and ansible-doc renders them."""

import ast
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support import ROOT, VENV_BIN, tool_env

MODULES = sorted(p for p in (ROOT / "plugins" / "modules").glob("*.py") if not p.name.startswith("_"))


def doc_blocks(path: Path):
    tree = ast.parse(path.read_text())
    return {
        node.targets[0].id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id in ("DOCUMENTATION", "EXAMPLES", "RETURN")
    }


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_doc_blocks_are_yaml(path):
    blocks = doc_blocks(path)
    assert set(blocks) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}
    documentation = yaml.safe_load(blocks["DOCUMENTATION"])
    assert documentation["module"] == path.stem
    assert documentation["short_description"]
    yaml.safe_load(blocks["EXAMPLES"])
    yaml.safe_load(blocks["RETURN"])


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_ansible_doc_renders(path):
    proc = subprocess.run(
        [
            str(
                VENV_BIN / "ansible-doc",
            ),
            f"argoeks.mlops.{path.stem}",
        ],
        cwd=ROOT,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0 and "[ERROR]" not in proc.stderr, proc.stderr


def test_aws_modules_are_in_the_action_group():
    runtime = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())
    group = set(runtime["action_groups"]["aws"])
    uses_aws = {p.stem for p in MODULES if "AnsibleAWSModule" in p.read_text()}
    assert uses_aws == group
