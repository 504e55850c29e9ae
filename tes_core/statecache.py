"""Task states remembered in this process, so that polling ``GET /tasks/{id}`` is cheap.

Workflow engines poll every task every few seconds. A state is remembered when
it can only change through this process: always for finished tasks (their
state never changes again), and for every task when this process is the only
writer (the embedded mode, where the workers are threads of the server). Every
state change made here forgets the task's entry after it is committed; a
generation counter stops a read that raced such a change from remembering the
old state.

With retention on (``TES_RETENTION``) a finished task disappears some day, through
whichever worker holds the reconcile lock: a process that is not the only writer then
remembers no finished states either, so such a task's GET says 404 as soon as it is gone.
"""

from __future__ import annotations

import threading

from .states import is_terminal

MAX_ENTRIES = 100_000


class StateCache:
    """task id -> state, for states that cannot change behind this process's back."""

    def __init__(
        self, *, sole_writer: bool, keep_finished: bool = True, max_entries: int = MAX_ENTRIES
    ) -> None:
        self.sole_writer = sole_writer
        self.keep_finished = keep_finished
        """Remember finished states in a process that is not the only writer (see above)."""
        self.max_entries = max_entries
        self._states: dict[str, str] = {}
        self._generation = 0
        self._lock = threading.Lock()

    def get(self, task_id: str) -> str | None:
        """The remembered state, or ``None``."""
        return self._states.get(task_id)

    def generation(self) -> int:
        """Take this before reading a state from the database; pass it to :meth:`remember`."""
        return self._generation

    def remember(self, task_id: str, state: str, generation: int) -> None:
        """Keep ``state`` if it is safe to, and nothing changed since ``generation``."""
        if not (self.sole_writer or (self.keep_finished and is_terminal(state))):
            return
        with self._lock:
            if generation != self._generation:
                return
            if len(self._states) >= self.max_entries:
                self._states.pop(next(iter(self._states)))  # the oldest entry
            self._states[task_id] = state

    def forget(self, task_id: str) -> None:
        """Call after committing a state change of ``task_id``."""
        with self._lock:
            self._generation += 1
            self._states.pop(task_id, None)
