"""Kubernetes names and labels of a task's objects, always valid whatever the task holds.

Object names are DNS-1123 labels (lower-case letters, digits and ``-``, at most 63
characters, a letter or digit at both ends) derived from the task id and attempt only,
so a repeated submit finds the objects of the first. Label values come from the task id
and fixed words; a task's name and tags never become a name or a label (they go to
annotations, which accept any text).
"""

from __future__ import annotations

import hashlib
import re

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "tes-core"
TASK = "tes.ga4gh.org/task"
ATTEMPT = "tes.ga4gh.org/attempt"
ROLE = "tes.ga4gh.org/role"
EXECUTOR = "tes.ga4gh.org/executor"
TASK_NAME = "tes.ga4gh.org/task-name"
TASK_ID = "tes.ga4gh.org/task-id"

COORDINATOR = "coordinator"
STAGE_IN = "stage-in"
STAGE_OUT = "stage-out"
EXECUTOR_ROLE = "executor"
EXECUTOR_MERGED = "executor-merged"
"""An executor run again without the stderr wrapper (its image has no ``/bin/sh``)."""
VOLUME = "volume"
TASK_FILE = "task"
STATUS = "status"

MAX_NAME = 63
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_ANNOTATION_MAX = 1024


def dns_label(text: str, max_length: int = MAX_NAME) -> str:
    """``text`` as a DNS-1123 label of at most ``max_length`` characters.

    Text that is already one is kept; anything else is lower-cased, its other characters
    become ``-``, and a short hash of the original keeps two different texts apart.
    """
    if _DNS_LABEL.match(text) and len(text) <= max_length:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    cleaned = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    cleaned = cleaned[: max_length - len(digest) - 1].rstrip("-")
    return f"{cleaned}-{digest}" if cleaned else f"x{digest}"


def is_dns_label(text: str) -> bool:
    """Whether ``text`` is a valid DNS-1123 label (a valid object name here)."""
    return bool(_DNS_LABEL.match(text))


def label_value(text: str) -> str:
    """``text`` as a valid label value (at most 63 characters of ``[A-Za-z0-9_.-]``)."""
    if _LABEL_VALUE.match(text):
        return text
    return dns_label(text)


def is_label_value(text: str) -> bool:
    """Whether ``text`` is a valid label value."""
    return bool(_LABEL_VALUE.match(text))


def base_name(prefix: str, task_id: str, attempt: int) -> str:
    """The name of the coordinator Job of ``attempt``: ``<prefix><task>-a<attempt>``.

    Every other object of the attempt is this name plus a short suffix, so the base
    leaves room for ``-e<index>`` and Kubernetes' own pod suffix.
    """
    tail = f"-a{attempt}"
    room = 46 - len(tail)  # a Job's pods add 6 characters; our suffixes up to 11
    return dns_label(f"{prefix}{task_id}".lower(), room) + tail


def attempt_of(base: str) -> int:
    """The attempt number a :func:`base_name` ends with (1 if it has none)."""
    head, _, number = base.rpartition("-a")
    return int(number) if head and number.isdigit() else 1


def object_name(base: str, role: str, index: int | None = None) -> str:
    """The name of one object of the attempt named ``base`` (see :func:`base_name`)."""
    suffixes = {
        COORDINATOR: "",
        STAGE_IN: "-in",
        STAGE_OUT: "-out",
        VOLUME: "-wd",
        TASK_FILE: "-task",
        STATUS: "-status",
        EXECUTOR_ROLE: f"-e{index}",
        EXECUTOR_MERGED: f"-e{index}m",
    }
    return base + suffixes[role]


def labels(task_id: str, attempt: int, role: str, index: int | None = None) -> dict[str, str]:
    """The labels every object of the task carries (the server selects by them)."""
    result = {
        MANAGED_BY: MANAGER,
        TASK: label_value(task_id),
        ATTEMPT: str(attempt),
        ROLE: role,
    }
    if index is not None:
        result[EXECUTOR] = str(index)
    return result


def task_selector(task_id: str | None = None) -> str:
    """The label selector of every object tes-core made, or of one task's objects."""
    selector = f"{MANAGED_BY}={MANAGER}"
    if task_id is not None:
        selector += f",{TASK}={label_value(task_id)}"
    return selector


def annotations(task_id: str, task_name: str | None) -> dict[str, str]:
    """Annotations with the task's id and name as given (any text, length-capped)."""
    result = {TASK_ID: task_id[:_ANNOTATION_MAX]}
    if task_name:
        result[TASK_NAME] = task_name[:_ANNOTATION_MAX]
    return result
