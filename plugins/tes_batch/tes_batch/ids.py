"""Deterministic Batch ids: a pool per (VM size, low-priority, container configuration),
one long-lived job per pool, one task per TES task attempt.

Batch ids take letters, digits, ``-`` and ``_``, at most 64 characters, and are compared
without case. An id that had to change (another character, too long) ends in a hash of
what it stood for, so two TES ids never meet in one Batch id.
"""

from __future__ import annotations

import hashlib
import re

MAX_ID = 64
_INVALID = re.compile(r"[^A-Za-z0-9_-]")


def _digest(text: str, length: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def batch_id(text: str) -> str:
    """``text`` as a valid Batch id: kept when it is one, else cleaned and suffixed with a
    hash of the original."""
    clean = _INVALID.sub("_", text)
    if clean == text and len(text) <= MAX_ID:
        return text
    return f"{clean[:MAX_ID - 9]}-{_digest(text)}"


def pool_id(prefix: str, vm_size: str, low_priority: bool, container_key: str) -> str:
    """The shared pool of a size, a node kind and a container configuration."""
    kind = "lp" if low_priority else "dd"
    return batch_id(f"{prefix}-{vm_size.lower()}-{kind}-{_digest(container_key, 6)}")


def job_id(pool: str) -> str:
    """The long-lived job whose tasks run on ``pool``."""
    return batch_id(f"{pool}-job")


def auto_pool_prefix(prefix: str) -> str:
    """``autoPoolIdPrefix`` of the auto-pools (Batch names each ``<this>_<guid>``; at most
    20 characters: the server's prefix has at most 16)."""
    return f"{prefix}-ap"


def auto_job_id(prefix: str, tes_id: str, attempt: int) -> str:
    """The job of one attempt in ``per-task`` pool mode (its auto-pool goes with it)."""
    return batch_id(f"{auto_pool_prefix(prefix)}-{tes_id}-{attempt}")


def task_id(tes_id: str, attempt: int) -> str:
    """The Batch task of one attempt of a TES task."""
    return batch_id(f"{tes_id}-{attempt}")


def ref(job: str, task: str) -> str:
    """The backend reference stored with the TES task: ``<job>/<task>``."""
    return f"{job}/{task}"


def parse_ref(value: str | None) -> tuple[str, str] | None:
    """``(job, task)`` of a reference, or ``None`` for anything else."""
    if not value or value.count("/") != 1:
        return None
    job, task = value.split("/")
    return (job, task) if job and task else None
