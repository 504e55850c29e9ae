"""Recognising the tasks of Toil's TES batch system, and the Toil job each one runs.

Pure functions over the validated task document: no settings, no storage, no I/O.
Toil's TES batch system (``src/toil/batchSystems/tes.py``, from Toil 5.6) sends one task
per Toil job:

* ``name``: ``str(JobDescription)``, i.e. ``'<job name>' [<unit name> ]<job store ID>
  v<version>`` (``'HelloWorld' kind-HelloWorld/instance-3f0c8a1b v1``);
* one executor in the Toil appliance image running ``["_toil_contained_executor",
  <payload>]``: the payload is base64 of a pickled dict whose first key is ``command``,
  the worker command ``_toil_worker <job name> <job store locator> <job store ID>``
  (``toil.batchSystems.contained_executor.pack_job``);
* inputs only for mounts (a file job store, ``~/.aws``), resources from Toil 5.8 on.

The payload is never unpickled: the command string is read from the pickle's bytes at
the fixed place a dict's first string value has, and only when the bytes are a pickle.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tes_core.submitter import only_executor

EXECUTOR = "_toil_contained_executor"

MAX_TAG_VALUE = 1024
"""Longer values are not used as tags (the core limits a tag to 2000 bytes)."""

# Enough of the payload for the pickle's header and its first item, the command.
_HEAD_CHARS = 8192
# A pickled dict of protocol 4 or 5 starts with PROTO, FRAME, EMPTY_DICT, MEMOIZE, MARK;
# the key "command" follows as SHORT_BINUNICODE + MEMOIZE.
_KEY = b"\x8c\x07command\x94"
_SHORT_BINUNICODE = 0x8C
_BINUNICODE = 0x58
_WORKER = re.compile(r"(?:^|[\s/])_toil_worker\s+(?P<job>\S+)\s+(?P<store>\S+)\s+(?P<id>\S+)")
_NAME = re.compile(r"'(?P<job>[^']+)'(?: (?P<unit>.+?))? (?P<id>\S+) v\d+")


@dataclass(frozen=True)
class ToilJob:
    """What a Toil task document tells about its job."""

    job: str | None
    """The job's unit name (a CWL/WDL step, a wrapped function) or else its job name:
    the task's stage."""
    job_store: str | None
    """The job store locator (``file:/path``, ``aws:us-west-2:name``): one per workflow."""


def detect(task: Mapping[str, Any]) -> ToilJob | None:
    """The Toil job behind ``task``, or ``None`` when Toil did not send it."""
    executor = only_executor(task)
    if executor is None:
        return None
    command = executor.get("command")
    if not isinstance(command, list) or len(command) != 2 or command[0] != EXECUTOR:
        return None
    head = _payload_head(command[1])
    if head is None:
        return None
    worker = _WORKER.search(_command(head) or "")
    name = task.get("name")
    named = _NAME.fullmatch(name) if isinstance(name, str) and len(name) <= 4096 else None
    job = (named["unit"] or named["job"]) if named else (worker["job"] if worker else None)
    return ToilJob(job=_short(job), job_store=_short(worker["store"]) if worker else None)


def _payload_head(payload: Any) -> bytes | None:
    """The first bytes of the base64 payload, when they are a pickle (PROTO 2 and up)."""
    if not isinstance(payload, str) or not payload:
        return None
    try:
        head = binascii.a2b_base64(payload[:_HEAD_CHARS], strict_mode=True)
    except (binascii.Error, ValueError):
        return None
    return head if len(head) >= 2 and head[0] == 0x80 and head[1] >= 2 else None


def _command(head: bytes) -> str | None:
    """The ``command`` string of the pickled dict, read from its bytes (not unpickled)."""
    at = head.find(_KEY)
    if at < 0 or at > 64:
        return None
    at += len(_KEY)
    if at >= len(head):
        return None
    if head[at] == _SHORT_BINUNICODE and at + 1 < len(head):
        size, at = head[at + 1], at + 2
    elif head[at] == _BINUNICODE and at + 5 <= len(head):
        size, at = int.from_bytes(head[at + 1 : at + 5], "little"), at + 5
    else:
        return None
    try:
        return head[at : at + size].decode("utf-8")
    except UnicodeDecodeError:
        return None


def _short(value: str | None) -> str | None:
    return value if value and len(value) <= MAX_TAG_VALUE else None
