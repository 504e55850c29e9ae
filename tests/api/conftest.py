"""Fixtures of the API conformance tests (the real servers come from ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.support import NO_RUNTIME, create, get_task, task
from tests.servers import TERMINAL, ServerProcess, server_env, wait_for_state


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def norun_server(request, tmp_path_factory, postgres_url_factory_lazy) -> Iterator[ServerProcess]:
    """A server on SQLite, then on PostgreSQL, that never runs a task."""
    data_dir = tmp_path_factory.mktemp(f"tes-norun-{request.param}")
    database = postgres_url_factory_lazy() if request.param == "postgresql" else None
    proc = ServerProcess(data_dir, server_env(data_dir, database, **NO_RUNTIME)).start()
    try:
        # Prove the premise: an accepted task goes nowhere but SYSTEM_ERROR.
        task_id = create(proc.url, task("touch", "/should-never-run"))
        wait_for_state(proc.url, task_id, TERMINAL)
        assert get_task(proc.url, task_id)["state"] == "SYSTEM_ERROR", proc.log()
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def norun_url(norun_server: ServerProcess) -> str:
    """Base URL (``.../ga4gh/tes/v1``) of :func:`norun_server`."""
    return norun_server.url
