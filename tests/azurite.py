"""Azurite (Azure Blob Storage emulator) for tests: what scripts/test-services.sh started.

``scripts/test-services.sh`` starts Azurite and exports
``TES_TEST_AZURITE_CONNECTION_STRING`` in its ``env.sh``. Tests that need it call
:func:`azurite_connection_string`, which skips when Azurite is not there, and
fails instead when ``CI`` is set. Plugin tests import this module too.
"""

from __future__ import annotations

import os
import socket
import uuid
from urllib.parse import urlsplit

import pytest

ENV = "TES_TEST_AZURITE_CONNECTION_STRING"


def azurite_connection_string() -> str:
    """The running Azurite's connection string; skip (fail in CI) when it is missing."""
    value = os.environ.get(ENV, "")
    problem = None if value else f"{ENV} is not set (source /tmp/tes-test-services/env.sh)"
    if value and problem is None:
        endpoint = next(
            (p.split("=", 1)[1] for p in value.split(";") if p.lower().startswith("blobendpoint=")),
            "",
        )
        parts = urlsplit(endpoint)
        try:
            with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=3):
                pass
        except OSError as exc:
            problem = f"Azurite at {endpoint} is not reachable: {exc}"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"Azurite is required in CI: {problem}")
        pytest.skip(problem)
    return value


def new_container(connection_string: str, prefix: str = "test") -> str:
    """Create a container with a fresh name in Azurite and return its name."""
    from azure.storage.blob import BlobServiceClient

    name = f"{prefix}-{uuid.uuid4().hex[:16]}"
    BlobServiceClient.from_connection_string(connection_string).create_container(name)
    return name
