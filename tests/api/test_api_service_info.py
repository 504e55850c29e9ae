"""GET /service-info: the GA4GH service-info fields in camelCase, the TES type, storage
and the backend_parameters keys this server supports."""

from __future__ import annotations

import pytest
import requests

from tests.api.support import SERVICE_INFO_FIELDS, TIMEOUT, assert_recent, assert_timestamp


@pytest.fixture(scope="module")
def info(sqlite_server) -> dict:
    response = requests.get(f"{sqlite_server.url}/service-info", timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()


def test_type_is_exactly_tes_1_1(info):
    assert info["type"] == {"group": "org.ga4gh", "artifact": "tes", "version": "1.1.0"}


def test_fields_are_the_service_info_ones_in_camel_case(info):
    assert set(info) <= SERVICE_INFO_FIELDS, set(info) - SERVICE_INFO_FIELDS
    assert {"id", "name", "type", "organization", "version"} <= set(info)
    for snake in ("created_at", "updated_at", "contact_url", "documentation_url",
                  "tes_resources_backend_parameters"):
        assert snake not in info


def test_required_values_have_the_right_types(info):
    for key in ("id", "name", "version", "description"):
        assert isinstance(info[key], str) and info[key], key
    assert set(info["organization"]) == {"name", "url"}
    assert all(isinstance(value, str) and value for value in info["organization"].values())


def test_timestamps_are_rfc3339(info):
    assert_recent(info["createdAt"], slack_seconds=3600)
    assert assert_timestamp(info["createdAt"]) <= assert_timestamp(info["updatedAt"])


def test_storage_is_a_list_of_strings(info):
    assert isinstance(info["storage"], list) and info["storage"]
    assert all(isinstance(item, str) and item for item in info["storage"])


def test_backend_parameters_lists_network(info):
    assert info["tesResources_backend_parameters"] == ["network"]


def test_service_info_is_the_same_on_every_call(sqlite_server, info):
    again = requests.get(f"{sqlite_server.url}/service-info", timeout=TIMEOUT).json()
    assert again == info


def test_settings_reach_service_info(tmp_path_factory):
    from tests.servers import ServerProcess, server_env

    data_dir = tmp_path_factory.mktemp("tes-service-info")
    env = server_env(
        data_dir,
        TES_SERVICE_NAME="my tes",
        TES_CONTACT_URL="mailto:ops@example.org",
        TES_DOCUMENTATION_URL="https://docs.example.org/tes",
        TES_ENVIRONMENT="test",
        TES_STORAGE="s3://bucket/a,file:///data",
    )
    proc = ServerProcess(data_dir, env).start()
    try:
        info = requests.get(f"{proc.url}/service-info", timeout=TIMEOUT).json()
    finally:
        proc.stop()
    assert info["name"] == "my tes"
    assert info["contactUrl"] == "mailto:ops@example.org"
    assert info["documentationUrl"] == "https://docs.example.org/tes"
    assert info["environment"] == "test"
    assert info["storage"] == ["s3://bucket/a", "file:///data"]
    assert set(info) <= SERVICE_INFO_FIELDS
