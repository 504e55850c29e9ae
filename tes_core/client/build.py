"""Building a task document from ``tes run`` flags, or reading one from a file."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from .http import UsageError


def task_from_flags(
    *, image: str, command: list[str], name: str | None = None, inputs: list[str] = (),
    outputs: list[str] = (), env: list[str] = (), tags: list[str] = (),
    cpu: int | None = None, ram: float | None = None, disk: float | None = None,
    workdir: str | None = None,
) -> dict[str, Any]:
    """A TES task: one executor, inputs ``SRC:PATH``, outputs ``PATH:DST``, ``K=V`` maps."""
    if not command:
        raise UsageError("give the command after --, e.g. tes run --image alpine -- echo hi")
    executor: dict[str, Any] = {"image": image, "command": command}
    if env:
        executor["env"] = _pairs(env, "-e")
    if workdir:
        executor["workdir"] = workdir
    task: dict[str, Any] = {"executors": [executor]}
    if name:
        task["name"] = name
    if inputs:
        task["inputs"] = [_transfer(item, "--input", "SRC:PATH", source_first=True)
                          for item in inputs]
    if outputs:
        task["outputs"] = [_transfer(item, "--output", "PATH:DST", source_first=False)
                           for item in outputs]
    resources = {key: value for key, value in
                 (("cpu_cores", cpu), ("ram_gb", ram), ("disk_gb", disk)) if value is not None}
    if resources:
        task["resources"] = resources
    if tags:
        task["tags"] = _pairs(tags, "--tag")
    return task


def read_task(path: str) -> dict[str, Any]:
    """A task document from a JSON or YAML file (``-``: standard input)."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    try:
        task = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise UsageError(f"{path} is neither JSON nor YAML: {exc}") from None
    if not isinstance(task, dict):
        raise UsageError(f"{path} does not hold a task (a JSON or YAML object)")
    return task


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} takes KEY=VALUE, got {item!r}")
        pairs[key] = value
    return pairs


def _transfer(item: str, flag: str, shape: str, *, source_first: bool) -> dict[str, str]:
    """``SRC:PATH`` or ``PATH:DST``; the container path is absolute, so the split is at
    the ':' before a '/' on its side (URLs hold ':' too)."""
    if source_first:
        url, sep, path = item.rpartition(":/")
        path = "/" + path
    else:
        path, sep, url = item.partition(":")
    if not sep or not url or not path.startswith("/") or len(path) < 2:
        raise UsageError(f"{flag} takes {shape} with an absolute container path, got {item!r}")
    return {"url": url, "path": path}
