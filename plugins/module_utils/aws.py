# Copyright: argoeks maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""What every argoeks.mlops AWS module shares on top of amazon.aws's AnsibleAWSModule.

The AWS plumbing lives here once: the retrying client, a change call that honours check mode,
describe-or-none, delete ignoring a resource that is already gone, tag sync, one waiter with
`ready` and `failed` states and one timeout message, and EKS health issues as text.
"""

import contextlib
import time

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    import botocore

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.tagging import compare_aws_tags

GONE = None  # the status a waiter sees once describe() finds nothing


def retry_decorator():
    """Jittered backoff that also retries ThrottlingException.

    AWSRetry's own list has "Throttling" but not the "ThrottlingException" that EKS, Budgets and
    other newer AWS APIs answer with.
    """
    return AWSRetry.jittered_backoff(catch_extra_error_codes=["ThrottlingException"])


def boto_errors():
    return (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)


def health_issues(resource):
    """The `health.issues` of an EKS cluster, node group or add-on as one line."""
    issues = ((resource or {}).get("health") or {}).get("issues") or []
    if not issues:
        return "EKS reports no health issues"
    described = []
    for issue in issues:
        text = f"{issue.get('code', 'Unknown')}: {issue.get('message', '')}".rstrip(": ")
        if issue.get("resourceIds"):
            text += f" (resources: {', '.join(issue['resourceIds'])})"
        described.append(text)
    return "; ".join(described)


def wait_for(module, what, describe, *, ready, poll, timeout, failed=(), status=None, reason=None, extra=None):
    """Poll `describe()` until the resource's status is one of `ready`, and return what it last described.

    `ready` and `failed` are collections of statuses; GONE (None) stands for "describe() found nothing",
    so `ready=(GONE,)` waits for a deletion. A status in `failed` fails at once, with `reason(resource)`;
    a resource that vanishes while it should become ready fails at once too. Otherwise the module fails
    after `timeout` seconds with "Timed out after Ns waiting for <what> to be <ready> (it is <status>)".
    `extra(resource)` adds return values to a failure (such as the resource's state).
    """
    status = status or (lambda resource: resource.get("status"))
    target = "deleted" if tuple(ready) == (GONE,) else " or ".join(str(state) for state in ready)
    deadline = time.monotonic() + timeout
    while True:
        resource = describe()
        found = GONE if resource is None else status(resource)
        if found in ready:
            return resource
        more = extra(resource) if extra and resource is not None else {}
        if found in failed:
            why = reason(resource) if reason else ""
            module.fail_json(msg=f"{what} is {found} instead of {target}" + (f": {why}" if why else ""), **more)
        if found is GONE:
            module.fail_json(msg=f"{what} disappeared while waiting for it to be {target}")
        if time.monotonic() > deadline:
            module.fail_json(
                msg=f"Timed out after {timeout}s waiting for {what} to be {target} (it is {found})", **more
            )
        time.sleep(poll)


class AwsResource:
    """One AWS resource a module manages: its client, its name in messages (`what`) and `changed`."""

    def __init__(self, module, service, what):
        self.module = module
        self.params = module.params
        self.what = what
        self.client = module.client(service, retry_decorator=retry_decorator())
        self.changed = False

    def fail(self, error, action):
        self.module.fail_json_aws(error, msg=f"Failed to {action} {self.what}")

    def read(self, method, action="read", **kwargs):
        """A call that changes nothing (runs in check mode too); fails the module on an AWS error."""
        try:
            return getattr(self.client, method)(aws_retry=True, **kwargs)
        except boto_errors() as e:
            self.fail(e, action)

    def call(self, method, action, **kwargs):
        """A change: marks the result changed and is skipped in check mode (returns None then)."""
        self.changed = True
        if self.module.check_mode:
            return None
        return self.read(method, action, **kwargs)

    def describe_or_none(self, method, missing, action="read", **kwargs):
        """The answer of a describe call, or None when AWS answers with one of the `missing` error codes."""
        try:
            return getattr(self.client, method)(aws_retry=True, **kwargs)
        except is_boto3_error_code(missing):
            return None
        except boto_errors() as e:  # pylint: disable=duplicate-except
            self.fail(e, action)

    def delete_if_present(self, method, missing, **kwargs):
        """A delete call; a resource that is already gone (one of the `missing` codes) is not a change."""
        if self.module.check_mode:
            self.changed = True
            return
        try:
            getattr(self.client, method)(aws_retry=True, **kwargs)
        except is_boto3_error_code(missing):
            return
        except boto_errors() as e:  # pylint: disable=duplicate-except
            self.fail(e, "delete")
        self.changed = True

    def sync_tags(self, current_tags, tag, untag):
        """Bring the tags to the `tags`/`purge_tags` options with `tag(dict)` and `untag(keys)`; returns the tags
        as they are afterwards. Nothing happens when the `tags` option is not given.
        """
        current_tags = current_tags or {}
        if self.params.get("tags") is None:
            return dict(current_tags)
        to_add, to_remove = compare_aws_tags(current_tags, self.params["tags"], self.params["purge_tags"])
        if to_remove:
            untag(to_remove)
        if to_add:
            tag(to_add)
        after = {key: value for key, value in current_tags.items() if key not in to_remove}
        after.update(to_add)
        return after

    def wait(self, describe, *, ready, poll, failed=(), status=None, reason=None, extra=None):
        """wait_for() with this resource's name and the module's `wait_timeout`."""
        return wait_for(
            self.module,
            self.what,
            describe,
            ready=ready,
            failed=failed,
            poll=poll,
            timeout=self.params["wait_timeout"],
            status=status,
            reason=reason,
            extra=extra,
        )
