"""argoeks.mlops.glue_database against moto's in-process Glue, and against botocore's Stubber for the exact
requests and error paths."""

import datetime

import boto3
import pytest
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from moto import mock_aws

from ansible_collections.argoeks.mlops.plugins.modules import glue_database
from tests.unit.conftest import ModuleFailed

NAME = "mlops_dev"
ARGS = {
    "name": NAME,
    "description": "Bronze, silver and gold tables of the dev data lake",
    "location_uri": "s3://argoeks-dev-datalake/",
    "parameters": {"environment": "dev", "managed_by": "ansible"},
}


@pytest.fixture
def glue(aws_env):
    with mock_aws():
        yield boto3.client("glue", region_name="us-east-1")


def database_in_aws(client):
    return client.get_database(Name=NAME)["Database"]


def database_names(client):
    return [d["Name"] for d in client.get_databases()["DatabaseList"]]


# ---- moto ------------------------------------------------------------------------------------
def test_creates_the_database(glue, run_module):
    result = run_module(glue_database, ARGS)

    assert result["changed"] is True
    database = database_in_aws(glue)
    assert database["Description"] == ARGS["description"]
    assert database["LocationUri"] == "s3://argoeks-dev-datalake/"
    assert database["Parameters"] == {"environment": "dev", "managed_by": "ansible"}
    reported = result["database"]
    assert reported["name"] == NAME
    assert reported["description"] == ARGS["description"]
    assert reported["location_uri"] == "s3://argoeks-dev-datalake/"
    assert reported["parameters"] == {"environment": "dev", "managed_by": "ansible"}
    assert reported["create_time"] == database["CreateTime"].isoformat()


def test_second_run_changes_nothing(glue, run_module):
    created = run_module(glue_database, ARGS)
    again = run_module(glue_database, ARGS, diff=True)
    assert again["changed"] is False
    assert again["diff"]["before"] == again["diff"]["after"]
    assert again["database"] == created["database"]


def test_check_mode_reports_creation_and_creates_nothing(glue, run_module):
    result = run_module(glue_database, ARGS, check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["diff"]["before"] == {}
    assert result["diff"]["after"]["description"] == ARGS["description"]
    assert result["diff"]["after"]["parameters"] == ARGS["parameters"]
    assert database_names(glue) == []


def test_description_change_updates_and_keeps_the_rest(glue, run_module):
    run_module(glue_database, ARGS)
    changed = {"name": NAME, "description": "Data lake of dev"}  # location and parameters omitted: kept

    checked = run_module(glue_database, changed, check_mode=True, diff=True)
    assert checked["changed"] is True
    assert database_in_aws(glue)["Description"] == ARGS["description"]

    result = run_module(glue_database, changed, diff=True)
    assert result["changed"] is True
    assert result["diff"]["before"]["description"] == ARGS["description"]
    assert result["diff"]["after"]["description"] == "Data lake of dev"
    database = database_in_aws(glue)
    assert database["Description"] == "Data lake of dev"
    assert database["LocationUri"] == "s3://argoeks-dev-datalake/"
    assert database["Parameters"] == ARGS["parameters"]
    assert checked["database"] == result["database"]  # check mode predicted what the run did
    assert run_module(glue_database, changed)["changed"] is False


def test_parameters_are_replaced_and_empty_values_remove(glue, run_module):
    run_module(glue_database, ARGS)
    result = run_module(glue_database, dict(ARGS, parameters={"environment": "dev", "retention_days": 30}))
    assert result["changed"] is True
    # exactly the parameters given, numbers as strings
    assert database_in_aws(glue)["Parameters"] == {"environment": "dev", "retention_days": "30"}
    assert (
        run_module(glue_database, dict(ARGS, parameters={"environment": "dev", "retention_days": 30}))["changed"]
        is False
    )

    cleared = run_module(glue_database, {"name": NAME, "description": "", "location_uri": "", "parameters": {}})
    assert cleared["changed"] is True
    database = database_in_aws(glue)
    assert not database.get("Description")
    assert not database.get("LocationUri")
    assert not database.get("Parameters")
    assert cleared["database"]["parameters"] == {}


def test_absent_deletes_and_is_idempotent(glue, run_module):
    run_module(glue_database, ARGS)
    absent = {"name": NAME, "state": "absent"}

    checked = run_module(glue_database, absent, check_mode=True, diff=True)
    assert checked["changed"] is True
    assert checked["diff"]["before"]["description"] == ARGS["description"]
    assert database_names(glue) == [NAME]

    gone = run_module(glue_database, absent)
    assert gone["changed"] is True
    assert gone["database"] == {}
    assert database_names(glue) == []
    assert run_module(glue_database, absent)["changed"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"name": "MLOps_dev"}, "name must be lower case"),
        ({"name": ""}, "name must be 1 to 255 printable characters"),
        ({"name": "x" * 256}, "name must be 1 to 255 printable characters"),
        ({"name": NAME, "location_uri": "argoeks-dev-datalake/"}, "location_uri must be a URI"),
        ({"name": NAME, "parameters": {"nested": {"a": 1}}}, "parameters.nested must be a string"),
    ],
)
def test_bad_options_fail_before_any_call(aws_env, monkeypatch, run_module, args, message):
    def no_client(*args, **kwargs):
        raise AssertionError("the module asked for an AWS client")

    monkeypatch.setattr(AnsibleAWSModule, "client", no_client)
    with pytest.raises(ModuleFailed) as failed:
        run_module(glue_database, args)
    assert message in failed.value.result["msg"]


# ---- Stubber -----------------------------------------------------------------------------------
CREATED = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
PERMISSIONS = [{"Principal": {"DataLakePrincipalIdentifier": "IAM_ALLOWED_PRINCIPALS"}, "Permissions": ["ALL"]}]


def test_update_keeps_what_the_module_does_not_manage(stub_aws, run_module):
    glue = stub_aws("glue")
    existing = {
        "Name": NAME,
        "Description": "old",
        "LocationUri": "s3://argoeks-dev-datalake/",
        "Parameters": {"environment": "dev"},
        "CreateTime": CREATED,
        "CreateTableDefaultPermissions": PERMISSIONS,
        "CatalogId": "123456789012",
    }
    glue.add_response("get_database", {"Database": existing}, {"Name": NAME, "CatalogId": "123456789012"})
    glue.add_response(
        "update_database",
        {},
        {
            "CatalogId": "123456789012",
            "Name": NAME,
            "DatabaseInput": {
                "Name": NAME,
                "Description": "new",
                "LocationUri": "s3://argoeks-dev-datalake/",
                "Parameters": {"environment": "dev"},
                "CreateTableDefaultPermissions": PERMISSIONS,
            },
        },
    )
    glue.add_response(
        "get_database", {"Database": dict(existing, Description="new")}, {"Name": NAME, "CatalogId": "123456789012"}
    )

    result = run_module(glue_database, {"name": NAME, "description": "new", "catalog_id": "123456789012"})

    glue.assert_no_pending_responses()
    assert result["changed"] is True
    assert result["database"]["description"] == "new"
    assert result["database"]["create_time"] == CREATED.isoformat()


def test_access_denied_names_the_database_and_the_permission(stub_aws, run_module):
    glue = stub_aws("glue")
    glue.add_client_error(
        "get_database",
        service_error_code="AccessDeniedException",
        service_message="User is not authorized to perform: glue:GetDatabase",
        http_status_code=400,
        expected_params={"Name": NAME},
    )
    with pytest.raises(ModuleFailed) as failed:
        run_module(glue_database, ARGS)
    msg = failed.value.result["msg"]
    assert f"Failed to read Glue database {NAME}" in msg
    assert "the credentials in use need glue:GetDatabase" in msg
    assert "AccessDeniedException" in msg
    glue.assert_no_pending_responses()
