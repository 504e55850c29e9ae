"""Fixtures: task documents (this folder's ``documents/`` and the shared fixtures), the
plugin loaded into a real pluggy manager, and the server's storage as settings build it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pluggy
import pytest
from tes_azure.blobstorage import BlobStorage
from tes_core import hookspecs
from tes_core.config import Settings
from tests.submitters import load_document

from tes_cromwell import plugin

DOCUMENTS = Path(__file__).parent / "documents"


@pytest.fixture
def document() -> Callable[[str], dict[str, Any]]:
    """Load a task document by file stem, from ``documents/`` or the shared fixtures
    (a fresh copy each call)."""
    return lambda name: load_document(name, DOCUMENTS)


class Backend:
    """The part of a backend the plugin reads: its name."""

    def __init__(self, name: str = "local") -> None:
        self.name = name


@pytest.fixture(scope="session")
def hook() -> Any:
    """The plugin registered in a pluggy manager with the core's hook specs (which checks
    that its hook signatures match them); call hooks with keywords, as the core does."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(plugin, name="cromwell")
    return pm.hook


@pytest.fixture
def make_settings() -> Callable[..., Settings]:
    """Settings as the server builds them from ``TES_*`` keyword variables."""
    return lambda **variables: Settings.from_env(variables)


@pytest.fixture
def make_storage() -> Callable[[str], BlobStorage]:
    """The server's storage for a connection string, built as the task service builds it."""

    def make(connection_string: str) -> BlobStorage:
        built = BlobStorage.from_settings(
            Settings.from_env({"TES_STORAGE_CONNECTION_STRING": connection_string})
        )
        assert built is not None
        return built

    return make


@pytest.fixture
def backend() -> Callable[[str], Backend]:
    """A backend by name."""
    return Backend
