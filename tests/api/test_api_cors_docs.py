"""CORS for browsers on other origins (off by default, granted to the origins
``TES_CORS_ORIGINS`` names), and the API's own documentation: the OpenAPI document
(JSON and YAML) and a Swagger UI page whose assets are served locally."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from urllib.parse import urljoin

import pytest
import requests

from tes_core.api.spec import load_yaml
from tests.api.support import TIMEOUT, assert_error, create, spec, task
from tests.servers import ServerProcess, server_env

ORIGIN = "https://workflows.example.org"


@pytest.fixture(scope="module")
def url(sqlite_server) -> str:
    """A server with the default settings: no CORS."""
    return sqlite_server.url


@pytest.fixture(scope="module")
def open_url(tmp_path_factory) -> Iterator[str]:
    """A server whose operator allows every origin (``TES_CORS_ORIGINS=*``)."""
    data_dir = tmp_path_factory.mktemp("tes-cors-any")
    proc = ServerProcess(data_dir, server_env(data_dir, TES_CORS_ORIGINS="*")).start()
    yield proc.url
    proc.stop()


def _preflight(target: str, method: str, origin: str = ORIGIN) -> requests.Response:
    return requests.options(
        target,
        headers={"Origin": origin, "Access-Control-Request-Method": method,
                 "Access-Control-Request-Headers": "content-type, authorization"},
        timeout=TIMEOUT,
    )


def _allows(response: requests.Response, origin: str = ORIGIN) -> bool:
    return response.headers.get("Access-Control-Allow-Origin") in (origin, "*")


@pytest.mark.parametrize(("path", "method"), [("/tasks", "POST"), ("/tasks", "GET"),
                                              ("/tasks/some-id", "GET"),
                                              ("/tasks/some-id:cancel", "POST"),
                                              ("/service-info", "GET")])
def test_preflight_is_answered(open_url, path, method):
    response = _preflight(open_url + path, method)
    assert 200 <= response.status_code < 300, response.text
    assert _allows(response), response.headers
    methods = response.headers.get("Access-Control-Allow-Methods", "")
    assert method in {m.strip() for m in methods.split(",")}, response.headers
    headers = response.headers.get("Access-Control-Allow-Headers", "").lower()
    assert "content-type" in headers and "authorization" in headers, response.headers


def test_simple_requests_from_another_origin_are_allowed(open_url):
    url = open_url
    headers = {"Origin": ORIGIN}
    created = requests.post(f"{url}/tasks", json=task("true"), headers=headers, timeout=TIMEOUT)
    assert created.status_code == 200 and _allows(created), created.headers
    task_id = created.json()["id"]
    for path in ("/service-info", "/tasks", f"/tasks/{task_id}"):
        response = requests.get(url + path, headers=headers, timeout=TIMEOUT)
        assert response.status_code == 200 and _allows(response), (path, response.headers)
    cancel = requests.post(f"{url}/tasks/{task_id}:cancel", headers=headers, timeout=TIMEOUT)
    assert cancel.status_code == 200 and _allows(cancel), cancel.headers


def test_errors_carry_cors_headers_too(open_url):
    # Otherwise a browser client cannot read why its request failed.
    url = open_url
    headers = {"Origin": ORIGIN}
    bad = requests.post(f"{url}/tasks", json={"executors": []}, headers=headers,
                        timeout=TIMEOUT)
    assert_error(bad, 400)
    assert _allows(bad), bad.headers
    missing = requests.get(f"{url}/tasks/no-such-task", headers=headers, timeout=TIMEOUT)
    assert_error(missing, 404)
    assert _allows(missing), missing.headers


def test_cors_is_off_by_default(url):
    for path in ("/service-info", "/tasks"):
        response = requests.get(url + path, headers={"Origin": ORIGIN}, timeout=TIMEOUT)
        assert response.status_code == 200
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]
        preflight = _preflight(url + path, "POST")
        assert not [h for h in preflight.headers if h.lower().startswith("access-control-")]
    # A page on another site may not change anything: no create, no cancel.
    task_id = create(url, task("true"))
    for target in (f"{url}/tasks", f"{url}/tasks/{task_id}:cancel"):
        refused = requests.post(target, json=task("true"), timeout=TIMEOUT,
                                headers={"Origin": ORIGIN, "Sec-Fetch-Site": "cross-site"})
        assert_error(refused, 403, "Origin")


def test_the_explorer_on_this_server_may_post(url):
    # Same origin: what the Swagger UI page served by this server sends.
    origin = url.removesuffix("/ga4gh/tes/v1")
    for headers in ({"Origin": origin}, {"Origin": origin, "Sec-Fetch-Site": "same-origin"}):
        response = requests.post(f"{url}/tasks", json=task("true"), headers=headers,
                                 timeout=TIMEOUT)
        assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def restricted_url(tmp_path_factory) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("tes-cors")
    env = server_env(data_dir, TES_CORS_ORIGINS=ORIGIN)
    proc = ServerProcess(data_dir, env).start()
    yield proc.url
    proc.stop()


def test_configured_origins_are_the_only_ones_allowed(restricted_url):
    ok = requests.get(f"{restricted_url}/service-info", headers={"Origin": ORIGIN},
                      timeout=TIMEOUT)
    assert ok.headers.get("Access-Control-Allow-Origin") == ORIGIN
    other = "https://elsewhere.example.com"
    refused = requests.get(f"{restricted_url}/service-info", headers={"Origin": other},
                           timeout=TIMEOUT)
    assert refused.status_code == 200  # CORS is enforced by the browser, from the headers
    assert "Access-Control-Allow-Origin" not in refused.headers
    assert "Access-Control-Allow-Origin" not in _preflight(
        f"{restricted_url}/tasks", "POST", other).headers
    assert _allows(_preflight(f"{restricted_url}/tasks", "POST"))


# -- the OpenAPI document and Swagger UI -----------------------------------------------------


def test_openapi_json_is_the_tes_1_1_document(url):
    response = requests.get(f"{url}/openapi.json", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    document = response.json()
    assert document["info"]["title"] == "Task Execution Service"
    assert document["info"]["version"] == "1.1.0"
    assert [server["url"] for server in document["servers"]] == ["/ga4gh/tes/v1", "/v1"]
    assert set(document["paths"]) == {"/service-info", "/tasks", "/tasks/{id}",
                                      "/tasks/{id}:cancel", "/events", "/task-counts",
                                      "/provision", "/provision/{id}",
                                      "/tasks/{id}/executors/{index}/stdout",
                                      "/tasks/{id}/executors/{index}/stderr"}
    assert document == spec()
    example = document["components"]["schemas"]["tesTask"]["properties"]["creation_time"]
    assert example["example"] == "2020-10-02T10:00:00-05:00"  # was a 500: YAML made a datetime


def test_openapi_yaml_is_the_same_document(url):
    response = requests.get(f"{url}/openapi.yaml", timeout=TIMEOUT)
    assert response.status_code == 200
    assert "yaml" in response.headers["Content-Type"]
    assert response.text.startswith("openapi: 3.")
    assert json.loads(json.dumps(load_yaml(response.text))) == requests.get(f"{url}/openapi.json",
                                                         timeout=TIMEOUT).json()


def test_swagger_ui_page_and_its_assets_load(url):
    page = requests.get(f"{url}/ui/", timeout=TIMEOUT)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "SwaggerUIBundle" in page.text
    assets = re.findall(r'(?:href|src)="([^"]+)"', page.text)
    assert any(a.endswith(".css") for a in assets) and any(a.endswith(".js") for a in assets)
    for asset in assets:
        assert not asset.startswith(("http://", "https://", "//")), asset  # works offline
        response = requests.get(urljoin(page.url, asset), timeout=TIMEOUT)
        assert response.status_code == 200, asset
        assert len(response.content) > 1000, asset
        kind = response.headers["Content-Type"]
        assert ("css" in kind) if asset.endswith(".css") else ("javascript" in kind), kind
    spec_url = re.search(r'url: "([^"]+)"', page.text)
    assert spec_url, page.text
    assert requests.get(urljoin(page.url, spec_url.group(1)),
                        timeout=TIMEOUT).json()["info"]["version"] == "1.1.0"


def test_root_serves_the_dashboard_which_links_the_ui(url):
    root = url.removesuffix("/ga4gh/tes/v1") + "/"
    response = requests.get(root, timeout=TIMEOUT)
    assert response.status_code == 200 and "TES dashboard" in response.text
    assert 'href="/ga4gh/tes/v1/ui/"' in response.text  # (switched off: tests/dashboard)


def test_unknown_ui_file_is_404(url):
    assert_error(requests.get(f"{url}/ui/secret.txt", timeout=TIMEOUT), 404)
    assert_error(requests.get(f"{url}/ui/..%2F..%2Fetc%2Fpasswd", timeout=TIMEOUT), 404)


def test_docs_do_not_disturb_the_api(url):
    task_id = create(url, task("true"))
    assert requests.get(f"{url}/tasks/{task_id}", timeout=TIMEOUT).json()["id"] == task_id
