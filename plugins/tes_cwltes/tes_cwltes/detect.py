"""Recognising cwl-tes's tasks, and the CWL step each one runs.

Pure functions over the validated task document: no settings, no storage, no I/O.
cwl-tes (``cwl_tes/tes.py``, ``TESTask.create_task_msg``) sends one task per CWL job:

* ``name``: cwltool's job name, the step's (or the tool's) short name, with ``_<n>`` for
  the n-th run of the same step (scatter, loops);
* ``description``: the tool's ``doc``;
* one executor running the tool's command line in ``workdir`` = cwltool's output folder
  (``/var/spool/cwl`` in a container), with ``env`` ``HOME`` = that folder and ``TMPDIR``;
* inputs named after the job order keys, described ``cwl_input:<name>`` (or
  ``InitialWorkDirRequirement:cwl_input:<name>``);
* outputs ``stdout``/``stderr`` when captured, then always one named ``workdir`` of type
  ``DIRECTORY`` whose path is the executor's ``workdir``;
* the tag ``CWLDocumentId``: the tool's document id (``file:///.../sort.cwl``, or
  ``...#<tool>`` inside a packed document).

The ``workdir`` output on the executor's folder is required, and then either the
``CWLDocumentId`` tag or ``HOME`` set to the executor's folder; a task with only the tag,
only a ``cwl_input:`` description, or a ``workdir`` output elsewhere is not claimed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tes_core.submitter import only_executor

DOCUMENT_TAG = "CWLDocumentId"
WORKDIR_OUTPUT = "workdir"

MAX_TAG_VALUE = 1024
"""Longer values are not used as tags (the core limits a tag to 2000 bytes)."""


@dataclass(frozen=True)
class CwlJob:
    """What a cwl-tes task document tells about its CWL job."""

    step: str | None
    """cwltool's job name (the step's short name): the task's stage."""


def detect(task: Mapping[str, Any]) -> CwlJob | None:
    """The CWL job behind ``task``, or ``None`` when cwl-tes did not send it."""
    executor = only_executor(task)
    if executor is None:
        return None
    folder = executor.get("workdir")
    if not isinstance(folder, str) or not folder:
        return None
    tags = task.get("tags")
    document = tags.get(DOCUMENT_TAG) if isinstance(tags, Mapping) else None
    env = executor.get("env")
    home = env.get("HOME") if isinstance(env, Mapping) else None
    if document is None and home != folder:
        return None
    if not _has_workdir_output(task.get("outputs"), folder):
        return None
    name = task.get("name")
    return CwlJob(step=name if isinstance(name, str) and 0 < len(name) <= MAX_TAG_VALUE else None)


def _has_workdir_output(outputs: Any, folder: str) -> bool:
    """Whether ``outputs`` has cwl-tes's ``workdir`` DIRECTORY output on ``folder``
    (after ``stdout`` and ``stderr``, before ``dockerOutputDirectory``)."""
    if not isinstance(outputs, list):
        return False
    for item in outputs[:3]:
        if (
            isinstance(item, Mapping)
            and item.get("name") == WORKDIR_OUTPUT
            and item.get("type") == "DIRECTORY"
            and item.get("path") == folder
        ):
            return True
    return False
