"""The real strict client, py-tes 1.1.4: it rejects any field it does not know, so
parsing every endpoint in every view proves the responses hold nothing outside the spec."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
import tes
from tes.utils import UnmarshalError, unmarshal

from tests.api.support import create, pytes_client
from tests.servers import TERMINAL, wait_for_state

VIEWS = ("MINIMAL", "BASIC", "FULL")


def test_py_tes_really_is_strict():
    # The premise of this file: an unknown field anywhere makes py-tes fail.
    with pytest.raises(UnmarshalError):
        unmarshal({"id": "x", "state": "QUEUED", "priority": 1}, tes.Task)
    with pytest.raises(UnmarshalError):
        unmarshal({"id": "x", "logs": [{"logs": [], "outputs": [], "cost": "1"}]}, tes.Task)
    with pytest.raises(UnmarshalError):
        unmarshal({"id": "x", "name": "n", "extra": []}, tes.ServiceInfo)
    with pytest.raises(UnmarshalError):
        unmarshal({"id": "x", "state": "DONE"}, tes.Task)


def test_service_info(tes_url):
    info = pytes_client(tes_url).get_service_info()
    assert isinstance(info, tes.ServiceInfo)
    assert info.type == {"group": "org.ga4gh", "artifact": "tes", "version": "1.1.0"}
    assert "network" in info.tes_resources_backend_parameters
    assert info.storage and all(isinstance(item, str) for item in info.storage)
    assert info.created_at and info.updated_at


def test_client_given_the_full_api_url_also_works(tes_url):
    # py-tes appends /ga4gh/tes/v1, /v1 and / in turn, moving on after a 404.
    info = tes.HTTPClient(tes_url, timeout=30).get_service_info()
    assert info.type["artifact"] == "tes"


@pytest.fixture(scope="module")
def done_task(server, tmp_path_factory):
    """A task made with py-tes models, finished: (client, id, output folder)."""
    out: Path = tmp_path_factory.mktemp("pytes-out")
    client = pytes_client(server.url)
    task = tes.Task(
        name="py-tes",
        description="made with py-tes",
        inputs=[tes.Input(path="/in/a.txt", content="from py-tes\n")],
        outputs=[
            tes.Output(path="/out/a.txt", url=str(out / "a.txt")),
            tes.Output(path="/out/d", url=str(out / "d"), type="DIRECTORY"),
        ],
        resources=tes.Resources(cpu_cores=1, ram_gb=0.25, preemptible=False, zones=["z"],
                                backend_parameters={"NETWORK": "none", "VmSize": "big"}),
        executors=[
            tes.Executor(image="alpine", command=[
                "sh", "-c", "cp /in/a.txt /out/a.txt; mkdir -p /out/d; echo 1 > /out/d/x; "
                "echo done; echo warn >&2"], env={"A": "1"}, workdir="/tmp"),
        ],
        volumes=["/scratch"],
        tags={"client": "py-tes"},
    )
    task_id = client.create_task(task)
    assert isinstance(task_id, str) and task_id
    final = client.wait(task_id, timeout=120)
    assert final.state == "COMPLETE", server.log()
    return client, task_id, out


@pytest.mark.parametrize("view", VIEWS)
def test_get_task_in_every_view(done_task, view):
    client, task_id, _ = done_task
    got = client.get_task(task_id, view)
    assert isinstance(got, tes.Task)
    assert (got.id, got.state) == (task_id, "COMPLETE")
    if view == "MINIMAL":
        assert got.executors is None and got.logs is None and got.name is None
        return
    assert got.name == "py-tes" and got.tags == {"client": "py-tes"}
    assert got.resources.backend_parameters == {"network": "none"}
    assert got.creation_time is not None and got.creation_time.tzinfo is not None
    attempt = got.logs[-1]
    assert [log.exit_code for log in attempt.logs] == [0]
    assert {o.path: o.size_bytes for o in attempt.outputs} == {"/out/a.txt": 12, "/out/d/x": 2}
    if view == "FULL":
        assert attempt.logs[0].stdout == "done\n" and attempt.logs[0].stderr == "warn\n"
        assert got.inputs[0].content == "from py-tes\n"
        assert any("VmSize" in line for line in attempt.system_logs)
    else:
        assert attempt.logs[0].stdout is None and attempt.system_logs is None
        assert got.inputs[0].content is None


@pytest.mark.parametrize("view", VIEWS)
def test_list_tasks_in_every_view_and_every_page(done_task, view):
    client, task_id, _ = done_task
    ids: list[str] = []
    token = None
    while True:
        page = client.list_tasks(view=view, page_size=2, page_token=token)
        assert isinstance(page, tes.ListTasksResponse)
        assert len(page.tasks) <= 2
        ids += [t.id for t in page.tasks]
        token = page.next_page_token
        if token is None:
            break
    assert task_id in ids and len(ids) == len(set(ids))


def test_output_files_were_written(done_task):
    _, _, out = done_task
    assert (out / "a.txt").read_text() == "from py-tes\n"
    assert (out / "d" / "x").read_text() == "1\n"


def test_cancel_and_the_canceling_states_parse(tes_url):
    client = pytes_client(tes_url)
    task_id = client.create_task(tes.Task(executors=[
        tes.Executor(image="alpine", command=["sleep", "300"])]))
    wait_for_state(tes_url, task_id, {"RUNNING"})
    assert client.cancel_task(task_id) is None
    seen = {client.get_task(task_id, "FULL").state}
    done = wait_for_state(tes_url, task_id, TERMINAL)
    seen.add(client.get_task(task_id, "BASIC").state)
    assert done["state"] == "CANCELED"
    assert seen <= {"CANCELING", "CANCELED"}
    client.cancel_task(task_id)  # a no-op on a finished task, still a success
    assert client.get_task(task_id, "MINIMAL").state == "CANCELED"


def test_failed_task_parses(tes_url):
    client = pytes_client(tes_url)
    task_id = client.create_task(tes.Task(executors=[
        tes.Executor(image="alpine", command=["sh", "-c", "exit 9"])]))
    assert client.wait(task_id, timeout=60).state == "EXECUTOR_ERROR"
    assert client.get_task(task_id, "FULL").logs[-1].logs[0].exit_code == 9


def test_task_made_with_raw_json_parses(tes_url, tmp_path):
    task_id = create(tes_url, {
        "executors": [{"image": "alpine", "command": ["true"], "ignore_error": True,
                       "stdout": "/tmp/o", "stderr": "/tmp/e"}],
        "inputs": [{"path": "/in/x", "content": "x", "url": "ignored", "streamable": True,
                    "name": "n", "description": "d"}],
        "outputs": [{"path": "/tmp/*.none", "path_prefix": "/tmp/", "url": f"{tmp_path}/",
                     "name": "n", "description": "d"}],
        "tags": {"k": None},
    })
    wait_for_state(tes_url, task_id, TERMINAL)
    client = pytes_client(tes_url)
    for view in VIEWS:
        client.get_task(task_id, view)


def test_errors_reach_py_tes_as_http_errors(tes_url):
    client = pytes_client(tes_url)
    with pytest.raises(requests.HTTPError) as raised:
        client.get_task("no-such-task")
    assert raised.value.response.status_code == 404
    with pytest.raises(requests.HTTPError) as raised:
        client.cancel_task("no-such-task")
    assert raised.value.response.status_code == 404
    bad = tes.Task(executors=[tes.Executor(image="alpine", command=["true"], workdir="rel")])
    with pytest.raises(requests.HTTPError) as raised:
        client.create_task(bad)
    assert raised.value.response.status_code == 400
    assert "executors.0.workdir" in raised.value.response.json()["errors"]
