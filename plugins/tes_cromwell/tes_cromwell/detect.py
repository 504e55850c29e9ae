"""Recognising Cromwell's TES tasks, across its versions and output modes.

Every Cromwell version with a TES 1.x backend sends (``supportedBackends/tes``):

* ``description`` = ``BackendJobDescriptor.toString``:
  ``[<workflow UUID>:]BackendJobDescriptorKey_CommandCallNode_<call fqn>:<shard>:<attempt>``
  (older versions leave out the UUID);
* an input named ``commandScript`` whose path is ``.../execution/script`` (a ``url``
  from current versions, inline ``content`` in old ones);
* one executor whose command is ``[<job shell>, <that script path>]``;
* a call folder ``.../<workflow name>/<workflow UUID>/call-<call>[/shard-<n>][/attempt-<k>]``,
  nested ``call-<sub>[/shard-<n>]/<sub-workflow name>/<UUID>/...`` for sub-workflows,
  whose deepest UUID is the description's.

All of these must hold: a task with a Cromwell-like description but no command script,
or a script the executor does not run, is not claimed. Outputs are not looked at: the
"root" output mode has neither ``rc`` nor ``stdout``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tes_core.submitter import Submitter

NAME = "cromwell"
SCRIPT_INPUT = "commandScript"

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_DESCRIPTION = re.compile(
    rf"(?:(?P<id>{_UUID}):)?BackendJobDescriptorKey_CommandCallNode_(?P<fqn>[^:\s]+)"
    r":(?P<shard>-1|\d+):(?P<attempt>[1-9]\d*)"
)
_LEVEL = re.compile(rf"/(?P<name>[^/]+)/(?P<id>{_UUID})/call-(?P<call>[^/]+)")
_SCRIPT_TAIL = re.compile(r"(?:/shard-\d+)?(?:/attempt-\d+)?/execution/script")
_UUID_ONLY = re.compile(_UUID)


@dataclass(frozen=True)
class CromwellCall:
    """One Cromwell job: which (sub)workflow and call, and its command script."""

    workflow_id: str
    """The immediate (sub)workflow's id."""
    workflow_name: str
    root_workflow_id: str
    call: str
    """The call's name (its alias, if it has one), the task's stage."""
    fqn: str
    shard: int
    """-1 when the call is not scattered."""
    attempt: int
    script: Mapping[str, Any]
    """The ``commandScript`` input."""

    @property
    def execution_path(self) -> str:
        """The call's execution folder inside the container (the script's folder)."""
        return str(self.script["path"]).rsplit("/", 1)[0]

    def submitter(self) -> Submitter:
        """What the core records as the task's ``ms-submitter-*`` tags."""
        return Submitter(
            name=NAME,
            workflow_id=self.workflow_id,
            workflow_name=self.workflow_name,
            workflow_stage=self.call,
            root_workflow_id=self.root_workflow_id,
        )


def detect(task: Mapping[str, Any]) -> CromwellCall | None:
    """The Cromwell job behind ``task``, or ``None`` when Cromwell did not send it."""
    description = task.get("description")
    if not isinstance(description, str) or "BackendJobDescriptorKey_" not in description:
        return None
    described = _DESCRIPTION.fullmatch(description)
    if described is None:
        return None
    executors = task.get("executors") or []
    if len(executors) != 1:
        return None
    command = executors[0].get("command") or []
    if len(command) != 2:
        return None
    script = command_script(task, command[1])
    if script is None:
        return None
    levels = list(_LEVEL.finditer(script["path"]))
    if not levels or not _SCRIPT_TAIL.fullmatch(script["path"], levels[-1].end()):
        return None
    deepest = levels[-1]
    if described["id"] and described["id"].lower() != deepest["id"].lower():
        return None
    return CromwellCall(
        workflow_id=deepest["id"].lower(),
        workflow_name=deepest["name"],
        root_workflow_id=_root_workflow_id(task, levels[0]["id"]),
        call=deepest["call"],
        fqn=described["fqn"],
        shard=int(described["shard"]),
        attempt=int(described["attempt"]),
        script=script,
    )


def command_script(task: Mapping[str, Any], path: str) -> Mapping[str, Any] | None:
    """The ``commandScript`` input at ``path`` (with a ``url`` or inline ``content``)."""
    for item in task.get("inputs") or ():
        if item.get("path") != path:
            continue
        if (
            item.get("name") == SCRIPT_INPUT
            and item.get("type", "FILE") == "FILE"
            and (item.get("url") or item.get("content"))
        ):
            return item
        return None
    return None


def _root_workflow_id(task: Mapping[str, Any], outermost: str) -> str:
    """Cromwell 87+ sends ``root_workflow_id`` as a tag; older ones only in the path."""
    tagged = (task.get("tags") or {}).get("root_workflow_id")
    if isinstance(tagged, str) and _UUID_ONLY.fullmatch(tagged):
        return tagged.lower()
    return outermost.lower()
