"""The shared AWS waiter: ready returns, a failed state fails at once, a timeout says how long and what it saw."""

import pytest

from ansible_collections.argoeks.mlops.plugins.module_utils import aws


class Failed(Exception):
    def __init__(self, result):
        super().__init__(result["msg"])
        self.result = result


class Module:
    def fail_json(self, **result):
        raise Failed(result)


@pytest.fixture
def clock(monkeypatch):
    """A clock that only moves when the waiter sleeps; .sleeps counts the polls."""

    class Clock:
        now = 0.0
        sleeps = 0

        def monotonic(self):
            return self.now

        def sleep(self, seconds):
            self.sleeps += 1
            self.now += seconds

    fake = Clock()
    monkeypatch.setattr(aws.time, "monotonic", fake.monotonic)
    monkeypatch.setattr(aws.time, "sleep", fake.sleep)
    return fake


def answers(*statuses):
    """describe() that answers these statuses in turn (None: the resource is gone), then the last one forever."""
    seen = list(statuses)

    def describe():
        status = seen.pop(0) if len(seen) > 1 else seen[0]
        return None if status is None else {"status": status, "health": {"issues": [{"code": "X", "message": "y"}]}}

    return describe


def test_returns_the_resource_once_it_is_ready(clock):
    resource = aws.wait_for(
        Module(), "thing t", answers("CREATING", "CREATING", "ACTIVE"), ready=("ACTIVE",), poll=10, timeout=600
    )
    assert resource["status"] == "ACTIVE"
    assert clock.sleeps == 2


def test_a_failed_state_fails_at_once_with_the_reason(clock):
    with pytest.raises(Failed) as failed:
        aws.wait_for(
            Module(),
            "thing t",
            answers("CREATING", "CREATE_FAILED", "ACTIVE"),
            ready=("ACTIVE",),
            failed=("CREATE_FAILED",),
            reason=aws.health_issues,
            extra=lambda resource: {"thing": resource},
            poll=10,
            timeout=1800,
        )
    assert failed.value.result["msg"] == "thing t is CREATE_FAILED instead of ACTIVE: X: y"
    assert failed.value.result["thing"]["status"] == "CREATE_FAILED"
    assert clock.sleeps == 1, "the waiter polled on after the failed state"


def test_times_out_naming_the_seconds_the_target_and_the_last_status(clock):
    with pytest.raises(Failed) as failed:
        aws.wait_for(Module(), "thing t", answers("CREATING"), ready=("ACTIVE",), poll=10, timeout=60)
    assert failed.value.result["msg"] == "Timed out after 60s waiting for thing t to be ACTIVE (it is CREATING)"
    assert 6 <= clock.sleeps <= 7


def test_waits_for_a_deletion_and_times_out_saying_deleted(clock):
    assert aws.wait_for(Module(), "thing t", answers("DELETING", None), ready=(aws.GONE,), poll=5, timeout=60) is None
    with pytest.raises(Failed) as failed:
        aws.wait_for(Module(), "thing t", answers("DELETING"), ready=(aws.GONE,), poll=5, timeout=20)
    assert failed.value.result["msg"] == "Timed out after 20s waiting for thing t to be deleted (it is DELETING)"


def test_a_resource_that_vanishes_while_it_should_become_ready_fails_at_once(clock):
    with pytest.raises(Failed) as failed:
        aws.wait_for(Module(), "thing t", answers("CREATING", None), ready=("ACTIVE",), poll=10, timeout=600)
    assert failed.value.result["msg"] == "thing t disappeared while waiting for it to be ACTIVE"
    assert clock.sleeps == 1


def test_health_issues_name_code_message_and_resources():
    resource = {
        "health": {
            "issues": [{"code": "AccessDenied", "message": "no role", "resourceIds": ["i-1", "i-2"]}, {"code": "Other"}]
        }
    }
    assert aws.health_issues(resource) == "AccessDenied: no role (resources: i-1, i-2); Other"
    assert aws.health_issues({}) == "EKS reports no health issues"
