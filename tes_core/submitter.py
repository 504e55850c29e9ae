"""What a submitter detector reports about the workflow engine behind a task."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TAG_PREFIX = "ms-submitter-"


@dataclass(frozen=True)
class Submitter:
    """The workflow engine that sent a task, and where in which workflow it belongs."""

    name: str
    workflow_id: str | None = None
    workflow_name: str | None = None
    workflow_stage: str | None = None
    root_workflow_id: str | None = None
    """The outermost workflow's id when the task belongs to a sub-workflow (or equals it)."""

    def tags(self) -> dict[str, str]:
        """The ``ms-submitter-*`` tags recorded on the task (only the known parts)."""
        parts = {
            "name": self.name,
            "workflow-id": self.workflow_id,
            "workflow-name": self.workflow_name,
            "workflow-stage": self.workflow_stage,
            "root-workflow-id": self.root_workflow_id,
        }
        return {TAG_PREFIX + key: value for key, value in parts.items() if value}


def only_executor(task: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The task's executor when it has exactly one (as every engine's task has), else
    ``None``: the first, cheapest check of a submitter detector."""
    executors = task.get("executors")
    if not isinstance(executors, list) or len(executors) != 1:
        return None
    executor = executors[0]
    return executor if isinstance(executor, Mapping) else None
