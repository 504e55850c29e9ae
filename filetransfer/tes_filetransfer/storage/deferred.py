"""A built-in storage whose module is imported the first time a URL of its scheme is used.

The stores' libraries are heavy (requests and urllib3 for HTTP, fsspec for FTP and the
clouds, the Azure SDK, botocore): importing them all costs about a quarter of a second,
which every ``tes-runner run`` on a node and every ``tes-filetransfer`` command would pay
for stores its task never uses. The router (:mod:`tes_filetransfer.storage`) registers a
:class:`DeferredStorage` per store; it answers ``needs`` without importing anything, and
:meth:`DeferredStorage.load` builds the real storage once, when a URL needs it.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable
from typing import Any

from .base import Storage
from .extras import Extra


class DeferredStorage:
    """Stands in the router for the storage class ``attribute`` of the module ``module``
    (relative to this package) until :meth:`load` imports and builds it."""

    def __init__(
        self, module: str, attribute: str, build: Callable[[type], Storage],
        needs: Extra | None = None,
    ) -> None:
        self.module = f"{__package__}.{module}"
        self.attribute = attribute
        self._build = build
        self._declared_needs = needs
        self._storage: Storage | None = None
        self._lock = threading.Lock()

    def storage_class(self) -> type:
        """The storage class (imports its module)."""
        return getattr(importlib.import_module(self.module), self.attribute)

    @property
    def needs(self) -> Extra | None:
        """The extra the storage needs: the class's own once its module is imported (so a
        change to the class is seen), else the one declared here (nothing is imported)."""
        if self._storage is not None:
            return getattr(self._storage, "needs", None)
        if self.module in sys.modules:
            return getattr(self.storage_class(), "needs", None)
        return self._declared_needs

    @property
    def loaded(self) -> bool:
        """Whether :meth:`load` has built the storage."""
        return self._storage is not None

    def load(self) -> Storage:
        """The real storage, imported and built on the first call."""
        with self._lock:
            if self._storage is None:
                self._storage = self._build(self.storage_class())
            return self._storage

    def __repr__(self) -> str:
        state = "loaded" if self.loaded else "not imported yet"
        return f"<DeferredStorage {self.module}.{self.attribute} ({state})>"


def lazy_attribute(deferred: dict[str, DeferredStorage], name: str) -> Any:
    """The storage class ``name`` among ``deferred``'s (for a package ``__getattr__``);
    ``AttributeError`` for any other name."""
    for stand_in in deferred.values():
        if stand_in.attribute == name:
            return stand_in.storage_class()
    raise AttributeError(name)
