"""End to end: a server that signs for two storage accounts on Azurite.

A real ``tes-server serve`` process with ``TES_STORAGE_CONNECTION_STRING`` (the
workspace's account, devstoreaccount1) and ``TES_STORAGE_CONNECTION_STRING_REFS`` (a
second account, shared references), the Cromwell and Nextflow plugins, and the local
backend on bubblewrap:

* a Cromwell task (Cromwell on Azure's ``/<account>/<container>/<blob>`` paths) reading
  from both accounts and writing to both: each URL is signed by its own account's key,
  which Azurite checks, and the task completes with its outputs in place;
* a Nextflow input on an account the server has no credential for: 400 naming the
  field, the account, the accounts the server signs for and the setting that adds one;
* an input naming the workspace account at Azure's endpoint while the server has it on
  Azurite: 400 naming both endpoints and the setting that configures it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from tests.azurite import (
    azurite_connection_string,
    azurite_second_connection_string,
    new_container,
)
from tests.local.support import require_runtime, system_logs
from tests.servers import TERMINAL, ServerProcess, server_env, wait_for_state

pytest.importorskip("tes_cromwell", reason="the end-to-end test sends Cromwell's tasks")
pytest.importorskip("tes_nextflow", reason="the end-to-end test sends Nextflow's tasks")

pytestmark = pytest.mark.timeout(240)


@dataclass
class Account:
    """One Azurite account, a fresh container in it, and its URL."""

    connection_string: str
    container: str

    @property
    def name(self) -> str:
        return _field(self.connection_string, "accountname")

    @property
    def url(self) -> str:
        return _field(self.connection_string, "blobendpoint").rstrip("/")

    def client(self) -> Any:
        from azure.storage.blob import ContainerClient

        return ContainerClient.from_connection_string(self.connection_string, self.container)

    def put(self, name: str, data: str) -> None:
        self.client().upload_blob(name, data.encode(), overwrite=True)

    def text(self, name: str) -> str:
        return self.client().download_blob(name).readall().decode()


def _field(connection_string: str, key: str) -> str:
    return next(part.split("=", 1)[1] for part in connection_string.split(";")
                if part.lower().startswith(f"{key}="))


@dataclass
class Tes:
    url: str
    work: Account
    refs: Account


@pytest.fixture(scope="module")
def tes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tes]:
    require_runtime("bubblewrap")
    first, second = azurite_connection_string(), azurite_second_connection_string()
    work = Account(first, new_container(first, "work"))
    refs = Account(second, new_container(second, "refs"))
    data = tmp_path_factory.mktemp("accounts-e2e") / "data"
    process = ServerProcess(data, server_env(
        data,
        TES_LOCAL_RUNTIME="bubblewrap",
        TES_STORAGE_CONNECTION_STRING=work.connection_string,
        TES_STORAGE_CONNECTION_STRING_REFS=refs.connection_string,
        TES_CROMWELL_CONTAINER=work.container,
        TES_CROMWELL_SAS_LIFETIME_HOURS="1",
    )).start()
    yield Tes(process.url, work, refs)
    process.stop()


def cromwell_task(tes: Tes, workflow_id: str) -> dict[str, Any]:
    """A call as Cromwell on Azure writes it: its execution folder under the local root,
    inputs as ``/<account>/<container>/<blob>`` paths in two accounts, one output to the
    second account."""
    call = f"/cromwell-executions/wf/{workflow_id}/call-greet"
    ex = f"{call}/execution"
    work, refs = tes.work, tes.refs
    names = f"/{work.name}/{work.container}/inputs/names.txt"
    greeting = f"/{refs.name}/{refs.container}/shared/greeting.txt"
    copy = f"/{refs.name}/{refs.container}/copies/{workflow_id}/greeted.txt"

    def item(name: str, url: str, path: str | None = None) -> dict[str, Any]:
        return {"name": name, "description": f"wf.greet.{name}", "url": url,
                "path": path or url, "type": "FILE"}

    return {
        "name": "wf.greet",
        "description": f"{workflow_id}:BackendJobDescriptorKey_CommandCallNode_wf.greet:-1:1",
        "inputs": [
            item("wf.greet.names.0", names, f"{call}/inputs{names}"),
            item("wf.greet.greeting.0", greeting, f"{call}/inputs{greeting}"),
            item("commandScript", f"{ex}/script"),
        ],
        "outputs": [
            item("rc", f"{ex}/rc"),
            item("stdout", f"{ex}/stdout"),
            item("stderr", f"{ex}/stderr"),
            item("wf.greet.output.0", f"{ex}/greeted.txt"),
            item("wf.greet.copy.0", copy, f"{ex}/greeted.txt"),
        ],
        "resources": {"cpu_cores": 1, "preemptible": False, "backend_parameters": {}},
        "executors": [{"image": "ubuntu", "command": ["/bin/sh", f"{ex}/script"],
                       "stdout": f"{ex}/stdout", "stderr": f"{ex}/stderr"}],
        "tags": {"workflow_id": workflow_id, "root_workflow_id": workflow_id},
    }


def script(task: dict[str, Any]) -> str:
    names, greeting = (item["path"] for item in task["inputs"][:2])
    ex = task["inputs"][2]["path"].rsplit("/", 1)[0]
    return (f"#!/bin/sh\ncd {ex}\nwhile read n; do echo \"$(cat {greeting}), $n\"; done "
            f"< {names} > greeted.txt\necho done\necho 0 > rc\n")


def test_a_task_reads_and_writes_two_accounts_each_signed_by_its_own(tes: Tes) -> None:
    workflow_id = str(uuid.uuid4())
    task = cromwell_task(tes, workflow_id)
    folder = f"wf/{workflow_id}/call-greet/execution"
    tes.work.put(f"{folder}/script", script(task))
    tes.work.put("inputs/names.txt", "ada\ngrace\n")
    tes.refs.put("shared/greeting.txt", "hello")

    created = requests.post(f"{tes.url}/tasks", json=task, timeout=30)
    assert created.status_code == 200, created.text
    task_id = created.json()["id"]
    done = wait_for_state(tes.url, task_id, TERMINAL, timeout=180)
    full = requests.get(f"{tes.url}/tasks/{task_id}", params={"view": "FULL"}, timeout=10).json()

    assert done["state"] == "COMPLETE", system_logs(full)
    assert tes.work.text(f"{folder}/greeted.txt") == "hello, ada\nhello, grace\n"
    assert tes.work.text(f"{folder}/rc") == "0\n"
    assert tes.refs.text(f"copies/{workflow_id}/greeted.txt") == "hello, ada\nhello, grace\n"
    # Each account's blobs were read and written with its own SAS (Azurite refuses another
    # account's key); the task keeps the URLs as sent, with no token.
    assert [item["url"] for item in full["inputs"]] == [item["url"] for item in task["inputs"]]
    assert [item["url"] for item in full["outputs"]] == [item["url"] for item in task["outputs"]]
    assert "sig=" not in json.dumps(full)


NEXTFLOW_LAUNCHER = ["bash", "-o", "pipefail", "-c",
                     "bash /work/.command.run 2>&1 | tee /work/.command.log"]


def test_an_input_on_an_account_without_a_credential_is_refused(tes: Tes) -> None:
    base = f"az://{tes.work.name}/{tes.work.container}/runs/ab/{'c' * 30}"
    task = {
        "name": "NF:COUNT (1)",
        "inputs": [
            {"url": f"{base}/.command.run", "path": "/work/.command.run"},
            {"url": f"{base}/.command.sh", "path": "/work/.command.sh"},
            {"url": "az://strangers/data/reads.txt", "path": "/work/reads.txt"},
        ],
        "outputs": [{"url": f"{base}/.exitcode", "path": "/work/.exitcode"}],
        "executors": [{"image": "ubuntu", "command": NEXTFLOW_LAUNCHER, "workdir": "/work"}],
    }

    response = requests.post(f"{tes.url}/tasks", json=task, timeout=30)

    assert response.status_code == 400, response.text
    body = response.json()
    assert list(body["errors"]) == ["inputs.2.url"]
    assert body["msg"] == (
        "inputs[2].url: az://strangers/data/reads.txt is in storage account 'strangers', "
        "which this server cannot sign for (it signs for "
        f"'{tes.work.name}' (TES_STORAGE_CONNECTION_STRING), "
        f"'{tes.refs.name}' (TES_STORAGE_CONNECTION_STRING_REFS)): add its connection string "
        "as TES_STORAGE_CONNECTION_STRING_<NAME> or its URL to TES_STORAGE_ACCOUNT_URL; or "
        f"run Nextflow with azure.storage.accountName = '{tes.work.name}'"
    )


def test_an_account_at_another_endpoint_is_refused_naming_both(tes: Tes) -> None:
    task = cromwell_task(tes, str(uuid.uuid4()))
    azure = f"https://{tes.work.name}.blob.core.windows.net"
    task["inputs"][0]["url"] = f"{azure}/{tes.work.container}/inputs/names.txt"

    response = requests.post(f"{tes.url}/tasks", json=task, timeout=30)

    assert response.status_code == 400, response.text
    body = response.json()
    assert list(body["errors"]) == ["inputs.0.url"]
    assert body["msg"] == (
        f"inputs[0].url: {azure}/{tes.work.container}/inputs/names.txt is in storage account "
        f"'{tes.work.name}' at {azure}, but this server's account '{tes.work.name}' is at "
        f"{tes.work.url} (TES_STORAGE_CONNECTION_STRING): write the URL at {tes.work.url}, "
        f"or point TES_STORAGE_CONNECTION_STRING at {azure}"
    )
