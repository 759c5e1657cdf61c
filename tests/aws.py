"""The platform's AWS emulator for tests (roles/aws_emulator/files/argoeks_emulator.py, moto server with the
platform's additions), started on a free port, recording the IAM action of every call it answers, and the
check of those actions against the IAM policy the eks docs give users (docs/eks-iam-policy.json)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3

from tests.support import ROOT, free_ports, wait_until

EMULATOR = ROOT / "roles" / "aws_emulator" / "files" / "argoeks_emulator.py"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
IAM_POLICY = ROOT / "docs" / "eks-iam-policy.json"


@dataclass
class Emulator:
    endpoint: str
    session: boto3.Session
    action_log: Path

    def client(self, service: str):
        return self.session.client(service, endpoint_url=self.endpoint)

    def actions(self) -> set[str]:
        """Every `service:Action` answered so far."""
        return set(self.action_log.read_text().split()) if self.action_log.exists() else set()


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the caller's AWS settings, with the emulator's dummy keys."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**env, **CREDENTIALS, **extra}


def _answers(sts) -> bool:
    try:
        sts.get_caller_identity()
    except Exception:  # any error means "not answering yet"
        return False
    return True


@contextlib.contextmanager
def aws_emulator(workdir: Path) -> Iterator[Emulator]:
    """The emulator on a free loopback port; its output and action log go to workdir."""
    (port,) = free_ports(1, also_plus=0)
    action_log = workdir / "aws-actions.log"
    with (workdir / "aws-emulator.log").open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(EMULATOR), "-H", "127.0.0.1", "-p", str(port)],
            env=clean_env(MOTO_IAM_LOAD_MANAGED_POLICIES="true", ARGOEKS_EMULATOR_ACTION_LOG=str(action_log)),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    session = boto3.Session(region_name="us-east-1", **{k.lower(): v for k, v in CREDENTIALS.items()})
    try:
        wait_until(lambda: _answers(session.client("sts", endpoint_url=endpoint)), what="the AWS emulator")
        yield Emulator(endpoint, session, action_log)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def documented_actions() -> set[str]:
    """The actions docs/eks-iam-policy.json allows."""
    policy = json.loads(IAM_POLICY.read_text())
    actions = set()
    for statement in policy["Statement"]:
        value = statement["Action"]
        actions.update([value] if isinstance(value, str) else value)
    return actions


def undocumented(actions: set[str]) -> list[str]:
    """The actions a run made that the documented IAM policy does not allow (matched case-insensitively, as IAM
    does), ignoring the emulator's own calls and STS GetCallerIdentity, which needs no permission."""
    allowed = {a.lower() for a in documented_actions()}
    return sorted(a for a in actions if iam_action(a).lower() not in allowed and a.lower() != "sts:getcalleridentity")


def iam_action(action: str) -> str:
    """The IAM action of an API call where the two differ: CloudWatch signs as `monitoring`, the Budgets API
    is authorised by ViewBudget/ModifyBudget, HeadBucket by ListBucket."""
    service, _, name = action.partition(":")
    if service == "monitoring":
        return f"cloudwatch:{name}"
    if service == "budgets":
        return "budgets:ViewBudget" if name.startswith("Describe") else "budgets:ModifyBudget"
    if action == "s3:HeadBucket":
        return "s3:ListBucket"
    return action


def assert_every_call_is_in_the_iam_policy(emulator: Emulator) -> None:
    """docs/eks-iam-policy.json is what the operator's identity needs: every call a test module's runs made
    (the emulator records each one's IAM action) must be allowed by it."""
    made = emulator.actions()
    assert len(made) > 10, made
    missing = undocumented(made)
    assert missing == [], f"add to docs/eks-iam-policy.json: {' '.join(missing)}"
