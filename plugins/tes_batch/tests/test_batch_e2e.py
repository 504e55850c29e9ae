"""End to end: a real ``tes-server serve`` with ``TES_BACKEND=batch`` on the fake Batch
service, driven by the real ``BatchClient``; the fake's nodes run the real ``tes-runner``
with Docker, so inputs, executors, logs and outputs are real. Each test asserts the
requests Batch received."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

servers = pytest.importorskip("tests.servers", reason="needs the tes-core repository")
requests = pytest.importorskip("requests")

from fakebatch import FakeBatch  # noqa: E402
from fakebatch.server import serve_on  # noqa: E402
from fakebatch.service import wait_until  # noqa: E402

from tes_batch.taskspec import COMMAND, STATUS_PATH, TASK_JSON_VARIABLE  # noqa: E402

if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
    pytest.skip("no Docker (source $TES_SERVICES_DIR/env.sh after scripts/test-services.sh)",
                allow_module_level=True)

IMAGE = "busybox:latest"
TERMINAL = servers.TERMINAL


@pytest.fixture(scope="module")
def server(fake_batch: FakeBatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    yield from serve_on(fake_batch, tmp_path_factory.mktemp("batch-server"),
                        {"TES_BATCH_MAX_ATTEMPTS": "2", "TES_BATCH_REFRESH_INTERVAL": "1"})


def post(url: str, document: dict[str, Any]) -> str:
    answer = requests.post(f"{url}/tasks", json=document, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["id"]


def sh(script: str, **extra: Any) -> dict[str, Any]:
    return {"image": IMAGE, "command": ["sh", "-c", script], **extra}


def finished(url: str, task_id: str, timeout: float = 180) -> dict[str, Any]:
    return servers.wait_for_state(url, task_id, TERMINAL, timeout=timeout, view="FULL")


def added(batch: FakeBatch, task_id: str) -> list[Any]:
    """The task-add requests Batch received for a TES task (by display name)."""
    return [r for r in batch.recorded("POST", "/jobs/")
            if r.path.endswith("/tasks") and (r.body or {}).get("displayName") == task_id]


def test_inputs_executors_outputs_and_the_exact_requests(server, batch, tmp_path: Path):
    source = tmp_path / "in.txt"
    source.write_text("from a file\n")
    out = tmp_path / "out.txt"
    task_id = post(server.url, {
        "name": "it's \"quoted\"; $(reboot)",
        "inputs": [{"path": "/data/in.txt", "url": f"file://{source}"},
                   {"path": "/data/inline.txt", "content": "inline content\n"}],
        "outputs": [{"path": "/data/out.txt", "url": f"file://{out}"}],
        "executors": [sh("cat /data/in.txt /data/inline.txt > /data/out.txt; echo done"),
                      sh("echo second >&2")],
        "resources": {"cpu_cores": 3, "ram_gb": 10},
    })
    task = finished(server.url, task_id)
    assert task["state"] == "COMPLETE", task
    assert out.read_text() == "from a file\ninline content\n"
    log = task["logs"][-1]
    assert [e["exit_code"] for e in log["logs"]] == [0, 0]
    assert log["logs"][0]["stdout"] == "done\n" and log["logs"][1]["stderr"] == "second\n"
    meta = log["metadata"]
    assert (meta["vm_size"], meta["vm_low_priority"], meta["vm_price_per_hour_usd"]) == (
        "Standard_D4s_v3", "false", "0.192")  # the cheapest size with 3 cores and 10 GB
    assert meta["batch_pool_id"].startswith("tes-standard_d4s_v3-dd-")
    assert meta["batch_node_id"].startswith("tvmps_")

    pool_adds = [r for r in batch.recorded("POST", "/pools")
                 if r.body["id"] == meta["batch_pool_id"]]
    assert len(pool_adds) == 1
    pool = pool_adds[0].body
    assert pool["vmSize"] == "Standard_D4s_v3" and pool["enableAutoScale"] is True
    assert pool["taskSlotsPerNode"] == 1
    assert "$TargetDedicatedNodes = $target;" in pool["autoScaleFormula"]
    assert pool["virtualMachineConfiguration"]["containerConfiguration"] == {
        "type": "dockerCompatible"}
    assert pool["startTask"]["waitForSuccess"] is True
    job_adds = [r.body for r in batch.recorded("POST", "/jobs") if r.path == "/jobs"
                and r.body["id"] == meta["batch_job_id"]]
    assert job_adds == [{"id": meta["batch_job_id"], "poolInfo": {"poolId": pool["id"]},
                         "onAllTasksComplete": "noaction"}]
    [add] = added(batch, task_id)
    assert add.path == f"/jobs/{meta['batch_job_id']}/tasks"
    body = add.body
    assert body["id"] == meta["batch_task_id"] == f"{task_id}-1"
    assert body["commandLine"] == COMMAND  # nothing of the task reaches a shell
    assert body["constraints"] == {"maxTaskRetryCount": 0}
    [setting] = body["environmentSettings"]
    document = json.loads(setting["value"])
    assert setting["name"] == TASK_JSON_VARIABLE and document["attempt"] == 1
    assert document["task"]["name"] == "it's \"quoted\"; $(reboot)"
    # Polling lists the job's tasks with $select; the status file is read once, at the end.
    lists = batch.recorded("GET", f"/jobs/{meta['batch_job_id']}/tasks")
    listings = [r for r in lists if r.path == f"/jobs/{meta['batch_job_id']}/tasks"]
    polls = [r for r in listings if r.query["$select"] == "id,state,stateTransitionTime,"
             "executionInfo,nodeInfo" and r.query["maxresults"] == "1000"]
    sweeps = [r for r in listings if r.query["$select"] == "id,state,displayName"]
    assert polls and len(polls) + len(sweeps) == len(listings), listings
    status_reads = [r for r in lists if r.path.endswith(STATUS_PATH)]
    assert len(status_reads) >= 1
    assert all(r.query.get("$filter") == "startswith(id,'tes-')"
               for r in batch.recorded("GET", "/pools") if r.path == "/pools")


def test_an_executor_failing_is_executor_error_with_its_exit_code(server, batch):
    task_id = post(server.url, {"executors": [sh("echo oops >&2; exit 7")]})
    task = finished(server.url, task_id)
    assert task["state"] == "EXECUTOR_ERROR", task
    assert task["logs"][-1]["logs"][0]["exit_code"] == 7
    assert task["logs"][-1]["logs"][0]["stderr"] == "oops\n"


def test_vm_size_strict_refused_lenient_dropped_and_never_fitting_fails(server, batch):
    info = requests.get(f"{server.url}/service-info", timeout=10).json()
    assert {"vm_size", "gpus"} <= set(info["tesResources_backend_parameters"])
    strict = requests.post(f"{server.url}/tasks", timeout=30, json={
        "executors": [sh("true")], "resources": {
            "backend_parameters": {"vm_size": "Standard_NC96ads_A100_v4"},
            "backend_parameters_strict": True}})
    assert strict.status_code == 400, strict.text
    assert "resources.backend_parameters.vm_size" in strict.json()["errors"]
    assert "Standard_NC96ads_A100_v4" in strict.json()["msg"]
    hostile = requests.post(f"{server.url}/tasks", timeout=30, json={
        "executors": [sh("true")], "resources": {"backend_parameters": {"vm_size": "../x'"}}})
    assert hostile.status_code == 400 and "vm_size" in hostile.text

    lenient = post(server.url, {"executors": [sh("true")], "resources": {
        "preemptible": True, "backend_parameters": {"vm_size": "Standard_NC96ads_A100_v4"}}})
    task = finished(server.url, lenient)
    assert task["state"] == "COMPLETE", task
    assert any("vm_size='Standard_NC96ads_A100_v4' is not an allowed VM size" in line
               for line in task["logs"][0]["system_logs"]), task["logs"][0]
    meta = task["logs"][-1]["metadata"]
    assert (meta["vm_size"], meta["vm_low_priority"]) == ("Standard_D2s_v3", "true")
    assert meta["vm_price_per_hour_usd"] == "0.0192"

    too_big = post(server.url, {"executors": [sh("true")], "resources": {"ram_gb": 4096}})
    task = finished(server.url, too_big, timeout=60)
    assert task["state"] == "SYSTEM_ERROR"
    assert "no allowed VM size fits" in " ".join(task["logs"][-1]["system_logs"])
    assert not added(batch, too_big)


def test_quota_keeps_the_task_queued_with_the_reason_until_capacity_returns(server, batch):
    batch.resize_errors["*"] = ("AccountCoreQuotaReached", "The core quota is reached.")
    task_id = post(server.url, {"executors": [sh("true")], "resources": {"cpu_cores": 16}})

    def waiting() -> dict | None:
        task = requests.get(f"{server.url}/tasks/{task_id}", params={"view": "FULL"},
                            timeout=10).json()
        lines = " ".join((task.get("logs") or [{}])[-1].get("system_logs") or ())
        return task if "AccountCoreQuotaReached" in lines else None

    task = wait_until(waiting, timeout=120)
    assert task["state"] == "QUEUED"
    assert "core quota is used up" in " ".join(task["logs"][-1]["system_logs"])
    del batch.resize_errors["*"]
    assert finished(server.url, task_id)["state"] == "COMPLETE"


def test_a_job_quota_at_submit_waits_and_is_retried(server, batch):
    batch.quota["jobs"] = "ActiveJobAndScheduleQuotaReached"
    # A size no earlier test used: its pool and job are new, so the job add meets the quota.
    task_id = post(server.url, {"executors": [sh("true")], "resources": {"ram_gb": 100}})
    wait_until(lambda: "ActiveJobAndScheduleQuotaReached" in json.dumps(requests.get(
        f"{server.url}/tasks/{task_id}", params={"view": "FULL"}, timeout=10).json()))
    assert requests.get(f"{server.url}/tasks/{task_id}", timeout=10).json()["state"] == "QUEUED"
    assert not added(batch, task_id)
    del batch.quota["jobs"]
    task = finished(server.url, task_id)
    assert task["state"] == "COMPLETE", task
    assert task["logs"][-1]["metadata"]["vm_size"] == "Standard_E16s_v3"
    assert len(added(batch, task_id)) == 1


def test_a_preempted_node_makes_a_new_attempt(server, batch):
    task_id = post(server.url, {"executors": [sh("sleep 4; echo ran")],
                                "resources": {"preemptible": True}})
    first = f"{task_id}-1"
    wait_until(lambda: (requests.get(f"{server.url}/tasks/{task_id}", params={
        "view": "FULL"}, timeout=10).json().get("logs") or [{}])[-1].get("start_time"))
    assert batch.find_task(first)[1]["state"] == "running"
    batch.preempt(first)
    task = finished(server.url, task_id)
    assert task["state"] == "COMPLETE", [log.get("system_logs") for log in task["logs"]]
    assert len(task["logs"]) == 2
    assert any(f"preempted the node of task {first} (attempt 1)" in line
               for line in task["logs"][1]["system_logs"])
    assert task["logs"][1]["logs"][0]["stdout"] == "ran\n"
    assert [a.body["id"] for a in added(batch, task_id)] == [first, f"{task_id}-2"]
    assert batch.find_task(first) is None  # removed, so Batch never runs it again


def test_get_shows_running_and_cancel_terminates_and_deletes_the_batch_task(server, batch):
    task_id = post(server.url, {"executors": [sh("sleep 300")]})
    name = f"{task_id}-1"
    # A GET of a task on a node reads its status file: RUNNING, with the executor started.
    servers.wait_for_state(server.url, task_id, {"RUNNING"}, timeout=120)
    job, _ = batch.find_task(name)
    assert batch.recorded("GET", f"/jobs/{job}/tasks/{name}/files/{STATUS_PATH}")
    answer = requests.post(f"{server.url}/tasks/{task_id}:cancel", timeout=60)
    assert answer.status_code == 200, answer.text
    assert servers.wait_for_state(server.url, task_id, TERMINAL)["state"] == "CANCELED"
    assert batch.find_task(name) is None
    paths = [(r.method, r.path.rsplit("/", 2)[-2:]) for r in batch.recorded()
             if name in r.path]
    assert ("POST", [name, "terminate"]) in paths
    assert ("DELETE", ["tasks", name]) in paths
