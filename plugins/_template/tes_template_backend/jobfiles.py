"""The files of one job folder, shared by the backend (in the server) and the runner.

Layout of ``<TES data dir>/template-jobs/<task id>/``::

    job.json      what to run: the task id, its TES document, the limits (written by submit)
    pid           the runner's process id (written by submit; the runner's status has it too)
    status.json   what the runner has done so far (written by the runner, read by poll)
    runner.log    the runner's own output, for when it dies unexpectedly
    logs/         full stdout and stderr of executors that name no stdout/stderr file
    work/         the task's files: TES path /data/x.txt is work/data/x.txt; executors
                  run here.

The runner deletes ``work/`` and ``logs/`` when the task ends; ``cancel`` deletes
the whole folder.

Only the standard library is used here: the runner imports this module too, and
it must start fast and must not need tes-core.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

JOB_FILE = "job.json"
PID_FILE = "pid"
STATUS_FILE = "status.json"
RUNNER_LOG = "runner.log"
LOGS = "logs"
WORK = "work"

FINAL_STATES = frozenset({"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR"})
"""States the runner ends in; it writes nothing after one of them."""


def write_json(path: Path, data: Any) -> None:
    """Replace ``path`` atomically, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> Any | None:
    """The JSON in ``path``, or ``None`` if there is no such file (yet)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def read_pid(job_dir: Path) -> int | None:
    """The runner's process id: from the pid file, else from the status file."""
    try:
        return int((job_dir / PID_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        status = read_json(job_dir / STATUS_FILE)
        return int(status["pid"]) if status and status.get("pid") else None


def rfc3339_now() -> str:
    """The current time as TES writes times, e.g. ``2024-05-01T12:00:00.123Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def runner_alive(pid: int, job_dir: Path) -> bool:
    """Whether process ``pid`` is still the runner of ``job_dir``.

    On Linux (``/proc``) a finished runner not reaped yet (a zombie) counts as
    gone, and the command line must name ``job_dir``, which guards against a
    reused process id. An empty command line means the process is in the middle
    of starting (``exec``), which only happens right after ``submit``.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process: not a runner we started
    proc = Path(f"/proc/{pid}")
    if not proc.is_dir():
        return True  # no /proc (e.g. macOS): trust kill()
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = (proc / "cmdline").read_bytes()
    except (OSError, IndexError):
        return False
    if state in ("Z", "X"):
        return False
    return not cmdline or str(job_dir).encode() in cmdline
