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

``snakemake-executor-plugin-tes`` 0.1.3 (Snakemake 9; run against tes-core, see the README)
assumes no shared file system: every file is in a storage (``--default-storage-provider``),
so the task has no ``file://`` URL and no inline sources, only the job script, which
deploys the sources from the storage (``python -m snakemake --deploy-sources ...``) and
names the run's ``--default-storage-prefix``.

All of the executor, the script input and the ``python -m snakemake --snakefile`` line
must be there: a task that mentions Snakemake anywhere else is not claimed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tes_core.submitter import only_executor

WORKDIR = "/tmp"
SCRIPT_PATH = "/tmp/run_snakemake.sh"
COMMAND = ["/bin/bash", SCRIPT_PATH]

MAX_TAG_VALUE = 1024
"""Longer values are not used as tags (the core limits a tag to 2000 bytes)."""

_INVOKE = "-m snakemake"
_PROPERTIES = "# properties = "
# The interpreter that runs "-m snakemake": "python", or sys.executable's absolute path
# when the file system is shared (".../bin/python3.12").
_PYTHON = re.compile(r"python[\w.]*")
# What may separate it from "-m": blanks, or a backslash-newline (Snakemake 5 wraps lines).
_GAP = " \t\\\n"
_LOOK_BACK = 256
_PROPERTIES_HEAD = re.compile(
    r'\{"type": "(?P<type>single|group)", "(?:rule|groupid)": "(?P<name>(?:[^"\\]|\\.)*)"'
)
_JOBID = re.compile(r'"jobid": "?(?P<id>[\w-]+)"?(?:, "cluster": \{.*\})?\}$')
_JOB_NAME = re.compile(r"snakejob\.(?P<rule>.+)\.(?P<jobid>[^.]+)\.sh")
# Where the run keeps its files when the executor assumes no shared file system
# (snakemake-executor-plugin-tes 0.1.3 and later): quoted as Snakemake writes it, or bare.
_STORAGE_PREFIX = re.compile(r"--default-storage-prefix (?:'(?P<quoted>[^']+)'|(?P<bare>[^\s']+))")


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
    """Where the run keeps its files: the workflow's working directory on the submitting
    host as a ``file://`` URL (the URL of a local file of the job minus its path relative to
    that directory), else the storage prefix the job script passes to Snakemake
    (``--default-storage-prefix 's3://bucket/run'``) when every file is in a storage."""


def detect(task: Mapping[str, Any]) -> SnakemakeJob | None:
    """The Snakemake job behind ``task``, or ``None`` when Snakemake did not send it."""
    executor = only_executor(task)
    if executor is None or executor.get("command") != COMMAND:
        return None
    if executor.get("workdir") != WORKDIR:
        return None
    script = _script(task.get("inputs"))
    if script is None or not _runs_snakemake(script):
        return None
    rule, group, jobid = _properties(script)
    if rule is None:
        named = _JOB_NAME.fullmatch(task.get("name") or "")
        rule, jobid = (named["rule"], named["jobid"]) if named else (None, None)
    return SnakemakeJob(
        rule=_short(rule),
        group=group,
        jobid=_short(jobid),
        workdir=_short(_working_directory(task) or _storage_prefix(script)),
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
        if rest[:1] in (" ", "\t") and "--snakefile " in rest and _after_python(script, at):
            return True
        at = script.find(_INVOKE, end)
    return False


def _after_python(script: str, at: int) -> bool:
    """Whether the word before ``script[at]``, past blanks, is a Python interpreter."""
    before = script[max(0, at - _LOOK_BACK) : at]
    if not before or before[-1] not in _GAP:
        return False
    before = before.rstrip(_GAP)
    start = max(before.rfind(" "), before.rfind("\t"), before.rfind("\n")) + 1
    word = before[start:].lstrip(";&(")
    return _PYTHON.fullmatch(word[word.rfind("/") + 1 :]) is not None


def _properties(script: str) -> tuple[str | None, bool, str | None]:
    """The rule (or group), whether it is a group job, and the job id, from the job script's
    ``# properties = {"type": ..., "rule"|"groupid": ..., ..., "jobid": ...}`` line. Snakemake
    writes these keys in this order in every version, so the JSON is not parsed whole."""
    at = script.find(_PROPERTIES)
    if at < 0 or (at and script[at - 1] != "\n"):
        return None, False, None
    end = script.find("\n", at)
    line = script[at + len(_PROPERTIES) : end if end >= 0 else None]
    head = _PROPERTIES_HEAD.match(line)
    if head is None:
        return None, False, None
    rule = head["name"]
    if "\\" in rule:
        try:
            rule = json.loads(f'"{rule}"')
        except ValueError:
            return None, False, None
    jobid = _JOBID.search(line, max(0, len(line) - 128))
    return rule, head["type"] == "group", jobid["id"] if jobid else None


def _working_directory(task: Mapping[str, Any]) -> str | None:
    """``file://<dir>`` for the first local file sent as ``file://<dir>/<rel>`` at
    ``/tmp/<rel>``: Snakemake maps the working directory to ``/tmp``."""
    for key in ("outputs", "inputs"):
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


def _storage_prefix(script: str) -> str | None:
    """The ``--default-storage-prefix`` the job script gives Snakemake, if any."""
    found = _STORAGE_PREFIX.search(script)
    return (found["quoted"] or found["bare"]) if found else None


def _short(value: str | None) -> str | None:
    return value if value and len(value) <= MAX_TAG_VALUE else None
