# Copyright: argoeks maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""What every argoeks.mlops AWS module shares on top of amazon.aws's AnsibleAWSModule."""

from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry


def retry_decorator():
    """Jittered backoff that also retries ThrottlingException.

    AWSRetry's own list has "Throttling" but not the "ThrottlingException" that EKS, Budgets and
    other newer AWS APIs answer with.
    """
    return AWSRetry.jittered_backoff(catch_extra_error_codes=["ThrottlingException"])
