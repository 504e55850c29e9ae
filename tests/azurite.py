"""Azurite (Azure Blob Storage emulator) for tests: what scripts/test-services.sh started.

``scripts/test-services.sh`` starts Azurite with two accounts and exports
``TES_TEST_AZURITE_CONNECTION_STRING`` (devstoreaccount1) and
``TES_TEST_AZURITE_CONNECTION_STRING_2`` (a second account) in its ``env.sh``. Tests
that need them call :func:`azurite_connection_string` (and
:func:`azurite_second_connection_string`), which skip when Azurite is not there, and
fail instead when ``CI`` is set. Plugin tests import this module too.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime
from urllib.parse import urlsplit

import pytest

ENV = "TES_TEST_AZURITE_CONNECTION_STRING"
ENV_2 = "TES_TEST_AZURITE_CONNECTION_STRING_2"


def azurite_connection_string() -> str:
    """The running Azurite's connection string; skip (fail in CI) when it is missing."""
    return _reachable(ENV)


def azurite_second_connection_string() -> str:
    """A second account's connection string on the same Azurite (for a server that signs
    for several accounts); skip (fail in CI) when it is missing."""
    return _reachable(ENV_2)


def _reachable(variable: str) -> str:
    value = os.environ.get(variable, "")
    problem = None if value else (
        f"{variable} is not set (source /tmp/tes-test-services/env.sh; the second account "
        "needs an Azurite started by this version of scripts/test-services.sh)"
    )
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


class DelegatingService:
    """Stands in for ``BlobServiceClient.get_user_delegation_key`` (managed identity
    accounts): Azurite issues delegation keys only with OAuth over HTTPS, which it cannot
    do here. Put one in a ``BlobStorage``'s ``_client``; ``calls`` records each key asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[datetime, datetime]] = []

    def get_user_delegation_key(self, key_start_time: datetime, key_expiry_time: datetime):
        from azure.storage.blob import UserDelegationKey

        self.calls.append((key_start_time, key_expiry_time))
        key = UserDelegationKey()
        key.signed_oid = "00000000-0000-0000-0000-00000000000a"
        key.signed_tid = "00000000-0000-0000-0000-00000000000b"
        key.signed_start = key_start_time.strftime("%Y-%m-%dT%H:%M:%SZ")
        key.signed_expiry = key_expiry_time.strftime("%Y-%m-%dT%H:%M:%SZ")
        key.signed_service = "b"
        key.signed_version = "2021-08-06"
        key.value = "a2V5LXZhbHVl"
        return key
