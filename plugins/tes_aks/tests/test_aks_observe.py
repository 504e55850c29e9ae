"""The mapping from one pass's objects to observations, on objects in the API's shapes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tes_core.backends.base import Observation, TaskRecord

from tes_aks import names
from tes_aks.observe import Attempt, index, observe

NOW = datetime(2026, 12, 3, 7, 0, tzinfo=UTC)


def task(state: str = "QUEUED", metadata: dict[str, str] | None = None) -> TaskRecord:
    return TaskRecord(
        id="t1",
        state=state,
        document={},
        creation_time=NOW,
        logs=[{"logs": [], "outputs": [], "metadata": metadata or {}}],
        backend_ref="default/tes-t1-a1",
    )


def pod(role: str, status: dict[str, Any], created: datetime = NOW) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"tes-t1-a1-{role}-x",
            "labels": names.labels("t1", 1, role),
            "creationTimestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "status": status,
    }


JOB = {
    "metadata": {"name": "tes-t1-a1", "labels": names.labels("t1", 1, names.COORDINATOR)},
    "status": {"active": 1},
}


def look(seen: Attempt, record: TaskRecord | None = None, wait: float = 300) -> Any:
    preempted: list[str] = []

    def preempt(reason: str) -> Observation:
        preempted.append(reason)
        return Observation(task_id="t1", new_attempt=True)

    result = observe(
        record or task(),
        seen,
        image_pull_wait=wait,
        preempt=preempt,
        coordinator_log=lambda name: "the log",
        now=NOW,
    )
    return result, preempted


def test_an_unschedulable_coordinator_keeps_the_task_queued_saying_what_is_missing() -> None:
    message = "0/3 nodes are available: 3 Insufficient memory."
    seen = Attempt(
        job=JOB,
        pods=[
            pod(
                names.COORDINATOR,
                {
                    "phase": "Pending",
                    "conditions": [
                        {
                            "type": "PodScheduled",
                            "status": "False",
                            "reason": "Unschedulable",
                            "message": message,
                        }
                    ],
                },
            )
        ],
    )
    result, _ = look(seen)
    assert result.state is None
    assert result.waiting_reason == f"pod tes-t1-a1-coordinator-x waits for a node: {message}"
    again, _ = look(seen, task(metadata={"waiting_reason": result.waiting_reason}))
    assert again is None, "the same reason is not reported twice"


GPU = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
UNSCHEDULABLE = {
    "phase": "Pending",
    "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": GPU}
    ],
}


@pytest.mark.parametrize("role", [names.EXECUTOR_ROLE, names.STAGE_IN])
def test_an_unschedulable_executor_or_staging_pod_puts_the_task_back_in_queue(role: str) -> None:
    status = {
        "state": "INITIALIZING",
        "final": False,
        "waiting": None,
        "log": {"start_time": "2026-12-03T06:59:00.000Z", "logs": [], "system_logs": []},
    }
    seen = Attempt(
        job=JOB,
        status=status,
        pods=[pod(names.COORDINATOR, {"phase": "Running"}), pod(role, UNSCHEDULABLE)],
    )
    result, _ = look(seen, task("INITIALIZING"))
    assert result.state == "QUEUED"
    assert result.waiting_reason == f"pod tes-t1-a1-{role}-x waits for a node: {GPU}"
    # The coordinator's own word (its status QUEUED) keeps it there between two passes
    # (GET reads only the status), with the coordinator's reason.
    queued = {**status, "state": "QUEUED", "waiting": f"executor 0 waits for a node: {GPU}"}
    result, _ = look(Attempt(job=JOB, status=queued), task("QUEUED"))
    assert result.state == "QUEUED" and result.waiting_reason.endswith(GPU)
    # Once an executor ran, RUNNING -> QUEUED is not a TES transition: only the reason.
    running = {**status, "state": "RUNNING"}
    result, _ = look(
        Attempt(job=JOB, status=running, pods=[pod(role, UNSCHEDULABLE)]), task("RUNNING")
    )
    assert result.state == "RUNNING" and result.waiting_reason.endswith(GPU)
    # Scheduled at last: INITIALIZING again, the reason goes.
    waited = task("QUEUED", metadata={"waiting_reason": "x"})
    result, _ = look(
        Attempt(job=JOB, status=status, pods=[pod(role, {"phase": "Running"})]), waited
    )
    assert result.state == "INITIALIZING" and result.waiting_reason == ""


def test_an_unschedulable_coordinator_of_a_later_attempt_is_queued_again() -> None:
    seen = Attempt(job=JOB, pods=[pod(names.COORDINATOR, UNSCHEDULABLE)])
    result, _ = look(seen, task("INITIALIZING"))
    assert result.state == "QUEUED" and result.waiting_reason.endswith(GPU)


def test_an_image_pull_failure_waits_then_fails_naming_the_image() -> None:
    status = {
        "phase": "Pending",
        "containerStatuses": [
            {
                "name": "executor",
                "image": "ghcr.io/x/y:1",
                "state": {"waiting": {"reason": "ErrImagePull", "message": "not found"}},
            }
        ],
    }
    young = Attempt(job=JOB, pods=[pod(names.EXECUTOR_ROLE, status, NOW - timedelta(seconds=5))])
    result, _ = look(young)
    assert "image 'ghcr.io/x/y:1' cannot be pulled (ErrImagePull)" in result.waiting_reason
    old = Attempt(job=JOB, pods=[pod(names.EXECUTOR_ROLE, status, NOW - timedelta(seconds=400))])
    result, _ = look(old)
    assert result.state == "SYSTEM_ERROR"
    assert "'ghcr.io/x/y:1'" in result.system_logs[0] and "400 s" in result.system_logs[0]


def test_status_documents_and_preemption() -> None:
    running = {
        "state": "RUNNING",
        "final": False,
        "waiting": "executor 1 waits for a node: x",
        "log": {
            "start_time": "2026-12-03T06:59:00.000Z",
            "logs": [{"exit_code": 0}],
            "system_logs": [],
            "metadata": {"namespace": "default"},
        },
    }
    result, _ = look(Attempt(job=JOB, status=running), task("INITIALIZING"))
    assert result.state == "RUNNING" and result.executor_logs == [{"exit_code": 0}]
    assert result.waiting_reason == "executor 1 waits for a node: x"
    done = {
        **running,
        "state": "COMPLETE",
        "final": True,
        "waiting": None,
        "log": {
            **running["log"],
            "end_time": "2026-12-03T07:00:00.000Z",
            "outputs": [{"url": "s3://b/o", "path": "/o", "size_bytes": "1"}],
        },
    }
    result, _ = look(Attempt(job=None, status=done), task("RUNNING"))
    assert result.state == "COMPLETE" and result.outputs[0]["size_bytes"] == "1"
    evicted = {
        **done,
        "state": "PREEMPTED",
        "log": {**done["log"], "system_logs": ["executor 0: pod p was taken off"]},
    }
    result, preempted = look(Attempt(job=JOB, status=evicted), task("RUNNING"))
    assert result.new_attempt and preempted == ["executor 0: pod p was taken off"]


def test_a_finished_coordinator_without_status_is_a_system_error_with_its_log() -> None:
    job = {**JOB, "status": {"failed": 1, "conditions": [{"type": "Failed", "status": "True"}]}}
    seen = Attempt(job=job, pods=[pod(names.COORDINATOR, {"phase": "Failed"})])
    result, preempted = look(seen, task("RUNNING"))
    assert result.state == "SYSTEM_ERROR" and "the log" in result.system_logs[0]
    assert preempted == []
    seen.pods[0]["status"] = {"phase": "Failed", "reason": "Evicted", "message": "spot"}
    _, preempted = look(seen, task("RUNNING"))
    assert preempted and "Evicted: spot" in preempted[0]


def test_index_groups_pods_by_task_and_attempt() -> None:
    other = {"metadata": {"name": "tes-t2-a1", "labels": names.labels("t2", 1, "coordinator")}}
    status = {
        "metadata": {"name": "tes-t1-a1-status"},
        "data": {"status.json": '{"state": "RUNNING"}'},
    }
    seen = index([JOB, other], [pod(names.EXECUTOR_ROLE, {}), pod(names.COORDINATOR, {})], [status])
    assert len(seen["tes-t1-a1"].pods) == 2 and seen["tes-t2-a1"].pods == []
    assert seen["tes-t1-a1"].status == {"state": "RUNNING"}
