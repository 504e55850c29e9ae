"""The executors a runtime runs as its own child processes (bubblewrap, Apptainer).

Each runs in a session of its own (``run_captured(new_session=True)``), so stopping it
kills its whole process group: the sandbox or ``exec`` and all it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator


class ForegroundProcesses:
    """The running executor processes of one runtime, by executor name."""

    def __init__(self) -> None:
        self._active: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def running(self, name: str) -> bool:
        """Whether an executor called ``name`` runs now."""
        with self._lock:
            return name in self._active

    @contextlib.contextmanager
    def tracking(self, name: str) -> Iterator[Callable[[subprocess.Popen[bytes]], None]]:
        """``with processes.tracking(name) as on_start:`` pass ``on_start`` to
        ``run_captured``; the process is known under ``name`` until the block ends."""

        def remember(proc: subprocess.Popen[bytes]) -> None:
            with self._lock:
                self._active[name] = proc

        try:
            yield remember
        finally:
            with self._lock:
                self._active.pop(name, None)

    def stop(self, name: str) -> None:
        """Kill the process group of executor ``name``; quiet if it is not running."""
        with self._lock:
            proc = self._active.get(name)
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
