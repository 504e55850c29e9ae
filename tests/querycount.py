"""Counting the statements a piece of code sends to the database (tests and benchmarks)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import event

from tes_core.db import Database


class QueryCounter:
    """Counts every statement sent to the database: through SQLAlchemy (one per
    ``before_cursor_execute``, an executemany counting once) and through the driver
    fast paths of :class:`Database`.

    ``patch`` is pytest's ``monkeypatch`` or :class:`Patcher` (anything with ``setattr``).
    """

    def __init__(self, db: Database, patch: Any) -> None:
        self.count = 0
        self._only_thread: int | None = None
        event.listen(db.engine, "before_cursor_execute", self._seen)
        for name in ("point_read", "driver_write", "driver_statement"):
            patch.setattr(db, name, self._counting(getattr(db, name)))

    def _seen(self, *_args: Any) -> None:
        self._add()

    def _counting(self, call: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self._add()
            return call(*args, **kwargs)

        return counted

    def _add(self) -> None:
        if self._only_thread is None or self._only_thread == threading.get_ident():
            self.count += 1

    def during(self, action: Callable[[], None]) -> int:
        """Statements ``action`` sends, on the thread that runs it: what a background
        thread sends meanwhile (a worker's heartbeat, on a slow machine) is not counted."""
        before = self.count
        self._only_thread = threading.get_ident()
        try:
            action()
        finally:
            self._only_thread = None
        return self.count - before


class Patcher:
    """``setattr`` on objects, for :class:`QueryCounter` outside pytest."""

    def setattr(self, target: Any, name: str, value: Any) -> None:
        setattr(target, name, value)
