"""The ``template`` backend: a compute plugin of the POLL model, to copy.

How it maps onto the :class:`tes_core.backends.base.Backend` interface:

* :meth:`TemplateBackend.submit` starts a detached runner process
  (``python -m tes_template_backend.job <job folder>``) and returns at once.
  Your platform's equivalent: create a job (a cloud batch job, a Kubernetes Job,
  a Slurm ``sbatch``), named after the task id so that submitting twice finds it.
* :meth:`TemplateBackend.poll` reads every status file in one pass and returns
  :class:`~tes_core.backends.base.Observation` objects; the core applies them
  through its state machine. Your platform's equivalent: one list call per page.
* :meth:`TemplateBackend.cancel` kills the runner's process group and removes
  the job folder. Your platform's equivalent: delete the job.

``runs_in_worker`` is ``False``: the work does not live inside the worker
process, so a server restart does not stop running tasks; the reconcile loop
simply goes on polling them.

THIS IS A TEACHING TEMPLATE: executors run as plain processes on this machine,
without containers or any isolation, and all workers must share this machine and
its data folder. See README.md for the limits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path

from tes_core.backends.base import Backend, BackendContext, Observation, TaskRecord, failed
from tes_core.storage_policy import access_policy

from .jobfiles import (
    FINAL_STATES,
    JOB_FILE,
    PID_FILE,
    RUNNER_LOG,
    STATUS_FILE,
    read_json,
    read_pid,
    runner_alive,
    write_json,
)

log = logging.getLogger(__name__)

MAX_RUNTIME_LIMIT = 30 * 24 * 3600
"""The largest ``max_runtime_seconds`` a task may ask for (30 days)."""


class TemplateBackend(Backend):
    """Runs each task's executors as host processes in a per-task folder."""

    name = "template"
    runs_in_worker = False
    backend_parameters = {
        "max_runtime_seconds": "wall-clock limit, in whole seconds, on the task's executors "
        "together; an executor still running then is stopped and the task ends in "
        "EXECUTOR_ERROR",
    }

    def __init__(self, context: BackendContext) -> None:
        super().__init__(context)
        self.root = (Path(self.settings.data_dir) / "template-jobs").resolve()
        self._submit_lock = threading.Lock()

    # -- set-up -------------------------------------------------------------------------

    def validate_parameters(self, parameters: Mapping[str, str]) -> None:
        """``max_runtime_seconds`` must be a whole number from 1 to 30 days."""
        value = parameters.get("max_runtime_seconds")
        if value is None:
            return
        try:
            seconds = int(str(value).strip())
        except ValueError:
            raise ValueError(
                f"backend_parameters.max_runtime_seconds={value!r} is not a whole number of "
                "seconds, e.g. \"3600\""
            ) from None
        if not 1 <= seconds <= MAX_RUNTIME_LIMIT:
            raise ValueError(
                f"backend_parameters.max_runtime_seconds={value!r} must be between 1 and "
                f"{MAX_RUNTIME_LIMIT} (30 days)"
            )

    def storage(self) -> list[str]:
        """Inputs and outputs are this machine's files (or http(s) URLs)."""
        return [f"file://{folder}" for folder in access_policy(self.settings).local_dirs]

    def start(self) -> None:
        """Make the folder that holds one sub-folder per job."""
        self.root.mkdir(parents=True, exist_ok=True)

    # Nothing to do in shutdown(): jobs are detached processes and keep running;
    # the next worker's reconcile loop goes on polling them.

    # -- tasks --------------------------------------------------------------------------

    def job_dir(self, task_id: str) -> Path:
        """The folder of the task's job (task ids are UUIDs made by the core)."""
        if not task_id or "/" in task_id or task_id in (".", ".."):
            raise ValueError(f"unexpected task id {task_id!r}")
        return self.root / task_id

    def submit(self, task: TaskRecord) -> str:
        """Start the task's runner; a second call while it lives returns the same reference."""
        job = self.job_dir(task.id)
        with self._submit_lock:
            pid = read_pid(job)
            if pid is not None:
                status = read_json(job / STATUS_FILE) or {}
                if runner_alive(pid, job) or status.get("state") in FINAL_STATES:
                    return _ref(pid)
                # The runner of an earlier attempt died before it finished (say the
                # machine rebooted) and nothing was reported: start afresh.
                log.info("task %s: its earlier runner %d is gone; starting again", task.id, pid)
                shutil.rmtree(job, ignore_errors=True)
            job.mkdir(parents=True, exist_ok=True)
            parameters = (task.document.get("resources") or {}).get("backend_parameters") or {}
            max_runtime = parameters.get("max_runtime_seconds")
            write_json(
                job / JOB_FILE,
                {
                    "task_id": task.id,
                    "document": task.document,
                    "max_runtime_seconds": int(max_runtime) if max_runtime else None,
                    "access_policy": access_policy(self.settings).portable(),
                },
            )
            with open(job / RUNNER_LOG, "ab") as runner_log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "tes_template_backend.job", str(job)],
                    cwd=job,
                    stdin=subprocess.DEVNULL,
                    stdout=runner_log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own session and process group: detached
                )
            (job / PID_FILE).write_text(f"{proc.pid}\n")
        # Reap the runner when it ends, so it does not linger as a zombie of this process.
        threading.Thread(target=proc.wait, name=f"tes-template-reap-{proc.pid}",
                         daemon=True).start()
        log.info("task %s: started runner %d in %s", task.id, proc.pid, job)
        return _ref(proc.pid)

    def poll(self, tasks: Sequence[TaskRecord]) -> Iterable[Observation]:
        """Read the status file of every task given, in one pass."""
        observations = []
        for task in tasks:
            try:
                observation = self.observe(task)
            except Exception as exc:  # one unreadable job must not stop the others
                log.warning("task %s: could not read its job: %r", task.id, exc)
                continue
            if observation is not None:
                observations.append(observation)
        return observations

    def observe(self, task: TaskRecord) -> Observation | None:
        """What the job folder says about one task; ``None`` when there is nothing new."""
        job = self.job_dir(task.id)
        if not job.is_dir():
            return failed(task.id, f"the job folder {job} is gone; the task cannot go on")
        status = read_json(job / STATUS_FILE)
        if status is None or status["state"] not in FINAL_STATES:
            pid = read_pid(job)
            if pid is not None and runner_alive(pid, job):
                return _observation(task, status) if status else None
            status = read_json(job / STATUS_FILE)  # it may have ended since the first look
            if status is None or status["state"] not in FINAL_STATES:
                return failed(
                    task.id,
                    f"the runner of this task (process {pid}) ended without finishing it; "
                    f"the end of its log: {_tail(job / RUNNER_LOG)!r}",
                )
        return _observation(task, status)

    def cancel(self, task: TaskRecord) -> bool:
        """Kill the runner and its executors (one process group), then remove the folder."""
        job = self.job_dir(task.id)
        pid = read_pid(job)
        if pid is not None and (runner_alive(pid, job) or not _exists(pid)):
            # A live runner is ours (checked above). If its process is gone, the group
            # may still hold executors it left; the group id cannot have been reused
            # while they live, so killing it is safe.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            _wait_for_group_end(pid, timeout=5.0)
        shutil.rmtree(job, ignore_errors=True)
        return True


# -- helpers ------------------------------------------------------------------------------


def _ref(pid: int) -> str:
    """The platform's reference of a job: ``<host>:<runner pid>``."""
    return f"{socket.gethostname()}:{pid}"


def _observation(task: TaskRecord, status: dict) -> Observation:
    return Observation(
        task_id=task.id,
        state=status["state"],
        start_time=_time(status.get("start_time")),
        end_time=_time(status.get("end_time")),
        executor_logs=status.get("executor_logs"),
        outputs=status.get("outputs"),
        system_logs=_new_lines(task, status.get("system_logs") or []),
        metadata={"hostname": socket.gethostname(), "runner_pid": str(status.get("pid"))},
    )


def _new_lines(task: TaskRecord, lines: list[str]) -> list[str]:
    """The lines not yet in the task's system logs: an observation's lines are
    appended, and poll reports the whole status file every time."""
    have = Counter((task.logs[-1].get("system_logs") or []) if task.logs else [])
    new = []
    for line in lines:
        if have[line] > 0:
            have[line] -= 1
        else:
            new.append(line)
    return new


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _tail(path: Path, size: int = 2000) -> str:
    try:
        return path.read_bytes()[-size:].decode("utf-8", errors="replace").strip()
    except OSError:
        return ""


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_for_group_end(pgid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.05)
