"""Which tasks a caller may touch: their own, or all of them for an admin.

A task's owner never changes, so owners read from the database are remembered
(bounded), and ``GET /tasks/{id}`` polling with auth on costs no extra query.
"""

from __future__ import annotations

import threading

from ..db import Database
from ..errors import NotFound
from ..store import peek_owner
from .principal import Owner, Principal

MAX_ENTRIES = 100_000


class Ownership:
    """task id -> owner, for checking that a caller may see a task."""

    def __init__(self, db: Database, max_entries: int = MAX_ENTRIES) -> None:
        self.db = db
        self.max_entries = max_entries
        self._owners: dict[str, Owner | None] = {}
        self._lock = threading.Lock()

    def remember(self, task_id: str, owner: Owner | None) -> None:
        """Note the owner of a task (at creation, or after reading it)."""
        with self._lock:
            if len(self._owners) >= self.max_entries:
                self._owners.pop(next(iter(self._owners)))  # the oldest entry
            self._owners[task_id] = owner

    def check(self, task_id: str, principal: Principal | None) -> None:
        """Raise 404 unless ``principal`` may see ``task_id`` (``None``: auth is off).

        Someone else's task answers exactly like an unknown id, so ids leak nothing.
        """
        if principal is None or principal.admin:
            return
        try:
            owner = self._owners[task_id]
        except KeyError:
            found = peek_owner(self.db, task_id)
            if found is False:
                raise NotFound(f"no task with id {task_id!r}") from None
            owner = found or None
            self.remember(task_id, owner)
        if owner != principal.owner:
            raise NotFound(f"no task with id {task_id!r}")
