"""Fixtures for running modules in-process, the way Ansible runs them, against moto."""

import json

import boto3
import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper
from botocore.stub import Stubber


class ModuleFailed(Exception):
    def __init__(self, result):
        super().__init__(result.get("msg"))
        self.result = result


@pytest.fixture
def aws_env(monkeypatch):
    """Dummy credentials and a region for moto; no endpoint so moto's in-process mock answers."""
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_URL", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")


@pytest.fixture
def run_module(capsys):
    """run_module(module, args, check_mode=False, diff=False) -> result dict; raises ModuleFailed."""

    def run(module, args, check_mode=False, diff=False):
        args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
        with patch_module_args(args), pytest.raises(SystemExit) as exited:
            module.main()
        result = json.loads(capsys.readouterr().out)
        if exited.value.code != 0 or result.get("failed"):
            raise ModuleFailed(result)
        return result

    return run


@pytest.fixture
def stub_aws(aws_env, monkeypatch):
    """stub_aws("eks") -> a botocore Stubber whose client every AnsibleAWSModule gets, wrapped in the
    module's own retry decorator, for the calls moto lacks and for error paths (AccessDenied, throttling)."""
    stubbers = []

    def make(service):
        client = boto3.client(service, region_name="us-east-1")

        def fake_client(self, name, retry_decorator=None, **kwargs):
            assert name == service, f"the module asked for a {name} client; the test stubs {service}"
            return RetryingBotoClientWrapper(client, retry_decorator) if retry_decorator else client

        monkeypatch.setattr(AnsibleAWSModule, "client", fake_client)
        stubber = Stubber(client)
        stubber.activate()
        stubbers.append(stubber)
        return stubber

    yield make
    for stubber in stubbers:
        stubber.deactivate()
