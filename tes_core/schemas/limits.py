"""Bounds on the size of a submitted task, so that no request can make the server
(or a backend after it) hold, store or run something absurd.

Each bound is a setting (``TES_MAX_*``, see :class:`~tes_core.config.Settings`); a
task over one is refused with a 400 that names the field, the bound and the setting
that raises it. The fast loader (:mod:`.fast`) checks the same bounds inline;
:func:`count_problems` runs before the marshmallow schemas (cheap: it only counts,
so a 100,000-executor document is refused before it is loaded) and
:func:`value_problems` after them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from types import SimpleNamespace
from typing import Any

from ..config import Settings


@dataclass(frozen=True)
class TaskLimits:
    """The bounds a task must fit in (one per ``TES_MAX_*`` setting)."""

    executors: int
    inputs: int
    outputs: int
    volumes: int
    tags: int
    items: int
    text_chars: int
    arg_chars: int
    content_bytes: int
    cpu_cores: int
    ram_gb: float
    disk_gb: float

    @classmethod
    def from_settings(cls, settings: Any) -> TaskLimits:
        """The bounds of ``settings`` (a :class:`~tes_core.config.Settings`, or anything
        with its ``max_*`` attributes)."""
        return cls(
            executors=settings.max_executors, inputs=settings.max_inputs,
            outputs=settings.max_outputs, volumes=settings.max_volumes, tags=settings.max_tags,
            items=settings.max_items, text_chars=settings.max_text_chars,
            arg_chars=settings.max_arg_chars, content_bytes=settings.max_content_bytes,
            cpu_cores=settings.max_cpu_cores, ram_gb=settings.max_ram_gb,
            disk_gb=settings.max_disk_gb,
        )


DEFAULT_LIMITS = TaskLimits.from_settings(
    SimpleNamespace(**{f.name: f.default for f in fields(Settings)})
)
"""The settings' defaults (read from the dataclass, without building settings)."""

# What each bound is called in messages: the setting that raises it.
SETTING = {
    "executors": "TES_MAX_EXECUTORS", "inputs": "TES_MAX_INPUTS",
    "outputs": "TES_MAX_OUTPUTS", "volumes": "TES_MAX_VOLUMES", "tags": "TES_MAX_TAGS",
    "items": "TES_MAX_ITEMS", "text_chars": "TES_MAX_TEXT_CHARS",
    "arg_chars": "TES_MAX_ARG_CHARS", "content_bytes": "TES_MAX_CONTENT_BYTES",
    "cpu_cores": "TES_MAX_CPU_CORES", "ram_gb": "TES_MAX_RAM_GB", "disk_gb": "TES_MAX_DISK_GB",
}

# Top-level lists and their bound; nested lists and maps and their bound.
TASK_LISTS = ("executors", "inputs", "outputs", "volumes")
EXECUTOR_ITEMS = ("command", "env")
RESOURCE_ITEMS = ("zones", "backend_parameters")
# Free-text strings (``arg_chars``); every other string is bounded by ``text_chars``.
TASK_FREE_TEXT = ("description",)
RESOURCE_NUMBERS = ("cpu_cores", "ram_gb", "disk_gb")


def utf8_size(text: str) -> int:
    """Bytes of ``text`` in UTF-8 (an unpaired surrogate counts as its 3 bytes)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def too_many(limits: TaskLimits, bound: str, count: int) -> str:
    """The message for a list or map over ``bound`` entries."""
    return (f"at most {getattr(limits, bound)} entries are allowed, got {count} "
            f"(the server's {SETTING[bound]} setting raises the limit)")


def too_long(limits: TaskLimits, bound: str, length: int) -> str:
    """The message for a string over ``bound``."""
    unit = "bytes (UTF-8)" if bound == "content_bytes" else "characters"
    return (f"must be at most {getattr(limits, bound)} {unit}, got {length} "
            f"(the server's {SETTING[bound]} setting raises the limit)")


def too_big(limits: TaskLimits, bound: str, value: Any) -> str:
    """The message for a resource value over ``bound``."""
    most = getattr(limits, bound)
    most = int(most) if math.isfinite(most) and float(most).is_integer() else most
    return (f"must be at most {most}, got {value!r} "
            f"(the server's {SETTING[bound]} setting raises the limit)")


def top_counts_fit(document: dict[str, Any], limits: TaskLimits) -> bool:
    """Whether the top-level lists of a raw task document are within ``limits`` (cheap:
    checked before the document is loaded)."""
    for name in TASK_LISTS:
        value = document.get(name)
        if isinstance(value, list | dict) and len(value) > getattr(limits, name):
            return False
    tags = document.get("tags")
    return not (isinstance(tags, list | dict) and len(tags) > limits.tags)


def fits(task: dict[str, Any], limits: TaskLimits) -> bool:
    """Whether a loaded task whose document passed :func:`top_counts_fit` is within
    ``limits``: exactly when :func:`count_problems` and :func:`value_problems` find
    nothing, but without building a field name per value (it runs on every create)."""
    text, arg, items = limits.text_chars, limits.arg_chars, limits.items
    name = task.get("name")
    if name is not None and len(name) > text:
        return False
    description = task.get("description")
    if description is not None and len(description) > arg:
        return False
    for kind in ("inputs", "outputs"):
        for item in task.get(kind) or ():
            for key in ("name", "url", "path", "path_prefix"):
                value = item.get(key)
                if value is not None and len(value) > text:
                    return False
            value = item.get("description")
            if value is not None and len(value) > arg:
                return False
            content = item.get("content")
            if (content is not None and len(content) > limits.content_bytes // 4
                    and utf8_size(content) > limits.content_bytes):
                return False
    for executor in task.get("executors") or ():
        for key in ("image", "workdir", "stdin", "stdout", "stderr"):
            value = executor.get(key)
            if value is not None and len(value) > text:
                return False
        command = executor.get("command") or ()
        if len(command) > items or any(len(value) > arg for value in command):
            return False
        env = executor.get("env") or {}
        if len(env) > items or any(
            len(key) > text or len(value) > arg for key, value in env.items()
        ):
            return False
    if any(len(value) > text for value in task.get("volumes") or ()):
        return False
    resources = task.get("resources")
    if resources:
        zones = resources.get("zones") or ()
        parameters = resources.get("backend_parameters") or {}
        if len(zones) > items or any(len(value) > text for value in zones):
            return False
        if len(parameters) > items or any(
            len(key) > text or len(value) > text for key, value in parameters.items()
        ):
            return False
        for key in RESOURCE_NUMBERS:
            value = resources.get(key)
            if value is not None and not (math.isfinite(value) and value <= getattr(limits, key)):
                return False
    return True


def count_problems(document: dict[str, Any], limits: TaskLimits) -> dict[str, list[str]]:
    """Lists and maps of a raw task document over their bound, by field; it only counts
    (before any loading), so an oversized document costs next to nothing to refuse."""
    problems: dict[str, list[str]] = {}

    def check(value: Any, bound: str, where: str) -> None:
        if isinstance(value, list | dict) and len(value) > getattr(limits, bound):
            problems[where] = [too_many(limits, bound, len(value))]

    for name in TASK_LISTS:
        check(document.get(name), name, name)
    check(document.get("tags"), "tags", "tags")
    executors = document.get("executors")
    if isinstance(executors, list) and "executors" not in problems:
        for index, executor in enumerate(executors):
            if isinstance(executor, dict):
                for name in EXECUTOR_ITEMS:
                    check(executor.get(name), "items", f"executors.{index}.{name}")
    resources = document.get("resources")
    if isinstance(resources, dict):
        for name in RESOURCE_ITEMS:
            check(resources.get(name), "items", f"resources.{name}")
    return problems


def value_problems(task: dict[str, Any], limits: TaskLimits) -> dict[str, list[str]]:
    """String lengths and resource values of a loaded task over their bound, by field."""
    problems: dict[str, list[str]] = {}

    def text(value: Any, where: str, bound: str = "text_chars") -> None:
        if isinstance(value, str) and len(value) > getattr(limits, bound):
            problems[where] = [too_long(limits, bound, len(value))]

    def mapping(value: Any, where: str, value_bound: str) -> None:
        for key, item in (value or {}).items():
            text(key, f"{where}.{key[:40]}")
            if f"{where}.{key[:40]}" not in problems:
                text(item, f"{where}.{key[:40]}", value_bound)

    text(task.get("name"), "name")
    text(task.get("description"), "description", "arg_chars")
    for kind in ("inputs", "outputs"):
        for index, item in enumerate(task.get(kind) or ()):
            where = f"{kind}.{index}"
            for name in ("name", "url", "path", "path_prefix"):
                text(item.get(name), f"{where}.{name}")
            text(item.get("description"), f"{where}.description", "arg_chars")
            content = item.get("content")
            if isinstance(content, str) and len(content) > limits.content_bytes // 4:
                size = utf8_size(content)
                if size > limits.content_bytes:
                    problems[f"{where}.content"] = [too_long(limits, "content_bytes", size)]
    for index, executor in enumerate(task.get("executors") or ()):
        where = f"executors.{index}"
        for name in ("image", "workdir", "stdin", "stdout", "stderr"):
            text(executor.get(name), f"{where}.{name}")
        for position, arg in enumerate(executor.get("command") or ()):
            text(arg, f"{where}.command.{position}", "arg_chars")
        mapping(executor.get("env"), f"{where}.env", "arg_chars")
    for index, volume in enumerate(task.get("volumes") or ()):
        text(volume, f"volumes.{index}")
    resources = task.get("resources") or {}
    for index, zone in enumerate(resources.get("zones") or ()):
        text(zone, f"resources.zones.{index}")
    mapping(resources.get("backend_parameters"), "resources.backend_parameters", "text_chars")
    for name in RESOURCE_NUMBERS:
        value = resources.get(name)
        if value is not None and not (math.isfinite(value) and value <= getattr(limits, name)):
            problems[f"resources.{name}"] = [too_big(limits, name, value)]
    return problems
