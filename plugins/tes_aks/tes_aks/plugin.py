"""The plugin module named by the entry point ``aks = "tes_aks.plugin"``."""

from __future__ import annotations

from collections.abc import Callable

from tes_core import hookimpl
from tes_core.backends.base import Backend


@hookimpl
def tes_register_backends(register: Callable[[str, type[Backend]], None]) -> None:
    """The ``aks`` backend: each task is a coordinator Job running the task's Jobs."""
    from .backend import AksBackend

    register(AksBackend.name, AksBackend)
