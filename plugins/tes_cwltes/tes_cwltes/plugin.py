"""The hook implementation named by the entry point ``cwl-tes = "tes_cwltes.plugin"``."""

from __future__ import annotations

from typing import Any

from tes_core import hookimpl
from tes_core.submitter import Submitter

from .detect import detect

NAME = "cwl-tes"
"""The ``ms-submitter-name`` of cwl-tes's tasks."""


@hookimpl
def tes_detect_submitter(task: dict[str, Any]) -> Submitter | None:
    """Claim tasks sent by cwl-tes; the stage is the CWL step. cwl-tes sends nothing that
    names the workflow run, so there is no workflow id or name (the tool's document stays
    in the task's own ``CWLDocumentId`` tag)."""
    job = detect(task)
    if job is None:
        return None
    return Submitter(name=NAME, workflow_stage=job.step)
