"""Recognising the tasks of Snakemake's TES executor, and the job each one runs.

Pure functions over the validated task document: no settings, no storage, no I/O.
Snakemake's TES executor (built into Snakemake 5.28 to 7.x as
``snakemake/executors/ga4gh_tes.py``, then ``snakemake-executor-plugin-tes`` from
Snakemake 8) sends one task per job, built the same way in every version:

* one executor running ``["/bin/bash", "/tmp/run_snakemake.sh"]`` with ``workdir`` ``/tmp``;
* the job script as an input at ``/tmp/run_snakemake.sh`` with inline ``content``: a line
  ``# properties = {...}`` (JSON: the rule, or the group of a group job, its wildcards and
  job id) and a line running ``<python> -m snakemake --snakefile <Snakefile> ...`` for that
  job (``--target-jobs '<rule>:<wildcards>'`` from Snakemake 8, the job's output files
  before);
* the workflow's sources inline at ``/tmp/<relative path>`` and the job's local files as
  ``file://<absolute path>`` at ``/tmp/<path relative to the working directory>``;
* ``name`` ``snakejob.<rule or group>.<job id>.sh`` (the default ``--jobname``), and the
  rule's ``message`` as ``description``.

All of the executor, the script input and the ``python -m snakemake --snakefile`` line
must be there: a task that mentions Snakemake anywhere else is not claimed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

WORKDIR = "/tmp"
SCRIPT_PATH = "/tmp/run_snakemake.sh"
COMMAND = ["/bin/bash", SCRIPT_PATH]

MAX_TAG_VALUE = 1024
"""Longer values are not used as tags (the core limits a tag to 2000 bytes)."""

_INVOKE = "-m snakemake"
_PROPERTIES = "# properties = "
# What precedes "-m snakemake": the Python interpreter Snakemake runs with ("python", or
# sys.executable's absolute path when the file system is shared), maybe on the line before
# a backslash-newline (Snakemake 5 wraps the command so).
_PYTHON = re.compile(r"(?:^|[\s;&(])(?:\S*/)?python[\w.]*(?:[ \t]|\\\n)+\Z")
_LOOK_BACK = 512
_JOB_NAME = re.compile(r"snakejob\.(?P<rule>.+)\.(?P<jobid>[^.]+)\.sh")


@dataclass(frozen=True)
class SnakemakeJob:
    """What a Snakemake task document tells about its job."""

    rule: str | None
    """The rule (or the group, for a group job): the task's stage."""
    group: bool
    """Whether the task runs a group job (several rules in one task)."""
    jobid: str | None
    """Snakemake's job id within its run."""
    workdir: str | None
    """The workflow's working directory on the submitting host, as a ``file://`` URL
    (the URL of a local file of the job minus its path relative to that directory)."""


def detect(task: Mapping[str, Any]) -> SnakemakeJob | None:
    """The Snakemake job behind ``task``, or ``None`` when Snakemake did not send it."""
    executors = task.get("executors")
    if not isinstance(executors, list) or len(executors) != 1:
        return None
    executor = executors[0]
    if not isinstance(executor, Mapping) or executor.get("command") != COMMAND:
        return None
    if executor.get("workdir") != WORKDIR:
        return None
    script = _script(task.get("inputs"))
    if script is None or not _runs_snakemake(script):
        return None
    properties = _properties(script)
    group = properties.get("type") == "group"
    rule = properties.get("groupid" if group else "rule")
    jobid = properties.get("jobid")
    if not isinstance(rule, str):
        named = _JOB_NAME.fullmatch(task.get("name") or "")
        rule, jobid = (named["rule"], named["jobid"]) if named else (None, None)
    return SnakemakeJob(
        rule=_short(rule),
        group=group,
        jobid=None if jobid is None else _short(str(jobid)),
        workdir=_short(_working_directory(task)),
    )


def _script(inputs: Any) -> str | None:
    """The job script's content (Snakemake appends it last, so look from the end)."""
    if not isinstance(inputs, list):
        return None
    for item in reversed(inputs):
        if isinstance(item, Mapping) and item.get("path") == SCRIPT_PATH:
            content = item.get("content")
            return content if isinstance(content, str) else None
    return None


def _runs_snakemake(script: str) -> bool:
    """Whether a line of ``script`` runs ``<python> -m snakemake ... --snakefile ...``."""
    at = script.find(_INVOKE)
    while at >= 0:
        end = script.find("\n", at)
        end = len(script) if end < 0 else end
        rest = script[at + len(_INVOKE) : end]
        before = script[max(0, at - _LOOK_BACK) : at]
        if rest[:1] in (" ", "\t") and "--snakefile " in rest and _PYTHON.search(before):
            return True
        at = script.find(_INVOKE, end)
    return False


def _properties(script: str) -> dict[str, Any]:
    """The job's properties from the job script's ``# properties = {...}`` line."""
    at = script.find(_PROPERTIES)
    if at < 0 or (at and script[at - 1] != "\n"):
        return {}
    end = script.find("\n", at)
    try:
        found = json.loads(script[at + len(_PROPERTIES) : end if end >= 0 else None])
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _working_directory(task: Mapping[str, Any]) -> str | None:
    """``file://<dir>`` for the first local file sent as ``file://<dir>/<rel>`` at
    ``/tmp/<rel>``: Snakemake maps the working directory to ``/tmp``."""
    for key in ("inputs", "outputs"):
        for item in task.get(key) or ():
            if not isinstance(item, Mapping):
                continue
            url, path = item.get("url"), item.get("path")
            if not (isinstance(url, str) and isinstance(path, str)):
                continue
            if url.startswith("file:///") and path.startswith("/tmp/"):
                relative = path[len("/tmp") :]
                if len(url) > len(relative) + len("file://") and url.endswith(relative):
                    return url[: -len(relative)]
    return None


def _short(value: str | None) -> str | None:
    return value if value and len(value) <= MAX_TAG_VALUE else None
