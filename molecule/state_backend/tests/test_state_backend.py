"""What the state_backend role made, read back from the AWS emulator as a user would."""

import json
import os

import boto3
import pytest

BUCKET = "argoeks-molecule-state"
TABLE = "argoeks-molecule-locks"
HOME = os.environ.get("ARGOEKS_TEST_HOME", "/tmp/argoeks-molecule")


@pytest.fixture(scope="module")
def aws():
    endpoint = f"http://127.0.0.1:{os.environ.get('ARGOEKS_TEST_AWS_PORT', '24598')}"
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
    return {name: session.client(name, endpoint_url=endpoint) for name in ("s3", "dynamodb", "kms")}


def test_bucket_is_versioned(aws):
    assert aws["s3"].get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"


def test_bucket_is_encrypted_with_the_created_kms_key(aws):
    rule = aws["s3"].get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"][0]
    default = rule["ApplyServerSideEncryptionByDefault"]
    assert default["SSEAlgorithm"] == "aws:kms"
    key = aws["kms"].describe_key(KeyId=f"alias/{BUCKET}")["KeyMetadata"]
    assert default["KMSMasterKeyID"] in (key["Arn"], key["KeyId"])
    assert aws["kms"].get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is True


def test_all_public_access_is_blocked(aws):
    config = aws["s3"].get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"]
    assert config == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }


def test_policy_denies_requests_without_tls(aws):
    policy = json.loads(aws["s3"].get_bucket_policy(Bucket=BUCKET)["Policy"])
    deny = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    assert len(deny) == 1
    assert deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert set(deny[0]["Resource"]) == {f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"}


def test_policy_really_denies_plain_http_object_access(aws):
    with pytest.raises(aws["s3"].exceptions.ClientError) as denied:
        aws["s3"].put_object(Bucket=BUCKET, Key="probe", Body=b"x")
    assert denied.value.response["Error"]["Code"] in ("403", "AccessDenied")


def test_bucket_carries_the_cost_allocation_tags(aws):
    tags = {t["Key"]: t["Value"] for t in aws["s3"].get_bucket_tagging(Bucket=BUCKET)["TagSet"]}
    assert tags["Project"] == "argoeks"
    assert tags["Component"] == "terraform-state"


def test_lock_table_matches_terraform(aws):
    table = aws["dynamodb"].describe_table(TableName=TABLE)["Table"]
    assert table["KeySchema"] == [{"AttributeName": "LockID", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "LockID", "AttributeType": "S"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSEDescription"]["Status"] == "ENABLED"
    pitr = aws["dynamodb"].describe_continuous_backups(TableName=TABLE)["ContinuousBackupsDescription"]
    assert pitr["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"


def test_backend_configuration_names_bucket_table_and_key(host, aws):
    key = aws["kms"].describe_key(KeyId=f"alias/{BUCKET}")["KeyMetadata"]["Arn"]
    hcl = host.file(f"{HOME}/terraform/dev/backend.hcl")
    assert hcl.exists
    assert f'bucket         = "{BUCKET}"' in hcl.content_string
    assert f'dynamodb_table = "{TABLE}"' in hcl.content_string
    assert 'key            = "dev/terraform.tfstate"' in hcl.content_string
    assert f'kms_key_id     = "{key}"' in hcl.content_string
    assert 'backend "s3" {}' in host.file(f"{HOME}/terraform/dev/backend.tf").content_string
