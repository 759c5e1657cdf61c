#!/usr/bin/python
# Copyright: argoeks maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

DOCUMENTATION = r"""
---
module: iam_oidc_provider
short_description: Manage an IAM OpenID Connect identity provider (the one EKS IRSA needs)
version_added: 0.1.0
description:
  - Creates, updates or deletes an AWS IAM OpenID Connect (OIDC) identity provider, with its client ids
    (audiences), server certificate thumbprints and tags, idempotently and with check mode and diff.
  - IAM roles for service accounts (IRSA) on EKS only work once the cluster's OIDC issuer URL is registered
    as such a provider; the roles' trust policies then name the provider's ARN.
  - Written because no well-kept Ansible module manages IAM OIDC providers (neither C(amazon.aws) nor
    C(community.aws) has one), and the alternatives (shelling out to C(aws iam ...) or C(eksctl)) are
    neither idempotent nor able to run in check mode.
  - The provider is found by its URL; an existing provider's URL cannot change (a different O(url) is a
    different provider).
author:
  - argoeks maintainers
options:
  url:
    description:
      - The issuer URL of the identity provider, for EKS the cluster's C(identity.oidc.issuer),
        for example C(https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B716D3041E).
      - Must start with C(https://).
    type: str
    required: true
  client_ids:
    description:
      - Client ids (audiences) the provider accepts. EKS IRSA tokens are issued for C(sts.amazonaws.com).
      - Client ids of an existing provider that are not listed are removed.
    type: list
    elements: str
    default: [sts.amazonaws.com]
  thumbprints:
    description:
      - SHA-1 fingerprints (40 hexadecimal characters) of the provider's server certificates; at most 5.
      - When empty, the module computes one when it creates the provider, from the certificate the server
        at the URL's host (port 443 unless the URL names another) presents, and leaves the thumbprints of an
        existing provider as they are.
      - Since 2023 AWS ignores thumbprints for providers whose certificates are signed by well-known CAs
        (as EKS issuers' are), but the API still wants one.
    type: list
    elements: str
    default: []
  state:
    description: Whether the provider should exist.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.tags
  - amazon.aws.boto3
notes:
  - Supports C(check_mode) and C(diff).
  - IAM is a global service; the region only selects the endpoint.
  - The computed thumbprint is that of the certificate the server presents (its leaf certificate), not of
    the top intermediate CA as the AWS console computes it; for EKS issuers AWS does not check it either way.
"""

EXAMPLES = r"""
- name: Register the EKS cluster's OIDC issuer for IRSA
  argoeks.mlops.iam_oidc_provider:
    url: "{{ eks_cluster.cluster.identity.oidc.issuer }}"
    client_ids: [sts.amazonaws.com]
    tags:
      Project: argoeks
  register: oidc

- name: Use its ARN in a role's trust policy
  ansible.builtin.debug:
    msg: "{{ oidc.provider.arn }}"

- name: Pin the thumbprint instead of computing it
  argoeks.mlops.iam_oidc_provider:
    url: https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B716D3041E
    thumbprints: [9e99a48a9960b14926bb7f3b02e22da2b0ab7280]

- name: Remove it
  argoeks.mlops.iam_oidc_provider:
    url: https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B716D3041E
    state: absent
"""

RETURN = r"""
provider:
  description: The provider as it is after the module ran (empty when absent).
  returned: always
  type: dict
  contains:
    arn:
      description: ARN of the provider.
      type: str
      sample: arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E5
    url:
      description: Issuer URL, with its C(https://) prefix.
      type: str
      sample: https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B716D3041E
    client_ids:
      description: Client ids (audiences) the provider accepts.
      type: list
      elements: str
      sample: [sts.amazonaws.com]
    thumbprints:
      description: Thumbprints of the provider's server certificates.
      type: list
      elements: str
      sample: [9e99a48a9960b14926bb7f3b02e22da2b0ab7280]
    tags:
      description: Tags of the provider.
      type: dict
      sample: {Project: argoeks}
"""

import contextlib
import hashlib
import re
import ssl
from urllib.parse import urlparse

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    import botocore

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import (
    ansible_dict_to_boto3_tag_list,
    boto3_tag_list_to_ansible_dict,
    compare_aws_tags,
)

from ansible_collections.argoeks.mlops.plugins.module_utils.aws import retry_decorator

THUMBPRINT = re.compile(r"^[0-9a-fA-F]{40}$")
MAX_THUMBPRINTS = 5
ARN_MARKER = ":oidc-provider/"


def compute_thumbprint(url, timeout=10):
    """SHA-1 fingerprint (lower-case hex) of the DER form of the certificate the server at `url` presents."""
    parsed = urlparse(url)
    pem = ssl.get_server_certificate((parsed.hostname, parsed.port or 443), timeout=timeout)
    der = ssl.PEM_cert_to_DER_cert(pem)
    return hashlib.sha1(der, usedforsecurity=False).hexdigest()


class OIDCProvider:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.url = module.params["url"]
        # IAM stores the URL without its scheme; the ARN ends with it.
        self.url_id = self.url[len("https://") :]
        self.client = module.client("iam", retry_decorator=retry_decorator())
        self.changed = False

    # ---- reading -------------------------------------------------------------------------
    def find_arn(self):
        try:
            providers = self.client.list_open_id_connect_providers(aws_retry=True)["OpenIDConnectProviderList"]
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            self.module.fail_json_aws(e, msg=f"Failed to list IAM OIDC providers while looking for {self.url}")
        for provider in providers:
            arn = provider["Arn"]
            if ARN_MARKER in arn and arn.split(ARN_MARKER, 1)[1] == self.url_id:
                return arn
        return None

    def describe(self, arn):
        """The provider as the module's options see it ({} when there is none)."""
        if arn is None:
            return {}
        try:
            provider = self.client.get_open_id_connect_provider(aws_retry=True, OpenIDConnectProviderArn=arn)
        except is_boto3_error_code("NoSuchEntity"):
            return {}
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
            self.module.fail_json_aws(e, msg=f"Failed to read IAM OIDC provider {self.url} ({arn})")
        return {
            "arn": arn,
            "url": "https://" + provider.get("Url", self.url_id),
            "client_ids": list(provider.get("ClientIDList", [])),
            "thumbprints": list(provider.get("ThumbprintList", [])),
            "tags": boto3_tag_list_to_ansible_dict(provider.get("Tags", [])),
        }

    # ---- desired state -------------------------------------------------------------------
    def wanted_thumbprints(self):
        if self.params["thumbprints"]:
            return unique(t.lower() for t in self.params["thumbprints"])
        try:
            return [compute_thumbprint(self.url)]
        except (OSError, ValueError) as e:
            self.module.fail_json(
                msg=f"Could not compute the thumbprint of {self.url} from its server certificate ({e}); "
                "set the thumbprints option"
            )

    # ---- changes ---------------------------------------------------------------------------
    def create(self):
        request = {
            "Url": self.url,
            "ClientIDList": unique(self.params["client_ids"]),
            "ThumbprintList": self.wanted_thumbprints(),
        }
        if self.params["tags"]:
            request["Tags"] = ansible_dict_to_boto3_tag_list(self.params["tags"])
        self.changed = True
        predicted = {
            "arn": None,
            "url": self.url,
            "client_ids": request["ClientIDList"],
            "thumbprints": request["ThumbprintList"],
            "tags": self.params["tags"] or {},
        }
        if self.module.check_mode:
            return predicted
        try:
            arn = self.client.create_open_id_connect_provider(aws_retry=True, **request)["OpenIDConnectProviderArn"]
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            self.module.fail_json_aws(e, msg=f"Failed to create IAM OIDC provider {self.url}")
        return self.describe(arn)

    def update(self, current):
        """Brings `current` to the options; returns the predicted state (check mode) or the state read back."""
        arn = current["arn"]
        after = dict(current)
        params = self.params

        if params["thumbprints"]:
            wanted = unique(t.lower() for t in params["thumbprints"])
            if sorted(wanted) != sorted(t.lower() for t in current["thumbprints"]):
                self.call(
                    "update_open_id_connect_provider_thumbprint",
                    "update the thumbprints of",
                    OpenIDConnectProviderArn=arn,
                    ThumbprintList=wanted,
                )
                after["thumbprints"] = wanted

        wanted_ids = unique(params["client_ids"])
        for client_id in wanted_ids:
            if client_id not in current["client_ids"]:
                self.call(
                    "add_client_id_to_open_id_connect_provider",
                    f"add client id {client_id} to",
                    OpenIDConnectProviderArn=arn,
                    ClientID=client_id,
                )
        for client_id in current["client_ids"]:
            if client_id not in wanted_ids:
                self.call(
                    "remove_client_id_from_open_id_connect_provider",
                    f"remove client id {client_id} from",
                    OpenIDConnectProviderArn=arn,
                    ClientID=client_id,
                )
        if set(wanted_ids) != set(current["client_ids"]):
            after["client_ids"] = wanted_ids

        if params["tags"] is not None:
            to_set, to_remove = compare_aws_tags(current["tags"], params["tags"], params["purge_tags"])
            if to_remove:
                self.call("untag_open_id_connect_provider", "untag", OpenIDConnectProviderArn=arn, TagKeys=to_remove)
            if to_set:
                self.call(
                    "tag_open_id_connect_provider",
                    "tag",
                    OpenIDConnectProviderArn=arn,
                    Tags=ansible_dict_to_boto3_tag_list(to_set),
                )
            if to_set or to_remove:
                tags = {k: v for k, v in current["tags"].items() if k not in to_remove}
                tags.update(to_set)
                after["tags"] = tags

        if not self.changed or self.module.check_mode:
            return after
        return self.describe(arn)

    def delete(self, arn):
        self.changed = True
        if self.module.check_mode:
            return
        try:
            self.client.delete_open_id_connect_provider(aws_retry=True, OpenIDConnectProviderArn=arn)
        except is_boto3_error_code("NoSuchEntity"):
            return
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
            self.module.fail_json_aws(e, msg=f"Failed to delete IAM OIDC provider {self.url} ({arn})")

    def call(self, method, what, **kwargs):
        self.changed = True
        if self.module.check_mode:
            return
        try:
            getattr(self.client, method)(aws_retry=True, **kwargs)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            self.module.fail_json_aws(e, msg=f"Failed to {what} IAM OIDC provider {self.url}")


def unique(items):
    """Items in their order, without repeats."""
    return list(dict.fromkeys(items))


def validate(module):
    """Fail naming the option before any AWS call."""
    params = module.params
    url = params["url"]
    if not url.startswith("https://") or not urlparse(url).hostname:
        module.fail_json(msg=f"url must be an https:// URL with a host name, got {url!r}")
    if len(url) > 255:
        module.fail_json(msg=f"url must be at most 255 characters long, got {len(url)}")
    bad = [t for t in params["thumbprints"] if not THUMBPRINT.match(t)]
    if bad:
        module.fail_json(
            msg=f"thumbprints must be SHA-1 fingerprints of 40 hexadecimal characters, got {', '.join(map(repr, bad))}"
        )
    if len(unique(t.lower() for t in params["thumbprints"])) > MAX_THUMBPRINTS:
        module.fail_json(msg=f"thumbprints takes at most {MAX_THUMBPRINTS} fingerprints")
    if params["state"] == "present" and not params["client_ids"]:
        module.fail_json(msg="client_ids must list at least one client id (sts.amazonaws.com for EKS IRSA)")
    bad = [c for c in params["client_ids"] if not c or len(c) > 255]
    if bad:
        module.fail_json(msg=f"client_ids must be 1 to 255 characters long, got {', '.join(map(repr, bad))}")


def main():
    argument_spec = dict(
        url=dict(type="str", required=True),
        client_ids=dict(type="list", elements="str", default=["sts.amazonaws.com"]),
        thumbprints=dict(type="list", elements="str", default=[]),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        tags=dict(type="dict", aliases=["resource_tags"]),
        purge_tags=dict(type="bool", default=True),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    validate(module)

    provider = OIDCProvider(module)
    before = provider.describe(provider.find_arn())

    if module.params["state"] == "absent":
        if before:
            provider.delete(before["arn"])
        module.exit_json(changed=provider.changed, provider={}, diff={"before": before, "after": {}})

    after = provider.update(before) if before else provider.create()
    module.exit_json(changed=provider.changed, provider=after, diff={"before": before, "after": after})


if __name__ == "__main__":
    main()
