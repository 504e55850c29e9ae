"""Recognising Nextflow's TES tasks, and what they say about their run.

Pure functions over the validated task document: no settings, no storage, no I/O.
The forms recognised (see the README for the documents they come from):

* ``plugin``: the nf-ga4gh plugin and Nextflow 24.04's built-in executor. Command
  ``["bash", "-o", "pipefail", "-c", "bash /work/.command.run 2>&1 | tee /work/.command.log"]``.
* ``builtin``: Nextflow's built-in executor up to 24.02. Command
  ``["/bin/bash", "-c", "/bin/bash -ue .command.run &> .command.log"]``; the oldest
  releases of it send no ``name`` and ``file://`` URLs.

Both have one executor with ``workdir: /work``, an input at ``/work/.command.run`` and an
output at ``/work/.exitcode``. A task missing any of these is not Nextflow's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

WORKDIR = "/work"
RUN_PATH = "/work/.command.run"
EXITCODE_PATH = "/work/.exitcode"

PLUGIN = "plugin"
BUILTIN = "builtin"

# The shell line after "-c" in each form. Tolerant of the bash options (-ue, -uex) and of
# spacing; strict about which files it runs and where its log goes.
_PLUGIN_LINE = re.compile(
    r"^\s*bash\s+/work/\.command\.run\s+2>&1\s*\|\s*tee\s+/work/\.command\.log\s*$"
)
_BUILTIN_LINE = re.compile(
    r"^\s*(?:/usr)?(?:/bin/)?bash(?:\s+-[a-zA-Z]+)*\s+(?:/work/)?\.command\.run\s*"
    r"&>\s*(?:/work/)?\.command\.log\s*$"
)
_BASH = frozenset({"bash", "/bin/bash", "/usr/bin/bash"})

# A task's work folder is <work root>/<2 hex>/<30 hex>.
_TASK_FOLDER = re.compile(r"^(?P<root>.+?)/+[0-9a-f]{2}/+[0-9a-f]{30}/*$")
_PROCESS = re.compile(r"^(?P<process>\S+)(?:\s+\(.*\))?\s*$", re.DOTALL)
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

SESSION_TAGS = ("sessionid", "session_id", "session-id", "nextflow.io/sessionid",
                "nextflow_session_id")
"""Tag keys (compared lower-case) whose UUID value is taken as the run's session id."""
MAX_TAG_VALUE = 1024
"""Longer values are not used as tags (the core limits a tag to 2000 bytes)."""

RUN_NAME_TAGS = ("runname", "run_name", "run-name", "nextflow.io/runname", "nextflow_run_name")
"""Tag keys (compared lower-case) whose value is taken as the workflow (run) name."""


@dataclass(frozen=True)
class NextflowTask:
    """What a Nextflow task document tells about itself."""

    form: str
    """``"plugin"`` (nf-ga4gh, Nextflow 24.04) or ``"builtin"`` (Nextflow up to 24.02)."""
    work_dir: str
    """The task's work folder URL as sent (``.command.run``'s folder)."""
    work_root: str | None
    """The run's work-folder root (the work folder minus ``<2 hex>/<30 hex>``)."""
    process: str | None
    """The process name (``name`` without its `` (tag)``)."""
    session: str | None
    """The run's session id, when a tag carries it."""
    run_name: str | None
    """The run's name, when a tag carries it."""

    @property
    def workflow_id(self) -> str | None:
        """The session id when known, else the work-folder root."""
        return self.session or self.work_root


def launch_form(executors: Any) -> str | None:
    """Which Nextflow launcher ``executors`` is (``"plugin"``/``"builtin"``), or ``None``."""
    if not isinstance(executors, list) or len(executors) != 1:
        return None
    executor = executors[0]
    if not isinstance(executor, Mapping) or executor.get("workdir") != WORKDIR:
        return None
    command = executor.get("command")
    if not isinstance(command, list) or len(command) < 3 or command[0] not in _BASH:
        return None
    if command[-2] != "-c" or not isinstance(command[-1], str):
        return None
    line = command[-1]
    if _PLUGIN_LINE.match(line):
        return PLUGIN
    if _BUILTIN_LINE.match(line):
        return BUILTIN
    return None


def inspect_task(task: Mapping[str, Any]) -> NextflowTask | None:
    """The Nextflow facts of ``task``, or ``None`` when Nextflow did not send it."""
    form = launch_form(task.get("executors"))
    if form is None:
        return None
    run_url = _url_at(task.get("inputs"), RUN_PATH)
    if run_url is None or not _path_part(run_url).endswith("/.command.run"):
        return None
    if not any(
        isinstance(item, Mapping) and item.get("path") == EXITCODE_PATH
        for item in task.get("outputs") or ()
    ):
        return None
    work_dir = _path_part(run_url)[: -len("/.command.run")]
    folder = _TASK_FOLDER.match(work_dir)
    tags = task.get("tags") or {}
    return NextflowTask(
        form=form,
        work_dir=work_dir,
        work_root=folder["root"] if folder and len(folder["root"]) <= MAX_TAG_VALUE else None,
        process=_process_name(task.get("name")),
        session=_tag(tags, SESSION_TAGS, uuid=True),
        run_name=_tag(tags, RUN_NAME_TAGS),
    )


def _url_at(items: Any, path: str) -> str | None:
    for item in items or ():
        if isinstance(item, Mapping) and item.get("path") == path:
            url = item.get("url")
            return url if isinstance(url, str) and url else None
    return None


def _path_part(url: str) -> str:
    """``url`` without a query string or fragment (Nextflow sends none; a client might)."""
    return url.split("?", 1)[0].split("#", 1)[0]


def _process_name(name: Any) -> str | None:
    if not isinstance(name, str):
        return None
    match = _PROCESS.match(name)
    return match["process"] if match and len(match["process"]) <= MAX_TAG_VALUE else None


def _tag(tags: Any, keys: tuple[str, ...], *, uuid: bool = False) -> str | None:
    if not isinstance(tags, Mapping):
        return None
    for key, value in tags.items():
        if not (isinstance(key, str) and key.lower() in keys and isinstance(value, str)):
            continue
        if value and len(value) <= MAX_TAG_VALUE and (not uuid or _UUID.match(value)):
            return value
    return None
