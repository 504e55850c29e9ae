"""The plugin module named by the entry point ``template = "tes_template_backend.plugin"``.

tes-core imports this module at start-up in the API server, in every worker and
for ``tes-server plugins``, so keep it cheap: import the backend (and any heavy
SDK it needs) inside the hook. A failure there is logged and the plugin skipped,
unless it is the configured backend (``TES_BACKEND=template``).
"""

from __future__ import annotations

from collections.abc import Callable

from tes_core import hookimpl
from tes_core.backends.base import Backend


@hookimpl
def tes_register_backends(register: Callable[[str, type[Backend]], None]) -> None:
    """The ``template`` backend: task executors as plain processes on this machine."""
    from .backend import TemplateBackend

    register(TemplateBackend.name, TemplateBackend)
