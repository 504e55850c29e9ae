"""``POST /provision`` on a real ``tes-server serve`` with ``TES_BACKEND=batch``.

The server's own ``DefaultAzureCredential`` gets its token from the fake ARM's managed
identity endpoint and trusts the fake's certificate through ``REQUESTS_CA_BUNDLE``, as
it would trust a corporate CA. Tokens come from the local OpenID provider: only an admin
may provision. The server is killed while Azure is still creating the Batch account, and
the restarted server finishes the request. Every answer validates against the served
OpenAPI document.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from openapi_schema_validator import OAS30ReadValidator
from tests.deployment import Deployment
from tests.fake_keyvault import TOKEN
from tests.oidc import IdentityProvider
from tests.servers import (
    ServerProcess,
    create_postgres_database,
    drop_postgres_database,
    redis_up,
    server_env,
)
from tests.test_production import REDIS_URL

from .fake_arm import FakeArm

SUBSCRIPTION = "0b1f6471-1bf0-4dda-aec3-444455556666"
TIMEOUT = 30


@pytest.fixture(scope="module")
def idp() -> Iterator[IdentityProvider]:
    provider = IdentityProvider()
    yield provider
    provider.close()


@pytest.fixture(scope="module")
def arm(tmp_path_factory) -> Iterator[FakeArm]:
    fake = FakeArm(tmp_path_factory.mktemp("arm-server"))
    fake.retry_after = "1"  # the SDKs wait 30 s on "0"; Azure sends a few seconds
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def server(idp, arm, tmp_path_factory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("tes-provision")
    env = server_env(
        data_dir, TES_BACKEND="batch",
        TES_BATCH_ACCOUNT_URL="https://unused.westeurope.batch.azure.com",
        TES_BATCH_PRICES_URL="off",
        TES_BATCH_PROVISION_ARM_URL=arm.url, REQUESTS_CA_BUNDLE=str(arm.cert_file),
        **arm.identity_env(), **idp.settings())
    proc = ServerProcess(data_dir, env).start()
    yield proc
    proc.stop()


def call(method: str, url: str, token: str | None, **kwargs: Any) -> requests.Response:
    """``method url`` with ``token`` as the bearer token (none when empty)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, url, headers=headers, timeout=TIMEOUT, **kwargs)


def declared(document: dict[str, Any], path: str, method: str, response: requests.Response
             ) -> dict[str, Any]:
    """``response``'s body, after checking it against what the document declares."""
    answers = document["paths"][path][method]["responses"]
    answer = answers[str(response.status_code)]
    if "$ref" in answer:
        answer = document["components"]["responses"][answer["$ref"].rsplit("/", 1)[1]]
    schema = answer["content"]["application/json"]["schema"]
    validator = OAS30ReadValidator({**schema, "components": document["components"]})
    body = response.json()
    errors = [error.message for error in validator.iter_errors(body)]
    assert not errors, (response.status_code, body, errors)
    return body  # type: ignore[no-any-return]


def wait_for(url: str, token: str, check: Any, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        report = call("GET", url, token).json()
        if check(report):
            return report  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, report
        time.sleep(0.3)


def body(name: str, **extra: Any) -> dict[str, Any]:
    return {"subscription_id": SUBSCRIPTION, "region": "westeurope",
            "resource_group": f"rg-{name}", "storage_account": f"st{name}",
            "batch_account": f"ba{name}", **extra}


def test_only_admins_may_provision(server, idp) -> None:
    user, admin = idp.token("bob"), idp.token("root", roles=["TES.Admin"])
    document = call("GET", f"{server.url}/openapi.json", None).json()
    for token, status in ((None, 401), (user, 403)):
        refused = call("POST", f"{server.url}/provision", token, json=body("nobody"))
        assert refused.status_code == status, refused.text
        declared(document, "/provision", "post", refused)
        looked = call("GET", f"{server.url}/provision/anything", token)
        assert looked.status_code == status, looked.text
    assert "admin" in call("POST", f"{server.url}/provision", user,
                           json=body("nobody")).json()["msg"]
    bad = call("POST", f"{server.url}/provision", admin, json=body("x", storage_account="UP"))
    assert bad.status_code == 400
    assert list(declared(document, "/provision", "post", bad)["errors"]) == ["storage_account"]


def test_a_restarted_server_finishes_what_it_started(server, idp, arm) -> None:
    admin = idp.token("root", roles=["TES.Admin"])
    document = call("GET", f"{server.url}/openapi.json", None).json()
    arm.hold()  # the Batch account stays "in progress" until released
    accepted = call("POST", f"{server.url}/provision", admin, json=body("restart"))
    assert accepted.status_code == 202, accepted.text
    request_id = declared(document, "/provision", "post", accepted)["id"]
    wait_for(f"{server.url}/provision/{request_id}", admin,
             lambda report: arm.held_polls > 0 and report["state"] == "RUNNING")
    server.kill()  # mid-way: the Batch account is being created
    report = call("GET", f"{server.restart().url}/provision/{request_id}", admin)
    states = {s["name"]: s["state"] for s in declared(document, "/provision/{id}", "get",
                                                       report)["progress"]["steps"]}
    assert states == {"resource group": "created", "storage account": "created",
                      "file share": "created", "batch account": "pending"}, states
    arm.release()
    done = wait_for(f"{server.url}/provision/{request_id}", admin,
                    lambda report: report["state"] in ("COMPLETE", "ERROR"))
    assert done["state"] == "COMPLETE", (done, server.log())
    assert {s["state"] for s in done["progress"]["steps"]} == {"created"}
    assert arm.batch["barestart"]["body"]["properties"]["provisioningState"] == "Succeeded"
    assert done["progress"]["settings"]["TES_BATCH_ACCOUNT_URL"] == (
        "https://barestart.westeurope.batch.azure.com")
    assert arm.tokens_issued > 0  # the server's DefaultAzureCredential asked the identity
    log = server.log()
    assert f"provisioning request {request_id}: nobody works on it" in log, log
    assert TOKEN not in log and arm.storage["strestart"]["keys"][0] not in log


def test_the_same_names_again_report_existing_and_another_region_is_a_409(
        server, idp, arm) -> None:
    admin = idp.token("root", roles=["TES.Admin"])
    document = call("GET", f"{server.url}/openapi.json", None).json()
    first = call("POST", f"{server.url}/provision", admin, json=body("twice")).json()["id"]
    wait_for(f"{server.url}/provision/{first}", admin, lambda r: r["state"] == "COMPLETE")
    again = call("POST", f"{server.url}/provision", admin, json=body("twice")).json()["id"]
    report = wait_for(f"{server.url}/provision/{again}", admin,
                      lambda r: r["state"] == "COMPLETE")
    assert {s["state"] for s in report["progress"]["steps"]} == {"existing"}
    conflict = call("POST", f"{server.url}/provision", admin,
                    json=body("twice", region="northeurope"))
    assert conflict.status_code == 409
    assert "already exists in region 'westeurope'" in declared(
        document, "/provision", "post", conflict)["msg"]


def test_a_refused_step_leaves_the_request_in_error_saying_which_and_why(
        server, idp, arm) -> None:
    admin = idp.token("root", roles=["TES.Admin"])
    document = call("GET", f"{server.url}/openapi.json", None).json()
    arm.batch_quota = 0
    try:
        accepted = call("POST", f"{server.url}/provision", admin, json=body("quota"))
        url = f"{server.url}/provision/{accepted.json()['id']}"
        wait_for(url, admin, lambda report: report["state"] in ("COMPLETE", "ERROR"))
    finally:
        arm.batch_quota = 5
    report = declared(document, "/provision/{id}", "get", call("GET", url, admin))
    assert report["state"] == "ERROR"
    assert report["error"].startswith("step 'batch account' failed: AccountQuotaExceeded: "
                                      "The regional Batch account quota"), report["error"]
    states = [step["state"] for step in report["progress"]["steps"]]
    assert states == ["created", "created", "created", "pending"]  # what was made is shown


@pytest.fixture
def deployment(tmp_path, arm) -> Iterator[Deployment]:
    """gunicorn, Redis, PostgreSQL and ``tes-server worker`` processes (none started yet)."""
    if not redis_up():
        if os.environ.get("CI"):
            pytest.fail("Redis is required in CI but does not answer on 127.0.0.1:6379")
        pytest.skip("Redis is not running")
    try:
        database = create_postgres_database()
    except Exception as exc:  # PostgreSQL down: as tests/conftest.py does
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI but not reachable: {exc}")
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    deployment = Deployment(
        tmp_path, database, REDIS_URL, TES_BACKEND="batch",
        TES_BATCH_ACCOUNT_URL="https://unused.westeurope.batch.azure.com",
        TES_BATCH_PRICES_URL="off",
        TES_BATCH_PROVISION_ARM_URL=arm.url, REQUESTS_CA_BUNDLE=str(arm.cert_file),
        **arm.identity_env())
    try:
        deployment.migrate()
        deployment.start_api()
        yield deployment
    finally:
        deployment.stop()
        drop_postgres_database(database)


def test_in_production_a_worker_takes_over_from_one_killed_mid_way(deployment, arm) -> None:
    """The API process only stores and sends; the worker that was running the request is
    killed and another one, started later, finishes it."""
    accepted = requests.post(f"{deployment.url}/provision", json=body("prod"), timeout=TIMEOUT)
    assert accepted.status_code == 202, accepted.text
    url = f"{deployment.url}/provision/{accepted.json()['id']}"
    time.sleep(1)
    assert requests.get(url, timeout=TIMEOUT).json()["state"] == "QUEUED"  # no worker yet
    arm.hold()
    first = deployment.start_worker()
    wait_for(url, "", lambda report: arm.held_polls > 0 and report["state"] == "RUNNING")
    deployment.kill_worker(first)
    arm.release()
    deployment.start_worker()
    done = wait_for(url, "", lambda report: report["state"] in ("COMPLETE", "ERROR"))
    assert done["state"] == "COMPLETE", (done, deployment.logs())
    assert [s["state"] for s in done["progress"]["steps"]] == ["created"] * 4
