"""The served OpenAPI document tells the truth about a real server.

It is self-contained (no ``$ref`` leaves it), a valid OpenAPI 3.0 document, GA4GH's
TES document with additions only, and every (operation, status) a real server
process answers to the requests below (good ones, and bad JSON, unknown ids, wrong
methods, huge bodies, wrong media types, missing tokens, cross-site posts, an
unreachable identity provider) is declared in it, under both of its servers (the API
prefix and the ``/v1`` alias), with a body that validates against the declared
schema and the headers it declares.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from openapi_schema_validator import OAS30ReadValidator
from openapi_spec_validator import validate

from tes_core.api.spec import (
    OPERATION_ERRORS,
    UnbundledReference,
    build,
    ga4gh_text,
    load_yaml,
    served_document,
)
from tests.api.support import API_SUFFIX, TIMEOUT, task
from tests.servers import ServerProcess, server_env

ALLOWED_ORIGIN = "https://ui.example"
MAX_BODY = 64 * 1024
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@pytest.fixture(scope="module")
def document(sqlite_server) -> dict[str, Any]:
    """The document as a real server serves it."""
    response = requests.get(f"{sqlite_server.url}/openapi.json", timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


# -- the document itself ------------------------------------------------------------------


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _pointer(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref} leaves the document"
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_served_document_is_self_contained(document):
    refs = set(_refs(document))
    assert "#/components/schemas/Service" in refs  # the service-info schemas, inlined
    for ref in refs:
        _pointer(document, ref)  # internal, and it resolves
    assert "raw.githubusercontent.com" not in json.dumps(document["components"])


def test_served_document_is_valid_openapi_3(document, sqlite_server):
    validate(document)
    served = requests.get(f"{sqlite_server.url}/openapi.yaml", timeout=TIMEOUT)
    assert load_yaml(served.text) == document  # the YAML is the same document


def test_served_document_is_ga4ghs_with_additions_only(document):
    """The GA4GH file is shipped unchanged; the served document keeps all of it."""
    ga4gh = json.loads(json.dumps(load_yaml(ga4gh_text())))  # keys as JSON has them
    assert document["info"] == ga4gh["info"]
    assert set(document["paths"]) == set(ga4gh["paths"]) | {
        "/events", "/task-counts", "/provision", "/provision/{id}",
        "/tasks/{id}/executors/{index}/stdout", "/tasks/{id}/executors/{index}/stderr"}
    for path, item in ga4gh["paths"].items():
        for method, operation in item.items():
            served = document["paths"][path][method]
            for key, value in operation.items():
                if key == "responses":
                    assert {k: served[key][k] for k in value} == value
                else:
                    assert served[key] == value, (path, method, key)
    for name, schema in ga4gh["components"]["schemas"].items():
        if "https://" not in json.dumps(schema):
            assert document["components"]["schemas"][name] == schema, name
    external = [ref for ref in _refs(ga4gh) if not ref.startswith("#")]
    assert external, "the GA4GH file is no longer the one with the service-info references"


def test_every_operation_has_its_declared_errors(document):
    operations = {(path, method) for path, item in document["paths"].items()
                  for method in item if method in METHODS}
    assert operations == set(OPERATION_ERRORS)
    for (path, method), statuses in OPERATION_ERRORS.items():
        assert set(statuses) <= set(document["paths"][path][method]["responses"])


def test_a_reference_to_a_document_not_bundled_is_named():
    ga4gh = load_yaml(ga4gh_text())
    ga4gh["components"]["schemas"]["tesState"] = {
        "$ref": "https://example.org/other.yaml#/components/schemas/Thing"}
    with pytest.raises(UnbundledReference, match="https://example.org/other.yaml"):
        build(ga4gh)
    assert served_document() == json.loads(json.dumps(served_document()))  # JSON-clean


# -- what a real server answers -------------------------------------------------------------


@dataclass
class Case:
    """One request; ``path`` is relative to a server entry of the document."""

    name: str
    method: str
    path: str
    status: int
    token: bool = True
    kwargs: dict[str, Any] = field(default_factory=dict)


def _json(body: Any) -> dict[str, Any]:
    return {"data": json.dumps(body), "headers": {"Content-Type": "application/json"}}


def _cases(task_id: str, admin: str) -> list[Case]:
    """Requests and the status each must get; ``task_id`` names a task of the caller,
    ``admin`` is an admin's token (the caller is not one)."""
    cross_site = {"Origin": "https://elsewhere.example", "Content-Type": "application/json"}
    huge = "x" * (MAX_BODY + 1)
    as_admin = {"Authorization": f"Bearer {admin}"}
    return [
        Case("service-info", "GET", "/service-info", 200, token=False),
        Case("create", "POST", "/tasks", 200, kwargs=_json(task("true", name="openapi"))),
        Case("list", "GET", "/tasks?view=FULL", 200),
        Case("get", "GET", f"/tasks/{task_id}?view=FULL", 200),
        Case("cancel", "POST", f"/tasks/{task_id}:cancel", 200),
        Case("bad JSON", "POST", "/tasks", 400,
             kwargs={"data": "{not json", "headers": {"Content-Type": "application/json"}}),
        Case("bad task", "POST", "/tasks", 400, kwargs=_json({"executors": []})),
        Case("empty state", "GET", "/tasks?state=", 400),
        Case("bad page size", "GET", "/tasks?page_size=many", 400),
        Case("bad view", "GET", f"/tasks/{task_id}?view=ALL", 400),
        Case("bare Bearer", "GET", "/tasks", 400, token=False,
             kwargs={"headers": {"Authorization": "Bearer "}}),
        Case("bare Bearer on cancel", "POST", f"/tasks/{task_id}:cancel", 400, token=False,
             kwargs={"headers": {"Authorization": "Bearer a b"}}),
        Case("no token: list", "GET", "/tasks", 401, token=False),
        Case("no token: create", "POST", "/tasks", 401, token=False,
             kwargs=_json(task("true"))),
        Case("no token: get", "GET", f"/tasks/{task_id}", 401, token=False),
        Case("no token: cancel", "POST", f"/tasks/{task_id}:cancel", 401, token=False),
        Case("cross-site create", "POST", "/tasks", 403,
             kwargs={"data": json.dumps(task("true")), "headers": cross_site}),
        Case("cross-site cancel", "POST", f"/tasks/{task_id}:cancel", 403,
             kwargs={"headers": cross_site}),
        Case("events: bad state", "GET", "/events?state=LATE", 400),
        Case("events: bad Last-Event-ID", "GET", "/events", 400,
             kwargs={"headers": {"Last-Event-ID": "yesterday"}}),
        Case("output: no such executor", "GET", f"/tasks/{task_id}/executors/1/stdout", 404),
        Case("output: bad index", "GET", f"/tasks/{task_id}/executors/first/stdout", 400),
        Case("output: bad tail", "GET", f"/tasks/{task_id}/executors/0/stdout?tail=-1", 400),
        Case("no token: output", "GET", f"/tasks/{task_id}/executors/0/stdout", 401,
             token=False),
        Case("POST output", "POST", f"/tasks/{task_id}/executors/0/stdout", 405),
        Case("no token: events", "GET", "/events", 401, token=False),
        Case("bad query token: events", "GET", "/events?access_token=forged", 401,
             token=False),
        Case("POST events", "POST", "/events", 405),
        Case("counts", "GET", "/task-counts?tag_key=a", 200),
        Case("counts: bad state", "GET", "/task-counts?state=LATE", 400),
        Case("no token: counts", "GET", "/task-counts", 401, token=False),
        Case("POST counts", "POST", "/task-counts", 405),
        Case("unknown id", "GET", "/tasks/no-such-task", 404),
        Case("unknown id: cancel", "POST", "/tasks/no-such-task:cancel", 404),
        Case("DELETE a list", "DELETE", "/tasks", 405),
        Case("PUT a task", "PUT", f"/tasks/{task_id}", 405),
        Case("GET a cancel", "GET", f"/tasks/{task_id}:cancel", 405),
        Case("POST service-info", "POST", "/service-info", 405, token=False),
        Case("huge task", "POST", "/tasks", 413,
             kwargs=_json(task("true", description=huge))),
        Case("huge chunked task", "POST", "/tasks", 413,
             kwargs={"data": iter([b'{"description": "', huge.encode(), b'"}']),
                     "headers": {"Content-Type": "application/json"}}),
        # The cancel route reads no body; waitress refuses one over twice the limit.
        Case("huge cancel", "POST", f"/tasks/{task_id}:cancel", 413,
             kwargs={"data": huge * 2, "headers": {"Content-Type": "application/json"}}),
        Case("text task", "POST", "/tasks", 415,
             kwargs={"data": "{}", "headers": {"Content-Type": "text/plain"}}),
        Case("form cancel", "POST", f"/tasks/{task_id}:cancel", 415,
             kwargs={"data": {"a": "b"}}),
        # The local backend offers no provisioning (tes-batch's tests cover the rest).
        Case("provision: not an admin", "POST", "/provision", 403, kwargs=_json({})),
        Case("provision: no provisioner", "POST", "/provision", 404, token=False,
             kwargs={"data": "{}", "headers": {**as_admin, "Content-Type": "application/json"}}),
        Case("provision: no token", "POST", "/provision", 401, token=False, kwargs=_json({})),
        Case("provision: text", "POST", "/provision", 415,
             kwargs={"data": "{}", "headers": {"Content-Type": "text/plain"}}),
        Case("provision: huge", "POST", "/provision", 413,
             kwargs={"data": huge * 2, "headers": {"Content-Type": "application/json"}}),
        Case("provision: PUT", "PUT", "/provision", 405),
        Case("provision status: not an admin", "GET", "/provision/abc", 403),
        Case("provision status: unknown", "GET", "/provision/abc", 404, token=False,
             kwargs={"headers": as_admin}),
        Case("provision status: no token", "GET", "/provision/abc", 401, token=False),
    ]


def _unavailable_cases(task_id: str) -> list[Case]:
    """With the identity provider unreachable, every token check is a 503."""
    return [
        Case("keys unreachable: list", "GET", "/tasks", 503),
        Case("keys unreachable: create", "POST", "/tasks", 503, kwargs=_json(task("true"))),
        Case("keys unreachable: get", "GET", f"/tasks/{task_id}", 503),
        Case("keys unreachable: cancel", "POST", f"/tasks/{task_id}:cancel", 503),
        Case("keys unreachable: events", "GET", "/events", 503),
        Case("keys unreachable: counts", "GET", "/task-counts", 503),
        Case("keys unreachable: output", "GET", f"/tasks/{task_id}/executors/0/stderr", 503),
        Case("keys unreachable: provision", "POST", "/provision", 503, kwargs=_json({})),
        Case("keys unreachable: provision status", "GET", "/provision/abc", 503),
    ]


@pytest.fixture(scope="module")
def auth_server(idp, tmp_path_factory) -> Iterator[ServerProcess]:
    """Tokens required, one allowed browser origin, a small body limit; no worker threads."""
    data_dir = tmp_path_factory.mktemp("tes-openapi")
    env = server_env(data_dir, TES_WORKER_THREADS="0", TES_CORS_ORIGINS=ALLOWED_ORIGIN,
                     TES_MAX_BODY_BYTES=str(MAX_BODY), **idp.settings())
    proc = ServerProcess(data_dir, env).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def keyless_server(idp, tmp_path_factory) -> Iterator[ServerProcess]:
    """Tokens required, but the signing keys are at an address nothing listens on."""
    data_dir = tmp_path_factory.mktemp("tes-openapi-keyless")
    env = server_env(data_dir, TES_WORKER_THREADS="0",
                     **idp.settings(TES_AUTH_JWKS_URL="http://127.0.0.1:9/jwks"))
    proc = ServerProcess(data_dir, env).start()
    yield proc
    proc.stop()


def _operation(document: dict[str, Any], path: str) -> tuple[str, dict[str, Any]]:
    """The path template of ``document`` that a concrete path (no query) matches."""
    for template, item in document["paths"].items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/:]+", re.escape(template))
        if re.fullmatch(pattern, path):
            return template, item
    raise AssertionError(f"{path} matches no path of the document")


def _check(document: dict[str, Any], case: Case, response: requests.Response) -> None:
    where = f"{case.name}: {case.method} {case.path} -> {response.status_code} {response.text}"
    assert response.status_code == case.status, where
    template, item = _operation(document, case.path.split("?")[0])
    status = str(response.status_code)
    method = case.method.lower()
    # A method the path lacks has no operation: each operation of the path declares the 405.
    operations = [item[method]] if method in item else [
        item[m] for m in METHODS if m in item]
    assert status == "405" or method in item, where
    for operation in operations:
        declared = operation["responses"].get(status)
        assert declared is not None, f"{where}: {status} not declared for {template}"
        if "$ref" in declared:
            declared = _pointer(document, declared["$ref"])
        for header in declared.get("headers", {}):
            assert header in response.headers, f"{where}: no {header} header"
        schema = declared["content"]["application/json"]["schema"]
        assert response.headers["Content-Type"].startswith("application/json"), where
        validator = OAS30ReadValidator({**schema, "components": document["components"]})
        errors = [error.message for error in validator.iter_errors(response.json())]
        assert not errors, f"{where}: {errors}"


def _send(base: str, case: Case, token: str) -> requests.Response:
    kwargs = dict(case.kwargs)
    headers = dict(kwargs.pop("headers", {}))
    if case.token:
        headers.setdefault("Authorization", f"Bearer {token}")
    return requests.request(case.method, base + case.path, headers=headers, timeout=TIMEOUT,
                            **kwargs)


def _bases(proc: ServerProcess, document: dict[str, Any]) -> list[str]:
    root = proc.url[: -len(API_SUFFIX)]
    bases = [root + server["url"] for server in document["servers"]]
    assert len(bases) == 2 and bases[0] == proc.url, bases
    return bases


def test_every_answer_is_declared_with_its_body(document, auth_server, idp):
    token = idp.token()
    created = requests.post(f"{auth_server.url}/tasks", json=task("true"), timeout=TIMEOUT,
                            headers={"Authorization": f"Bearer {token}"})
    assert created.status_code == 200, created.text
    task_id = created.json()["id"]
    for base in _bases(auth_server, document):  # the API prefix, then the /v1 alias
        for case in _cases(task_id, idp.token("root", roles=["TES.Admin"])):
            _check(document, case, _send(base, case, token))


def test_an_unreachable_identity_provider_is_a_declared_503(document, keyless_server, idp):
    for base in _bases(keyless_server, document):
        for case in _unavailable_cases("some-task"):
            _check(document, case, _send(base, case, idp.token()))
