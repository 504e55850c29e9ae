"""Helpers shared by the API conformance tests: task builders, the error-shape check,
an OpenAPI conformance check against the TES 1.1 document, and py-tes access."""

from __future__ import annotations

import functools
import json
import re
from datetime import UTC, datetime
from typing import Any

import requests
import tes

from tes_core.api.spec import served_document

API_SUFFIX = "/ga4gh/tes/v1"
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
STATES = {
    "UNKNOWN", "QUEUED", "INITIALIZING", "RUNNING", "PAUSED", "COMPLETE", "EXECUTOR_ERROR",
    "SYSTEM_ERROR", "CANCELED", "PREEMPTED", "CANCELING",
}
SERVICE_INFO_FIELDS = {
    # GA4GH service-info 1.0 ``Service`` ...
    "id", "name", "type", "description", "organization", "contactUrl", "documentationUrl",
    "createdAt", "updatedAt", "environment", "version",
    # ... plus what ``tesServiceInfo`` adds.
    "storage", "tesResources_backend_parameters",
}
TIMEOUT = 30
NO_RUNTIME = {
    # Docker is asked for but unreachable: every task ends in SYSTEM_ERROR before
    # anything is staged, pulled or run. Fuzzed and malformed tasks are safe there.
    "TES_LOCAL_RUNTIME": "docker",
    "DOCKER_HOST": "unix:///nonexistent/tes-api-tests/docker.sock",
    "TES_LOCAL_START_WITHOUT_RUNTIME": "true",  # else start-up stops, saying so
}


def executor(*command: str, **fields: Any) -> dict[str, Any]:
    """One executor running ``command`` in the local ``alpine`` image."""
    return {"image": "alpine", "command": list(command or ("true",)), **fields}


def task(*command: str, **fields: Any) -> dict[str, Any]:
    """A minimal valid task: one executor, plus any top-level ``fields``."""
    return {"executors": [executor(*command)], **fields}


def post_task(url: str, document: Any) -> requests.Response:
    """``POST /tasks`` with ``document`` as JSON (a ``str``/``bytes`` is sent as is)."""
    data = document if isinstance(document, str | bytes) else None
    kwargs: dict[str, Any] = {"data": data} if data is not None else {"json": document}
    return requests.post(
        f"{url}/tasks", headers={"Content-Type": "application/json"}, timeout=TIMEOUT, **kwargs
    )


def create(url: str, document: dict[str, Any]) -> str:
    """Create a task that must be accepted; return its id."""
    response = post_task(url, document)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"id"} and isinstance(body["id"], str) and body["id"], body
    return body["id"]


def get_task(url: str, task_id: str, view: str | None = None) -> dict[str, Any]:
    """``GET /tasks/{id}`` that must succeed."""
    params = {"view": view} if view is not None else None
    response = requests.get(f"{url}/tasks/{task_id}", params=params, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()


def list_tasks(url: str, params: Any = None) -> dict[str, Any]:
    """``GET /tasks`` that must succeed; ``params`` may be a list of pairs (repeats)."""
    response = requests.get(f"{url}/tasks", params=params, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    body = response.json()
    assert_conforms(body, "tesListTasksResponse", minimal=_view_of(params) == "MINIMAL")
    return body


def _view_of(params: Any) -> str:
    pairs = params.items() if isinstance(params, dict) else (params or [])
    return next((value for key, value in pairs if key == "view"), None) or "MINIMAL"


def walk(url: str, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Every task of a listing, following ``next_page_token`` to the end."""
    seen: list[dict[str, Any]] = []
    token: str | None = None
    for _ in range(10_000):
        page = list_tasks(url, params + ([("page_token", token)] if token else []))
        seen += page["tasks"]
        token = page.get("next_page_token")
        if token is None:
            return seen
        assert isinstance(token, str) and token, page
    raise AssertionError("the listing never ended")


def assert_error(
    response: requests.Response, status: int, field: str | None = None
) -> dict[str, Any]:
    """The one error shape: ``{"msg": str, "status_code": int, "errors"?: {field: [str]}}``;
    with ``field``, ``errors`` holds it and ``msg`` names it."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict), body
    assert set(body) <= {"msg", "status_code", "errors"}, body
    assert isinstance(body["msg"], str) and body["msg"].strip(), body
    assert type(body["status_code"]) is int and body["status_code"] == status, body
    if "errors" in body:
        errors = body["errors"]
        assert isinstance(errors, dict) and errors, body
        for key, reasons in errors.items():
            assert isinstance(key, str), body
            assert isinstance(reasons, list) and reasons, body
            assert all(isinstance(reason, str) and reason for reason in reasons), body
    if field is not None:
        assert field in body.get("errors", {}), (field, body)
        assert field in body["msg"], (field, body)
    return body


def assert_timestamp(value: Any) -> datetime:
    """An RFC 3339 timestamp with a time zone; returns it parsed (aware)."""
    assert isinstance(value, str) and RFC3339.match(value), value
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None, value
    return parsed


def assert_recent(value: Any, slack_seconds: float = 600) -> None:
    """A timestamp within ``slack_seconds`` of now: the zone really is what it says."""
    delta = abs((assert_timestamp(value) - datetime.now(UTC)).total_seconds())
    assert delta < slack_seconds, (value, delta)


# -- conformance to the OpenAPI document ---------------------------------------------------


@functools.cache
def spec() -> dict[str, Any]:
    """The OpenAPI document the server serves (GA4GH's TES 1.1 file, completed), as JSON
    holds it."""
    return json.loads(json.dumps(served_document()))


def assert_conforms(value: Any, schema: str, *, minimal: bool = False) -> None:
    """``value`` matches ``components.schemas[schema]``: no field outside the spec, the
    right JSON types, enum values, required fields, ``int64`` strings. ``minimal``
    relaxes ``tesTask``'s required ``executors`` (the MINIMAL view has only id and state).
    Timestamps (the spec's plain strings) must be RFC 3339 with a zone."""
    _check(value, {"$ref": f"#/components/schemas/{schema}"}, schema, minimal)


def _resolve(node: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    ref = node.get("$ref")
    if ref is None:
        return None, node
    name = ref.rsplit("/", 1)[1]
    return name, spec()["components"]["schemas"][name]


def _check(value: Any, node: dict[str, Any], where: str, minimal: bool) -> None:
    name, node = _resolve(node)
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        assert isinstance(value, dict), (where, value)
        properties = node.get("properties", {})
        extra = node.get("additionalProperties")
        for key, item in value.items():
            if key in properties:
                _check(item, properties[key], f"{where}.{key}", minimal)
            elif isinstance(extra, dict):
                _check(item, extra, f"{where}.{key}", minimal)
            else:
                raise AssertionError(f"{where}: field {key!r} is not in the TES 1.1 spec")
        required = set(node.get("required", ()))
        if minimal and name == "tesTask":
            required = set()
        missing = required - set(value)
        assert not missing, f"{where}: required fields missing: {sorted(missing)}"
    elif kind == "array":
        assert isinstance(value, list), (where, value)
        for index, item in enumerate(value):
            _check(item, node["items"], f"{where}.{index}", minimal)
    elif kind == "string":
        assert isinstance(value, str), (where, value)
        if node.get("format") == "int64":
            assert re.fullmatch(r"-?\d+", value), (where, value)
        if where.endswith("_time"):
            assert_timestamp(value)
    elif kind == "integer":
        assert type(value) is int, (where, value)
    elif kind == "number":
        assert type(value) in (int, float), (where, value)
    elif kind == "boolean":
        assert type(value) is bool, (where, value)
    else:
        raise AssertionError(f"{where}: the checker does not know schema {node}")
    if "enum" in node:
        assert value in node["enum"], (where, value)


# -- py-tes -------------------------------------------------------------------------------


def pytes_client(url: str) -> tes.HTTPClient:
    """py-tes pointed at the server root: it appends ``/ga4gh/tes/v1`` itself (and tries
    ``/v1`` and ``/`` only after a 404 or 5xx there)."""
    assert url.endswith(API_SUFFIX), url
    return tes.HTTPClient(url[: -len(API_SUFFIX)], timeout=TIMEOUT)
