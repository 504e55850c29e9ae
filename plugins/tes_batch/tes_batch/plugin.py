"""The plugin module named by the entry point ``batch = "tes_batch.plugin"``."""

from __future__ import annotations

from collections.abc import Callable

from tes_core import hookimpl
from tes_core.backends.base import Backend


@hookimpl
def tes_register_backends(register: Callable[[str, type[Backend]], None]) -> None:
    """The ``batch`` backend: each task attempt is one Azure Batch task running
    ``tes-runner`` in a shared pool."""
    from .backend import BatchBackend

    register(BatchBackend.name, BatchBackend)
