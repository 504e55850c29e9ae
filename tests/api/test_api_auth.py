"""OAuth 2.0 bearer tokens on a real server process, with a real JWKS served on localhost.

Each user lists, reads and cancels only their own tasks (someone else's id is a
404, like an unknown one); an admin sees everything; bad tokens get a 401 with
an RFC 6750 ``WWW-Authenticate`` header and the API's JSON error shape.
"""

from __future__ import annotations

import time

import pytest
import requests
import tes

from tests.api.support import API_SUFFIX, TIMEOUT, assert_error, task
from tests.servers import ServerProcess, server_env

OTHER_TENANT = "99999999-0000-0000-0000-000000000000"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def auth_server(request, idp, tmp_path_factory, postgres_url_factory_lazy):
    """A server requiring tokens; no worker threads, so tasks stay where the API put them."""
    data_dir = tmp_path_factory.mktemp(f"tes-auth-{request.param}")
    database = postgres_url_factory_lazy() if request.param == "postgresql" else None
    env = server_env(data_dir, database, TES_WORKER_THREADS="0",
                     TES_CORS_ORIGINS="https://ui.example", **idp.settings())
    proc = ServerProcess(data_dir, env).start()
    yield proc
    proc.stop()


def call(method: str, url: str, token: str | None, **kwargs) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, url, headers=headers, timeout=TIMEOUT, **kwargs)


def create_as(url: str, token: str, name: str = "t") -> str:
    response = call("POST", f"{url}/tasks", token, json=task("true", name=name))
    assert response.status_code == 200, response.text
    return response.json()["id"]


def listed(url: str, token: str, **params) -> list[dict]:
    response = call("GET", f"{url}/tasks", token, params=params)
    assert response.status_code == 200, response.text
    return response.json()["tasks"]


def assert_unauthorized(response: requests.Response, error: str | None = "invalid_token") -> None:
    assert_error(response, 401)
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="tes"'), challenge
    if error:
        assert f'error="{error}"' in challenge and "error_description=" in challenge, challenge
    else:
        assert "error=" not in challenge, challenge


ENDPOINTS = [("GET", "/tasks"), ("POST", "/tasks"), ("GET", "/tasks/some-id"),
             ("POST", "/tasks/some-id:cancel")]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_no_token_is_a_401_with_a_bare_challenge(auth_server, method, path) -> None:
    response = call(method, auth_server.url + path, None, json=task("true"))
    assert_unauthorized(response, error=None)


@pytest.mark.parametrize(
    "claims",
    [{"exp": int(time.time()) - 600}, {"iss": "https://elsewhere.example/v2.0"},
     {"aud": "api://not-tes"}, {"nbf": int(time.time()) + 3600}],
    ids=["expired", "wrong-issuer", "wrong-audience", "not-yet-valid"],
)
@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_bad_tokens_are_a_401_naming_the_reason(auth_server, idp, claims, method, path) -> None:
    response = call(method, auth_server.url + path, idp.token(**claims), json=task("true"))
    assert_unauthorized(response)


def test_a_forged_token_is_a_401(auth_server, idp) -> None:
    token = idp.token()
    head, body, signature = token.split(".")
    tampered = idp.token("mallory").split(".")[1]
    response = call("GET", f"{auth_server.url}/tasks", f"{head}.{tampered}.{signature}")
    assert_unauthorized(response)
    assert "signature" in response.headers["WWW-Authenticate"]


def test_the_token_never_reaches_the_log(auth_server, idp) -> None:
    token = idp.token(exp=int(time.time()) - 600)
    call("GET", f"{auth_server.url}/tasks", token)
    call("GET", f"{auth_server.url}/tasks", "garbage." + token)
    assert token.split(".")[2] not in auth_server.log()


@pytest.mark.parametrize(
    "path",
    [f"{API_SUFFIX}/service-info", f"{API_SUFFIX}/openapi.json", f"{API_SUFFIX}/openapi.yaml",
     f"{API_SUFFIX}/ui/", "/healthz", "/readyz", "/metrics"],
)
def test_public_documents_need_no_token(auth_server, path) -> None:
    response = requests.get(auth_server.url[: -len(API_SUFFIX)] + path, timeout=TIMEOUT)
    assert response.status_code == 200, (path, response.text)


def test_cors_preflight_needs_no_token(auth_server) -> None:
    response = requests.options(
        f"{auth_server.url}/tasks", timeout=TIMEOUT,
        headers={"Origin": "https://ui.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization"},
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Headers"] == "authorization"


def test_browsers_may_read_why_a_token_was_refused(auth_server) -> None:
    response = requests.get(f"{auth_server.url}/tasks", timeout=TIMEOUT,
                            headers={"Origin": "https://ui.example"})
    assert_unauthorized(response, error=None)
    exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"WWW-Authenticate", "X-Request-ID"} <= exposed


def test_users_see_only_their_own_tasks(auth_server, idp) -> None:
    url = auth_server.url
    alice, bob = idp.token("alice-1"), idp.token("bob-1", alg="ES256")
    mine = [create_as(url, alice, f"alice-{n}") for n in range(3)]
    theirs = [create_as(url, bob, f"bob-{n}") for n in range(2)]

    assert [t["id"] for t in listed(url, alice)] == mine[::-1]
    assert [t["id"] for t in listed(url, bob, view="BASIC")] == theirs[::-1]
    # Paging walks exactly the owner's tasks.
    page = call("GET", f"{url}/tasks", alice, params={"page_size": 2}).json()
    rest = listed(url, alice, page_size=2, page_token=page["next_page_token"])
    assert [t["id"] for t in page["tasks"] + rest] == mine[::-1]
    # Filters combine with ownership.
    assert [t["id"] for t in listed(url, alice, name_prefix="alice-1")] == [mine[1]]
    assert listed(url, alice, name_prefix="bob-") == []

    for view in ("MINIMAL", "BASIC", "FULL"):
        assert call("GET", f"{url}/tasks/{mine[0]}", alice, params={"view": view}).ok
        stolen = call("GET", f"{url}/tasks/{mine[0]}", bob, params={"view": view})
        unknown = call("GET", f"{url}/tasks/no-such-task", bob, params={"view": view})
        assert_error(stolen, 404)
        assert stolen.json()["msg"] == unknown.json()["msg"].replace("no-such-task", mine[0])

    assert_error(call("POST", f"{url}/tasks/{mine[0]}:cancel", bob), 404)
    assert call("GET", f"{url}/tasks/{mine[0]}", alice).json()["state"] == "QUEUED"
    assert call("POST", f"{url}/tasks/{mine[0]}:cancel", alice).json() == {}
    assert call("GET", f"{url}/tasks/{mine[0]}", alice).json()["state"] == "CANCELING"


def test_the_same_subject_in_another_tenant_is_someone_else(auth_server, idp) -> None:
    url = auth_server.url
    home = create_as(url, idp.token("carol"))
    elsewhere = idp.token("carol", tenant=OTHER_TENANT)
    assert_error(call("GET", f"{url}/tasks/{home}", elsewhere), 404)
    assert home not in {t["id"] for t in listed(url, elsewhere)}


def test_an_admin_sees_and_cancels_every_task(auth_server, idp) -> None:
    url = auth_server.url
    dave = create_as(url, idp.token("dave"))
    erin = create_as(url, idp.token("erin", tenant=OTHER_TENANT))
    admin = idp.token("root", roles=["TES.Admin"])
    seen = {t["id"] for t in listed(url, admin, page_size=2000)}
    assert {dave, erin} <= seen
    assert call("GET", f"{url}/tasks/{erin}", admin, params={"view": "FULL"}).ok
    assert call("POST", f"{url}/tasks/{dave}:cancel", admin).json() == {}
    assert call("GET", f"{url}/tasks/{dave}", idp.token("dave")).json()["state"] == "CANCELING"


def test_py_tes_with_a_bearer_token(auth_server, idp) -> None:
    root = auth_server.url[: -len(API_SUFFIX)]
    client = tes.HTTPClient(root, timeout=TIMEOUT, token=idp.token("frank"))
    task_id = client.create_task(tes.Task(
        name="py-tes-auth", executors=[tes.Executor(image="alpine", command=["true"])]
    ))
    assert client.get_task(task_id, view="BASIC").name == "py-tes-auth"
    assert [t.id for t in client.list_tasks(view="FULL").tasks] == [task_id]
    client.cancel_task(task_id)
    assert client.get_task(task_id).state == "CANCELING"
    assert client.get_service_info().type["artifact"] == "tes"

    stranger = tes.HTTPClient(root, timeout=TIMEOUT, token=idp.token("grace"))
    assert stranger.list_tasks().tasks in (None, [])
    with pytest.raises(requests.HTTPError):
        stranger.get_task(task_id)
    with pytest.raises(requests.HTTPError):
        tes.HTTPClient(root, timeout=TIMEOUT).list_tasks()
