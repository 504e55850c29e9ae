"""The hook implementation named by the entry point ``toil = "tes_toil.plugin"``."""

from __future__ import annotations

from typing import Any

from tes_core import hookimpl
from tes_core.submitter import Submitter

from .detect import detect

NAME = "toil"
"""The ``ms-submitter-name`` of Toil's tasks."""


@hookimpl
def tes_detect_submitter(task: dict[str, Any]) -> Submitter | None:
    """Claim tasks sent by Toil's TES batch system; the stage is the Toil job (its unit
    name, else its job name), the workflow id the job store locator (one per workflow run)."""
    job = detect(task)
    if job is None:
        return None
    return Submitter(name=NAME, workflow_id=job.job_store, workflow_stage=job.job)
