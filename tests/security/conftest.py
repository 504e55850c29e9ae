"""Fixtures of the attack tests: a real server per runtime, with canaries around it.

Each module under ``tests/security`` attacks one class of hole (``docs/security.md``).
The servers run with the embedded defaults plus the marker secret in their environment;
nothing is allow-listed unless a test says so.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.local.support import RUNTIME_NAMES, Tes, require_runtime, start_server
from tests.security.support import HostCanary, LoopbackSentinel, server_canary_env
from tests.servers import NO_TEST_ALLOW_LISTS


@pytest.fixture(scope="module", params=RUNTIME_NAMES)
def attacked(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Tes]:
    """A real server on one runtime, with the marker secret in its environment."""
    runtime = request.param
    require_runtime(runtime)
    data_dir = tmp_path_factory.mktemp(f"tes-attacked-{runtime}")
    server = start_server(data_dir, runtime, **server_canary_env(), **NO_TEST_ALLOW_LISTS)
    yield Tes(server, runtime)
    server.stop()


@pytest.fixture
def canary() -> Iterator[HostCanary]:
    """A secret host file no task may reach; checked untouched after the test."""
    made = HostCanary.create()
    yield made
    try:
        made.assert_untouched()
    finally:
        made.remove()


@pytest.fixture(scope="session")
def _sentinel() -> Iterator[LoopbackSentinel]:
    sentinel = LoopbackSentinel()
    yield sentinel
    sentinel.close()


@pytest.fixture
def sentinel(_sentinel: LoopbackSentinel) -> Iterator[LoopbackSentinel]:
    """A loopback listener that must see no connection during the test."""
    _sentinel.reset()
    yield _sentinel
    _sentinel.assert_no_hits()
