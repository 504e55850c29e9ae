"""Bad input: every malformed task or query gets 400 in the one error shape, naming the
field and the reason; unknown ids get 404; oversized bodies 413; nothing reaches a 500.

Runs on servers that never execute a task (no container runtime), on SQLite and on
PostgreSQL: several inputs used to be a 500 on one database only.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
import requests

from tests.api.support import (
    NO_RUNTIME,
    TIMEOUT,
    assert_error,
    create,
    executor,
    get_task,
    list_tasks,
    post_task,
    task,
)
from tests.servers import ServerProcess, server_env

E = [executor("true")]


def _input(**fields):
    return {"executors": E, "inputs": [{"path": "/data/in.txt", "url": "/tmp/in.txt", **fields}]}


def _output(**fields):
    return {"executors": E, "outputs": [{"path": "/data/out.txt", "url": "/tmp/out", **fields}]}


def _executor(**fields):
    return {"executors": [{**executor("true"), **fields}]}


def _resources(**fields):
    return {"executors": E, "resources": fields}


# (test id, task document, the field the error must name)
BAD_TASKS = [
    ("no-executors", {"name": "x"}, "executors"),
    ("empty-executors", {"executors": []}, "executors"),
    ("executors-not-list", {"executors": executor("true")}, "executors"),
    ("executor-null", {"executors": [None]}, "executors.0"),
    ("executor-no-image", {"executors": [{"command": ["true"]}]}, "executors.0.image"),
    ("executor-empty-image", _executor(image=""), "executors.0.image"),
    ("executor-no-command", {"executors": [{"image": "alpine"}]}, "executors.0.command"),
    ("string-command", _executor(command="echo hello"), "executors.0.command"),
    ("empty-command", _executor(command=[]), "executors.0.command"),
    ("non-string-argument", _executor(command=["echo", 1]), "executors.0.command.1"),
    ("second-executor", {"executors": [executor("true"), {"image": "alpine"}]},
     "executors.1.command"),
    ("relative-workdir", _executor(workdir="work"), "executors.0.workdir"),
    ("dotdot-workdir", _executor(workdir="/work/../etc"), "executors.0.workdir"),
    ("relative-stdin", _executor(stdin="in.txt"), "executors.0.stdin"),
    ("dotdot-stdin", _executor(stdin="/data/../in.txt"), "executors.0.stdin"),
    ("relative-stdout", _executor(stdout="./out.txt"), "executors.0.stdout"),
    ("dotdot-stdout", _executor(stdout="/data/.."), "executors.0.stdout"),
    ("relative-stderr", _executor(stderr="err.txt"), "executors.0.stderr"),
    ("dotdot-stderr", _executor(stderr="/../err.txt"), "executors.0.stderr"),
    ("env-not-map", _executor(env=["A=1"]), "executors.0.env"),
    ("env-int-value", _executor(env={"A": 1}), "executors.0.env"),
    ("env-null-value", _executor(env={"A": None}), "executors.0.env"),
    ("env-map-value", _executor(env={"A": {"B": "C"}}), "executors.0.env"),
    ("ignore-error-not-bool", _executor(ignore_error="sometimes"), "executors.0.ignore_error"),
    ("relative-input-path", _input(path="data/in.txt"), "inputs.0.path"),
    ("dotdot-input-path", _input(path="/data/../../in.txt"), "inputs.0.path"),
    ("input-no-path", {"executors": E, "inputs": [{"url": "/tmp/in.txt"}]}, "inputs.0.path"),
    ("input-no-url-no-content", {"executors": E, "inputs": [{"path": "/data/in.txt"}]},
     "inputs.0.url"),
    ("input-empty-url", _input(url=""), "inputs.0.url"),
    ("input-bad-type", _input(type="LINK"), "inputs.0.type"),
    ("input-content-not-string", _input(content=42), "inputs.0.content"),
    ("inputs-not-list", {"executors": E, "inputs": {"path": "/in"}}, "inputs"),
    ("relative-output-path", _output(path="out.txt"), "outputs.0.path"),
    ("dotdot-output-path", _output(path="/data/../../out.txt"), "outputs.0.path"),
    ("output-no-url", {"executors": E, "outputs": [{"path": "/data/out.txt"}]}, "outputs.0.url"),
    ("output-no-path", {"executors": E, "outputs": [{"url": "/tmp/out"}]}, "outputs.0.path"),
    ("output-bad-type", _output(type="SYMLINK"), "outputs.0.type"),
    ("wildcard-without-prefix", _output(path="/data/*.txt"), "outputs.0.path_prefix"),
    ("question-wildcard-without-prefix", _output(path="/data/out?.txt"), "outputs.0.path_prefix"),
    ("bracket-wildcard-without-prefix", _output(path="/data/[ab].txt"),
     "outputs.0.path_prefix"),
    ("relative-path-prefix", _output(path="/data/*.txt", path_prefix="data/"),
     "outputs.0.path_prefix"),
    ("dotdot-path-prefix", _output(path="/data/*.txt", path_prefix="/x/../"),
     "outputs.0.path_prefix"),
    ("prefix-not-of-path", _output(path="/data/*.txt", path_prefix="/other/"),
     "outputs.0.path_prefix"),
    ("relative-volume", {"executors": E, "volumes": ["scratch"]}, "volumes.0"),
    ("dotdot-volume", {"executors": E, "volumes": ["/vol", "/vol/../etc"]}, "volumes.1"),
    ("null-volume", {"executors": E, "volumes": [None]}, "volumes.0"),
    ("volumes-not-list", {"executors": E, "volumes": "/vol"}, "volumes"),
    ("cpu-cores-string", _resources(cpu_cores="2"), "resources.cpu_cores"),
    ("cpu-cores-float", _resources(cpu_cores=1.5), "resources.cpu_cores"),
    ("cpu-cores-bool", _resources(cpu_cores=True), "resources.cpu_cores"),
    ("cpu-cores-negative", _resources(cpu_cores=-1), "resources.cpu_cores"),
    ("ram-gb-string", _resources(ram_gb="x"), "resources.ram_gb"),
    ("ram-gb-list", _resources(ram_gb=[4]), "resources.ram_gb"),
    ("disk-gb-string", _resources(disk_gb="lots"), "resources.disk_gb"),
    ("preemptible-string", _resources(preemptible="perhaps"), "resources.preemptible"),
    ("zones-string", _resources(zones="eu-west-1"), "resources.zones"),
    ("zones-int", _resources(zones=[1]), "resources.zones.0"),
    ("backend-parameters-list", _resources(backend_parameters=["network"]),
     "resources.backend_parameters"),
    ("backend-parameters-int-value", _resources(backend_parameters={"network": 1}),
     "resources.backend_parameters"),
    ("resources-not-object", {"executors": E, "resources": [1]}, "resources"),
    ("tags-not-map", {"executors": E, "tags": ["a"]}, "tags"),
    ("tags-int-value", {"executors": E, "tags": {"a": 1}}, "tags"),
    ("tags-bool-value", {"executors": E, "tags": {"a": True}}, "tags"),
    ("tags-list-value", {"executors": E, "tags": {"a": ["b"]}}, "tags"),
    ("tag-key-too-long", {"executors": E, "tags": {"k" * 256: "v"}}, "tags"),
    ("name-not-string", {"executors": E, "name": 5}, "name"),
    ("description-not-string", {"executors": E, "description": ["x"]}, "description"),
    # Text that a database or UTF-8 cannot hold (these were a 500 before).
    ("nul-in-name", {"executors": E, "name": "a\x00b"}, "name"),
    ("nul-in-tag-value", {"executors": E, "tags": {"k": "v\x00"}}, "tags.k"),
    ("nul-in-tag-key", {"executors": E, "tags": {"k\x00": "v"}}, "tags"),
    ("nul-in-tag-named-content", {"executors": E, "tags": {"x.content": "\x00"}},
     "tags.x.content"),
    ("nul-in-command", _executor(command=["echo", "a\x00"]), "executors.0.command.1"),
    ("surrogate-in-name", {"executors": E, "name": "\ud800"}, "name"),
    ("surrogate-in-command", _executor(command=["echo", "x\udfff"]), "executors.0.command.1"),
    ("surrogate-in-tag-key", {"executors": E, "tags": {"\udc00": "v"}}, "tags"),
    ("surrogate-in-content", _input(content="\ud83d"), "inputs.0.content"),
]


def assert_field_error(response: requests.Response, field: str) -> dict:
    """400 naming ``field`` (or one of its sub-fields) in ``errors`` and in ``msg``."""
    body = assert_error(response, 400)
    named = [key for key in body.get("errors", {}) if key == field or key.startswith(field + ".")]
    assert named, (field, body)
    assert field in body["msg"], (field, body)
    assert "invalid task" in body["msg"], body
    return body


@pytest.mark.parametrize(
    ("document", "field"), [case[1:] for case in BAD_TASKS], ids=[case[0] for case in BAD_TASKS]
)
def test_malformed_task_is_400_naming_the_field(norun_url, document, field):
    assert_field_error(post_task(norun_url, document), field)


def test_every_problem_is_reported_at_once(norun_url):
    document = {
        "executors": [{"image": "alpine", "command": "ls -l", "workdir": "rel"}],
        "inputs": [{"path": "in.txt"}],
        "resources": {"cpu_cores": "2"},
    }
    body = assert_error(post_task(norun_url, document), 400)
    assert {"executors.0.command", "executors.0.workdir", "inputs.0.path",
            "resources.cpu_cores"} <= set(body["errors"]), body
    assert "more problem" in body["msg"], body


def test_reason_is_given_not_just_the_field(norun_url):
    body = assert_field_error(post_task(norun_url, _executor(command="ls -l")),
                              "executors.0.command")
    assert "list" in body["errors"]["executors.0.command"][0], body
    body = assert_field_error(post_task(norun_url, _input(path="in.txt")), "inputs.0.path")
    assert "absolute" in body["errors"]["inputs.0.path"][0], body
    body = assert_field_error(post_task(norun_url, _output(path="/o/../x")), "outputs.0.path")
    assert ".." in body["errors"]["outputs.0.path"][0], body


@pytest.mark.parametrize(
    "body",
    [b"{", b"{'executors': []}", b'{"executors": [}', b"\xff\xfe\x00garbage", b"nul\x00",
     b'{"executors": [] } trailing', b"[" * 100_000 + b"]" * 100_000,
     b'{"a":' * 50_000 + b"1" + b"}" * 50_000],
    ids=["truncated", "single-quotes", "broken-array", "not-utf8", "nul", "trailing-data",
         "deeply-nested-list", "deeply-nested-object"],
)
def test_malformed_json_is_400(norun_url, body):
    error = assert_error(post_task(norun_url, body), 400, "body")
    assert "JSON" in error["msg"], error


@pytest.mark.parametrize("body", [b"[]", b"[{}]", b'"a task"', b"42", b"null", b"true"])
def test_json_that_is_not_an_object_is_400(norun_url, body):
    error = assert_error(post_task(norun_url, body), 400)
    assert "object" in error["msg"], error


def test_empty_body_is_400(norun_url):
    assert_error(post_task(norun_url, b""), 400, "body")


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/xml"])
def test_a_body_that_is_not_declared_json_is_415(norun_url, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = requests.post(f"{norun_url}/tasks", data=json.dumps(task("true")).encode(),
                             headers=headers, timeout=TIMEOUT)
    if content_type is None:
        assert "Content-Type" not in response.request.headers
    assert_error(response, 415, "Content-Type")


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8",
                                          "Application/JSON", "application/vnd.ga4gh+json"])
def test_json_media_types_are_accepted(norun_url, content_type):
    response = requests.post(f"{norun_url}/tasks", data=json.dumps(task("true")).encode(),
                             headers={"Content-Type": content_type}, timeout=TIMEOUT)
    assert response.status_code == 200, response.text


def test_rejected_tasks_are_not_stored(norun_url):
    marker = "rejected-never-stored"
    assert_error(post_task(norun_url, {"name": marker, "executors": []}), 400)
    assert_error(post_task(norun_url, _executor(command="true") | {"name": marker}), 400)
    assert list_tasks(norun_url, {"name_prefix": marker})["tasks"] == []


# -- queries ---------------------------------------------------------------------------------


def _token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


BAD_QUERIES = [
    ("view", "EVERYTHING"),
    ("view", "full"),
    ("view", "Basic"),
    ("state", "DONE"),
    ("state", "complete"),
    ("state", "\x00"),
    ("page_size", "2048"),
    ("page_size", "4096"),
    ("page_size", "0"),
    ("page_size", "-1"),
    ("page_size", "ten"),
    ("page_size", "1.5"),
    ("page_size", "99999999999999999999999"),
    ("page_token", "not a token!"),
    ("page_token", "%%%"),
    ("page_token", _token("v1:0")),
    ("page_token", _token("v1:-5")),
    ("page_token", _token("v1:abc")),
    ("page_token", _token("v2:5")),
    ("page_token", _token("v1:" + "9" * 30)),  # was a 500: larger than any database integer
    ("page_token", "\x00"),
    ("name_prefix", "a\x00"),  # was a 500 on PostgreSQL
    ("tag_key", "\x00"),
    ("tag_value", "x"),  # a value without a key to pair it with
]


@pytest.mark.parametrize(("name", "value"), BAD_QUERIES, ids=[f"{n}={v!r}" for n, v in BAD_QUERIES])
def test_bad_list_query_is_400_naming_the_parameter(norun_url, name, value):
    params = [(name, value)]
    if name == "tag_key":
        params.append(("tag_value", "v"))
    response = requests.get(f"{norun_url}/tasks", params=params, timeout=TIMEOUT)
    body = assert_error(response, 400, name)
    if name == "page_size":
        assert "2047" in body["msg"] or "integer" in body["msg"], body


def test_nul_in_a_tag_value_query_is_400(norun_url):
    response = requests.get(
        f"{norun_url}/tasks", params=[("tag_key", "a"), ("tag_value", "b\x00")], timeout=TIMEOUT
    )
    assert_error(response, 400, "tag_value")


def test_page_size_bounds_are_inclusive_of_1_and_2047(norun_url):
    assert len(list_tasks(norun_url, {"page_size": "1"})["tasks"]) == 1
    list_tasks(norun_url, {"page_size": "2047"})


@pytest.mark.parametrize("view", ["EVERYTHING", "minimal", "0"])
def test_bad_view_on_get_is_400(norun_url, view):
    task_id = create(norun_url, task("true"))
    response = requests.get(f"{norun_url}/tasks/{task_id}", params={"view": view},
                            timeout=TIMEOUT)
    assert_error(response, 400, "view")


def test_empty_parameters_mean_the_defaults(norun_url):
    task_id = create(norun_url, task("true"))
    assert set(get_task(norun_url, task_id, view="")) == {"id", "state"}
    page = list_tasks(norun_url, {"view": "", "page_size": "", "page_token": ""})
    assert page["tasks"] and set(page["tasks"][0]) == {"id", "state"}
    # Except state: an empty one names no state, like any unknown one (test_api_routing).


# -- unknown ids, routes, methods ------------------------------------------------------------

UNKNOWN_IDS = ["no-such-task", "00000000-0000-4000-8000-000000000000", "x" * 300, "%00",
               "caf%C3%A9", "a%3Ab"]


@pytest.mark.parametrize("task_id", UNKNOWN_IDS)
@pytest.mark.parametrize("view", [None, "MINIMAL", "BASIC", "FULL"])
def test_get_unknown_id_is_404(norun_url, task_id, view):
    params = {"view": view} if view else None
    response = requests.get(f"{norun_url}/tasks/{task_id}", params=params, timeout=TIMEOUT)
    assert_error(response, 404)


@pytest.mark.parametrize("task_id", UNKNOWN_IDS)
def test_cancel_unknown_id_is_404(norun_url, task_id):
    response = requests.post(f"{norun_url}/tasks/{task_id}:cancel", timeout=TIMEOUT)
    assert_error(response, 404)


def test_404_message_names_the_id(norun_url):
    body = assert_error(requests.get(f"{norun_url}/tasks/no-such-task", timeout=TIMEOUT), 404)
    assert "no-such-task" in body["msg"], body


def test_unknown_route_and_method_answer_in_the_error_shape(norun_url):
    assert_error(requests.get(f"{norun_url}/nothing-here", timeout=TIMEOUT), 404)
    assert_error(requests.get(f"{norun_url}/tasks/a/b", timeout=TIMEOUT), 404)
    task_id = create(norun_url, task("true"))
    for method, path in [("DELETE", f"/tasks/{task_id}"), ("PUT", "/tasks"),
                         ("POST", f"/tasks/{task_id}"), ("POST", "/service-info"),
                         ("DELETE", f"/tasks/{task_id}:cancel")]:
        response = requests.request(method, norun_url + path, timeout=TIMEOUT)
        assert_error(response, 405)
        assert response.headers.get("Allow"), response.headers


# -- body size -------------------------------------------------------------------------------

LIMIT = 4096


@pytest.fixture(scope="module")
def small_body_url(tmp_path_factory) -> Iterator[str]:
    """A server (SQLite, no runtime) that accepts bodies of at most LIMIT bytes."""
    data_dir = tmp_path_factory.mktemp("tes-small-body")
    env = server_env(data_dir, TES_MAX_BODY_BYTES=str(LIMIT), **NO_RUNTIME)
    proc = ServerProcess(data_dir, env).start()
    yield proc.url
    proc.stop()


def _sized(total: int) -> bytes:
    document = task("true", description="")
    base = len(json.dumps(document).encode())
    document["description"] = "d" * (total - base)
    data = json.dumps(document).encode()
    assert len(data) == total
    return data


def test_body_over_the_limit_is_413(small_body_url):
    body = assert_error(post_task(small_body_url, _sized(LIMIT + 1)), 413)
    assert str(LIMIT) in body["msg"], body
    assert_error(post_task(small_body_url, _sized(LIMIT * 2 - 1)), 413)


def test_huge_body_is_413(small_body_url):
    # Far over the limit waitress itself refuses, before reading the body: the same shape.
    body = assert_error(post_task(small_body_url, _sized(LIMIT * 50)), 413)
    assert str(LIMIT) in body["msg"], body


def test_body_at_the_limit_is_accepted(small_body_url):
    create(small_body_url, json.loads(_sized(LIMIT)))


def _chunked(data: bytes) -> Iterator[bytes]:
    return (data[i:i + 1000] for i in range(0, len(data), 1000))


def test_chunked_body_over_the_limit_is_413(small_body_url):
    response = requests.post(f"{small_body_url}/tasks", data=_chunked(_sized(LIMIT + 500)),
                             headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert_error(response, 413)
    response = requests.post(f"{small_body_url}/tasks", data=_chunked(_sized(LIMIT * 50)),
                             headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    assert_error(response, 413)


def test_chunked_body_under_the_limit_is_accepted(small_body_url):
    response = requests.post(f"{small_body_url}/tasks", data=_chunked(_sized(LIMIT - 10)),
                             headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    assert response.status_code == 200, response.text


def test_body_limit_does_not_break_the_next_requests(small_body_url):
    for _ in range(3):
        assert_error(post_task(small_body_url, _sized(LIMIT * 2)), 413)
        create(small_body_url, task("true"))
