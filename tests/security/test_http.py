"""Class 6 (cross-site creates) and 11 (413 outside the error shape), on real servers.

With authentication off (the default), any web page the operator visits may send
requests to the server. A browser sends a "simple" request (a form, ``text/plain``, no
body) without asking first; anything else needs a preflight that CORS must grant. So:
bodies must be declared JSON (415 otherwise), CORS grants nothing unless the operator
lists origins, and a POST a browser marks as coming from another site is refused.
Every refusal must leave no task behind. And a body over the size limit gets the
API's JSON error shape, whoever refuses it (the app, waitress itself, gunicorn),
chunked or not, and the server stays healthy after it.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator

import pytest
import requests

from tests.api.support import NO_RUNTIME, TIMEOUT, assert_error, create, get_task, task
from tests.deployment import Deployment
from tests.servers import ServerProcess, server_env

PAGE = "https://attacker.example"
LIMIT = 65536


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The embedded defaults (auth off, no CORS setting), a small body limit, no worker
    (tasks stay QUEUED, so a cancel would show)."""
    data_dir = tmp_path_factory.mktemp("tes-http")
    env = server_env(data_dir, TES_MAX_BODY_BYTES=str(LIMIT), TES_WORKER_THREADS="0",
                     **NO_RUNTIME)
    proc = ServerProcess(data_dir, env).start()
    yield proc
    proc.stop()


def _named(url: str, name: str) -> list[dict]:
    response = requests.get(f"{url}/tasks", params={"name_prefix": name}, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()["tasks"]


def _no_cors_headers(response: requests.Response) -> None:
    granted = [h for h in response.headers if h.lower().startswith("access-control-allow")]
    assert not granted, response.headers


@pytest.mark.parametrize("content_type", [
    "text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=----x", None,
])
def test_a_page_cannot_create_tasks_with_a_simple_request(server, content_type, canary) -> None:
    marker = f"cross-site-{uuid.uuid4().hex}"
    body = json.dumps(task("touch", "/tmp/pwned", name=marker)).encode()
    headers = {"Origin": PAGE, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}
    if content_type:
        headers["Content-Type"] = content_type
    response = requests.post(f"{server.url}/tasks", data=body, headers=headers, timeout=TIMEOUT)
    assert_error(response, 415, "Content-Type")
    _no_cors_headers(response)
    # Without the browser's headers (curl, an old browser): still 415.
    response = requests.post(f"{server.url}/tasks", data=body, timeout=TIMEOUT,
                             headers={"Content-Type": content_type} if content_type else {})
    assert_error(response, 415, "Content-Type")
    assert _named(server.url, marker) == []


def test_cors_grants_nothing_by_default(server) -> None:
    for path in ("/tasks", "/service-info", "/tasks/x"):
        _no_cors_headers(requests.get(server.url + path, headers={"Origin": PAGE},
                                      timeout=TIMEOUT))
        preflight = requests.options(
            server.url + path, timeout=TIMEOUT,
            headers={"Origin": PAGE, "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "content-type"},
        )
        _no_cors_headers(preflight)


def test_a_page_cannot_cancel_or_create_without_a_preflight(server) -> None:
    task_id = create(server.url, task("true"))
    state = get_task(server.url, task_id)["state"]
    marker = f"cross-site-json-{uuid.uuid4().hex}"
    browser = {"Origin": PAGE, "Sec-Fetch-Site": "cross-site"}
    # A form posted at the cancel URL, a bodiless fetch(), an old browser (Origin only).
    attempts = [
        ("POST", f"/tasks/{task_id}:cancel",
         {**browser, "Content-Type": "application/x-www-form-urlencoded"}, b"", 415),
        ("POST", f"/tasks/{task_id}:cancel", browser, None, 403),
        ("POST", f"/tasks/{task_id}:cancel", {"Origin": PAGE}, None, 403),
        # What a page could send only if CORS granted the preflight (it does not).
        ("POST", "/tasks", {**browser, "Content-Type": "application/json"},
         json.dumps(task("true", name=marker)).encode(), 403),
        ("POST", "/tasks", {"Origin": "null", "Content-Type": "application/json"},
         json.dumps(task("true", name=marker)).encode(), 403),
    ]
    for method, path, headers, data, status in attempts:
        response = requests.request(method, server.url + path, headers=headers, data=data,
                                    timeout=TIMEOUT)
        assert_error(response, status)
        _no_cors_headers(response)
    assert get_task(server.url, task_id)["state"] == state == "QUEUED"
    assert _named(server.url, marker) == []


def test_a_rebound_page_cannot_create_tasks(server) -> None:
    # attacker.example's DNS now answers 127.0.0.1: to the browser, its page and this
    # server are the same origin, and it sends what that page asks for.
    port = server.url.split(":")[2].split("/")[0]
    marker = f"rebound-{uuid.uuid4().hex}"
    body = json.dumps(task("true", name=marker)).encode()
    for site in ("same-origin", None):
        headers = {"Host": f"attacker.example:{port}", "Origin": f"http://attacker.example:{port}",
                   "Content-Type": "application/json"}
        if site:
            headers["Sec-Fetch-Site"] = site
        response = requests.post(f"{server.url}/tasks", data=body, headers=headers,
                                 timeout=TIMEOUT)
        assert_error(response, 403, "Origin")
    assert _named(server.url, marker) == []
    # The explorer opened at localhost or at the address may still post.
    for host in (f"localhost:{port}", f"127.0.0.1:{port}"):
        response = requests.post(f"{server.url}/tasks", data=body, timeout=TIMEOUT, headers={
            "Host": host, "Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin",
            "Content-Type": "application/json"})
        assert response.status_code == 200, response.text


# -- bodies over the limit ---------------------------------------------------------------


@pytest.fixture(scope="module")
def gunicorn(tmp_path_factory, postgres_url_factory) -> Iterator[Deployment]:
    """The production shape's API (gunicorn), same small limit, no workers."""
    deployment = Deployment(
        tmp_path_factory.mktemp("tes-http-gunicorn"), postgres_url_factory(),
        os.environ.get("TES_TEST_REDIS", "redis://127.0.0.1:6379/0"), api_workers=1,
        TES_MAX_BODY_BYTES=str(LIMIT), **NO_RUNTIME,
    )
    deployment.migrate()
    deployment.start_api()
    yield deployment
    deployment.stop()


def _body(size: int) -> bytes:
    document = task("true", name="big", inputs=[{"path": "/in", "content": ""}])
    base = len(json.dumps(document).encode())
    document["inputs"][0]["content"] = "x" * (size - base)
    data = json.dumps(document).encode()
    assert len(data) == size
    return data


def _chunks(data: bytes) -> Iterator[bytes]:
    return (data[i:i + 8192] for i in range(0, len(data), 8192))


@pytest.mark.parametrize("kind", ["waitress", "gunicorn"])
@pytest.mark.parametrize("size", [LIMIT + 1, 3 * LIMIT, 40 * LIMIT], ids=["just", "3x", "40x"])
@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_an_oversized_body_gets_the_json_413(request, kind, size, chunked) -> None:
    url = request.getfixturevalue("server" if kind == "waitress" else "gunicorn").url
    data = _body(size)
    response = requests.post(f"{url}/tasks", data=_chunks(data) if chunked else data,
                             headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    assert ("Transfer-Encoding" in response.request.headers) == chunked
    body = assert_error(response, 413)
    assert str(LIMIT) in body["msg"], body
    assert _named(url, "big") == []
    create(url, task("true"))  # the server is fine after it
