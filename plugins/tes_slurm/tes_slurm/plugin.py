"""The plugin module named by the entry point ``slurm = "tes_slurm.plugin"``."""

from __future__ import annotations

from collections.abc import Callable

from tes_core import hookimpl
from tes_core.backends.base import Backend


@hookimpl
def tes_register_backends(register: Callable[[str, type[Backend]], None]) -> None:
    """The ``slurm`` backend: each task is one Slurm batch job running ``tes-runner``."""
    from .backend import SlurmBackend

    register(SlurmBackend.name, SlurmBackend)
