"""Nothing reaches a 500: random task documents, bodies, query strings and ids (hypothesis),
on SQLite and PostgreSQL servers that never run a task. Every answer is a success or a
4xx in the one error shape; every accepted task can be read back in every view."""

from __future__ import annotations

import json
from urllib.parse import quote

import requests
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.api.support import TIMEOUT, assert_conforms, assert_error, post_task

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SPECIAL = st.sampled_from([
    "", "/", "/a", "a", "..", "/a/../b", "/a/./b", "/x/*.txt", "/x/[a-", "/x/", "x/*",
    "\x00", "/a\x00", "\ud800", "\udfff\ud800", "é", "FILE", "DIRECTORY", "alpine", "network",
    "NETWORK", "none", "host", "9" * 30, "1e999", "NaN", "-1", "0", "MINIMAL", "FULL", "COMPLETE",
])
TEXT = st.one_of(SPECIAL, st.text(alphabet=st.characters(exclude_categories=()), max_size=12))
SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), TEXT,
)
JSON = st.recursive(
    SCALAR, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


def _maybe(strategy):
    return st.one_of(strategy, strategy, JSON)


EXECUTOR = st.fixed_dictionaries({}, optional={
    "image": _maybe(st.just("alpine") | TEXT),
    "command": _maybe(st.lists(TEXT, max_size=3)),
    "workdir": _maybe(TEXT),
    "stdin": _maybe(TEXT),
    "stdout": _maybe(TEXT),
    "stderr": _maybe(TEXT),
    "env": _maybe(st.dictionaries(TEXT, TEXT, max_size=3)),
    "ignore_error": _maybe(st.booleans()),
})
INPUT = st.fixed_dictionaries({}, optional={
    "path": _maybe(TEXT), "url": _maybe(TEXT), "content": _maybe(TEXT),
    "type": _maybe(st.sampled_from(["FILE", "DIRECTORY"])), "name": _maybe(TEXT),
    "description": _maybe(TEXT), "streamable": _maybe(st.booleans()),
})
OUTPUT = st.fixed_dictionaries({}, optional={
    "path": _maybe(TEXT), "path_prefix": _maybe(TEXT), "url": _maybe(TEXT),
    "type": _maybe(st.sampled_from(["FILE", "DIRECTORY"])), "name": _maybe(TEXT),
})
RESOURCES = st.fixed_dictionaries({}, optional={
    "cpu_cores": _maybe(st.integers(min_value=-2, max_value=2**40)),
    "ram_gb": _maybe(st.floats()), "disk_gb": _maybe(st.floats()),
    "preemptible": _maybe(st.booleans()), "zones": _maybe(st.lists(TEXT, max_size=2)),
    "backend_parameters": _maybe(st.dictionaries(TEXT, TEXT, max_size=3)),
    "backend_parameters_strict": _maybe(st.booleans()),
})
TASK = st.fixed_dictionaries({}, optional={
    "executors": _maybe(st.lists(EXECUTOR, min_size=1, max_size=3)),
    "inputs": _maybe(st.lists(INPUT, max_size=2)),
    "outputs": _maybe(st.lists(OUTPUT, max_size=2)),
    "resources": _maybe(RESOURCES),
    "volumes": _maybe(st.lists(TEXT, max_size=2)),
    "tags": _maybe(st.dictionaries(TEXT, TEXT, max_size=3)),
    "name": _maybe(TEXT), "description": _maybe(TEXT),
    "id": JSON, "state": JSON, "logs": JSON, "creation_time": JSON, "surprise": JSON,
})
# Mostly valid tasks with odd text: what gets stored and rendered back.
ABSOLUTE = TEXT.map(lambda text: "/" + text.replace("..", "").replace("*", ""))
NEAR_VALID = st.fixed_dictionaries(
    {"executors": st.lists(st.fixed_dictionaries(
        {"image": st.just("alpine") | TEXT, "command": st.lists(TEXT, min_size=1, max_size=3)},
        optional={"workdir": ABSOLUTE, "env": st.dictionaries(TEXT, TEXT, max_size=2),
                  "ignore_error": st.booleans()},
    ), min_size=1, max_size=2)},
    optional={
        "name": TEXT, "description": TEXT, "volumes": st.lists(ABSOLUTE, max_size=2),
        "tags": st.dictionaries(TEXT, TEXT | st.none(), max_size=3),
        "inputs": st.lists(st.fixed_dictionaries({"path": ABSOLUTE, "content": TEXT}),
                           max_size=2),
        "outputs": st.lists(st.fixed_dictionaries({"path": ABSOLUTE, "url": TEXT.filter(bool)}),
                            max_size=2),
        "resources": st.fixed_dictionaries({}, optional={
            "cpu_cores": st.integers(0, 2**31), "ram_gb": st.floats(0, 1e6),
            "zones": st.lists(TEXT, max_size=2),
            "backend_parameters": st.dictionaries(
                st.sampled_from(["network", "NETWORK", "other"]) | TEXT,
                st.just("none") | TEXT, max_size=2),
            "backend_parameters_strict": st.booleans(),
        }),
    },
)
BODY = st.one_of(
    NEAR_VALID.map(lambda doc: json.dumps(doc).encode()),
    TASK.map(lambda doc: json.dumps(doc).encode()),
    JSON.map(lambda doc: json.dumps(doc).encode()),
    st.binary(max_size=64),
)


def _q(text: str) -> str:
    """Percent-encode as a client might, lone surrogates included (as invalid UTF-8)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


@SETTINGS
@given(body=BODY)
def test_fuzzed_task_documents(norun_server, body):
    url = norun_server.url
    response = post_task(url, body)
    event(f"status {response.status_code}")
    assert response.status_code in (200, 400), (response.status_code, response.text, body)
    if response.status_code == 400:
        assert_error(response, 400)
        return
    task_id = response.json()["id"]
    for view in ("MINIMAL", "BASIC", "FULL"):
        got = requests.get(f"{url}/tasks/{task_id}", params={"view": view}, timeout=TIMEOUT)
        assert got.status_code == 200, (got.text, body)
        assert_conforms(got.json(), "tesTask", minimal=view == "MINIMAL")
    page = requests.get(f"{url}/tasks", params={"view": "FULL", "page_size": "3"},
                        timeout=TIMEOUT)
    assert page.status_code == 200, (page.text, body)
    assert_conforms(page.json(), "tesListTasksResponse")


PARAM = st.sampled_from(["view", "state", "page_size", "page_token", "name_prefix", "tag_key",
                         "tag_value"]) | TEXT


@SETTINGS
@given(pairs=st.lists(st.tuples(PARAM, TEXT), max_size=6))
def test_fuzzed_list_queries(norun_server, pairs):
    query = "&".join(f"{_q(name)}={_q(value)}" for name, value in pairs)
    response = requests.get(f"{norun_server.url}/tasks?{query}", timeout=TIMEOUT)
    event(f"status {response.status_code}")
    assert response.status_code in (200, 400), (response.status_code, response.text, pairs)
    if response.status_code == 400:
        assert_error(response, 400)
    else:
        view = next((v for k, v in pairs if k == "view"), "") or "MINIMAL"
        assert_conforms(response.json(), "tesListTasksResponse", minimal=view == "MINIMAL")


@SETTINGS
@given(task_id=TEXT.filter(bool), view=st.none() | TEXT)
def test_fuzzed_ids(norun_server, task_id, view):
    url = norun_server.url
    suffix = f"?view={_q(view)}" if view is not None else ""
    got = requests.get(f"{url}/tasks/{_q(task_id)}{suffix}", timeout=TIMEOUT)
    assert got.status_code in (400, 404), (got.status_code, got.text, task_id)
    assert_error(got, got.status_code)
    cancel = requests.post(f"{url}/tasks/{_q(task_id)}:cancel", timeout=TIMEOUT)
    assert cancel.status_code in (404, 405), (cancel.status_code, cancel.text, task_id)
    assert_error(cancel, cancel.status_code)
