"""argoeks.mlops.iam_oidc_provider against moto's in-process IAM (and botocore's Stubber where moto falls short).

moto 5.2.5 implements OIDC providers except AddClientIDToOpenIDConnectProvider and
RemoveClientIDFromOpenIDConnectProvider (NotImplementedError "The add_client_id_to_open_id_connect_provider action
has not been implemented"), so the client id tests stub IAM instead.
"""

import hashlib
import ssl

import boto3
import pytest
from moto import mock_aws

from ansible_collections.argoeks.mlops.plugins.modules import iam_oidc_provider
from tests.unit.conftest import ModuleFailed

URL = "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B716D3041E"
ARN = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B716D3041E"
THUMB = "9e99a48a9960b14926bb7f3b02e22da2b0ab7280"
OTHER_THUMB = "a" * 40
PROVIDER = {"url": URL, "thumbprints": [THUMB], "tags": {"Project": "argoeks"}}


@pytest.fixture
def no_network(monkeypatch):
    """Fail loudly if a test reaches for the server certificate without saying what it should be."""

    def refuse(url, timeout=10):
        raise AssertionError(f"compute_thumbprint({url}) called")

    monkeypatch.setattr(iam_oidc_provider, "compute_thumbprint", refuse)


@pytest.fixture
def iam(aws_env, no_network):
    with mock_aws():
        yield boto3.client("iam")


def providers(iam):
    return [p["Arn"] for p in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]]


def test_creates_the_provider_irsa_needs(iam, run_module):
    result = run_module(iam_oidc_provider, PROVIDER)

    assert result["changed"] is True
    assert providers(iam) == [ARN]
    provider = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=ARN)
    assert provider["Url"] == URL.removeprefix("https://")
    assert provider["ClientIDList"] == ["sts.amazonaws.com"]
    assert provider["ThumbprintList"] == [THUMB]
    assert {t["Key"]: t["Value"] for t in provider["Tags"]} == {"Project": "argoeks"}
    assert result["provider"] == {
        "arn": ARN,
        "url": URL,
        "client_ids": ["sts.amazonaws.com"],
        "thumbprints": [THUMB],
        "tags": {"Project": "argoeks"},
    }


def test_second_run_changes_nothing(iam, run_module):
    run_module(iam_oidc_provider, PROVIDER)
    again = run_module(iam_oidc_provider, PROVIDER, diff=True)
    assert again["changed"] is False
    assert again["diff"]["before"] == again["diff"]["after"]
    # Without thumbprints an existing provider keeps its own (nothing is computed).
    assert run_module(iam_oidc_provider, {"url": URL, "tags": {"Project": "argoeks"}})["changed"] is False


def test_other_providers_are_left_alone(iam, run_module):
    other = iam.create_open_id_connect_provider(
        Url="https://oidc.eks.eu-west-1.amazonaws.com/id/OTHER", ClientIDList=["x"], ThumbprintList=[OTHER_THUMB]
    )["OpenIDConnectProviderArn"]
    run_module(iam_oidc_provider, PROVIDER)
    run_module(iam_oidc_provider, {"url": URL, "state": "absent"})
    assert providers(iam) == [other]


def test_check_mode_reports_creation_and_creates_nothing(iam, run_module):
    result = run_module(iam_oidc_provider, PROVIDER, check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["diff"]["before"] == {}
    assert result["diff"]["after"]["thumbprints"] == [THUMB]
    assert result["diff"]["after"]["client_ids"] == ["sts.amazonaws.com"]
    assert providers(iam) == []


def test_thumbprint_change_is_applied(iam, run_module):
    run_module(iam_oidc_provider, PROVIDER)
    changed = dict(PROVIDER, thumbprints=[OTHER_THUMB.upper()])

    checked = run_module(iam_oidc_provider, changed, check_mode=True, diff=True)
    assert checked["changed"] is True
    assert checked["diff"]["after"]["thumbprints"] == [OTHER_THUMB]
    assert iam.get_open_id_connect_provider(OpenIDConnectProviderArn=ARN)["ThumbprintList"] == [THUMB]

    result = run_module(iam_oidc_provider, changed)
    assert result["changed"] is True
    assert iam.get_open_id_connect_provider(OpenIDConnectProviderArn=ARN)["ThumbprintList"] == [OTHER_THUMB]
    assert run_module(iam_oidc_provider, changed)["changed"] is False


def test_tags_are_added_changed_and_purged(iam, run_module):
    run_module(iam_oidc_provider, dict(PROVIDER, tags={"Project": "argoeks", "Stale": "x"}))

    kept = run_module(iam_oidc_provider, dict(PROVIDER, tags={"Owner": "mlops"}, purge_tags=False))
    assert kept["changed"] is True
    assert kept["provider"]["tags"] == {"Project": "argoeks", "Stale": "x", "Owner": "mlops"}

    purged = run_module(iam_oidc_provider, dict(PROVIDER, tags={"Project": "platform"}))
    assert purged["changed"] is True
    tags = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=ARN)["Tags"]
    assert {t["Key"]: t["Value"] for t in tags} == {"Project": "platform"}
    assert purged["provider"]["tags"] == {"Project": "platform"}

    # tags omitted: leave them alone
    assert run_module(iam_oidc_provider, {"url": URL, "thumbprints": [THUMB]})["changed"] is False


def test_absent_deletes_and_is_idempotent(iam, run_module):
    run_module(iam_oidc_provider, PROVIDER)
    absent = {"url": URL, "state": "absent"}

    checked = run_module(iam_oidc_provider, absent, check_mode=True)
    assert checked["changed"] is True
    assert providers(iam) == [ARN]

    gone = run_module(iam_oidc_provider, absent, diff=True)
    assert gone["changed"] is True
    assert gone["diff"]["before"]["arn"] == ARN
    assert gone["provider"] == {}
    assert providers(iam) == []
    assert run_module(iam_oidc_provider, absent)["changed"] is False


@pytest.mark.parametrize(
    "url", ["http://oidc.eks.us-east-1.amazonaws.com/id/X", "oidc.eks.us-east-1.amazonaws.com/id/X", "https://"]
)
def test_invalid_url_fails_naming_the_option(iam, run_module, url):
    with pytest.raises(ModuleFailed) as failed:
        run_module(iam_oidc_provider, dict(PROVIDER, url=url))
    assert failed.value.result["msg"].startswith("url must be an https:// URL")
    assert providers(iam) == []


@pytest.mark.parametrize("thumbprint", ["abc", "g" * 40, THUMB + "0"])
def test_invalid_thumbprint_fails_naming_the_option(iam, run_module, thumbprint):
    with pytest.raises(ModuleFailed) as failed:
        run_module(iam_oidc_provider, dict(PROVIDER, thumbprints=[THUMB, thumbprint]))
    assert failed.value.result["msg"].startswith("thumbprints must be SHA-1 fingerprints")
    assert repr(thumbprint) in failed.value.result["msg"]
    assert providers(iam) == []


def test_more_than_five_thumbprints_fail(iam, run_module):
    with pytest.raises(ModuleFailed) as failed:
        run_module(iam_oidc_provider, dict(PROVIDER, thumbprints=[str(i) * 40 for i in range(6)]))
    assert "thumbprints takes at most 5" in failed.value.result["msg"]
    assert providers(iam) == []


def test_thumbprint_is_computed_when_not_given(iam, run_module, monkeypatch):
    asked = []

    def fake(url, timeout=10):
        asked.append(url)
        return OTHER_THUMB

    monkeypatch.setattr(iam_oidc_provider, "compute_thumbprint", fake)
    result = run_module(iam_oidc_provider, {"url": URL})
    assert asked == [URL]
    assert result["provider"]["thumbprints"] == [OTHER_THUMB]
    assert iam.get_open_id_connect_provider(OpenIDConnectProviderArn=ARN)["ThumbprintList"] == [OTHER_THUMB]


def test_unreachable_issuer_fails_suggesting_the_option(iam, run_module, monkeypatch):
    def unreachable(url, timeout=10):
        raise OSError("Name or service not known")

    monkeypatch.setattr(iam_oidc_provider, "compute_thumbprint", unreachable)
    with pytest.raises(ModuleFailed) as failed:
        run_module(iam_oidc_provider, {"url": URL})
    assert URL in failed.value.result["msg"]
    assert "thumbprints option" in failed.value.result["msg"]
    assert providers(iam) == []


def test_compute_thumbprint_hashes_the_der_certificate(monkeypatch):
    der = b"\x30\x03\x02\x01\x01"
    pem = ssl.DER_cert_to_PEM_cert(der)
    seen = []

    def get_server_certificate(addr, timeout=None):
        seen.append(addr)
        return pem

    monkeypatch.setattr(iam_oidc_provider.ssl, "get_server_certificate", get_server_certificate)
    assert iam_oidc_provider.compute_thumbprint(URL) == hashlib.sha1(der, usedforsecurity=False).hexdigest()
    assert iam_oidc_provider.compute_thumbprint("https://issuer.example:8443/x")
    assert seen == [("oidc.eks.us-east-1.amazonaws.com", 443), ("issuer.example", 8443)]


# ---- botocore Stubber ------------------------------------------------------------------------


@pytest.fixture
def stubbed_iam(stub_aws, no_network):
    return stub_aws("iam")


def stub_read(stubber, client_ids):
    stubber.add_response("list_open_id_connect_providers", {"OpenIDConnectProviderList": [{"Arn": ARN}]})
    stubber.add_response(
        "get_open_id_connect_provider",
        {"Url": URL.removeprefix("https://"), "ClientIDList": client_ids, "ThumbprintList": [THUMB], "Tags": []},
        {"OpenIDConnectProviderArn": ARN},
    )


def test_client_ids_are_added_and_removed(stubbed_iam, run_module):
    stub_read(stubbed_iam, ["sts.amazonaws.com", "old-audience"])
    stubbed_iam.add_response(
        "add_client_id_to_open_id_connect_provider", {}, {"OpenIDConnectProviderArn": ARN, "ClientID": "kubeflow"}
    )
    stubbed_iam.add_response(
        "remove_client_id_from_open_id_connect_provider",
        {},
        {"OpenIDConnectProviderArn": ARN, "ClientID": "old-audience"},
    )
    stubbed_iam.add_response(
        "get_open_id_connect_provider",
        {
            "Url": URL.removeprefix("https://"),
            "ClientIDList": ["sts.amazonaws.com", "kubeflow"],
            "ThumbprintList": [THUMB],
        },
        {"OpenIDConnectProviderArn": ARN},
    )

    result = run_module(iam_oidc_provider, {"url": URL, "client_ids": ["sts.amazonaws.com", "kubeflow"]}, diff=True)

    assert result["changed"] is True
    assert result["diff"]["before"]["client_ids"] == ["sts.amazonaws.com", "old-audience"]
    assert result["provider"]["client_ids"] == ["sts.amazonaws.com", "kubeflow"]
    stubbed_iam.assert_no_pending_responses()


def test_client_id_change_in_check_mode_calls_nothing(stubbed_iam, run_module):
    stub_read(stubbed_iam, ["sts.amazonaws.com"])
    result = run_module(iam_oidc_provider, {"url": URL, "client_ids": ["kubeflow"]}, check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["diff"]["after"]["client_ids"] == ["kubeflow"]
    stubbed_iam.assert_no_pending_responses()


def test_access_denied_names_the_url(stubbed_iam, run_module):
    stubbed_iam.add_client_error(
        "list_open_id_connect_providers",
        service_error_code="AccessDenied",
        service_message="User is not authorized to perform: iam:ListOpenIDConnectProviders",
        http_status_code=403,
    )
    with pytest.raises(ModuleFailed) as failed:
        run_module(iam_oidc_provider, PROVIDER)
    assert URL in failed.value.result["msg"]
    assert "AccessDenied" in failed.value.result["msg"]
    assert failed.value.result["error"]["code"] == "AccessDenied"
    stubbed_iam.assert_no_pending_responses()
