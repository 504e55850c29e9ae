"""``GET /events`` of a real ``tes-server serve`` running real tasks (the embedded mode)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests

from tests.api.support import RFC3339, create, task
from tests.events.support import Listener, finished, of_task, states
from tests.servers import ServerProcess, server_env


def _server(tmp_path_factory, **settings: str) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("tes-events")
    proc = ServerProcess(data_dir, server_env(data_dir, **settings)).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[ServerProcess]:
    """Two streams at most, each open as long as the tests' tasks may take."""
    yield from _server(tmp_path_factory, TES_EVENTS_MAX_CLIENTS="2")


@pytest.fixture
def short_streams(tmp_path_factory) -> Iterator[ServerProcess]:
    """Two streams at most, each closed after 3 s (a client resumes with Last-Event-ID;
    the listeners of these tests do not, so tasks are followed on :func:`server`)."""
    yield from _server(tmp_path_factory, TES_EVENTS_MAX_CLIENTS="2", TES_EVENTS_MAX_SECONDS="3")


TAGS = {"team": "a", "ms-submitter-workflow-id": "wf-ev"}
"""A tag stored as a row and one stored in a column of the task row: events carry both."""


def test_state_changes_and_log_lines_arrive_in_order_as_the_contract_says(server):
    listener = Listener(server.url, [("name_prefix", "ev-order")])
    try:
        other = create(server.url, task("true", name="not-this-one"))
        task_id = create(server.url, task("sh", "-c", "echo out; exit 3", name="ev-order-1",
                                          tags=TAGS))
        seen = listener.until(finished(task_id))
    finally:
        listener.close()
    assert of_task(seen, other) == [], "the name filter let another task's events through"
    ids = [int(event.id) for event in seen]
    assert ids == sorted(ids) and len(set(ids)) == len(ids), ids
    assert states(seen)[-1] == "EXECUTOR_ERROR"
    assert "RUNNING" in states(seen)
    for event in seen:
        data = json.loads(event.data)
        assert RFC3339.match(data["time"]), data
        if event.event == "state":
            assert set(data) == {"task_id", "name", "state", "time", "tags"}, data
            assert data["name"] == "ev-order-1" and data["tags"] == TAGS
        else:
            assert event.event == "log" and set(data) in (
                {"task_id", "time", "system_log"}, {"task_id", "time", "executor"}), data
    ends = [data["executor"] for data in map(_data, seen) if "executor" in data]
    assert ends and ends[0]["index"] == 0 and ends[0]["exit_code"] == 3, seen
    assert RFC3339.match(ends[0]["end_time"])
    # The executor's end comes before the state it causes.
    assert "executor" in _data(seen[-2]) or "system_log" in _data(seen[-2]), seen


def test_a_reconnect_with_last_event_id_loses_nothing_and_repeats_nothing(server):
    first = Listener(server.url, [("tag_key", "resume")])
    try:
        task_id = create(server.url, task("true", tags={"resume": "1"}))
        everything = first.until(finished(task_id))
    finally:
        first.close()
    assert len(everything) >= 3, everything
    # Gone after the first event; back with its id: the rest, exactly once, in order.
    again = Listener(server.url, [("tag_key", "resume")], last_event_id=everything[0].id)
    try:
        later = create(server.url, task("true", tags={"resume": "2"}))
        resumed = again.until(finished(later))
    finally:
        again.close()
    assert [e.id for e in of_task(resumed, task_id)] == [e.id for e in everything[1:]]
    assert states(of_task(resumed, later))[-1] == "COMPLETE"


def test_filters_by_state_and_tag_value(server):
    listener = Listener(server.url, [("state", "COMPLETE"), ("tag_key", "grp"),
                                     ("tag_value", "x")])
    try:
        wrong_tag = create(server.url, task("true", tags={"grp": "y"}))
        failing = create(server.url, task("false", tags={"grp": "x"}))
        right = create(server.url, task("true", tags={"grp": "x", "more": "ok"}))
        seen = listener.until(finished(right))
        seen += listener.quiet(1.0)
    finally:
        listener.close()
    assert {json.loads(e.data)["task_id"] for e in seen} == {right}, (wrong_tag, failing, seen)
    assert [e.event for e in seen] == ["state"]


def test_streams_are_bounded_and_the_api_keeps_answering(short_streams):
    server = short_streams
    streams = [Listener(server.url), Listener(server.url)]
    try:
        refused = requests.get(f"{server.url}/events", timeout=10)
        assert refused.status_code == 503, refused.text
        assert refused.headers["Retry-After"] and "TES_EVENTS_MAX_CLIENTS" in refused.json()["msg"]
        assert requests.get(f"{server.url}/tasks", timeout=10).status_code == 200
        # TES_EVENTS_MAX_SECONDS: the server ends each stream, which frees its place.
        for stream in streams:
            assert stream.ended.wait(15), "the stream was not closed after its time"
    finally:
        for stream in streams:
            stream.close()
    again = Listener(server.url)
    again.close()


def test_bad_filters_and_event_ids_are_400_naming_the_field(server):
    for params, headers, field in (
        ({"state": "SOON"}, {}, "state"),
        ({"tag_value": "v"}, {}, "tag_value"),
        ({}, {"Last-Event-ID": "-1"}, "Last-Event-ID"),
        ({}, {"Last-Event-ID": "9" * 40}, "Last-Event-ID"),
    ):
        answer = requests.get(f"{server.url}/events", params=params, headers=headers, timeout=10)
        assert answer.status_code == 400, answer.text
        assert field in answer.json()["errors"], answer.json()


def test_the_v1_alias_serves_the_stream(server):
    alias = server.url.replace("/ga4gh/tes/v1", "/v1")
    listener = Listener(alias, [("name_prefix", "alias")])
    try:
        task_id = create(server.url, task("true", name="alias-1"))
        assert states(listener.until(finished(task_id)))[-1] == "COMPLETE"
    finally:
        listener.close()


def _data(event) -> dict:
    return json.loads(event.data)
