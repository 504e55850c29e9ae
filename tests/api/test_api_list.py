"""GET /tasks filters: name_prefix, tag_key/tag_value pairs, state; on real servers."""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.api.support import create, list_tasks, task
from tests.servers import TERMINAL, wait_for_state


def _ids(url: str, params) -> list[str]:
    return [t["id"] for t in list_tasks(url, params)["tasks"]]


def _uid() -> str:
    return "p" + uuid.uuid4().hex[:10]


@pytest.fixture(scope="module")
def named(server):
    """Tasks whose names test prefix matching; ids by label, newest last."""
    uid = _uid()
    names = {
        "alpha": f"{uid}-alpha",
        "alphabet": f"{uid}-alphabet",
        "substring": f"x{uid}-alpha",
        "upper": f"{uid.upper()}-ALPHA",
        "underscore": f"{uid}_x",
        "underscore-decoy": f"{uid}zx",
        "percent": f"{uid}%y",
        "percent-decoy": f"{uid}abcy",
        "umlaut": f"{uid}-ümlaut-ß",
    }
    ids = {label: create(server.url, task("true", name=name)) for label, name in names.items()}
    create(server.url, task("true"))  # a task without a name
    return server.url, uid, ids


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("{uid}", ["alpha", "alphabet", "underscore", "underscore-decoy", "percent",
                   "percent-decoy", "umlaut"]),
        ("{uid}-alpha", ["alpha", "alphabet"]),
        ("{uid}-alphabet", ["alphabet"]),
        ("{uid}-alphabets", []),
        ("{uid}_", ["underscore"]),
        ("{uid}%", ["percent"]),
        ("{UID}", ["upper"]),
        ("{uid}-ü", ["umlaut"]),
        ("{uid}-ümlaut-ß", ["umlaut"]),
        ("{uid}-ALPHA", []),
        ("x{uid}", ["substring"]),
    ],
)
def test_name_prefix_is_a_case_sensitive_prefix_match(named, prefix, expected):
    url, uid, ids = named
    query = prefix.format(uid=uid, UID=uid.upper())
    want = [ids[label] for label in reversed(list(ids)) if label in expected]
    assert _ids(url, {"name_prefix": query}) == want


def test_name_prefix_is_not_a_substring_match(named):
    url, uid, ids = named
    assert _ids(url, {"name_prefix": "alpha"}) == []
    assert ids["substring"] not in _ids(url, {"name_prefix": uid})


@pytest.fixture(scope="module")
def tagged(server):
    """Tasks for the spec's tag-filter table; unique keys keep other tasks out."""
    uid = _uid()
    foo, baz, odd = f"{uid}-foo", f"{uid}-baz", f"{uid}-odd"
    tags = {
        "foo=bar,baz=bat": {foo: "bar", baz: "bat", "unrelated": "x"},
        "foo=bar": {foo: "bar"},
        "foo=bat": {foo: "bat"},
        "foo=": {foo: ""},
        "baz=bat": {baz: "bat"},
        "none": {"unrelated": "x"},
        "odd": {odd: "a b&c=d/é?#"},
    }
    ids = {label: create(server.url, task("true", tags=value)) for label, value in tags.items()}
    return server.url, {"foo": foo, "baz": baz, "odd": odd}, ids


TAG_QUERIES = [
    # (query as (name, value) pairs with keys by alias, labels of the matching tasks)
    ([("tag_key", "foo"), ("tag_value", "bar")], ["foo=bar,baz=bat", "foo=bar"]),
    ([("tag_key", "foo")], ["foo=bar,baz=bat", "foo=bar", "foo=bat", "foo="]),
    ([("tag_key", "foo"), ("tag_value", "")], ["foo=bar,baz=bat", "foo=bar", "foo=bat", "foo="]),
    ([("tag_key", "foo"), ("tag_value", "bar"), ("tag_key", "baz"), ("tag_value", "bat")],
     ["foo=bar,baz=bat"]),
    ([("tag_key", "foo"), ("tag_key", "baz"), ("tag_value", "bar"), ("tag_value", "bat")],
     ["foo=bar,baz=bat"]),
    ([("tag_key", "baz"), ("tag_key", "foo"), ("tag_value", "bat"), ("tag_value", "bar")],
     ["foo=bar,baz=bat"]),
    ([("tag_key", "foo"), ("tag_key", "baz"), ("tag_value", "bat"), ("tag_value", "bar")], []),
    ([("tag_key", "foo"), ("tag_key", "baz"), ("tag_value", ""), ("tag_value", "bat")],
     ["foo=bar,baz=bat"]),
    ([("tag_key", "foo"), ("tag_key", "baz"), ("tag_value", "bar")], ["foo=bar,baz=bat"]),
    ([("tag_key", "baz")], ["foo=bar,baz=bat", "baz=bat"]),
    ([("tag_key", "foo"), ("tag_value", "BAR")], []),
    ([("tag_key", "foo"), ("tag_value", "ba")], []),
    ([("tag_key", "FOO")], []),
    ([("tag_key", "odd"), ("tag_value", "a b&c=d/é?#")], ["odd"]),
    ([("tag_key", "odd"), ("tag_value", "a b")], []),
]


@pytest.mark.parametrize(("query", "expected"), TAG_QUERIES,
                         ids=[str(i) for i in range(len(TAG_QUERIES))])
def test_tag_filters_pair_keys_and_values_by_position(tagged, query, expected):
    url, keys, ids = tagged

    def key(alias: str) -> str:  # "FOO": the real key upper-cased
        return keys[alias] if alias in keys else keys[alias.lower()].upper()

    params = [(name, key(value) if name == "tag_key" else value) for name, value in query]
    want = [ids[label] for label in reversed(list(ids)) if label in expected]
    assert _ids(url, params) == want


def test_tags_filter_together_with_name_and_view(tagged, server):
    url, keys, ids = tagged
    named_id = create(url, task("true", name=f"{keys['foo']}-named", tags={keys["foo"]: "bar"}))
    params = [("tag_key", keys["foo"]), ("tag_value", "bar"), ("name_prefix", keys["foo"]),
              ("view", "BASIC")]
    page = list_tasks(url, params)
    assert [t["id"] for t in page["tasks"]] == [named_id]
    assert page["tasks"][0]["tags"] == {keys["foo"]: "bar"}


@pytest.fixture(scope="module")
def states(server):
    """One task per state the local backend can reach, tagged to find them."""
    url, key = server.url, _uid()
    ids = {
        "COMPLETE": create(url, task("true", tags={key: "1"})),
        "EXECUTOR_ERROR": create(url, task("false", tags={key: "1"})),
        "RUNNING": create(url, task("sleep", "300", tags={key: "1"})),
        "CANCELED": create(url, task("sleep", "300", tags={key: "1"})),
    }
    wait_for_state(url, ids["RUNNING"], {"RUNNING"})
    wait_for_state(url, ids["CANCELED"], {"RUNNING"})
    requests.post(f"{url}/tasks/{ids['CANCELED']}:cancel", timeout=10).raise_for_status()
    for state, task_id in ids.items():
        if state != "RUNNING":
            assert wait_for_state(url, task_id, TERMINAL)["state"] == state
    yield url, key, ids
    requests.post(f"{url}/tasks/{ids['RUNNING']}:cancel", timeout=10)


@pytest.mark.parametrize("state", ["COMPLETE", "EXECUTOR_ERROR", "RUNNING", "CANCELED"])
def test_state_filters_by_one_state(states, state):
    url, key, ids = states
    page = list_tasks(url, [("tag_key", key), ("state", state), ("view", "BASIC")])
    assert [t["id"] for t in page["tasks"]] == [ids[state]]
    assert page["tasks"][0]["state"] == state


@pytest.mark.parametrize("state", ["QUEUED", "PAUSED", "PREEMPTED", "SYSTEM_ERROR", "CANCELING"])
def test_state_with_no_such_task_is_empty(states, state):
    url, key, _ = states
    assert list_tasks(url, [("tag_key", key), ("state", state)]) == {"tasks": []}


def test_state_filter_across_the_whole_server(states):
    url, _, ids = states
    complete = list_tasks(url, {"state": "COMPLETE", "page_size": "2047"})["tasks"]
    assert complete and all(t["state"] == "COMPLETE" for t in complete)
    assert ids["COMPLETE"] in {t["id"] for t in complete}
    assert ids["EXECUTOR_ERROR"] not in {t["id"] for t in complete}


@pytest.fixture(scope="module")
def submitter_tagged(server):
    """Tasks whose ``ms-submitter-*`` tags (set by their author here: no plugin claims a
    bare ``true``) are kept in columns of the task row; a unique workflow id keeps other
    tasks out. Ids by label, newest last."""
    uid = _uid()
    wf, name, stage = "ms-submitter-workflow-id", "ms-submitter-name", "ms-submitter-workflow-stage"
    tags = {
        "wf+name+row": {wf: uid, name: f"{uid}-engine", f"{uid}-k": "v"},
        "wf": {wf: uid},
        "near-miss": {wf: f"{uid}x", name: f"{uid}-engine"},
        "wf+stage=": {wf: uid, stage: ""},
        "other-key": {"ms-submitter-other": uid},
    }
    ids = {label: create(server.url, task("true", tags=value)) for label, value in tags.items()}
    return server.url, uid, ids, tags


SUBMITTER_TAG_QUERIES = [
    # (query with "{uid}" for the fixture's unique value, labels of the matching tasks)
    ([("tag_key", "ms-submitter-workflow-id"), ("tag_value", "{uid}")],
     ["wf+name+row", "wf", "wf+stage="]),
    ([("tag_key", "ms-submitter-workflow-id"), ("tag_value", "{UID}")], []),
    ([("tag_key", "ms-submitter-workflow-id"), ("tag_value", "{uid}x")], ["near-miss"]),
    ([("tag_key", "ms-submitter-name"), ("tag_value", "{uid}-engine")],
     ["wf+name+row", "near-miss"]),
    ([("tag_key", "ms-submitter-workflow-id"), ("tag_key", "ms-submitter-name"),
      ("tag_value", "{uid}")], ["wf+name+row"]),
    ([("tag_key", "ms-submitter-workflow-id"), ("tag_key", "{uid}-k"),
      ("tag_value", "{uid}"), ("tag_value", "v")], ["wf+name+row"]),
    ([("tag_key", "{uid}-k"), ("tag_key", "ms-submitter-name"),
      ("tag_value", "v"), ("tag_value", "{uid}-engine")], ["wf+name+row"]),
    ([("tag_key", "{uid}-k"), ("tag_key", "ms-submitter-name"),
      ("tag_value", "v"), ("tag_value", "{uid}x")], []),
    ([("tag_key", "ms-submitter-workflow-id"), ("tag_key", "ms-submitter-workflow-stage"),
      ("tag_value", "{uid}")], ["wf+stage="]),
    ([("tag_key", "ms-submitter-workflow-id"), ("tag_key", "ms-submitter-workflow-stage"),
      ("tag_value", "{uid}"), ("tag_value", "")], ["wf+stage="]),
    ([("tag_key", "ms-submitter-other"), ("tag_value", "{uid}")], ["other-key"]),
]


@pytest.mark.parametrize(("query", "expected"), SUBMITTER_TAG_QUERIES,
                         ids=[str(i) for i in range(len(SUBMITTER_TAG_QUERIES))])
def test_submitter_tag_filters_mean_the_same_as_any_tag(submitter_tagged, query, expected):
    """Filters on the ``ms-submitter-*`` tags kept in columns, alone and mixed with tags
    kept as rows, follow the spec's semantics (pairs by position, empty value = any)."""
    url, uid, ids, _ = submitter_tagged
    params = [(name, value.format(uid=uid, UID=uid.upper())) for name, value in query]
    want = [ids[label] for label in reversed(list(ids)) if label in expected]
    assert _ids(url, params) == want


def test_submitter_tags_are_returned_as_sent(submitter_tagged):
    """The tags kept in columns are in every view that shows tags, exactly as sent."""
    url, uid, ids, tags = submitter_tagged
    for view in ("BASIC", "FULL"):
        page = list_tasks(url, [("tag_key", "ms-submitter-workflow-id"), ("tag_value", uid),
                                ("view", view)])
        by_id = {item["id"]: item["tags"] for item in page["tasks"]}
        assert by_id == {ids[label]: tags[label] for label in ("wf+name+row", "wf", "wf+stage=")}
        one = requests.get(f"{url}/tasks/{ids['wf+stage=']}", params={"view": view}, timeout=30)
        assert one.json()["tags"] == tags["wf+stage="]
