"""Which pip extra of tes-filetransfer each cloud storage needs, and whether it is here.

Local paths, ``file://``, ``http(s)://`` and ``ftp://`` work with the plain install; the
cloud storages need their SDKs, which come with an extra: ``tes-filetransfer[azure]``,
``[s3]``, ``[gcs]`` (or ``[all]``). A storage whose SDK is missing is refused up front
with the pip command that adds it (:class:`StorageNotInstalled`), by the router
(:func:`~tes_filetransfer.storage.storage_for`), by the command line before anything
moves, and by tes-core when a task is created (:func:`unavailable_storages`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.util import find_spec
from typing import Any

from ..errors import TransferError
from ..urls import redact_url, url_scheme

DISTRIBUTION = "tes-filetransfer"


@dataclass(frozen=True)
class Extra:
    """One optional extra: its name, the storage it brings, the modules that must import."""

    name: str
    storage: str
    modules: tuple[str, ...]

    @property
    def requirement(self) -> str:
        """The requirement to install, e.g. ``tes-filetransfer[s3]``."""
        return f"{DISTRIBUTION}[{self.name}]"

    @property
    def pip_command(self) -> str:
        """The exact command that adds this storage (quoted for shells that glob ``[]``)."""
        return f"pip install '{self.requirement}'"

    def installed(self) -> bool:
        """Whether every module of this extra can be imported here (found, not imported).

        A found extra is remembered; a missing one is looked for again next time, so an
        extra installed while a server runs is seen without a restart.
        """
        if self in _found:
            return True
        try:
            found = all(find_spec(module) is not None for module in self.modules)
        except (ImportError, ValueError):  # a parent package that is there but broken
            return False
        if found:
            _found.add(self)
        return found


_found: set[Extra] = set()


AZURE = Extra("azure", "Azure Blob Storage", ("adlfs", "azure.storage.blob", "azure.identity"))
S3 = Extra("s3", "Amazon S3", ("s3fs",))
GCS = Extra("gcs", "Google Cloud Storage", ("gcsfs",))
EXTRAS = (AZURE, S3, GCS)
"""Every storage extra; ``all`` is their union."""


class StorageNotInstalled(TransferError):
    """The storage for a URL is known but its extra is not installed here."""

    def __init__(self, extra: Extra, url: str) -> None:
        self.extra = extra
        super().__init__(
            f"{redact_url(url)} needs {extra.storage}, which is not installed here: "
            f"{extra.pip_command}"
        )


def unavailable_storages(
    task: Mapping[str, Any], keys: Iterable[str] = ("inputs", "outputs")
) -> dict[str, StorageNotInstalled]:
    """Each ``url`` of a TES task whose storage is not installed, by field
    (``inputs.0.url``); URLs no storage handles at all are left to the transfer itself."""
    from . import storage_for, usable_schemes  # the router imports this module

    usable = usable_schemes()
    if "az" not in usable:  # http(s) URLs of Azure Blob go to the Azure storage
        usable -= {"http", "https"}
    missing: dict[str, StorageNotInstalled] = {}
    for key in keys:
        items = task.get(key) or ()
        for index, item in enumerate(items if isinstance(items, list) else ()):
            url = item.get("url") if isinstance(item, Mapping) else None
            if not isinstance(url, str) or not url or item.get("content") is not None:
                continue
            if url_scheme(url) in usable:
                continue
            try:
                storage_for(url)
            except StorageNotInstalled as exc:
                missing[f"{key}.{index}.url"] = exc
            except TransferError:
                continue
    return missing
