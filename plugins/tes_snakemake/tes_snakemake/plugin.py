"""The hook implementation named by the entry point ``snakemake = "tes_snakemake.plugin"``."""

from __future__ import annotations

from typing import Any

from tes_core import hookimpl
from tes_core.submitter import Submitter

from .detect import detect

NAME = "snakemake"
"""The ``ms-submitter-name`` of Snakemake's tasks."""


@hookimpl
def tes_detect_submitter(task: dict[str, Any]) -> Submitter | None:
    """Claim tasks sent by Snakemake's TES executor; the stage is the job's rule (its group
    for a group job), the workflow id the working directory the workflow runs in (or, when
    every file is in a storage, the run's storage prefix)."""
    job = detect(task)
    if job is None:
        return None
    return Submitter(name=NAME, workflow_id=job.workdir, workflow_stage=job.rule)
