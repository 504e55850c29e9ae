"""Storage router: picks the :class:`Storage` that handles a URL by its scheme.

Built in: plain absolute paths and ``file://`` (local), ``http://`` and ``https://``.
More schemes come from :func:`register_storage` or from installed packages that declare an
entry point in the group ``tes_filetransfer.storage`` named after the scheme (the entry
point is a Storage class or factory, called with no arguments).
"""

from __future__ import annotations

import threading
from importlib.metadata import entry_points

from ..errors import TransferError
from ..urls import redact_url, url_scheme
from .base import Storage
from .http import HttpStorage
from .local import LocalStorage

ENTRY_POINT_GROUP = "tes_filetransfer.storage"

_lock = threading.Lock()
_registry: dict[str, Storage] = {}


def register_storage(scheme: str, storage: Storage) -> None:
    """Make ``storage`` handle URLs whose scheme is ``scheme`` (``""`` means plain paths).

    A later registration for the same scheme replaces the earlier one.
    """
    for method in ("download", "download_dir", "upload"):
        if not callable(getattr(storage, method, None)):
            raise TypeError(f"storage for {scheme!r} has no {method}() method")
    with _lock:
        _registry[scheme.lower().rstrip(":/")] = storage


def unregister_storage(scheme: str) -> None:
    """Forget the storage for ``scheme`` (mainly for tests); unknown schemes are ignored."""
    with _lock:
        _registry.pop(scheme.lower().rstrip(":/"), None)


def _from_entry_point(scheme: str) -> Storage | None:
    for ep in entry_points(group=ENTRY_POINT_GROUP, name=scheme):
        factory = ep.load()
        storage = factory()
        register_storage(scheme, storage)
        return storage
    return None


def storage_for(url: str) -> Storage:
    """Return the storage that handles ``url``; raise TransferError if none does."""
    scheme = url_scheme(url)
    with _lock:
        storage = _registry.get(scheme)
    if storage is None:
        try:
            storage = _from_entry_point(scheme)
        except Exception as exc:  # a broken plugin must not crash the worker
            raise TransferError(
                f"the plugin for scheme {scheme!r} failed to load ({type(exc).__name__}): "
                "reinstall it or check its configuration"
            ) from None
    if storage is None:
        raise TransferError(
            f"no storage handles scheme {scheme!r} for {redact_url(url)} "
            "(install the plugin that provides it)"
        )
    return storage


def _register_builtins() -> None:
    local = LocalStorage()
    register_storage("", local)
    register_storage("file", local)
    http = HttpStorage()
    register_storage("http", http)
    register_storage("https", http)


_register_builtins()

__all__ = [
    "ENTRY_POINT_GROUP",
    "HttpStorage",
    "LocalStorage",
    "Storage",
    "register_storage",
    "storage_for",
    "unregister_storage",
]
