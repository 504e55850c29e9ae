"""Registers the local backend through the same hook outside plugins use."""

from __future__ import annotations

from collections.abc import Callable

from ...hookspecs import hookimpl
from ..base import Backend


@hookimpl
def tes_register_backends(register: Callable[[str, type[Backend]], None]) -> None:
    """The ``local`` backend: this machine, Docker / podman / bubblewrap."""
    from .backend import LocalBackend

    register(LocalBackend.name, LocalBackend)
