"""What the datalake role made, read back from the AWS emulator (which has every S3 feature)."""

import io
import json
import os

import boto3
import pyarrow.parquet as pq
import pytest

PREFIX = "argoeks-datalake-molecule"
LAYERS = ("bronze", "silver", "gold")


@pytest.fixture(scope="module")
def aws():
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
    endpoint = f"http://127.0.0.1:{os.environ.get('ARGOEKS_TEST_AWS_PORT', '24598')}"
    return {n: session.client(n, endpoint_url=endpoint) for n in ("s3", "glue", "iam")}


@pytest.mark.parametrize("layer", LAYERS)
def test_bucket_is_encrypted_and_private(aws, layer):
    bucket = f"{PREFIX}-{layer}"
    rules = aws["s3"].get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    block = aws["s3"].get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    settings = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
    assert block == dict.fromkeys(settings, True)
    tags = {t["Key"]: t["Value"] for t in aws["s3"].get_bucket_tagging(Bucket=bucket)["TagSet"]}
    assert tags["Layer"] == layer and tags["Component"] == "datalake" and tags["Project"] == "argoeks"


def test_only_gold_is_versioned(aws):
    status = {layer: aws["s3"].get_bucket_versioning(Bucket=f"{PREFIX}-{layer}").get("Status") for layer in LAYERS}
    assert status == {"bronze": None, "silver": None, "gold": "Enabled"}


def lifecycle(aws, layer):
    rules = aws["s3"].get_bucket_lifecycle_configuration(Bucket=f"{PREFIX}-{layer}")["Rules"]
    assert len(rules) == 1 and rules[0]["Status"] == "Enabled"
    return rules[0]


def test_bronze_moves_to_infrequent_access_then_glacier_and_expires(aws):
    rule = lifecycle(aws, "bronze")
    assert [(t["Days"], t["StorageClass"]) for t in rule["Transitions"]] == [(30, "STANDARD_IA"), (90, "GLACIER")]
    assert rule["Expiration"] == {"Days": 365}
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}


def test_silver_moves_to_infrequent_access_and_is_kept(aws):
    rule = lifecycle(aws, "silver")
    assert [(t["Days"], t["StorageClass"]) for t in rule["Transitions"]] == [(90, "STANDARD_IA")]
    assert "Expiration" not in rule


def test_gold_is_kept(aws):
    rule = lifecycle(aws, "gold")
    assert "Expiration" not in rule and not rule.get("Transitions")
    assert "NoncurrentVersionExpiration" not in rule


def test_glue_database_and_scheduled_crawlers(aws):
    assert aws["glue"].get_database(Name="mlops_molecule")["Database"]["Name"] == "mlops_molecule"
    role_arn = aws["iam"].get_role(RoleName="argoeks-molecule-glue-crawler")["Role"]["Arn"]
    schedules = {}
    for layer in LAYERS:
        crawler = aws["glue"].get_crawler(Name=f"{PREFIX}-{layer}")["Crawler"]
        assert crawler["DatabaseName"] == "mlops_molecule"
        assert crawler["Role"] in (role_arn, "argoeks-molecule-glue-crawler")
        assert crawler["Targets"]["S3Targets"][0]["Path"] == f"s3://{PREFIX}-{layer}/"
        assert crawler["TablePrefix"] == f"{layer}_"
        schedules[layer] = crawler["Schedule"]["ScheduleExpression"]
    assert schedules == {"bronze": "cron(0 * * * ? *)", "silver": "cron(15 */6 * * ? *)", "gold": "cron(30 2 * * ? *)"}


def test_crawler_role_is_a_glue_service_role_reading_the_buckets(aws):
    role = aws["iam"].get_role(RoleName="argoeks-molecule-glue-crawler")["Role"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "glue.amazonaws.com"}
    attached = aws["iam"].list_attached_role_policies(RoleName="argoeks-molecule-glue-crawler")["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["AWSGlueServiceRole"]
    role_name = "argoeks-molecule-glue-crawler"
    policy = aws["iam"].get_role_policy(RoleName=role_name, PolicyName=f"{role_name}-s3-read")
    resources = [r for s in policy["PolicyDocument"]["Statement"] for r in s["Resource"]]
    assert f"arn:aws:s3:::{PREFIX}-gold/*" in resources and f"arn:aws:s3:::{PREFIX}-bronze" in resources


def test_sample_batch_was_promoted_to_silver_and_gold(aws):
    s3 = aws["s3"]
    reports = s3.list_objects_v2(Bucket=f"{PREFIX}-bronze", Prefix="_reports/users/")["Contents"]
    assert len(reports) == 1
    report = json.loads(s3.get_object(Bucket=f"{PREFIX}-bronze", Key=reports[0]["Key"])["Body"].read())
    assert report["status"] == "promoted" and report["rows"] == 200 and report["failures"] == []
    silver = s3.list_objects_v2(Bucket=f"{PREFIX}-silver", Prefix="users/")["Contents"]
    assert [o["Key"] for o in silver] == [f"users/batch={report['batch']}/part-0.parquet"]
    body = s3.get_object(Bucket=f"{PREFIX}-gold", Key="users_by_country/part-0.parquet")["Body"].read()
    gold = pq.read_table(io.BytesIO(body)).to_pydict()
    assert sum(gold["users"]) == 200
    assert all(18 <= age <= 80 for age in gold["mean_age"])
