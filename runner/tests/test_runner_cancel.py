"""A cancel that races the start of an executor, on the real runtimes."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from runner_support import require_runtime, sh, task_dir_for, wait_for

from tes_runner import TaskRunner, Workspace
from tes_runner.runtimes.base import ContainerResult, ContainerSpec
from tes_runner.runtimes.detect import choose_runtime
from tes_runner.status import StatusFile
from tes_runner.taskfile import load_task_file

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("runtime_name", ["docker", "bubblewrap"])
def test_a_cancel_while_the_executor_starts_still_stops_it(
    runtime_name: str, tmp_path: Path
) -> None:
    """The cancel comes after the runner named the executor but before the runtime had a
    process or container for it (a sandbox being set up, a ``docker run`` not yet
    started): that first stop finds nothing, and the executor must still not run its
    300 s."""
    require_runtime(runtime_name)
    folder = task_dir_for(tmp_path, {"executors": [sh("sleep 300")]}, runtime_name)
    spec = load_task_file(folder)
    runtime = choose_runtime(runtime_name).runtime
    cancelled = threading.Event()
    start = runtime.run

    def start_after_the_cancel(container: ContainerSpec) -> ContainerResult:
        cancelled.wait(60)
        return start(container)

    runtime.run = start_after_the_cancel  # type: ignore[method-assign]
    status = StatusFile(folder / "status.json")
    runner = TaskRunner(
        spec.task_id, spec.task, runtime=runtime,
        workspace=Workspace(base=folder / "work", shared_global=folder / "shared"),
        events=status, transfer_config=spec.transfer, attempt=spec.attempt,
    )
    thread = threading.Thread(target=runner.run)
    thread.start()
    wait_for(lambda: runner.current_container is not None, "the executor to be named")
    name = runner.current_container
    runner.cancel()
    runner.cancel()  # the local backend repeats a cancel while the task is CANCELING
    stoppers = [t for t in threading.enumerate() if t.name == f"tes-runner-stop {name}"]
    cancelled.set()
    thread.join(60)
    still_running = thread.is_alive()
    if still_running:  # clean up after the failure
        runtime.stop(name or "")
        thread.join(60)
    assert not still_running, "the executor ran on after the cancel"
    assert status.state == "CANCELED"
    assert len(stoppers) == 1, "one thread of repeated stops per executor"
