"""The per-task folder on shared storage: what the server writes, what the runner keeps.

``<TES_SLURM_WORKDIR>/<task id>/`` holds ``task.json`` (the runner's input, see the runner
contract), ``job-<attempt>.sh`` (the batch script), ``status.json`` (the runner's
progress, replaced atomically), ``slurm-<job id>.out`` (the job's own output) and
``work/`` (the runner's workspace: ``work/logs`` keeps the end of each executor's output
while it runs, which the server reads for the live output endpoint).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tes_runner import Workspace
from tes_runner.taskfile import WORK_FOLDER

TASK_FILE = "task.json"
STATUS_FILE = "status.json"
FINAL_STATES = frozenset({"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED"})
_TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")


class TaskFolder:
    """One task's folder under the shared root."""

    def __init__(self, root: Path, task_id: str) -> None:
        if not _TASK_ID.fullmatch(task_id) or task_id in (".", ".."):
            raise ValueError(f"unexpected task id {task_id!r}")
        self.path = root / task_id

    def workspace(self) -> Workspace:
        """The runner's workspace in this folder (as ``tes-runner run`` lays it out), for
        reading the executors' live output beneath it."""
        base = self.path / WORK_FOLDER
        return Workspace(base=base, shared_global=base / "shared-global")

    def script(self, attempt: int) -> Path:
        """The batch script of one attempt."""
        return self.path / f"job-{attempt}.sh"

    def write_json(self, name: str, data: Any) -> None:
        """Replace ``name`` atomically (temporary file, then rename)."""
        self.write_text(name, json.dumps(data, indent=1))

    def write_text(self, name: str, text: str) -> None:
        """Replace ``name`` atomically (temporary file, then rename)."""
        self.path.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=f".{name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(tmp, self.path / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def status(self) -> dict[str, Any] | None:
        """The runner's ``status.json``, or ``None`` when absent or unreadable."""
        try:
            data = json.loads((self.path / STATUS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and isinstance(data.get("state"), str) else None

    def clear_status(self) -> None:
        """Forget an earlier attempt's status (before submitting a new attempt)."""
        (self.path / STATUS_FILE).unlink(missing_ok=True)

    def output_tail(self, job_id: str, limit: int = 1500) -> str:
        """The end of the job's own output file (the runner's errors land there)."""
        try:
            with open(self.path / f"slurm-{job_id}.out", "rb") as out:
                out.seek(0, os.SEEK_END)
                out.seek(max(0, out.tell() - limit))
                return out.read().decode("utf-8", "replace").strip()
        except OSError:
            return ""

    def remove(self) -> None:
        """Delete the folder and everything in it (idempotent)."""
        shutil.rmtree(self.path, ignore_errors=True)
