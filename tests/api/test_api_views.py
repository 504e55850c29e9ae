"""The three views on GET /tasks/{id} and GET /tasks, and the shape of task logs, on a
task that really ran (containers, an inline input, file and directory outputs)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.api.support import (
    TIMEOUT,
    assert_conforms,
    assert_timestamp,
    create,
    get_task,
    list_tasks,
    task,
)
from tests.servers import TERMINAL, ServerProcess, wait_for_state

SCRIPT = (
    "cat /in/greeting.txt; echo to-stderr >&2; mkdir -p /out/dir/sub; "
    "printf 12345 > /out/dir/a.bin; printf 1234567 > /out/dir/sub/b.bin; "
    "printf abc > /out/result.txt; echo shared > /vol/note"
)


@dataclass
class Ran:
    url: str
    task_id: str
    out: Path
    full: dict[str, Any]


@pytest.fixture(scope="module")
def ran(server: ServerProcess, tmp_path_factory) -> Ran:
    """One finished task with every part a view can show or hide."""
    out = tmp_path_factory.mktemp("outputs")
    document = {
        "name": "views",
        "description": "a task for the view tests",
        "inputs": [{"path": "/in/greeting.txt", "content": "hello\n"}],
        "outputs": [
            {"path": "/out/result.txt", "url": str(out / "result.txt")},
            {"path": "/out/dir", "url": str(out / "dir"), "type": "DIRECTORY"},
        ],
        "resources": {"cpu_cores": 1, "ram_gb": 0.25},
        "executors": [
            {"image": "alpine", "command": ["sh", "-c", SCRIPT]},
            {"image": "alpine", "command": ["sh", "-c", "cat /vol/note; exit 3"],
             "ignore_error": True},
        ],
        "volumes": ["/vol"],
        "tags": {"view": "test"},
    }
    task_id = create(server.url, document)
    full = wait_for_state(server.url, task_id, TERMINAL, view="FULL")
    assert full["state"] == "COMPLETE", (full, server.log())
    return Ran(server.url, task_id, out, full)


def _strip_to_basic(full: dict[str, Any]) -> dict[str, Any]:
    basic = copy.deepcopy(full)
    for item in basic.get("inputs", []):
        item.pop("content", None)
    for attempt in basic["logs"]:
        attempt.pop("system_logs", None)
        for log in attempt["logs"]:
            log.pop("stdout", None)
            log.pop("stderr", None)
    return basic


def test_default_view_of_get_is_minimal(ran):
    response = requests.get(f"{ran.url}/tasks/{ran.task_id}", timeout=TIMEOUT)
    assert response.json() == {"id": ran.task_id, "state": "COMPLETE"}
    assert get_task(ran.url, ran.task_id, "MINIMAL") == {"id": ran.task_id, "state": "COMPLETE"}
    assert_conforms(response.json(), "tesTask", minimal=True)


def test_default_view_of_list_is_minimal(ran):
    page = list_tasks(ran.url)
    assert page["tasks"], page
    assert all(set(t) == {"id", "state"} for t in page["tasks"]), page
    assert {"id": ran.task_id, "state": "COMPLETE"} in page["tasks"]
    assert list_tasks(ran.url, {"view": "MINIMAL"})["tasks"] == page["tasks"]


def test_full_has_everything(ran):
    full = get_task(ran.url, ran.task_id, "FULL")
    assert full == ran.full
    assert_conforms(full, "tesTask")
    assert full["inputs"][0]["content"] == "hello\n"
    attempt = full["logs"][-1]
    first, second = attempt["logs"]
    assert (first["stdout"], first["stderr"]) == ("hello\n", "to-stderr\n")
    assert second["stdout"] == "shared\n"
    assert isinstance(attempt["system_logs"], list) and attempt["system_logs"]
    assert all(isinstance(line, str) for line in attempt["system_logs"])


def test_basic_is_full_without_logs_output_and_content(ran):
    basic = get_task(ran.url, ran.task_id, "BASIC")
    assert_conforms(basic, "tesTask")
    assert basic == _strip_to_basic(ran.full)
    # ... and keeps everything else, exit codes included.
    for key in ("name", "description", "inputs", "outputs", "resources", "executors",
                "volumes", "tags", "creation_time", "logs"):
        assert key in basic, key
    assert basic["inputs"] == [{"path": "/in/greeting.txt", "type": "FILE"}]
    assert basic["tags"] == {"view": "test"}
    assert basic["resources"] == {"cpu_cores": 1, "ram_gb": 0.25}
    assert [log["exit_code"] for log in basic["logs"][-1]["logs"]] == [0, 3]
    assert basic["logs"][-1]["outputs"], basic["logs"]


@pytest.mark.parametrize("view", ["MINIMAL", "BASIC", "FULL"])
def test_list_renders_each_task_as_get_does(ran, view):
    page = list_tasks(ran.url, {"view": view, "page_size": "100"})
    listed = {t["id"]: t for t in page["tasks"]}
    assert listed[ran.task_id] == get_task(ran.url, ran.task_id, view)


def test_task_logs_are_complete(ran):
    for attempt in ran.full["logs"]:
        assert isinstance(attempt["logs"], list) and isinstance(attempt["outputs"], list)
        for log in attempt["logs"]:
            assert type(log["exit_code"]) is int, log
    attempt = ran.full["logs"][-1]
    start, end = assert_timestamp(attempt["start_time"]), assert_timestamp(attempt["end_time"])
    assert assert_timestamp(ran.full["creation_time"]) <= start <= end
    for log in attempt["logs"]:
        assert start <= assert_timestamp(log["start_time"]) <= assert_timestamp(log["end_time"])
    assert all(isinstance(v, str) for v in attempt.get("metadata", {}).values())


def test_output_file_logs_have_string_sizes_and_one_entry_per_file(ran):
    outputs = ran.full["logs"][-1]["outputs"]
    for entry in outputs:
        assert set(entry) == {"url", "path", "size_bytes"}, entry
        assert isinstance(entry["size_bytes"], str), entry
    sizes = {entry["path"]: entry["size_bytes"] for entry in outputs}
    assert sizes == {"/out/result.txt": "3", "/out/dir/a.bin": "5", "/out/dir/sub/b.bin": "7"}
    urls = {entry["path"]: entry["url"] for entry in outputs}
    assert Path(urls["/out/result.txt"]).read_text() == "abc"
    assert Path(urls["/out/dir/sub/b.bin"]).read_text() == "1234567"
    assert (ran.out / "dir" / "a.bin").read_text() == "12345"


def test_failing_executor_has_its_exit_code_and_stops_the_task(tes_url):
    document = {"executors": [
        {"image": "alpine", "command": ["sh", "-c", "echo out; exit 42"]},
        {"image": "alpine", "command": ["echo", "never"]},
    ]}
    done = wait_for_state(tes_url, create(tes_url, document), TERMINAL, view="FULL")
    assert done["state"] == "EXECUTOR_ERROR", done
    assert_conforms(done, "tesTask")
    logs = done["logs"][-1]["logs"]
    assert [log["exit_code"] for log in logs] == [42], logs
    assert logs[0]["stdout"] == "out\n"
    assert done["logs"][-1]["outputs"] == []


def test_a_fresh_task_conforms_in_every_view(tes_url):
    task_id = create(tes_url, task("sleep", "1"))
    for view in ("MINIMAL", "BASIC", "FULL"):
        current = get_task(tes_url, task_id, view)
        assert_conforms(current, "tesTask", minimal=view == "MINIMAL")
        for attempt in current.get("logs", []):
            assert isinstance(attempt["logs"], list) and isinstance(attempt["outputs"], list)


def test_running_task_shows_its_start_time_in_full(tes_url):
    # Cromwell polls FULL until logs[0].start_time is there.
    task_id = create(tes_url, task("sleep", "3"))
    running = wait_for_state(tes_url, task_id, {"RUNNING"}, view="FULL")
    assert_timestamp(running["logs"][0]["start_time"])
    assert_conforms(running, "tesTask")
    wait_for_state(tes_url, task_id, TERMINAL)


def test_polling_a_finished_task_is_stable(ran):
    bodies = {
        requests.get(f"{ran.url}/tasks/{ran.task_id}", params={"view": view},
                     timeout=TIMEOUT).content
        for view in ["FULL"] * 20
    }
    assert len(bodies) == 1


def test_minimal_stays_small_whatever_the_task_holds(tes_url):
    big = "x" * (100 * 1024)
    task_id = create(tes_url, task("true", inputs=[{"path": "/in/big", "content": big}],
                                   description=big))
    minimal = requests.get(f"{tes_url}/tasks/{task_id}", timeout=TIMEOUT)
    assert len(minimal.content) < 200, minimal.content[:300]
    full = requests.get(f"{tes_url}/tasks/{task_id}", params={"view": "FULL"}, timeout=TIMEOUT)
    assert len(full.content) > 200 * 1024
    basic = requests.get(f"{tes_url}/tasks/{task_id}", params={"view": "BASIC"},
                         timeout=TIMEOUT)
    assert 100 * 1024 < len(basic.content) < 150 * 1024
