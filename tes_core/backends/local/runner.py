"""One task of the local backend: the node-side runner (:mod:`tes_runner`) in this process.

:class:`TaskRun` builds a :class:`tes_runner.TaskRunner` from the server's settings and
turns its updates into :class:`~tes_core.backends.base.Observation` objects for the
task store; a cancel stored by another process reaches it as
:meth:`Events.cancel_requested`. Staging, executors, uploads and their hardening live in
the runner only.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, replace
from pathlib import Path

from tes_filetransfer import TransferConfig
from tes_runner import Resume, TaskRunner, Update, Workspace, owner_key
from tes_runner.events import Stage
from tes_runner.runtimes import ContainerRuntime, RuntimeOptions

from ...config import Settings
from ...states import State
from ...storage_policy import access_policy
from ..base import Observation, TaskRecord, TaskReporter
from .waiting import WaitReason


def transfer_config(settings: Settings) -> TransferConfig:
    """How the local backend moves files: TES_FT_* defaults, then its own TES_LOCAL_* settings.

    The cache lives under the data folder by default, on the file system of the task
    folders; each task gets its own copy of a cached input (see
    :mod:`tes_filetransfer.cache`: a link would let one task change another's input).
    """
    cache_dir = None
    if settings.local_cache_max_bytes > 0:
        cache_dir = Path(settings.local_cache_dir or settings.data_dir / "cache")
    return replace(
        TransferConfig.from_env(),
        parallel=max(1, settings.local_transfer_parallel),
        cache_dir=cache_dir,
        cache_max_bytes=settings.local_cache_max_bytes,
        policy=access_policy(settings),
    )


def runtime_options(settings: Settings) -> RuntimeOptions:
    """The runtimes' limits and sandbox user from ``TES_LOCAL_*`` settings."""
    return RuntimeOptions(
        pids_limit=settings.local_pids_limit,
        sandbox_uid=settings.local_sandbox_uid,
        sandbox_gid=settings.local_sandbox_gid,
    )


def task_workspace(settings: Settings, task: TaskRecord) -> Workspace:
    """The folders of ``task`` on this machine (nothing is created)."""
    return Workspace.for_task(
        settings.workdirs, settings.data_dir, task.id, owner_key(task.owner, task.tenant)
    )


class StoreEvents:
    """The runner's :class:`~tes_runner.events.Events`, told to the task store."""

    def __init__(self, task_id: str, reporter: TaskReporter, waits: WaitReason) -> None:
        self.task_id = task_id
        self.reporter = reporter
        self.waits = waits

    def report(self, update: Update) -> bool:
        """A state change goes through :class:`WaitReason` (it ends a wait), lines directly."""
        observation = Observation(task_id=self.task_id, **asdict(update))
        if update.state is None:
            return self.reporter.report(observation)
        return self.waits.report(observation)

    def cancel_requested(self) -> bool:
        """Whether the stored state is CANCELING (one database read)."""
        return self.reporter.current_state(self.task_id) == State.CANCELING

    def stage(self, reason: Stage) -> None:
        """What the run is busy with, for the task's waiting reason."""
        self.waits.stage(reason)


class TaskRun:
    """One task's run in a task thread of the local backend."""

    def __init__(
        self,
        task: TaskRecord,
        runtime: ContainerRuntime,
        reporter: TaskReporter,
        settings: Settings,
        network: str,
        resume: bool = False,
    ) -> None:
        self.task = task
        self.reporter = reporter
        self.started = False
        """Set by the backend when a task thread takes the run (it no longer waits for a slot)."""
        self.waits = WaitReason(task.id, reporter, after=settings.local_wait_explain_after)
        """Why the task waits, told in its logs when it waits long (see :mod:`.waiting`)."""
        self.runner = TaskRunner(
            task.id,
            task.document,
            runtime=runtime,
            workspace=task_workspace(settings, task),
            events=StoreEvents(task.id, reporter, self.waits),
            transfer_config=transfer_config(settings),
            network=network,
            live_output_max=settings.output_live_max,
            resume=_resume_point(task) if resume else None,
            keep_workspace=settings.local_keep_workdirs,
            who="the local backend",
        )

    @property
    def cancelled(self) -> threading.Event:
        """Set once the run was asked to stop."""
        return self.runner.cancelled

    def run(self) -> None:
        """Run the task to its end (see :meth:`tes_runner.TaskRunner.run`)."""
        self.runner.run()

    def cancel(self) -> None:
        """Stop the task now; it reports CANCELED once it has cleaned up."""
        self.runner.cancel()

    def abort(self, reason: str) -> None:
        """Stop the task now because this worker is going away; it ends in SYSTEM_ERROR."""
        self.runner.abort(reason)

    def hand_over(self, reason: str) -> bool:
        """Leave the task to the next worker (see :meth:`tes_runner.TaskRunner.hand_over`);
        ``False`` when it was aborted with ``reason`` instead (a running bubblewrap sandbox)."""
        return self.runner.hand_over(reason)

    @property
    def left_running(self) -> bool:
        """Handed over while waiting on a container that goes on running: the run's thread
        is left behind (the process exits without it)."""
        return self.runner.handed_over and self.runner.current_container is not None

    def report_cancelled_before_start(self) -> None:
        """End a run that was cancelled while it waited for a slot: it never ran."""
        # A stopping worker leaves it QUEUED for the next one; a cancel already
        # reported CANCELED when it found the run waiting.
        if self.runner.abort_reason is None and (
            self.reporter.current_state(self.task.id) == State.CANCELING
        ):
            self.runner.end_unstarted()


def may_run_executor(task: TaskRecord) -> bool:
    """Whether an executor of ``task`` may have been running when its worker stopped: it
    had started executors (RUNNING) and not every one has its log yet."""
    point = _resume_point(task)
    return point.running and len(point.executor_logs) < len(task.document.get("executors") or [])


def _resume_point(task: TaskRecord) -> Resume:
    """Where a recovered task goes on: its stored state and finished executors."""
    return Resume(
        state=str(task.state),
        executor_logs=list((task.logs or [{}])[-1].get("logs") or []),
    )
