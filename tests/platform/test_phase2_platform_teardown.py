"""The shared Phase 2 platform's end (tests/platform/conftest.py): after every module that tests it, teardown.yml
asked to delete every component's data stops every service and removes the platform home."""

import pytest

from tests.platform.standalone import assert_ok, listening

pytestmark = pytest.mark.platform

DELETE_EVERYTHING = (
    "state_backend_force_destroy=true mlflow_delete_data=true postgresql_delete_data=true"
    " datalake_delete_data=true feast_delete_data=true jupyterhub_delete_data=true"
    " kubeflow_pipelines_delete_data=true"
    " object_store_delete_data=true observability_delete_data=true platform_base_delete_data=true"
)


def test_teardown_deleting_every_components_data_removes_the_whole_platform(shared_platform):
    platform = shared_platform
    result = platform.run("teardown.yml", "-e", DELETE_EVERYTHING)
    assert_ok(result, "teardown.yml")
    for port in ("model_serving_port", "mlflow_port", "feast_server_port", "jupyterhub_port", "postgresql_port"):
        assert not listening(platform.vars[port]), f"{port} still answers after teardown"
    assert not platform.home.exists()
