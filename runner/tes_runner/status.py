"""``TASK_DIR/status.json``: what ``tes-runner run`` tells the server.

::

    {"state": "RUNNING", "final": false, "updated": "<RFC 3339>",
     "log": {"start_time", "end_time", "logs": [ExecutorLog...], "outputs": [...],
             "system_logs": [...], "metadata": {...}}}

:class:`StatusFile` is the runner's :class:`~tes_runner.events.Events`: every update is
applied to that document, which is then replaced atomically (written to a temporary
file in the same folder, flushed, renamed over the old one), so a reader on shared
storage sees either the previous version or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .events import FINAL_STATES, Stage, Update
from .run import Resume, rfc3339


def empty_log() -> dict[str, Any]:
    """The ``log`` of an attempt that has not started."""
    return {"start_time": None, "end_time": None, "logs": [], "outputs": [],
            "system_logs": [], "metadata": {}}


def read_status(path: Path) -> dict[str, Any] | None:
    """The status document at ``path``, or ``None`` if there is none (or it is unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_atomically(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` by ``data`` as JSON: a temporary file in its folder, then a rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class StatusFile:
    """Keeps ``status.json`` up to date with a run's updates."""

    def __init__(self, path: Path, previous: dict[str, Any] | None = None) -> None:
        self.path = path
        self.document: dict[str, Any] = previous or {
            "state": "QUEUED", "final": False, "updated": None, "log": empty_log(),
        }
        self.document.setdefault("log", empty_log())
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        """The state last recorded."""
        return str(self.document.get("state"))

    @property
    def final(self) -> bool:
        """Whether a final state is recorded."""
        return bool(self.document.get("final"))

    def resume_point(self) -> Resume | None:
        """Where a second run goes on: ``None`` when the first never got past QUEUED."""
        if self.state not in ("INITIALIZING", "RUNNING"):
            return None
        return Resume(self.state, list(self.document["log"].get("logs") or []))

    def report(self, update: Update) -> bool:
        """Apply ``update`` and write the file; a state change after a final state is
        refused (``False``)."""
        with self._lock:
            if update.state is not None and self.final:
                return False
            log = empty_log() if update.new_attempt else self.document["log"]
            if update.start_time is not None:
                log["start_time"] = rfc3339(update.start_time)
            if update.end_time is not None:
                log["end_time"] = rfc3339(update.end_time)
            if update.executor_logs is not None:
                log["logs"] = list(update.executor_logs)
            if update.outputs is not None:
                log["outputs"] = list(update.outputs)
            log["system_logs"] = [*(log.get("system_logs") or []), *update.system_logs]
            if update.metadata:
                log["metadata"] = {**(log.get("metadata") or {}), **update.metadata}
            self.document["log"] = log
            if update.state is not None:
                self.document["state"] = update.state
                self.document["final"] = update.state in FINAL_STATES
            self.write()
            return True

    def write(self) -> None:
        """Write the document now (with the time of this write)."""
        self.document["updated"] = rfc3339(datetime.now(UTC))
        write_atomically(self.path, self.document)

    def cancel_requested(self) -> bool:
        """Never: a cancel reaches ``tes-runner run`` as SIGTERM (see :mod:`tes_runner.cli`)."""
        return False

    def stage(self, reason: Stage) -> None:
        """Nothing: a batch system says itself why a job waits."""
