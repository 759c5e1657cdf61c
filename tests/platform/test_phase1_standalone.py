"""Phase 1 on the standalone target, from nothing, exactly as a user runs it.

The tests of this module share one platform (its own home and ports) and run in file order:
bad input first (nothing may be created), then bring-up, idempotence, check mode, what the
user can see with the aws CLI, durability across restarts, Terraform migration and teardown.
"""

import json
import shutil
import subprocess

import boto3
import pytest

from tests.platform.standalone import Platform, assert_ok, listening, runbook_block
from tests.support import tool_env, wait_until

pytestmark = pytest.mark.platform

BUCKET = "argoeks-terraform-state"
TABLE = "argoeks-terraform-locks"


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    platform = Platform(tmp_path_factory.mktemp("platform"))
    yield platform
    platform.stop_everything()


# ---- bad input fails in preflight, naming the variable, and creates nothing -------------------


@pytest.mark.parametrize(
    ("extra", "variable", "accepted"),
    [
        ("state_backend_bucket=Bad_Bucket", "state_backend_bucket", "accepted: 3-63 characters"),
        ('{"budget_emails": ["not-an-email"]}', "budget_emails", "accepted: addresses like name@example.com"),
        ("platform_target=gke", "platform_target", "accepted: standalone, eks"),
    ],
)
def test_bad_input_fails_in_preflight_and_creates_nothing(platform, extra, variable, accepted):
    run = platform.run("phase1.yml", "-e", extra)
    assert run.rc != 0
    assert "TASK [preflight : Validate the inventory" in run.output
    assert f"{variable}:" in run.output, run.tail()
    assert accepted in run.output
    assert "nothing was changed" in run.output
    assert not platform.home.exists(), "preflight failed but the platform home was created"


def test_every_problem_is_reported_at_once(platform):
    run = platform.run(
        "phase1.yml",
        "-e",
        '{"state_backend_bucket": "Bad_Bucket", "budget_emails": ["x@"], "aws_region": "mars-1"}',
    )
    assert run.rc != 0
    # observability_alert_email_to defaults to budget_emails, so the bad address is reported there too.
    assert "4 problems" in run.output
    for variable in ("state_backend_bucket:", "budget_emails:", "aws_region:", "observability_alert_email_to:"):
        assert variable in run.output
    assert not platform.home.exists()


# ---- bring-up from nothing, then idempotence and check mode ---------------------------------------


def test_phase1_brings_the_platform_up_from_nothing(platform):
    run = platform.run()
    assert_ok(run, "phase1.yml")
    assert run.changed > 0
    assert f"state bucket:    s3://{BUCKET}" in run.output, "the phase summary is missing"
    assert platform.healthy(), platform.ctl("status").stdout


def test_second_run_changes_nothing(platform):
    run = platform.run()
    assert_ok(run, "second phase1.yml")
    assert run.changed == 0, f"changed tasks: {run.changed_tasks()}"


def test_check_mode_with_diff_reports_no_change(platform):
    run = platform.run("phase1.yml", "--check", "--diff")
    assert_ok(run, "phase1.yml --check --diff")
    assert run.changed == 0, f"changed tasks: {run.changed_tasks()}"


# ---- what the user sees with the README's endpoint settings -----------------------------------------


def test_state_bucket_is_versioned_and_encrypted(platform):
    assert platform.aws_cli("s3api", "get-bucket-versioning", "--bucket", BUCKET)["Status"] == "Enabled"
    rules = platform.aws_cli("s3api", "get-bucket-encryption", "--bucket", BUCKET)["ServerSideEncryptionConfiguration"]
    assert rules["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


def test_lock_table_has_lockid_on_demand_and_pitr(platform):
    table = platform.aws_cli("dynamodb", "describe-table", "--table-name", TABLE)["Table"]
    assert table["KeySchema"] == [{"AttributeName": "LockID", "KeyType": "HASH"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    backups = platform.aws_cli("dynamodb", "describe-continuous-backups", "--table-name", TABLE)
    assert backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == (
        "ENABLED"
    )


def test_budget_and_alarms_exist_in_the_emulator(platform):
    account = platform.client("sts").get_caller_identity()["Account"]
    budgets = platform.client("budgets")
    budget = budgets.describe_budget(AccountId=account, BudgetName="argoeks-dev-monthly")["Budget"]
    assert float(budget["BudgetLimit"]["Amount"]) == 650
    notifications = budgets.describe_notifications_for_budget(AccountId=account, BudgetName="argoeks-dev-monthly")
    assert sorted(float(n["Threshold"]) for n in notifications["Notifications"]) == [50, 80, 100, 100]
    topics = [t["TopicArn"] for t in platform.client("sns").list_topics()["Topics"]]
    alarm = platform.client("cloudwatch").describe_alarms(AlarmNames=["argoeks-dev-estimated-charges"])["MetricAlarms"][
        0
    ]
    assert alarm["AlarmActions"] == [t for t in topics if t.endswith(":argoeks-dev-alerts")]


def test_local_stores_refuse_anonymous_and_wrong_credentials(platform):
    env = platform.aws_env()
    wrong = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL_S3"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key="not-the-secret",
        region_name="us-east-1",
    )
    with pytest.raises(wrong.exceptions.ClientError):
        wrong.list_objects_v2(Bucket=BUCKET)


def test_secrets_are_private_and_never_printed(platform):
    secrets = platform.home / "secrets"
    assert oct(secrets.stat().st_mode & 0o777) == "0o700"
    for path in [*secrets.rglob("*"), platform.home / "aws.env"]:
        assert oct(path.stat().st_mode & 0o777) == ("0o700" if path.is_dir() else "0o600"), path
    secret_key = platform.aws_env()["AWS_SECRET_ACCESS_KEY"]
    run = platform.run("phase1.yml", "--diff", "-v")
    assert_ok(run, "phase1.yml --diff -v")
    assert secret_key not in run.output


def test_backend_config_points_terraform_at_the_local_stores(platform):
    hcl = (platform.home / "terraform/dev/backend.hcl").read_text()
    env = platform.aws_env()
    assert f'bucket         = "{BUCKET}"' in hcl
    assert f'dynamodb_table = "{TABLE}"' in hcl
    assert f'  s3       = "{env["AWS_ENDPOINT_URL_S3"]}"' in hcl
    assert f'  dynamodb = "{env["AWS_ENDPOINT_URL"]}"' in hcl


# ---- durability: restarts lose no platform data -------------------------------------------------------


def test_restarting_every_service_loses_no_state(platform):
    s3 = platform.client("s3")
    first = s3.put_object(Bucket=BUCKET, Key="durability/probe.json", Body=b'{"serial": 1}')
    second = s3.put_object(Bucket=BUCKET, Key="durability/probe.json", Body=b'{"serial": 2}')

    restarted = platform.ctl("restart", "all")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    wait_until(platform.healthy, what="services RUNNING after restart")

    s3 = platform.client("s3")
    wait_until(lambda: _reachable(s3), what="S3 answering after restart")
    assert s3.get_object(Bucket=BUCKET, Key="durability/probe.json")["Body"].read() == b'{"serial": 2}'
    versions = s3.list_object_versions(Bucket=BUCKET, Prefix="durability/probe.json")["Versions"]
    assert {v["VersionId"] for v in versions} >= {first["VersionId"], second["VersionId"]}


def test_after_every_process_died_a_rerun_converges_and_keeps_data(platform):
    platform.stop_everything()
    wait_until(lambda: not (platform.home / "run/supervisor.sock").exists(), what="supervisord to exit")

    run = platform.run()
    assert_ok(run, "phase1.yml after a full stop")
    assert platform.healthy(), platform.ctl("status").stdout
    s3 = platform.client("s3")
    assert s3.get_object(Bucket=BUCKET, Key="durability/probe.json")["Body"].read() == b'{"serial": 2}'
    # The emulator forgot its tables; the rerun made the lock table again.
    assert platform.client("dynamodb").describe_table(TableName=TABLE)["Table"]["TableStatus"] == "ACTIVE"

    again = platform.run()
    assert_ok(again, "phase1.yml after recovery")
    assert again.changed == 0, f"changed tasks: {again.changed_tasks()}"


def _reachable(s3):
    try:
        s3.head_bucket(Bucket=BUCKET)
    except Exception:  # any error means "not answering yet"
        return False
    return True


# ---- terraform init -migrate-state ------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not on PATH")
def test_terraform_state_is_migrated_and_local_state_removed(platform):
    tf_dir = platform.base / "terraform-root"
    tf_dir.mkdir()
    (tf_dir / "main.tf").write_text('resource "terraform_data" "marker" {\n  input = "argoeks"\n}\n')
    env = tool_env(**platform.aws_env())
    for args in (["init", "-input=false"], ["apply", "-auto-approve", "-input=false"]):
        proc = subprocess.run(["terraform", *args], cwd=tf_dir, env=env, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tf_dir / "terraform.tfstate").stat().st_size > 0

    run = platform.run("phase1.yml", "-e", f"state_backend_terraform_dir={tf_dir}")
    assert_ok(run, "phase1.yml with a Terraform directory")
    assert "Run terraform init -migrate-state" in run.output
    assert not (tf_dir / "terraform.tfstate").exists()
    assert not (tf_dir / "terraform.tfstate.backup").exists()
    assert 'backend "s3" {}' in (tf_dir / "backend.tf").read_text()

    pulled = subprocess.run(["terraform", "state", "pull"], cwd=tf_dir, env=env, capture_output=True, text=True)
    assert pulled.returncode == 0, pulled.stderr
    assert [r["name"] for r in json.loads(pulled.stdout)["resources"]] == ["marker"]
    plan = subprocess.run(
        ["terraform", "plan", "-detailed-exitcode", "-input=false"], cwd=tf_dir, env=env, capture_output=True, text=True
    )
    assert plan.returncode == 0, plan.stdout + plan.stderr  # 0 = no changes: state and locking work

    again = platform.run("phase1.yml", "-e", f"state_backend_terraform_dir={tf_dir}")
    assert_ok(again, "second run with a Terraform directory")
    assert again.changed == 0, f"changed tasks: {again.changed_tasks()}"


# ---- the backup-restore runbook, as written -----------------------------------------------------------


def test_runbook_restores_the_previous_terraform_state_version(platform, tmp_path):
    s3 = platform.client("s3")
    key = "drill/terraform.tfstate"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b'{"serial": 1, "drill": "good"}')
    s3.put_object(Bucket=BUCKET, Key=key, Body=b'{"serial": 2, "drill": "broken"}')

    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", runbook_block("restore-terraform-state")],
        cwd=tmp_path,
        env=tool_env(**platform.aws_env(), KEY=key),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b'{"serial": 1, "drill": "good"}'
    versions = s3.list_object_versions(Bucket=BUCKET, Prefix=key)["Versions"]
    assert len(versions) == 3, "the restore must add a version, never remove one"


# ---- teardown ---------------------------------------------------------------------------------------------


def test_teardown_refuses_to_delete_state(platform):
    run = platform.run("teardown.yml")
    assert run.rc != 0
    assert "state_backend_force_destroy=true" in run.output
    assert platform.healthy(), "a refused teardown stopped services"
    assert platform.client("s3").head_bucket(Bucket=BUCKET)


def test_forced_teardown_removes_everything(platform):
    run = platform.run(
        "teardown.yml",
        "-e",
        "state_backend_force_destroy=true object_store_delete_data=true platform_base_delete_data=true",
    )
    assert_ok(run, "forced teardown.yml")
    assert not platform.home.exists()
    ports = [platform.vars["aws_emulator_port"], platform.vars["object_store_s3_port"]]
    ports += platform.vars["observability_ports"].values()
    assert not any(listening(port) for port in ports)


def test_teardown_of_nothing_says_so_and_succeeds(platform):
    run = platform.run("teardown.yml")
    assert_ok(run, "teardown.yml with nothing left")
    assert "nothing to remove" in " ".join(run.output.split())  # the callback folds long lines
    assert not platform.home.exists()
