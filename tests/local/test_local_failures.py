"""Infrastructure that is not there: the task fails cleanly and says what to do.

(The missing image and unwritable output URL cases run on every runtime in
test_local_executors.py and test_local_files.py.)
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import requests

from tests.local.support import Tes, executor_logs, sh, start_server, system_logs

pytestmark = pytest.mark.timeout(120)


def test_docker_runtime_with_dead_engine_socket(tmp_path: Path) -> None:
    dead = tmp_path / "no-dockerd-here.sock"
    server = start_server(
        tmp_path / "data", "docker", DOCKER_HOST=f"unix://{dead}",
        TES_LOCAL_START_WITHOUT_RUNTIME="true",  # else start-up stops (tests/test_startup.py)
    )
    try:
        tes = Tes(server, "docker")
        # The server starts and answers even though it cannot run anything.
        assert requests.get(f"{tes.url}/service-info", timeout=10).status_code == 200
        task = tes.run({"executors": [sh("echo never")]}, timeout=60)
        assert task["state"] == "SYSTEM_ERROR", task
        assert executor_logs(task) == []
        why = system_logs(task)
        assert "install and start Docker (apt-get install docker.io)" in why
        if shutil.which("docker"):
            assert "start dockerd" in why  # the CLI is there: the engine is what is missing
            assert str(dead) in why  # and where it was looked for
    finally:
        server.stop()
