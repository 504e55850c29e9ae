"""Rendering stored tasks in the three TES views.

MINIMAL: ``id`` and ``state``. BASIC: everything except executor-log
``stdout``/``stderr``, input ``content`` and task-log ``system_logs``.
FULL: everything. Nothing outside the spec is ever returned.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Row

from .db import rfc3339


def render(row: Row, view: str) -> dict[str, Any]:
    """A stored task row as a ``tesTask`` document in ``view``."""
    if view == "MINIMAL":
        return {"id": row.id, "state": row.state}
    task: dict[str, Any] = {"id": row.id, "state": row.state}
    task.update(json.loads(row.document))
    task["creation_time"] = rfc3339(row.creation_time)
    logs = json.loads(row.logs)
    if view == "BASIC":
        _strip_basic(task, logs)
    task["logs"] = logs
    return task


def _strip_basic(task: dict[str, Any], logs: list[dict[str, Any]]) -> None:
    for item in task.get("inputs") or ():
        item.pop("content", None)
    for attempt in logs:
        attempt.pop("system_logs", None)
        for executor_log in attempt.get("logs") or ():
            executor_log.pop("stdout", None)
            executor_log.pop("stderr", None)
