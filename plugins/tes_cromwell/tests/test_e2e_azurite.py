"""End to end: a Cromwell-shaped task whose files live in Azurite, through a real server.

A real ``tes-server serve`` process with this plugin, ``TES_STORAGE_CONNECTION_STRING``
pointing at Azurite, and the local backend on a container engine. The task is written
the way Cromwell writes it with a local root (``/cromwell-executions`` paths as URLs),
plus an input as ``/<account>/<container>/<blob>`` and a ``write_lines`` file Cromwell
did not list. The server rewrites the URLs to SAS URLs, adds the unlisted file, stages
the inputs from Azurite, runs the script, and uploads ``rc``, ``stdout``, ``stderr`` and
the call's output to the rewritten URLs before it reports COMPLETE.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from tests.azurite import azurite_connection_string, new_container
from tests.local.support import require_runtime
from tests.servers import TERMINAL, ServerProcess, server_env, wait_for_state

pytestmark = pytest.mark.timeout(240)

ACCOUNT = "devstoreaccount1"
TSV = "write_lines_5d41402abc4b2a76b9719d911017c592.tmp"


@pytest.fixture(scope="module")
def azurite() -> tuple[str, str]:
    """Azurite's connection string and a fresh container for this module's workflows."""
    connection_string = azurite_connection_string()
    return connection_string, new_container(connection_string, "cw-e2e")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, azurite: tuple[str, str]) -> Iterator[str]:
    require_runtime("docker")
    connection_string, container = azurite
    data = tmp_path_factory.mktemp("cromwell-e2e") / "data"
    env = server_env(
        data,
        TES_LOCAL_RUNTIME="docker",
        TES_STORAGE_CONNECTION_STRING=connection_string,
        TES_CROMWELL_CONTAINER=container,
        TES_CROMWELL_SAS_LIFETIME_HOURS="1",
    )
    process = ServerProcess(data, env).start()
    yield process.url
    process.stop()


def blobs(connection_string: str, container: str) -> Any:
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient.from_connection_string(connection_string).get_container_client(
        container
    )


def cromwell_task(workflow_id: str, container: str) -> tuple[dict[str, Any], str]:
    """A task as Cromwell's TES backend writes it with ``root = "/cromwell-executions"``."""
    call = f"/cromwell-executions/e2e/{workflow_id}/call-shout"
    ex = f"{call}/execution"
    names = f"{call}/inputs/{ACCOUNT}/{container}/inputs/names.txt"

    def item(name: str, path: str, **extra: str) -> dict[str, Any]:
        return {"name": name, "description": f"e2e.shout.{name}", "url": path, "path": path,
                "type": "FILE", **extra}

    task = {
        "name": "e2e.shout",
        "description": f"{workflow_id}:BackendJobDescriptorKey_CommandCallNode_e2e.shout:-1:1",
        "inputs": [
            {"name": "e2e.shout.names.0", "description": "e2e.e2e.shout.names.0",
             "url": f"/{ACCOUNT}/{container}/inputs/names.txt", "path": names, "type": "FILE"},
            item("commandScript", f"{ex}/script"),
        ],
        "outputs": [
            item("rc", f"{ex}/rc"),
            item("stdout", f"{ex}/stdout"),
            item("stderr", f"{ex}/stderr"),
            item("commandScript", f"{ex}/script"),
            item("e2e.shout.output.0", f"{ex}/shouted.txt"),
        ],
        "resources": {"cpu_cores": 1, "preemptible": False, "backend_parameters": {}},
        "executors": [{
            "image": "ubuntu",
            "command": ["/bin/sh", f"{ex}/script"],
            "stdout": f"{ex}/stdout",
            "stderr": f"{ex}/stderr",
        }],
        "tags": {"workflow_id": workflow_id, "root_workflow_id": workflow_id,
                 "parent_workflow_id": None},
    }
    script = (
        "#!/bin/sh\n"
        f"cd {ex}\n"
        f"tr a-z A-Z < {names} > shouted.txt\n"
        f"cat {TSV} >> shouted.txt\n"
        "echo 'to stdout'\n"
        "echo 'to stderr' >&2\n"
        "echo $? > rc\n"
    )
    return task, script


def test_a_cromwell_task_runs_from_and_to_blob_storage(
    server: str, azurite: tuple[str, str]
) -> None:
    connection_string, container = azurite
    workflow_id = str(uuid.uuid4())
    task, script = cromwell_task(workflow_id, container)
    store = blobs(connection_string, container)
    folder = f"e2e/{workflow_id}/call-shout/execution"
    # What Cromwell writes before it creates the task: the script, and a write_lines file.
    store.upload_blob(f"{folder}/script", script.encode())
    store.upload_blob(f"{folder}/{TSV}", b"FROM WRITE_LINES\n")
    store.upload_blob("inputs/names.txt", b"ada\ngrace\n", overwrite=True)

    created = requests.post(f"{server}/tasks", json=task, timeout=30)
    assert created.status_code == 200, created.text
    task_id = created.json()["id"]
    wait_for_state(server, task_id, TERMINAL, timeout=180)
    full = requests.get(f"{server}/tasks/{task_id}", params={"view": "FULL"}, timeout=10).json()
    # Read the outputs as soon as COMPLETE is seen: they must be there already.
    uploaded = {
        name: store.download_blob(f"{folder}/{name}").readall()
        for name in ("rc", "stdout", "stderr", "shouted.txt")
        if store.get_blob_client(f"{folder}/{name}").exists()
    }

    assert full["state"] == "COMPLETE", full["logs"]
    assert uploaded == {
        "rc": b"0\n",
        "stdout": b"to stdout\n",
        "stderr": b"to stderr\n",
        "shouted.txt": b"ADA\nGRACE\nFROM WRITE_LINES\n",
    }
    assert full["tags"]["ms-submitter-name"] == "cromwell"
    assert full["tags"]["ms-submitter-workflow-id"] == workflow_id
    assert full["tags"]["ms-submitter-workflow-stage"] == "shout"
    inputs = {Path(item["path"]).name: item["url"] for item in full["inputs"]}
    assert set(inputs) == {"names.txt", "script", TSV}, "the write_lines file was added"
    # The runner got blob URLs with a SAS Azurite accepted (the uploads above); the task
    # keeps Cromwell's URLs, with no token.
    assert inputs[TSV] == f"/cromwell-executions/{folder}/{TSV}"
    assert [item["url"] for item in full["outputs"]] == [
        item["url"] for item in task["outputs"]
    ]
    assert "sig=" not in json.dumps(full)


def test_an_output_the_server_cannot_sign_is_refused_and_not_stored(
    server: str, azurite: tuple[str, str]
) -> None:
    _, container = azurite
    task, _ = cromwell_task(str(uuid.uuid4()), container)
    task["outputs"][4]["url"] = "https://elsewhere.blob.core.windows.net/c/shouted.txt"
    before = requests.get(f"{server}/tasks", params={"page_size": 2000}, timeout=10).json()

    response = requests.post(f"{server}/tasks", json=task, timeout=30)

    assert response.status_code == 400, response.text
    assert list(response.json()["errors"]) == ["outputs.4.url"]
    assert "'elsewhere'" in response.json()["msg"]
    after = requests.get(f"{server}/tasks", params={"page_size": 2000}, timeout=10).json()
    assert after == before
