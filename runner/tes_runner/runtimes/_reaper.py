"""Removing finished containers in the background, many per engine command.

A task slot should not wait for ``docker rm`` once its task has reported its end:
the next queued task can start at once. One thread per runtime removes the names
queued within ``linger`` seconds of the first (or at once when ``MAX_BATCH`` are
waiting, or someone flushes) with one command, so a burst of short tasks costs a
few engine commands instead of one per task (an engine command costs about as much
CPU as the ``docker run`` of a task running ``true``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

MAX_BATCH = 100
"""Most names given to one remove command (keeps its command line short)."""


class Reaper:
    """Calls ``remove_many(names)`` in a background thread for the names :meth:`add` got."""

    def __init__(
        self, remove_many: Callable[[list[str]], None], name: str, linger: float = 1.0
    ) -> None:
        self._remove_many = remove_many
        self._name = name
        self._linger = linger
        self._pending: list[str] = []
        self._busy = False
        self._flushing = 0
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, item: str) -> None:
        """Queue ``item`` for removal; returns at once."""
        with self._changed:
            self._pending.append(item)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            self._changed.notify_all()

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued so far is removed; ``False`` if ``timeout`` passed."""
        with self._changed:
            self._flushing += 1
            self._changed.notify_all()
            try:
                return self._changed.wait_for(
                    lambda: not self._pending and not self._busy, timeout
                )
            finally:
                self._flushing -= 1

    def _loop(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: bool(self._pending))
                self._changed.wait_for(
                    lambda: self._flushing > 0 or len(self._pending) >= MAX_BATCH,
                    timeout=self._linger,
                )
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                self._busy = True
            try:
                self._remove_many(batch)
            except Exception:  # never lose the thread; the names are logged
                log.warning("could not remove %s", ", ".join(batch), exc_info=True)
            finally:
                with self._changed:
                    self._busy = False
                    self._changed.notify_all()
