"""Noticing a task's end between reconcile passes: a look at the runner's ``status.json``.

A task whose job ends right after a pass would otherwise show its end only at the next
pass (``TES_RECONCILE_INTERVAL``, 10 s by default) to everyone who does not ``GET`` it
(task lists, ``/events`` listeners, the dashboard). A thread of the worker looks at the
status file of each task it follows every ``TES_SLURM_STATUS_WATCH`` seconds (one
``stat``, and a read only when the file changed; no Slurm command); once the runner has
recorded a final state it has the core refresh the task (``BackendContext.refresh``: the
task is loaded and reported as on ``GET``) and stops following it.

Followed: a task from its submit, and every task a pass polls whose job is not waiting
in the queue (a pending job's status cannot change). A task no pass has polled for
:data:`FOLLOW_FOR` reconcile intervals is dropped (it ended, or went to another worker).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from .taskdir import FINAL_STATES, STATUS_FILE, TaskFolder

log = logging.getLogger(__name__)

FOLLOW_FOR = 3
"""Reconcile intervals a task stays followed without a pass polling it."""
REPORTED = FINAL_STATES - {"CANCELED"}
"""Ends reported between passes (a CANCELED runner is explained by Slurm's state, which
the next pass asks for)."""


class StatusWatch:
    """Follows task folders and calls ``on_final(task_id)`` once a runner records an end."""

    def __init__(
        self, folder_of: Callable[[str], TaskFolder], on_final: Callable[[str], object],
        interval: float, keep_for: float,
    ) -> None:
        self.folder_of = folder_of
        self.on_final = on_final
        self.interval = interval
        self.keep_for = keep_for
        self._followed: dict[str, float] = {}
        """Task id -> when it was last followed (``time.monotonic()``)."""
        self._seen: dict[str, int] = {}
        """Task id -> the status file's ``st_mtime_ns`` at the last look."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def follow(self, task_id: str) -> None:
        """Look at this task's status file from now on (again)."""
        with self._lock:
            self._followed[task_id] = time.monotonic()

    def drop(self, task_id: str) -> None:
        """Stop looking at this task."""
        with self._lock:
            self._followed.pop(task_id, None)
            self._seen.pop(task_id, None)

    def following(self) -> set[str]:
        """The task ids followed now."""
        with self._lock:
            return set(self._followed)

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="tes-slurm-watch",
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread, waiting for it within one interval (at most ``timeout`` s)."""
        self._stop.set()
        if self._thread is not None:
            wait = self.interval + 5
            self._thread.join(wait if timeout is None else min(wait, timeout))

    def look(self) -> list[str]:
        """One look at every followed task; the ids whose end was handed to ``on_final``."""
        now = time.monotonic()
        with self._lock:
            for task_id in [t for t, at in self._followed.items() if now - at > self.keep_for]:
                del self._followed[task_id]
                self._seen.pop(task_id, None)
            followed = list(self._followed)
        ended = []
        for task_id in followed:
            folder = self.folder_of(task_id)
            try:
                mtime = (folder.path / STATUS_FILE).stat().st_mtime_ns
            except OSError:
                continue  # not written yet (the job has not started), or the folder is gone
            with self._lock:
                if self._seen.get(task_id) == mtime:
                    continue
                self._seen[task_id] = mtime
            status = folder.status()
            if not status or not status.get("final") or status.get("state") not in REPORTED:
                continue
            self.drop(task_id)
            try:
                self.on_final(task_id)
            except Exception:  # the next pass reports it anyway
                log.warning("task %s: reporting its end between passes failed", task_id,
                            exc_info=True)
            ended.append(task_id)
        return ended

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.look()
            except Exception:  # never lose the thread
                log.warning("the status watch failed; it goes on", exc_info=True)
