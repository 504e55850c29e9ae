"""What a submitter detector reports about the workflow engine behind a task."""

from __future__ import annotations

from dataclasses import dataclass

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
