"""Storage router: picks the :class:`Storage` that handles a URL.

Built in: plain absolute paths and ``file://`` (local); ``http://`` and ``https://``
(plain HTTP, except Azure Blob URLs, which go to Azure: see :func:`azure.is_blob_url`);
``az://``, ``abfs://``, ``abfss://`` (Azure Blob); ``s3://``; ``gs://``, ``gcs://``;
``ftp://``. The cloud storages need their SDKs, which come with extras of
tes-filetransfer (``[azure]``, ``[s3]``, ``[gcs]``, ``[all]``): a URL whose extra is not
installed raises :class:`~.extras.StorageNotInstalled` naming the pip command.

Each built-in store's module (and its library: requests, fsspec, the cloud SDKs) is
imported only when a URL of its scheme is first used (:mod:`.deferred`), so a task that
moves only local files never pays for them; the storage classes are still importable
from here (``from tes_filetransfer.storage import S3Storage`` imports that one module).

More schemes come from :func:`register_storage` or from installed packages that declare
an entry point in the group ``tes_filetransfer.storage`` named after the scheme (the entry
point is a Storage class or factory, called with no arguments).
"""

from __future__ import annotations

import threading
from typing import Any

from ..config import TransferConfig
from ..errors import TransferError
from ..urls import redact_url, url_scheme
from .azure_urls import is_blob_url
from .base import RemoteFile, Storage
from .deferred import DeferredStorage, lazy_attribute
from .extras import AZURE, GCS, S3, Extra, StorageNotInstalled, unavailable_storages
from .local import LocalStorage

ENTRY_POINT_GROUP = "tes_filetransfer.storage"

_lock = threading.Lock()
_registry: dict[str, Storage | DeferredStorage] = {}
_deferred: dict[str, DeferredStorage] = {}
"""The built-in stores not imported up front, by module name."""


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
    from importlib.metadata import entry_points  # ~20 ms: only for a scheme not built in

    for ep in entry_points(group=ENTRY_POINT_GROUP, name=scheme):
        factory = ep.load()
        storage = factory()
        register_storage(scheme, storage)
        return storage
    return None


def storage_for(url: str) -> Storage:
    """Return the storage that handles ``url``; raise TransferError if none does, and
    :class:`StorageNotInstalled` if the one that does needs an extra that is not installed."""
    scheme = url_scheme(url)
    if scheme in ("http", "https") and is_blob_url(url):
        scheme = "az"
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
    extra: Extra | None = getattr(storage, "needs", None)
    if extra is not None and not extra.installed():
        raise StorageNotInstalled(extra, url)
    if isinstance(storage, DeferredStorage):
        return _load(storage)
    return storage


def _load(deferred: DeferredStorage) -> Storage:
    """Import and build a deferred store; its schemes then map to the real storage."""
    storage = deferred.load()
    with _lock:
        for scheme, registered in list(_registry.items()):
            if registered is deferred:
                _registry[scheme] = storage
    return storage


def usable_schemes() -> frozenset[str]:
    """The registered schemes whose storage needs no extra that is missing here (a cheap
    first pass for :func:`~.extras.unavailable_storages`)."""
    with _lock:
        registered = list(_registry.items())
    return frozenset(
        scheme for scheme, storage in registered
        if (extra := getattr(storage, "needs", None)) is None or extra.installed()
    )


def _register_builtins() -> None:
    local = LocalStorage()
    register_storage("", local)
    register_storage("file", local)
    config = TransferConfig.from_env()
    chunks, attempts, backoff = config.chunk_concurrency, config.attempts, config.backoff
    builtins = {
        ("http", "https"): DeferredStorage(
            "http", "HttpStorage", lambda cls: cls(attempts=attempts, backoff=backoff)),
        ("az", "abfs", "abfss"): DeferredStorage(
            "azure", "AzureBlobStorage",
            lambda cls: cls(chunks, attempts=attempts, backoff=backoff), AZURE),
        ("s3",): DeferredStorage("s3", "S3Storage", lambda cls: cls(chunks), S3),
        ("gs", "gcs"): DeferredStorage("gcs", "GcsStorage", lambda cls: cls(chunks), GCS),
        ("ftp",): DeferredStorage("ftp", "FtpStorage", lambda cls: cls(chunks)),
    }
    with _lock:
        for schemes, deferred in builtins.items():
            _deferred[deferred.attribute] = deferred
            for scheme in schemes:
                _registry[scheme] = deferred


def __getattr__(name: str) -> Any:
    """The built-in storage classes, each imported when first asked for."""
    return lazy_attribute(_deferred, name)


_register_builtins()

__all__ = [
    "ENTRY_POINT_GROUP",
    "AzureBlobStorage",
    "FtpStorage",
    "GcsStorage",
    "HttpStorage",
    "LocalStorage",
    "RemoteFile",
    "S3Storage",
    "Storage",
    "StorageNotInstalled",
    "register_storage",
    "storage_for",
    "unavailable_storages",
    "unregister_storage",
    "usable_schemes",
]
