"""Shared fixtures: real server processes on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.oidc import IdentityProvider
from tests.servers import (
    ServerProcess,
    create_postgres_database,
    drop_postgres_database,
    server_env,
)


def _postgres_available() -> str | None:
    try:
        import psycopg

        admin = os.environ.get("TES_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
        with psycopg.connect(admin.replace("+psycopg", ""), connect_timeout=3):
            return None
    except Exception as exc:  # pragma: no cover - depends on the machine
        return str(exc)


@pytest.fixture(scope="session")
def postgres_url_factory():
    """Make fresh PostgreSQL databases (dropped at the end); fails if PostgreSQL is down in CI."""
    reason = _postgres_available()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI but not reachable: {reason}")
        pytest.skip(f"PostgreSQL not reachable: {reason}")
    made: list[str] = []

    def make() -> str:
        url = create_postgres_database()
        made.append(url)
        return url

    yield make
    for url in made:
        drop_postgres_database(url)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request, tmp_path_factory, postgres_url_factory_lazy) -> Iterator[ServerProcess]:
    """A running ``tes-server serve`` (embedded mode) on SQLite, then on PostgreSQL."""
    data_dir = tmp_path_factory.mktemp(f"tes-{request.param}")
    database = postgres_url_factory_lazy() if request.param == "postgresql" else None
    proc = ServerProcess(data_dir, server_env(data_dir, database)).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def postgres_url_factory_lazy(request):
    """Resolve the PostgreSQL factory only for the tests that need it."""
    return lambda: request.getfixturevalue("postgres_url_factory")()


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory) -> Iterator[ServerProcess]:
    """A running server on SQLite only (for tests that need no second database)."""
    data_dir = tmp_path_factory.mktemp("tes-sqlite")
    proc = ServerProcess(data_dir, server_env(data_dir)).start()
    yield proc
    proc.stop()


@pytest.fixture
def tes_url(server: ServerProcess) -> str:
    """Base URL of the running server, ``http://127.0.0.1:PORT/ga4gh/tes/v1``."""
    return server.url


@pytest.fixture(scope="module")
def idp() -> Iterator[IdentityProvider]:
    """A local OpenID provider (JWKS and discovery over HTTP) that signs test tokens."""
    provider = IdentityProvider()
    yield provider
    provider.close()
