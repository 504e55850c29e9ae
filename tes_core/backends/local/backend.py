"""The local backend: tasks run in containers on the worker's own machine.

Each worker runs up to ``TES_LOCAL_MAX_TASKS`` tasks at once in its own
threads. The task belongs to that worker (``worker_id``); if the worker dies,
the reconcile loop calls :meth:`LocalBackend.recover` from another worker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from tes_filetransfer import TransferError
from tes_runner import Workspace, container_name
from tes_runner.runtimes import (
    ContainerRuntime,
    RuntimeChoice,
    RuntimeUnavailable,
    choose_runtime,
    unknown_runtime,
)

from ...config import ConfigError
from ...shutdown import Deadline
from ...storage_policy import access_policy
from ..base import (
    Backend,
    BackendContext,
    HandOverUnfinished,
    Observation,
    OutputPiece,
    TaskRecord,
    WorkerStopping,
    worker_lost,
)
from ..live_output import read_live_output
from .runner import TaskRun, may_run_executor, runtime_options
from .waiting import EXPLAIN_TICK, slot_reason

log = logging.getLogger(__name__)

RUNTIME_RECHECK = 5.0
"""Seconds a runtime check's answer is reused: by ``/readyz`` (is the chosen runtime still
usable?) and, when none was usable, before :meth:`LocalBackend.runtime` tries again."""


class LocalBackend(Backend):
    """Runs executors with Docker, podman or bubblewrap on this machine."""

    name = "local"
    runs_in_worker = True
    backend_parameters = {
        "network": "container network mode for the task's executors; allowed values are "
        "listed in TES_LOCAL_ALLOWED_NETWORKS (default: none)",
    }

    def __init__(self, context: BackendContext) -> None:
        super().__init__(context)
        self._choice: RuntimeChoice | None = None
        self._runtime_error: str | None = None
        self._health_error: str | None = None
        self._runtime_checked = 0.0
        """``time.monotonic()`` of the last runtime check (choice or health)."""
        self._runtime_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._runs: dict[str, TaskRun] = {}
        self._runs_lock = threading.Lock()
        self._stopping = threading.Event()
        try:  # a malformed allow-list stops start-up instead of failing every task
            self._policy = access_policy(self.settings)
        except TransferError as exc:
            raise ConfigError(str(exc)) from None
        unknown = unknown_runtime(self.settings.local_runtime)
        if unknown:  # a misspelled runtime stops start-up, in API processes too
            raise ConfigError(unknown)

    # -- set-up -------------------------------------------------------------------------

    def validate_parameters(self, parameters: Mapping[str, str]) -> None:
        """Only networks the operator allowed may be asked for."""
        network = parameters.get("network")
        allowed = self.settings.local_allowed_networks
        if network is not None and network not in allowed:
            raise ValueError(
                f"backend_parameters.network={network!r} is not allowed here "
                f"(allowed: {', '.join(allowed)}; see TES_LOCAL_ALLOWED_NETWORKS)"
            )

    def storage(self) -> list[str]:
        """The folders of this machine that tasks may name as local paths or file:// URLs."""
        return [f"file://{folder}" for folder in self._policy.local_dirs]

    def start(self) -> None:
        """Pick the container runtime and start the task threads.

        Raises :class:`RuntimeUnavailable` when no runtime is usable, unless
        ``TES_LOCAL_START_WITHOUT_RUNTIME`` is set: then each task ends in SYSTEM_ERROR
        with the same advice until a runtime works (checked again every few seconds).
        """
        try:
            self.runtime(log_failure=False)  # the caller says why it stops
        except RuntimeUnavailable as exc:
            if not self.settings.local_start_without_runtime:
                raise
            log.error("the local backend cannot run tasks: %s", exc)
        self._pool = ThreadPoolExecutor(
            max_workers=self.settings.local_max_tasks, thread_name_prefix="tes-local-task"
        )
        self._stopping.clear()
        threading.Thread(target=self._watch_cancels, name="tes-local-watch", daemon=True).start()
        threading.Thread(target=self._explain_waits, name="tes-local-waits", daemon=True).start()

    def describe(self) -> str | None:
        """``runtime: <name> (<why>)``, or why there is none."""
        if self._choice is not None:
            return f"runtime: {self._choice.runtime.name} ({self._choice.why})"
        return f"runtime: none usable, every task will fail: {self._runtime_error}"

    def unready_reason(self) -> str | None:
        """Why tasks cannot run now: no runtime, or the chosen one stopped working."""
        try:
            self.runtime()
        except RuntimeUnavailable as exc:
            return str(exc)
        with self._runtime_lock:
            assert self._choice is not None
            if time.monotonic() - self._runtime_checked >= RUNTIME_RECHECK:
                problem = self._choice.runtime.health()
                self._health_error = (
                    None if problem is None
                    else f"container runtime {self._choice.runtime.name} stopped working: "
                    f"{problem}"
                )
                self._runtime_checked = time.monotonic()
            return self._health_error

    def _watch_cancels(self) -> None:
        # A cancel handled by another worker process cannot reach our threads
        # directly: notice it in the database and stop the run here.
        # One read for all of them: a burst may keep hundreds waiting for a slot.
        while not self._stopping.wait(self.settings.heartbeat_interval):
            with self._runs_lock:
                runs = list(self._runs.values())
            if not runs:
                continue
            try:
                states = self.context.reporter.states_of([run.task.id for run in runs])
            except Exception:
                log.warning("could not check %d tasks for cancellation", len(runs),
                            exc_info=True)
                continue
            for run in runs:
                if states.get(run.task.id) != "CANCELING":
                    continue
                try:
                    run.cancel()
                except Exception:
                    log.warning("could not stop task %s", run.task.id, exc_info=True)

    def _explain_waits(self) -> None:
        # Tasks waiting long say why in their logs (see .waiting); one look per tick.
        slots = self.settings.local_max_tasks
        while not self._stopping.wait(EXPLAIN_TICK):
            with self._runs_lock:
                runs = list(self._runs.values())
            in_use = sum(run.started for run in runs)
            queued = slot_reason(in_use, slots) if in_use >= slots else None
            now = time.monotonic()
            for run in runs:
                try:
                    run.waits.tick(now, None if run.started else queued)
                except Exception:
                    log.warning("could not say why task %s waits", run.task.id, exc_info=True)

    def shutdown(self, deadline: Deadline) -> None:
        """Hand the tasks over to the next worker (a restart is not a failure).

        Tasks waiting for a slot stay QUEUED. Transfers stop at once and their tasks are
        left as they are, to be staged or uploaded again by the next worker (from the
        cache). Running Docker and podman containers go on and are re-attached by the
        next worker, as after a crash. A running bubblewrap sandbox cannot outlive this
        process: its task ends SYSTEM_ERROR saying so. Done by ``deadline``: the threads
        still waiting on a container are left; a task thread still busy with anything else
        then raises :class:`HandOverUnfinished` (the process must not go on changing what
        the next worker takes over). Finished tasks' containers still being removed then
        are only logged: nobody takes those tasks over.
        """
        self._stopping.set()
        if self._pool is None:
            return
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._runs_lock:
            runs = [run for run in self._runs.values() if run.started]
        handed = sum(
            run.hand_over(
                f"the worker stopped while this task ran in a {run.runner.runtime.name} sandbox, "
                "which cannot outlive its worker; submit it again to retry"
            )
            for run in runs
        )
        log.info("stopping: %d running tasks left to the next worker, %d ended", handed,
                 len(runs) - handed)
        busy = self._busy(runs)
        while busy and not deadline.passed():
            time.sleep(0.05)
            busy = self._busy(runs)
        if busy:
            raise HandOverUnfinished(
                f"{len(busy)} task threads were still busy at the deadline (tasks "
                f"{', '.join(run.task.id for run in busy[:5])})"
            )
        if self._choice is not None and not self._choice.runtime.flush(
            timeout=max(0.01, deadline.remaining())
        ):
            log.warning("finished containers were still being removed when the worker stopped")

    def _busy(self, runs: list[TaskRun]) -> list[TaskRun]:
        """Which of ``runs`` have not ended yet, other than those left waiting on a
        container that goes on running."""
        with self._runs_lock:
            return [run for run in runs
                    if self._runs.get(run.task.id) is run and not run.left_running]

    def runtime(self, *, log_failure: bool = True) -> ContainerRuntime:
        """The container runtime, chosen once; raises with what to install if there is none.

        Until one is chosen, a failed choice is tried again after :data:`RUNTIME_RECHECK`;
        a new reason is logged (unless ``log_failure`` is false).
        """
        with self._runtime_lock:
            if self._choice is None and (
                self._runtime_error is None
                or time.monotonic() - self._runtime_checked >= RUNTIME_RECHECK
            ):
                try:
                    self._choice = choose_runtime(
                        self.settings.local_runtime, runtime_options(self.settings)
                    )
                    self._runtime_error = None
                except RuntimeUnavailable as exc:
                    if log_failure and self._runtime_error != str(exc):
                        log.error("the local backend cannot run tasks: %s", exc)
                    self._runtime_error = str(exc)
                self._runtime_checked = time.monotonic()
            if self._choice is None:
                raise RuntimeUnavailable(self._runtime_error or "no container runtime")
            return self._choice.runtime

    # -- tasks --------------------------------------------------------------------------

    def submit(self, task: TaskRecord) -> str:
        """Queue the task on this worker's task threads."""
        self._start(task, self.runtime())
        return f"{self.name}:{self.context.worker_id}"

    def _start(self, task: TaskRecord, runtime: ContainerRuntime, resume: bool = False) -> None:
        if self._pool is None:
            raise RuntimeError("the local backend was not started in this worker")
        parameters = (task.document.get("resources") or {}).get("backend_parameters") or {}
        run = TaskRun(
            task,
            runtime,
            self.context.reporter,
            self.settings,
            network=parameters.get("network", self.settings.local_network),
            resume=resume,
        )
        stopping = WorkerStopping(f"the worker is stopping; task {task.id} is left to the next")
        with self._runs_lock:
            if self._stopping.is_set():
                raise stopping
            self._runs[task.id] = run
            try:
                self._pool.submit(self._execute, run)
            except RuntimeError:  # the pool was shut down meanwhile
                self._runs.pop(task.id, None)
                raise stopping from None

    def _execute(self, run: TaskRun) -> None:
        try:
            with self._runs_lock:
                if self._stopping.is_set():
                    return  # taken from the queue as the worker stopped: left QUEUED
                run.started = True
                cancelled_while_waiting = run.cancelled.is_set()
            if cancelled_while_waiting:
                run.report_cancelled_before_start()
            else:
                run.run()
        finally:
            with self._runs_lock:
                self._runs.pop(run.task.id, None)

    def cancel(self, task: TaskRecord) -> bool:
        """Stop a task: in this worker directly, in another through its container names."""
        with self._runs_lock:
            run = self._runs.get(task.id)
            waiting = run is not None and not run.started
            if waiting:
                # Still waiting for a task slot: it never ran, so it is cancelled now
                # (under the lock, so a thread taking it next skips it).
                run.cancelled.set()
        if waiting:
            run.waits.end()  # its logs no longer say it waits for a slot
            return True
        if run is not None:
            run.cancel()
            return False  # the run reports CANCELED once it has cleaned up
        # Not running here. If another live worker owns it, stop its containers by
        # name and let that worker report; if we own it (a cancel that raced the
        # submission) or its owner is dead, nothing else will: clean up now.
        elsewhere = task.worker_id not in (None, self.context.worker_id) and (
            self.context.is_worker_alive(task.worker_id)
        )
        self._stop_containers(task, remove=not elsewhere)
        if elsewhere:
            return False
        Workspace.for_task(self.settings.workdirs, self.settings.data_dir, task.id).remove()
        return True

    def recover(self, task: TaskRecord) -> Observation | None:
        """Take over a task whose worker died mid-run.

        With Docker or podman the task goes on: an executor container that had
        started is waited for (never started twice), the executors after it run,
        and the outputs are uploaded. The bubblewrap sandbox dies with its worker, so
        a task whose executor may have been running is stopped and ends in SYSTEM_ERROR
        rather than run twice; one that was staging inputs, or uploading outputs after
        its last executor, goes on.
        """
        runtime = self.runtime()
        if self._pool is not None and (runtime.can_attach or not may_run_executor(task)):
            self._start(task, runtime, resume=True)
            log.info("task %s: resuming it in this worker after its worker died", task.id)
            return None
        self._stop_containers(task, remove=True)
        Workspace.for_task(self.settings.workdirs, self.settings.data_dir, task.id).remove()
        return worker_lost(
            task,
            f"the {runtime.name} runtime cannot pick up a running executor, so the task was "
            "stopped rather than run again (it could have run twice)",
        )

    def read_output(
        self, task: TaskRecord, index: int, stream: str, limit: int, offset: int | None = None
    ) -> OutputPiece:
        """From the live copy the runner keeps of executor ``index``'s ``stream`` in the
        task's ``logs`` folder (see :func:`~tes_core.backends.live_output.read_live_output`)."""
        workspace = Workspace.for_task(self.settings.workdirs, self.settings.data_dir, task.id)
        return read_live_output(workspace, task, index, stream, limit, offset)

    def remove(self, task: TaskRecord) -> None:
        """Delete a finished task's folder (kept with ``TES_LOCAL_KEEP_WORKDIRS``)."""
        Workspace.for_task(self.settings.workdirs, self.settings.data_dir, task.id).remove()

    def _stop_containers(self, task: TaskRecord, *, remove: bool) -> None:
        try:
            runtime = self.runtime()
        except RuntimeUnavailable:
            return
        for index in range(len(task.document.get("executors") or [])):
            name = container_name(task.id, index)
            runtime.stop(name)
            if remove:
                runtime.remove(name)

