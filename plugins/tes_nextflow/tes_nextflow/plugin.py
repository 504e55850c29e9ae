"""The hook implementations named by the entry point ``nextflow = "tes_nextflow.plugin"``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tes_core import hookimpl
from tes_core.submitter import Submitter

from .detect import inspect_task, launch_form
from .rewrite import TaskRewriter

if TYPE_CHECKING:
    from tes_core.blobstore import BlobStore
    from tes_core.config import Settings

NAME = "nextflow"
"""The ``ms-submitter-name`` of Nextflow's tasks."""


@dataclass(frozen=True)
class NextflowSubmitter(Submitter):
    """A Nextflow submitter that remembers the task's launch form for URL rewriting."""

    form: str = ""
    """``"plugin"`` or ``"builtin"`` (see :mod:`tes_nextflow.detect`)."""


@hookimpl
def tes_detect_submitter(task: dict[str, Any]) -> Submitter | None:
    """Claim tasks sent by Nextflow; the stage is the process, the workflow id the run's
    session (when a tag carries it) or its work-folder root."""
    found = inspect_task(task)
    if found is None:
        return None
    return NextflowSubmitter(
        name=NAME,
        workflow_id=found.workflow_id,
        workflow_name=found.run_name,
        workflow_stage=found.process,
        form=found.form,
    )


@hookimpl
def tes_url_rewriter(
    task: dict[str, Any],
    submitter: Submitter | None,
    settings: Settings,
    storage: BlobStore | None,
) -> TaskRewriter | None:
    """Point a Nextflow task's Azure URLs at the server's blob storage, with a SAS: one
    rewriter per task (see :class:`tes_nextflow.rewrite.TaskRewriter`)."""
    if submitter is None or submitter.name != NAME:
        return None
    form = submitter.form if isinstance(submitter, NextflowSubmitter) else None
    form = form or launch_form(task.get("executors"))
    if form is None:
        return None
    return TaskRewriter(task, form, settings, storage)
