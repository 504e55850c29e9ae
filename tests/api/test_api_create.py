"""Creating and cancelling tasks, read-only fields, defaults, and backend_parameters,
against real servers (SQLite and PostgreSQL) that run tasks in containers."""

from __future__ import annotations

import time

import pytest
import requests

from tests.api.support import (
    TIMEOUT,
    assert_conforms,
    assert_error,
    assert_recent,
    create,
    executor,
    get_task,
    list_tasks,
    post_task,
    task,
)
from tests.servers import TERMINAL, wait_for_state


def test_create_answers_200_with_only_the_id(tes_url):
    response = post_task(tes_url, task("true"))
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["id"] and isinstance(body["id"], str) and body["id"]
    assert_conforms(body, "tesCreateTaskResponse")
    other = create(tes_url, task("true"))
    assert other != body["id"]
    assert get_task(tes_url, body["id"])["id"] == body["id"]


def test_only_executors_are_required(tes_url):
    task_id = create(tes_url, {"executors": [{"image": "alpine", "command": ["true"]}]})
    done = wait_for_state(tes_url, task_id, TERMINAL, view="FULL")
    assert done["state"] == "COMPLETE", done
    assert done["executors"] == [{"image": "alpine", "command": ["true"]}]
    assert_conforms(done, "tesTask")


def test_read_only_fields_of_a_submission_are_ignored(tes_url):
    forged = {
        "id": "my-own-id",
        "state": "COMPLETE",
        "creation_time": "1999-01-01T00:00:00Z",
        "logs": [{"logs": [{"exit_code": 7, "stdout": "forged"}], "outputs": [],
                  "system_logs": ["forged"]}],
    }
    task_id = create(tes_url, {**task("sleep", "1"), **forged})
    assert task_id != "my-own-id"
    assert_error(requests.get(f"{tes_url}/tasks/my-own-id", timeout=TIMEOUT), 404)
    early = get_task(tes_url, task_id, "FULL")
    assert early["state"] != "COMPLETE", early
    assert early["creation_time"] != forged["creation_time"]
    assert_recent(early["creation_time"])
    done = wait_for_state(tes_url, task_id, TERMINAL, view="FULL")
    assert done["state"] == "COMPLETE", done
    assert "forged" not in str(done["logs"]), done["logs"]
    assert [log["exit_code"] for log in done["logs"][0]["logs"]] == [0]


def test_file_type_is_filled_in_as_file(tes_url, tmp_path):
    document = task(
        "true",
        inputs=[
            {"path": "/in/a.txt", "content": "a"},
            {"path": "/in/b.txt", "content": "b", "type": None},
            {"path": "/in/dir", "url": str(tmp_path), "type": "DIRECTORY"},
        ],
        outputs=[
            {"path": "/out/a.txt", "url": str(tmp_path / "a.txt")},
            {"path": "/out/b.txt", "url": str(tmp_path / "b.txt"), "type": None},
            {"path": "/out/dir", "url": str(tmp_path / "dir"), "type": "DIRECTORY"},
        ],
    )
    stored = get_task(tes_url, create(tes_url, document), "BASIC")
    assert [item["type"] for item in stored["inputs"]] == ["FILE", "FILE", "DIRECTORY"]
    assert [item["type"] for item in stored["outputs"]] == ["FILE", "FILE", "DIRECTORY"]


def test_every_submitted_field_comes_back_in_full(tes_url, tmp_path):
    document = {
        "name": "round trip ✓",
        "description": "every field of tesTask",
        "inputs": [
            {"name": "in", "description": "inline", "path": "/data/in.txt",
             "content": "hello\n", "type": "FILE"},
        ],
        "outputs": [
            {"name": "out", "description": "a file", "path": "/data/out.txt",
             "url": str(tmp_path / "out.txt"), "type": "FILE"},
            {"path": "/data/many/*.txt", "path_prefix": "/data/many/",
             "url": str(tmp_path / "many") + "/", "type": "FILE"},
        ],
        "resources": {"cpu_cores": 1, "preemptible": False, "ram_gb": 0.5, "disk_gb": 1.5,
                      "zones": ["here"], "backend_parameters": {"network": "none"},
                      "backend_parameters_strict": True},
        "executors": [
            {"image": "alpine", "command": ["sh", "-c", "cat; echo $GREETING; touch /scratch/v"],
             "workdir": "/data", "stdin": "/data/in.txt", "stdout": "/data/out.txt",
             "stderr": "/data/err.txt", "env": {"GREETING": "hi"}, "ignore_error": False},
            {"image": "alpine", "command": [
                "sh", "-c", "mkdir -p /data/many && echo 1 > /data/many/a.txt && "
                "echo 22 > /data/many/b.txt && ls /scratch"]},
        ],
        "volumes": ["/scratch"],
        "tags": {"project": "tes", "empty": ""},
    }
    task_id = create(tes_url, document)
    done = wait_for_state(tes_url, task_id, TERMINAL, view="FULL")
    assert done["state"] == "COMPLETE", done
    assert_conforms(done, "tesTask")
    for key, value in document.items():
        assert done[key] == value, key
    assert (tmp_path / "out.txt").read_text() == "hello\nhi\n"
    # The wildcard output: each match at url + (its path minus path_prefix).
    assert (tmp_path / "many" / "a.txt").read_text() == "1\n"
    assert (tmp_path / "many" / "b.txt").read_text() == "22\n"
    # The volume is shared by the executors.
    assert done["logs"][-1]["logs"][1]["stdout"] == "v\n"
    assert set(done) == set(document) | {"id", "state", "creation_time", "logs"}


def test_content_input_url_is_ignored(tes_url):
    document = task("cat", "/in/a.txt",
                    inputs=[{"path": "/in/a.txt", "content": "inline wins",
                             "url": "/nonexistent/never/read"}])
    done = wait_for_state(tes_url, create(tes_url, document), TERMINAL, view="FULL")
    assert done["state"] == "COMPLETE", done
    assert done["logs"][-1]["logs"][0]["stdout"] == "inline wins"


def test_128_kib_of_content_is_accepted_and_returned(tes_url):
    content = ("0123456789abcdef" * 8 + "\n") * 1024  # 129 KiB of text
    assert len(content) > 128 * 1024
    document = task("sh", "-c", "wc -c < /in/big.txt",
                    inputs=[{"path": "/in/big.txt", "content": content}])
    task_id = create(tes_url, document)
    done = wait_for_state(tes_url, task_id, TERMINAL, view="FULL")
    assert done["state"] == "COMPLETE", done
    assert done["inputs"][0]["content"] == content
    assert done["logs"][-1]["logs"][0]["stdout"].strip() == str(len(content.encode()))
    assert "content" not in get_task(tes_url, task_id, "BASIC")["inputs"][0]


def test_creation_time_is_rfc3339_with_a_zone(tes_url):
    task_id = create(tes_url, task("true"))
    stored = get_task(tes_url, task_id, "BASIC")
    assert_recent(stored["creation_time"], slack_seconds=120)
    listed = list_tasks(tes_url, {"view": "BASIC", "page_size": "50"})["tasks"]
    assert {t["id"]: t["creation_time"] for t in listed}[task_id] == stored["creation_time"]


def test_null_tag_value_is_stored_as_empty(tes_url):
    # Cromwell sends "parent_workflow_id": null; the key alone is kept.
    task_id = create(tes_url, task("true", tags={"parent_workflow_id": None, "a": "b"}))
    assert get_task(tes_url, task_id, "BASIC")["tags"] == {"parent_workflow_id": "", "a": "b"}


def test_nul_in_inline_content_is_kept(tes_url):
    task_id = create(tes_url, task("true", inputs=[{"path": "/in/x", "content": "a\x00b"}]))
    assert get_task(tes_url, task_id, "FULL")["inputs"][0]["content"] == "a\x00b"


# -- cancel ----------------------------------------------------------------------------------


def _cancel(url: str, task_id: str) -> requests.Response:
    return requests.post(f"{url}/tasks/{task_id}:cancel", timeout=TIMEOUT)


def test_cancel_route_sits_next_to_get(tes_url):
    task_id = create(tes_url, task("sleep", "300"))
    wait_for_state(tes_url, task_id, {"RUNNING"})
    # GET on the cancel path is not a cancel: the task keeps running.
    response = requests.get(f"{tes_url}/tasks/{task_id}:cancel", timeout=TIMEOUT)
    assert response.status_code in (404, 405), response.text
    assert_error(response, response.status_code)
    time.sleep(0.5)
    assert get_task(tes_url, task_id)["state"] == "RUNNING"
    response = _cancel(tes_url, task_id)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {}
    assert get_task(tes_url, task_id)["state"] in {"CANCELING", "CANCELED"}
    done = wait_for_state(tes_url, task_id, TERMINAL, view="FULL")
    assert done["state"] == "CANCELED", done
    assert_conforms(done, "tesTask")
    again = _cancel(tes_url, task_id)
    assert (again.status_code, again.json()) == (200, {})
    assert get_task(tes_url, task_id)["state"] == "CANCELED"


@pytest.mark.parametrize(("command", "final"), [(["true"], "COMPLETE"),
                                                (["sh", "-c", "exit 4"], "EXECUTOR_ERROR")])
def test_cancel_of_a_finished_task_is_a_no_op(tes_url, command, final):
    task_id = create(tes_url, task(*command))
    before = wait_for_state(tes_url, task_id, TERMINAL, view="FULL")
    assert before["state"] == final, before
    response = _cancel(tes_url, task_id)
    assert (response.status_code, response.json()) == (200, {})
    time.sleep(0.5)
    assert get_task(tes_url, task_id, "FULL") == before


def test_a_task_cancelled_early_never_completes(tes_url):
    task_id = create(tes_url, task("sleep", "300"))
    assert _cancel(tes_url, task_id).status_code == 200
    done = wait_for_state(tes_url, task_id, TERMINAL)
    assert done["state"] == "CANCELED", done


# -- backend_parameters ----------------------------------------------------------------------


def _with_parameters(parameters: dict, strict: bool | None = None) -> dict:
    resources: dict = {"backend_parameters": parameters}
    if strict is not None:
        resources["backend_parameters_strict"] = strict
    return task("true", resources=resources)


def test_service_info_lists_the_network_parameter(tes_url):
    info = requests.get(f"{tes_url}/service-info", timeout=TIMEOUT).json()
    assert "network" in info["tesResources_backend_parameters"]


@pytest.mark.parametrize("key", ["network", "NETWORK", "Network"])
def test_parameter_keys_are_case_insensitive(tes_url, key):
    task_id = create(tes_url, _with_parameters({key: "none"}, strict=True))
    done = wait_for_state(tes_url, task_id, TERMINAL, view="BASIC")
    assert done["state"] == "COMPLETE", done
    assert done["resources"]["backend_parameters"] == {"network": "none"}


@pytest.mark.parametrize("key", ["gpu_type", "VmSize"])
def test_unknown_parameter_with_strict_is_400(tes_url, key):
    response = post_task(tes_url, _with_parameters({"network": "none", key: "x"}, strict=True))
    body = assert_error(response, 400)
    assert f"resources.backend_parameters.{key}" in body["errors"], body
    assert key in body["msg"] and "network" in body["msg"], body


@pytest.mark.parametrize("strict", [None, False])
def test_unknown_parameter_without_strict_is_dropped_and_reported(tes_url, strict):
    document = _with_parameters({"NETWORK": "none", "VmSize": "Standard_D64_v3"}, strict)
    task_id = create(tes_url, document)
    done = wait_for_state(tes_url, task_id, TERMINAL, view="FULL")
    assert done["state"] == "COMPLETE", done
    assert done["resources"]["backend_parameters"] == {"network": "none"}
    assert "Standard_D64_v3" not in str(done)
    reported = [line for log in done["logs"] for line in log.get("system_logs", [])
                if "VmSize" in line]
    assert reported, done["logs"]
    basic = get_task(tes_url, task_id, "BASIC")
    assert all("system_logs" not in log for log in basic["logs"])
    assert basic["resources"]["backend_parameters"] == {"network": "none"}


def test_only_unknown_parameters_leave_none_stored(tes_url):
    task_id = create(tes_url, _with_parameters({"foo": "bar"}))
    stored = get_task(tes_url, task_id, "FULL")
    assert "foo" not in stored["resources"].get("backend_parameters", {}), stored
    assert any("foo" in line for log in stored["logs"] for line in log.get("system_logs", []))


def test_network_not_allowed_by_the_operator_is_400(tes_url):
    response = post_task(tes_url, _with_parameters({"network": "host"}))
    body = assert_error(response, 400)
    assert "resources.backend_parameters" in body["errors"], body
    assert "backend_parameters.network" in body["msg"] and "host" in body["msg"], body


def test_the_executor_really_gets_no_network(tes_url):
    document = {"executors": [executor("sh", "-c", "ls /sys/class/net")],
                "resources": {"backend_parameters": {"network": "none"}}}
    done = wait_for_state(tes_url, create(tes_url, document), TERMINAL, view="FULL")
    assert done["state"] == "COMPLETE", done
    assert done["logs"][-1]["logs"][0]["stdout"].split() == ["lo"]
