"""Preflight on the eks inventories: what a real cluster would let through silently is refused (or warned
about) before any change. Only the preflight runs (--tags preflight): nothing reaches AWS."""

import json

import pytest

from tests.support import playbook


def preflight(inventory, **extra):
    return playbook("phase1.yml", "-i", f"inventories/{inventory}", "--tags", "preflight", "-e", json.dumps(extra))


@pytest.mark.parametrize("inventory", ["dev", "prod"])
def test_the_shipped_eks_inventories_pass_preflight(inventory):
    run = preflight(inventory)
    assert run.rc == 0 and run.failed == 0, run.tail()


def test_prod_refuses_a_public_endpoint_open_to_the_internet():
    run = preflight("prod", eks_cluster_endpoint_public_access=True, eks_cluster_public_access_cidrs=["0.0.0.0/0"])
    assert run.rc != 0
    assert "eks_cluster_public_access_cidrs: 0.0.0.0/0 opens the cluster's public API endpoint" in run.output
    allowed = preflight(
        "prod", eks_cluster_endpoint_public_access=True, eks_cluster_public_access_cidrs=["203.0.113.0/24"]
    )
    assert allowed.rc == 0, allowed.tail()


def test_dev_warns_about_a_public_endpoint_open_to_the_internet_and_goes_on():
    run = preflight("dev")
    assert run.rc == 0, run.tail()
    assert "[WARNING]: eks_cluster_public_access_cidrs: 0.0.0.0/0 opens" in " ".join(run.output.split())


def test_email_alerts_on_eks_refuse_the_pods_own_localhost_as_mail_relay():
    run = preflight("dev", observability_smtp_smarthost="localhost:25")
    assert run.rc != 0
    assert "observability_smtp_smarthost: 'localhost:25' is the Alertmanager pod itself on eks" in " ".join(
        run.output.split()
    )
    # Without email receivers there is no mail to send.
    slack = "https://hooks.slack.com/services/T000/B000/XXXX"
    quiet = preflight(
        "dev",
        observability_smtp_smarthost="localhost:25",
        observability_alert_email_to=[],
        observability_alert_slack_webhook_url=slack,
    )
    assert quiet.rc == 0, quiet.tail()
