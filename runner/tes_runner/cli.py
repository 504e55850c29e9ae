"""``tes-runner run TASK_DIR``: run the task described in ``TASK_DIR/task.json``.

What a Slurm job (or any batch system's job) runs on a compute node. Progress and the
result go to ``TASK_DIR/status.json`` (see :mod:`tes_runner.status`); the task's
folders to ``TASK_DIR/work``. Exit status:

- 0: a final state (COMPLETE, EXECUTOR_ERROR, SYSTEM_ERROR, CANCELED) is recorded,
  now or by an earlier run;
- 1: no final state could be recorded (the folder is not writable, the run broke);
- 2: ``task.json`` is missing or wrong (the reason on stderr names the field);
- 3: another ``tes-runner`` is running this task folder.

SIGTERM or SIGINT stops the running container and records CANCELED. A second ``run`` on
the same folder after a crash goes on where the first stopped: an executor container
that had started (Docker, podman) is waited for, not started again.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .events import SYSTEM_ERROR, Update
from .registry import RegistryLogin
from .run import TaskRunner
from .runtimes import ContainerRuntime, RuntimeUnavailable, choose_runtime
from .status import StatusFile, read_status
from .taskfile import STATUS_FILE, WORK_FOLDER, BadTaskFile, TaskFile, load_task_file
from .workspace import Workspace

log = logging.getLogger("tes_runner")

EXIT_RECORDED = 0
EXIT_NOT_RECORDED = 1
EXIT_BAD_TASK = 2
EXIT_BUSY = 3
LOCK_FILE = ".tes-runner.lock"
JOIN_TICK = 0.5
"""Seconds between two looks of the main thread at the task thread (signals come in
between)."""


def main(argv: list[str] | None = None) -> int:
    """The ``tes-runner`` command."""
    parser = argparse.ArgumentParser(
        prog="tes-runner",
        description="Run one GA4GH TES task on this machine (see runner/README.md).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run", help="run the task of TASK_DIR/task.json, keeping TASK_DIR/status.json",
    )
    run.add_argument("task_dir", type=Path, metavar="TASK_DIR")
    run.add_argument(
        "--keep-work", action="store_true",
        help="leave TASK_DIR/work (inputs, outputs, executors' files) after the run",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr,
        format="%(asctime)s tes-runner %(levelname)s %(message)s",
    )
    return run_task_dir(args.task_dir, keep_work=args.keep_work)


def run_task_dir(task_dir: Path, *, keep_work: bool = False) -> int:
    """Run the task of ``task_dir`` to a final state in ``status.json``; the exit status."""
    task_dir = task_dir.absolute()
    try:
        spec = load_task_file(task_dir)
    except BadTaskFile as exc:
        print(f"tes-runner: {exc}", file=sys.stderr)
        return EXIT_BAD_TASK
    try:
        with _locked(task_dir) as mine:
            if not mine:
                print(f"tes-runner: another tes-runner is running {task_dir}", file=sys.stderr)
                return EXIT_BUSY
            return _run_locked(task_dir, spec, keep_work)
    except OSError as exc:
        print(f"tes-runner: cannot record the task's status in {task_dir}: {exc}",
              file=sys.stderr)
        return EXIT_NOT_RECORDED


def _run_locked(task_dir: Path, spec: TaskFile, keep_work: bool) -> int:
    previous = read_status(task_dir / STATUS_FILE)
    if previous is not None and previous.get("attempt") != spec.attempt:
        previous = None  # a status of another attempt: this one starts afresh
    status = StatusFile(task_dir / STATUS_FILE, previous)
    status.document["attempt"] = spec.attempt
    if status.final:
        log.info("task %s already ended %s; nothing to do", spec.task_id, status.state)
        return EXIT_RECORDED
    status.write()  # the folder is writable (else OSError: exit 1)
    try:
        runtime = choose_runtime(spec.runtime, spec.runtime_options).runtime
    except RuntimeUnavailable as exc:
        return _fail(status, f"no container runtime on {os.uname().nodename}: {exc}")
    resume = status.resume_point()
    if resume is not None and resume.running and not runtime.can_attach:
        return _fail(
            status,
            f"this task's previous run stopped while its executors ran, and the "
            f"{runtime.name} runtime cannot pick up a running executor, so the task was "
            "stopped rather than run again (it could have run twice)",
        )
    workspace = _workspace(task_dir, spec)
    if resume is None:
        workspace.remove()  # what an earlier attempt left: this one starts from nothing
    runner = TaskRunner(
        spec.task_id,
        spec.task,
        runtime=runtime,
        workspace=workspace,
        events=status,
        transfer_config=spec.transfer,
        network=spec.network,
        live_output_max=spec.live_output_max,
        resume=resume,
        attempt=spec.attempt,
        keep_workspace=keep_work,
        registry=RegistryLogin(spec.registry) if spec.registry else None,
    )
    _run_with_signals(runner, runtime)
    if not status.final:
        print(f"tes-runner: the run of task {spec.task_id} ended without a final state "
              "(see the errors above)", file=sys.stderr)
        return EXIT_NOT_RECORDED
    log.info("task %s ended %s", spec.task_id, status.state)
    return EXIT_RECORDED


def _workspace(task_dir: Path, spec: TaskFile) -> Workspace:
    """``TASK_DIR/work``; shared-global is the operator's folder, else one of the task's."""
    base = task_dir / WORK_FOLDER
    return Workspace(base=base, shared_global=spec.shared_global or base / "shared-global")


def _run_with_signals(runner: TaskRunner, runtime: ContainerRuntime) -> None:
    """Run ``runner`` in a thread; SIGTERM/SIGINT cancel it (the run records CANCELED)."""

    def on_signal(signum: int, _frame: Any) -> None:
        log.warning("%s: cancelling the task", signal.Signals(signum).name)
        # Stopping a container runs the engine's CLI: not in a signal handler.
        threading.Thread(target=runner.cancel, name="tes-runner-cancel", daemon=True).start()

    handlers = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        thread = threading.Thread(target=runner.run, name="tes-runner-task")
        thread.start()
        while thread.is_alive():
            thread.join(JOIN_TICK)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        runtime.flush()


def _fail(status: StatusFile, reason: str) -> int:
    """Record SYSTEM_ERROR with ``reason`` (the task never ran here)."""
    log.error("%s", reason)
    now = datetime.now(UTC)
    status.report(Update(
        state=SYSTEM_ERROR, start_time=None if status.document["log"].get("start_time") else now,
        end_time=now, system_logs=[reason],
    ))
    return EXIT_RECORDED


@contextlib.contextmanager
def _locked(task_dir: Path) -> Iterator[bool]:
    """An exclusive lock on ``task_dir`` for this process: ``True`` if it got it."""
    fd = os.open(task_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
