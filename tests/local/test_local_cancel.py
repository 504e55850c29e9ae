"""Cancelling real tasks, running and still queued, on each container runtime.

The server of this module runs one task at a time (TES_LOCAL_MAX_TASKS=1),
so a second task waits in the queue behind a long one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from tes_filetransfer.testing import HangingStore

from tests.local.support import (
    ENGINES,
    RUNTIME_NAMES,
    Tes,
    containers_of,
    executor_logs,
    processes_with,
    require_runtime,
    sh,
    start_server,
    token,
    wait_until,
)

pytestmark = pytest.mark.timeout(120)

CANCEL_WITHIN = 10.0
"""Seconds a cancel may take to reach CANCELED (the brief: a few seconds)."""


@pytest.fixture(scope="module", params=RUNTIME_NAMES)
def tes1(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tes]:
    """A server with a single task slot."""
    runtime = request.param
    require_runtime(runtime)
    data_dir = tmp_path_factory.mktemp(f"tes-cancel-{runtime}")
    server = start_server(data_dir, runtime, TES_LOCAL_MAX_TASKS="1")
    yield Tes(server, runtime)
    server.stop()


def _start_sleeper(tes: Tes) -> tuple[str, str]:
    """Submit ``sleep 60`` and wait until its executor really runs; return (id, marker)."""
    marker = f"tes-sleeper-{token()}"
    task_id = tes.submit({"executors": [sh(f"sleep 60 && echo {marker}")]})
    tes.wait(task_id, {"RUNNING"}, timeout=30)
    wait_until(lambda: processes_with(marker, "sh"), 30, "the executor's shell to start")
    return task_id, marker


def test_cancel_running_task(tes1: Tes) -> None:
    task_id, marker = _start_sleeper(tes1)
    if tes1.runtime in ENGINES:
        assert containers_of(tes1.runtime, task_id)
    assert (tes1.data_dir / "tasks" / task_id).is_dir()

    started = time.monotonic()
    tes1.cancel(task_id)
    task = tes1.wait(task_id, {"CANCELED", "COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR"},
                     timeout=30)
    took = time.monotonic() - started
    assert task["state"] == "CANCELED", task
    assert took < CANCEL_WITHIN, f"cancel took {took:.1f} s"

    # Nothing is left behind: no process, no container, no task folder.
    assert processes_with(marker) == []
    if tes1.runtime in ENGINES:
        assert containers_of(tes1.runtime, task_id) == []
    assert not (tes1.data_dir / "tasks" / task_id).exists()
    # Cancelling a finished task is a no-op that keeps its state.
    tes1.cancel(task_id)
    assert tes1.get(task_id, "MINIMAL")["state"] == "CANCELED"


def test_cancel_while_staging_from_a_store_that_never_answers(tes1: Tes) -> None:
    """The cancel interrupts the transfer: it does not wait for the store's read deadline
    (60 s per try)."""
    if tes1.runtime != "docker":
        pytest.skip("staging is the same on every runtime")
    with HangingStore() as store:
        task_id = tes1.submit({
            "inputs": [{"url": f"{store.url}/in.txt", "path": "/data/in.txt"}],
            "executors": [sh("true")],
        })
        wait_until(lambda: store.accepted, 30, "the staging to reach the store")
        tes1.cancel(task_id)
        tes1.wait(task_id, {"CANCELED"}, timeout=CANCEL_WITHIN)
    wait_until(lambda: not (tes1.data_dir / "tasks" / task_id).exists(), 10,
               "the task folder to be removed")


def test_cancel_queued_task(tes1: Tes) -> None:
    blocker, _ = _start_sleeper(tes1)
    marker = f"queued-{token()}"
    queued = tes1.submit({"executors": [sh(f"touch /tes-wd/shared-global/{marker}")]})
    time.sleep(0.5)
    assert tes1.get(queued, "MINIMAL")["state"] == "QUEUED"  # the only slot is taken

    started = time.monotonic()
    tes1.cancel(queued)
    try:
        task = tes1.wait(queued, {"CANCELED", "COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR"},
                         timeout=CANCEL_WITHIN)
    finally:
        tes1.cancel(blocker)
    assert task["state"] == "CANCELED", task
    assert time.monotonic() - started < CANCEL_WITHIN
    assert tes1.wait(blocker, timeout=30)["state"] == "CANCELED"

    # The slot is free again, yet the cancelled task never ran.
    after = tes1.run({"executors": [sh("true")]})
    assert after["state"] == "COMPLETE"
    final = tes1.get(queued)
    assert final["state"] == "CANCELED"
    assert executor_logs(final) == []
    assert not (tes1.data_dir / "shared-global" / marker).exists()
    assert not (tes1.data_dir / "tasks" / queued).exists()
