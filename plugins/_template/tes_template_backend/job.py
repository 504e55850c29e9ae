"""The runner: ``python -m tes_template_backend.job <job folder>`` runs one task, start to end.

The backend starts it as a detached process (its own session), so it keeps going
when the server restarts; the backend only reads the status file it writes.

Steps, each recorded in ``status.json``:

1. INITIALIZING: stage the inputs into ``work/`` with ``tes_filetransfer``.
2. RUNNING: run the executors one after another as plain host processes, with
   ``work/`` (or the executor's ``workdir`` mapped under it) as the current
   folder, and the executor's ``env``, ``stdin``, ``stdout`` and ``stderr``.
   A non-zero exit stops the task unless ``ignore_error`` is set.
3. Upload the outputs, then COMPLETE (or EXECUTOR_ERROR / SYSTEM_ERROR), and
   delete ``work/`` and ``logs/``.

THIS IS A TEACHING TEMPLATE: no containers, no isolation. The executor's
``image`` is ignored and its command runs on this machine as the server's user.
Commands see host paths: TES path ``/data/x.txt`` is ``work/data/x.txt``, so a
command should use paths relative to its working folder (or ``$TES_TASK_ROOT``).

Only the standard library and ``tes_filetransfer`` are imported here.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from tes_filetransfer import TransferConfig, TransferError, stage_inputs, upload_outputs
from tes_filetransfer.policy import AccessPolicy

from .jobfiles import (
    JOB_FILE,
    LOGS,
    STATUS_FILE,
    WORK,
    read_json,
    rfc3339_now,
    write_json,
)

TAIL_BYTES = 10 * 1024
"""How much of each executor's stdout and stderr goes into its TES executor log."""

STOP_GRACE_SECONDS = 5.0
"""After max_runtime_seconds, how long an executor has to exit on SIGTERM before SIGKILL."""


class SetupError(Exception):
    """A problem of the task's set-up, not of its commands: the task ends in SYSTEM_ERROR."""


class Runner:
    """One task's run in its job folder."""

    def __init__(self, job_dir: Path) -> None:
        self.job_dir = job_dir
        job = read_json(job_dir / JOB_FILE)
        if not job:
            raise SetupError(f"{job_dir / JOB_FILE} is missing")
        self.document: dict[str, Any] = job["document"]
        self.max_runtime: int | None = job.get("max_runtime_seconds")
        # The server's storage access policy travels with the job: this process may run
        # on another machine, where its own TES_FT_* settings are not the server's.
        self.transfer = TransferConfig.from_env()
        if job.get("access_policy") is not None:
            policy = AccessPolicy.from_portable(job["access_policy"])
            self.transfer = replace(self.transfer, policy=policy)
        self.work = job_dir / WORK
        self.status: dict[str, Any] = {
            "state": "INITIALIZING",
            "pid": os.getpid(),
            "start_time": rfc3339_now(),
            "end_time": None,
            "executor_logs": [],
            "outputs": None,
            "system_logs": [],
        }

    # -- the run ----------------------------------------------------------------------

    def run(self) -> None:
        """Run the task; every outcome, failures included, ends in a final status."""
        self.save()
        try:
            self.work.mkdir(parents=True, exist_ok=True)
            (self.job_dir / LOGS).mkdir(exist_ok=True)
            self.note("the template backend runs executors as host processes: executor "
                      "images are ignored")
            self.stage()
            self.make_folders()
            self.status["state"] = "RUNNING"
            self.save()
            failure = self.run_executors()
            if failure:
                self.finish("EXECUTOR_ERROR", failure)
                return
            try:
                outputs = upload_outputs(
                    self.document.get("outputs") or [], self.work, config=self.transfer
                )
            except TransferError as exc:
                raise SetupError(f"uploading outputs failed: {exc}") from None
            self.status["outputs"] = outputs
            self.finish("COMPLETE")
        except SetupError as exc:
            self.finish("SYSTEM_ERROR", str(exc))
        except Exception as exc:  # a bug of the runner itself: still end the task
            self.finish("SYSTEM_ERROR", f"the template runner failed: {type(exc).__name__}: {exc}")
        finally:
            self.clean_up()  # done already unless finish() itself failed

    def stage(self) -> None:
        try:
            lines = stage_inputs(
                self.document.get("inputs") or [], self.work, config=self.transfer
            )
        except TransferError as exc:
            raise SetupError(f"staging inputs failed: {exc}") from None
        self.note(*lines)

    def make_folders(self) -> None:
        """Create the folders executors write into: volumes and the outputs' folders,
        as a container backend creates its mount points."""
        folders = list(self.document.get("volumes") or [])
        for item in self.document.get("outputs") or []:
            path = item["path"]
            if any(ch in path for ch in "*?["):
                folders.append(item.get("path_prefix") or fixed_folder(path))
            elif item.get("type") == "DIRECTORY":
                folders.append(path)
            else:
                folders.append(path.rsplit("/", 1)[0] or "/")
        for folder in folders:
            self.host(folder).mkdir(parents=True, exist_ok=True)

    def run_executors(self) -> str | None:
        """Run the executors in order; return why the task failed, or ``None``."""
        deadline = time.monotonic() + self.max_runtime if self.max_runtime else None
        for index, executor in enumerate(self.document["executors"]):
            entry, timed_out = self.run_executor(index, executor, deadline)
            self.status["executor_logs"].append(entry)
            self.save()
            if timed_out:
                return (
                    f"executor {index} was stopped: the task ran longer than "
                    f"max_runtime_seconds={self.max_runtime}"
                )
            if entry["exit_code"] != 0 and not executor.get("ignore_error"):
                return f"executor {index} exited with code {entry['exit_code']}"
        return None

    def run_executor(
        self, index: int, executor: dict[str, Any], deadline: float | None
    ) -> tuple[dict[str, Any], bool]:
        """Run one executor to its end; return its TES executor log and whether it timed out."""
        cwd = self.host(executor["workdir"]) if executor.get("workdir") else self.work
        cwd.mkdir(parents=True, exist_ok=True)
        stdin = self.host(executor["stdin"]) if executor.get("stdin") else None
        if stdin is not None and not stdin.is_file():
            raise SetupError(
                f"executor {index}: stdin {executor['stdin']} does not exist; list it as an "
                "input or write it in an earlier executor"
            )
        stdout = self.output_file(executor.get("stdout"), f"{index}.stdout")
        stderr = self.output_file(executor.get("stderr"), f"{index}.stderr")
        start = rfc3339_now()
        timed_out = False
        with (
            open(stdin or os.devnull, "rb") as fin,
            open(stdout, "wb") as fout,
            open(stderr, "wb") as ferr,
        ):
            try:
                proc = subprocess.Popen(
                    list(executor["command"]),
                    cwd=cwd,
                    env=self.environment(executor),
                    stdin=fin,
                    stdout=fout,
                    stderr=ferr,
                )
            except OSError as exc:  # no such command: what a container's shell would say
                ferr.write(f"cannot run {executor['command'][0]!r}: {exc.strerror}\n".encode())
                exit_code = 127
            else:
                try:
                    remaining = None if deadline is None else max(deadline - time.monotonic(), 0)
                    proc.wait(timeout=remaining)
                except subprocess.TimeoutExpired:
                    timed_out = True
                    self.stop(proc)
                exit_code = proc.returncode
        if exit_code < 0:  # killed by signal N: report 128 + N like a shell
            exit_code = 128 - exit_code
        entry = {
            "start_time": start,
            "end_time": rfc3339_now(),
            "exit_code": exit_code,
            "stdout": tail(stdout),
            "stderr": tail(stderr),
        }
        return entry, timed_out

    def stop(self, proc: subprocess.Popen) -> None:
        """Stop a running executor and what it started (this process group), sparing ourselves.

        Executors stay in the runner's process group, so that cancelling (SIGKILL to
        the group) stops everything at once. Here we send SIGTERM to the group while
        the runner itself catches it, then SIGKILL the executor if it lingers.
        """
        previous = signal.signal(signal.SIGTERM, lambda _signum, _frame: None)
        try:
            os.killpg(os.getpgrp(), signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        finally:
            signal.signal(signal.SIGTERM, previous)

    # -- helpers ------------------------------------------------------------------------

    def host(self, tes_path: str) -> Path:
        """Where the TES path ``/a/b`` lives on this machine: ``work/a/b``."""
        parts = [part for part in tes_path.split("/") if part not in ("", ".")]
        if ".." in parts:
            raise SetupError(f"path {tes_path!r} contains '..': give a plain absolute path")
        return self.work.joinpath(*parts)

    def output_file(self, tes_path: str | None, default_name: str) -> Path:
        path = self.host(tes_path) if tes_path else self.job_dir / LOGS / default_name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def environment(self, executor: dict[str, Any]) -> dict[str, str]:
        """A small clean environment plus the executor's ``env``; the server's own
        variables (database URLs and other secrets) are not passed on."""
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "HOME": str(self.work),
            "TMPDIR": str(self.work),
            "TES_TASK_ROOT": str(self.work),
        }
        env.update({str(k): str(v) for k, v in (executor.get("env") or {}).items()})
        return env

    def note(self, *lines: str) -> None:
        self.status["system_logs"].extend(lines)

    def finish(self, state: str, *lines: str) -> None:
        """Record the final state, after cleaning up: a final status means all is done."""
        self.clean_up()
        self.note(*lines)
        self.status["state"] = state
        self.status["end_time"] = rfc3339_now()
        self.save()

    def clean_up(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)
        shutil.rmtree(self.job_dir / LOGS, ignore_errors=True)

    def save(self) -> None:
        write_json(self.job_dir / STATUS_FILE, self.status)


def fixed_folder(pattern: str) -> str:
    """The folder of a wildcard path before its first wildcard: ``/out`` for ``/out/*.txt``."""
    fixed = []
    for part in pattern.split("/")[:-1]:
        if any(ch in part for ch in "*?["):
            break
        fixed.append(part)
    return "/".join(fixed) or "/"


def tail(path: Path, size: int = TAIL_BYTES) -> str:
    """The last ``size`` bytes of a file as text (``""`` if it is gone)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(handle.tell() - size, 0))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def main(argv: list[str] | None = None) -> int:
    """Run the job in the folder given as the only argument."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tes_template_backend.job <job folder>", file=sys.stderr)
        return 2
    job_dir = Path(args[0]).resolve()
    try:
        runner = Runner(job_dir)
    except Exception as exc:
        # Without a readable job.json there is nothing to run; poll reports the
        # runner's death with this line from runner.log.
        print(f"cannot start the job in {job_dir}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    runner.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
