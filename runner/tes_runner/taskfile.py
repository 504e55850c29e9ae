"""``TASK_DIR/task.json``: what ``tes-runner run`` is asked to do.

The server (a Slurm backend, a Kubernetes coordinator) writes it before the job starts::

    {"task": {...TES task, "id" included...}, "attempt": 1, "runtime": "docker",
     "policy": {...AccessPolicy.portable()...}, "transfer": {...}, "shared_global": null,
     "runtime_options": {...}, "network": "none", "live_output_max": 4194304,
     "registry": null}

:func:`load_task_file` checks every field and raises :class:`BadTaskFile` naming the
first one that is wrong.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from tes_filetransfer import TransferConfig, TransferError
from tes_filetransfer.policy import AccessPolicy

from .registry import Registry
from .runtimes import RUNTIMES, RuntimeOptions
from .runtimes.rolling import DEFAULT_MAX_BYTES, MIN_BYTES

TASK_FILE = "task.json"
STATUS_FILE = "status.json"
WORK_FOLDER = "work"
"""The task's workspace below TASK_DIR (``tes-wd``, ``logs``, a private shared-global)."""

RUNTIME_NAMES = ("auto", *RUNTIMES)
_TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_LEADING_VARIABLE = re.compile(r"\$([A-Z][A-Z0-9_]*)(?=/|$)")
"""``$NAME`` at the start of a node path (``shared_global``, ``registry.password_file``):
read from the node's environment."""
"""Task ids become container and folder names: nothing else is accepted."""
_TRANSFER_FIELDS = {f.name for f in fields(TransferConfig)} - {"policy"}
_KNOWN = {"task", "attempt", "runtime", "policy", "transfer", "shared_global", "runtime_options",
          "network", "live_output_max", "registry"}


class BadTaskFile(ValueError):
    """``task.json`` is missing, unreadable or wrong; the message names the field."""


@dataclass(frozen=True)
class TaskFile:
    """The checked contents of ``task.json``."""

    task: dict[str, Any]
    attempt: int
    runtime: str
    transfer: TransferConfig
    """Transfer settings with the task's storage access policy (``policy``)."""
    shared_global: Path | None
    runtime_options: RuntimeOptions
    network: str | None = "none"
    """Container network of the executors (``none`` unless the server allowed another)."""
    live_output_max: int = DEFAULT_MAX_BYTES
    """Most bytes kept of the live copy of each executor output stream the task names no
    file for (the end of it; a file the task names gets every byte)."""
    registry: Registry | None = None
    """The private registry the engine logs in to before pulling one of its images."""

    @property
    def task_id(self) -> str:
        """The task's id (checked to be a safe name)."""
        return self.task["id"]


def load_task_file(task_dir: Path) -> TaskFile:
    """Read and check ``task_dir/task.json``; raises :class:`BadTaskFile`."""
    path = task_dir / TASK_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadTaskFile(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadTaskFile(f"cannot read {path}: {exc}") from None
    except ValueError as exc:
        raise BadTaskFile(f"{path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadTaskFile(f"{path} must hold a JSON object")
    return parse_task_file(data, task_dir)


def parse_task_file(data: dict[str, Any], task_dir: Path) -> TaskFile:
    """Check the fields of a ``task.json`` object; raises :class:`BadTaskFile`."""
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        raise BadTaskFile(f"task.json: unknown field {unknown[0]!r}")
    task = data.get("task")
    if not isinstance(task, dict):
        raise BadTaskFile("task.json: 'task' must be the TES task object")
    if not isinstance(task.get("id"), str) or not _TASK_ID.fullmatch(task["id"]):
        raise BadTaskFile("task.json: task.id must be a task id (letters, digits, '.', '_', '-')")
    executors = task.get("executors")
    if not isinstance(executors, list) or not executors or not all(
        isinstance(e, dict) and isinstance(e.get("image"), str)
        and isinstance(e.get("command"), list) and e["command"]
        and all(isinstance(c, str) for c in e["command"])
        for e in executors
    ):
        raise BadTaskFile(
            "task.json: task.executors must be a non-empty list of executors, each with "
            "an image and a non-empty command"
        )
    attempt = data.get("attempt", 1)
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
        raise BadTaskFile("task.json: 'attempt' must be a positive integer")
    runtime = data.get("runtime", "auto")
    if runtime not in RUNTIME_NAMES:
        raise BadTaskFile(f"task.json: 'runtime' must be one of {', '.join(RUNTIME_NAMES)}")
    network = data.get("network", "none")
    if network is not None and not isinstance(network, str):
        raise BadTaskFile("task.json: 'network' must be a string or null")
    live_output_max = data.get("live_output_max", DEFAULT_MAX_BYTES)
    if not isinstance(live_output_max, int) or isinstance(live_output_max, bool) or (
        live_output_max < MIN_BYTES
    ):
        raise BadTaskFile(
            f"task.json: 'live_output_max' must be a number of bytes of at least {MIN_BYTES}"
        )
    return TaskFile(
        task=task,
        attempt=attempt,
        runtime=runtime,
        transfer=_transfer(data, task_dir),
        shared_global=_shared_global(data.get("shared_global")),
        runtime_options=_runtime_options(data.get("runtime_options")),
        network=network,
        live_output_max=live_output_max,
        registry=_registry(data.get("registry")),
    )


def _transfer(data: dict[str, Any], task_dir: Path) -> TransferConfig:
    """TES_FT_* defaults, then ``transfer``; the policy from ``policy``, denying TASK_DIR."""
    policy = data.get("policy")
    if not isinstance(policy, dict):
        raise BadTaskFile(
            "task.json: 'policy' must be the storage access policy (AccessPolicy.portable())"
        )
    transfer = data.get("transfer") or {}
    if not isinstance(transfer, dict):
        raise BadTaskFile("task.json: 'transfer' must be an object")
    unknown = sorted(set(transfer) - _TRANSFER_FIELDS)
    if unknown:
        raise BadTaskFile(
            f"task.json: transfer.{unknown[0]} is not a transfer setting "
            f"(known: {', '.join(sorted(_TRANSFER_FIELDS))})"
        )
    values = dict(transfer)
    if values.get("cache_dir") is not None:
        values["cache_dir"] = Path(values["cache_dir"])
    try:
        # The task folder holds task.json and status.json: no task may read or write it.
        access = AccessPolicy.from_portable(policy).deny(task_dir)
        return replace(TransferConfig.from_env(), **values, policy=access)
    except (TransferError, TypeError, ValueError) as exc:
        raise BadTaskFile(f"task.json: 'policy' or 'transfer' is wrong: {exc}") from None


def _shared_global(value: Any) -> Path | None:
    if value is None:
        return None
    return _node_path(value, "shared_global")


def _node_path(value: Any, name: str) -> Path:
    """The absolute path ``value`` of field ``name``; a leading ``$VARIABLE`` is read from
    the node's environment (a folder the platform names on each node, e.g.
    ``$AZ_BATCH_NODE_MOUNTS_DIR/x``)."""
    if isinstance(value, str) and (leading := _LEADING_VARIABLE.match(value)):
        variable = leading.group(1)
        if not os.environ.get(variable):
            raise BadTaskFile(f"task.json: '{name}' names ${variable}, which is not set "
                              "on this node")
        value = os.environ[variable] + value[leading.end():]
    if not isinstance(value, str) or not Path(value).is_absolute():
        raise BadTaskFile(f"task.json: '{name}' must be an absolute path or null")
    return Path(value)


def _registry(value: Any) -> Registry | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadTaskFile("task.json: 'registry' must be an object or null")
    try:
        return Registry.from_mapping(value, _node_path)
    except BadTaskFile:
        raise
    except ValueError as exc:
        raise BadTaskFile(f"task.json: {exc}") from None


def _runtime_options(value: Any) -> RuntimeOptions:
    if value is not None and not isinstance(value, dict):
        raise BadTaskFile("task.json: 'runtime_options' must be an object")
    try:
        return RuntimeOptions.from_mapping(value)
    except ValueError as exc:
        raise BadTaskFile(f"task.json: {exc}") from None
