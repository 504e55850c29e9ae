"""The core alone (no plugins) accepts what Cromwell and Nextflow send.

The example documents are the shared fixtures (tests/submitters.py). Their files
do not exist here, so only acceptance and the stored document are checked.
The server's runtime cannot run anything (a dead Docker socket) and its HTTP
proxy is a closed local port, so no task can reach outside this machine.
"""

from __future__ import annotations

import copy
import json
import socket
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.local.support import Tes, start_server, system_logs
from tests.submitters import SHARED_FIXTURES

pytestmark = pytest.mark.timeout(120)

DOCUMENTS = sorted(
    p for p in SHARED_FIXTURES.glob("*.json") if p.name.startswith(("cromwell", "nextflow"))
)
READ_ONLY = ("id", "state", "logs", "creation_time")


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tes]:
    """A server with every installed plugin disabled that cannot start any task."""
    tmp = tmp_path_factory.mktemp("tes-submitters")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    plugins = ",".join(sorted({ep.name for ep in entry_points(group="tes")}))
    server = start_server(
        tmp / "data",
        "docker",
        DOCKER_HOST=f"unix://{tmp}/no-engine.sock",
        TES_DISABLED_PLUGINS=plugins,
        HTTP_PROXY=closed, HTTPS_PROXY=closed, http_proxy=closed, https_proxy=closed,
        NO_PROXY="", no_proxy="",
    )
    yield Tes(server, "docker")
    server.stop()


def _expected(document: dict[str, Any]) -> dict[str, Any]:
    """The document as the core stores it: the normalisations TES allows, nothing else."""
    expected = copy.deepcopy(document)
    for item in expected.get("inputs", []) + expected.get("outputs", []):
        item.setdefault("type", "FILE")  # the server fills in FILE
    if "backend_parameters" in expected.get("resources", {}):
        # The local backend supports only "network": other keys are neither stored nor returned.
        params = expected["resources"]["backend_parameters"]
        expected["resources"]["backend_parameters"] = {
            k: v for k, v in params.items() if k.lower() == "network"
        }
    if "tags" in expected:
        # Tags are string maps; Cromwell's JSON null (parent_workflow_id) is kept as "".
        expected["tags"] = {k: "" if v is None else v for k, v in expected["tags"].items()}
    return expected


def test_fixtures_are_there() -> None:
    names = [p.name for p in DOCUMENTS]
    assert any(n.startswith("cromwell") for n in names), SHARED_FIXTURES
    assert any(n.startswith("nextflow") for n in names), SHARED_FIXTURES


@pytest.mark.parametrize("path", DOCUMENTS, ids=[p.stem for p in DOCUMENTS])
def test_submitter_document_accepted_and_round_trips(bare: Tes, path: Path) -> None:
    document = json.loads(path.read_text())
    response = requests.post(f"{bare.url}/tasks", json=document, timeout=30)
    assert response.status_code == 200, response.text
    task_id = response.json()["id"]

    basic = bare.get(task_id, "BASIC")
    stored = {k: v for k, v in basic.items() if k not in READ_ONLY}
    assert stored == _expected(document)
    assert basic["id"] == task_id
    assert basic["creation_time"]

    # Unsupported backend_parameters are reported in the task's system logs.
    dropped = [
        k for k in (document.get("resources") or {}).get("backend_parameters") or {}
        if k.lower() != "network"
    ]
    if dropped:
        full = bare.get(task_id, "FULL")
        assert all(key in system_logs(full) for key in dropped), system_logs(full)
