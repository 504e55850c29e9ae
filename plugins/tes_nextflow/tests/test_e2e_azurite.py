"""End to end: Nextflow-shaped tasks whose work folder is in blob storage (Azurite).

A real ``tes-server serve`` process with ``TES_STORAGE_CONNECTION_STRING`` pointing at
Azurite takes the tasks over HTTP; the plugin tags them and rewrites their ``az://``
URLs to Azurite URLs with SAS tokens (which Azurite checks); the local backend stages
the inputs, runs the executor and uploads the outputs, ``.command.*`` and ``.exitcode``
included, to the rewritten URLs before reporting a terminal state. Twice: with Docker
(an image made here of the busybox test image plus this machine's ``bash``, which
Nextflow's launcher needs) and with bubblewrap (this machine's own files).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from tests.azurite import azurite_connection_string, new_container
from tests.local.support import require_runtime, system_logs
from tests.servers import TERMINAL, ServerProcess, server_env, wait_for_state

pytestmark = pytest.mark.timeout(240)

ACCOUNT = "devstoreaccount1"
ACCOUNT_URL = f"http://127.0.0.1:10000/{ACCOUNT}"
PLUGIN_LAUNCHER = ["bash", "-o", "pipefail", "-c",
                   "bash /work/.command.run 2>&1 | tee /work/.command.log"]
BUILTIN_LAUNCHER = ["/bin/bash", "-c", "/bin/bash -ue .command.run &> .command.log"]

# What Nextflow's .command.run does, in short: run .command.sh in /work, keep its
# stdout and stderr in .command.out/.command.err, write the exit status to .exitcode.
COMMAND_RUN = """#!/bin/bash
cd /work
set +e
/bin/bash -ue /work/.command.sh > .command.out 2> .command.err
ret=$?
cat .command.out
cat .command.err >&2
echo "$ret" > /work/.exitcode
exit "$ret"
"""

@dataclass
class Blobs:
    """One fresh container in Azurite, and a client for it."""

    connection_string: str
    container: str

    def client(self) -> Any:
        from azure.storage.blob import ContainerClient

        return ContainerClient.from_connection_string(self.connection_string, self.container)

    def put(self, name: str, data: str) -> None:
        self.client().upload_blob(name, data.encode(), overwrite=True)

    def text(self, name: str) -> str:
        return self.client().download_blob(name).readall().decode()

    def names(self, prefix: str) -> list[str]:
        return sorted(b.name for b in self.client().list_blobs(name_starts_with=prefix))


@pytest.fixture(scope="module")
def blobs() -> Blobs:
    connection_string = azurite_connection_string()
    return Blobs(connection_string, new_container(connection_string, "nextflow"))


BASH_IMAGE = "tes-test-nextflow-bash:latest"
BASH_FILES = ("bin/bash", "lib/x86_64-linux-gnu/libtinfo.so.6", "lib/x86_64-linux-gnu/libc.so.6",
              "lib64/ld-linux-x86-64.so.2")


def build_bash_image() -> str:
    """The busybox test image plus this machine's ``bash`` (no registry to pull one from)."""
    docker = shutil.which("docker") or "docker"
    if subprocess.run([docker, "image", "inspect", BASH_IMAGE], capture_output=True).returncode:
        missing = [f for f in BASH_FILES if not Path("/", f).exists()]
        if missing:
            reason = f"cannot build a bash image: {missing} not on this machine"
            if os.environ.get("CI"):
                pytest.fail(reason)
            pytest.skip(reason)
        made = subprocess.run([docker, "create", "busybox:latest", "true"], capture_output=True,
                              text=True, check=True).stdout.strip()
        try:
            files = subprocess.run(["tar", "-ch", "-C", "/", *BASH_FILES], capture_output=True,
                                   check=True).stdout
            subprocess.run([docker, "cp", "-", f"{made}:/"], input=files, check=True)
            subprocess.run([docker, "commit", made, BASH_IMAGE], capture_output=True, check=True)
        finally:
            subprocess.run([docker, "rm", made], capture_output=True)
    return BASH_IMAGE


@dataclass
class Tes:
    """A running server and the image its executors can run Nextflow's launcher in."""

    server: ServerProcess
    image: str

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module", params=["docker", "bubblewrap"])
def tes(
    request: pytest.FixtureRequest, blobs: Blobs, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Tes]:
    runtime = request.param
    require_runtime(runtime)
    image = build_bash_image() if runtime == "docker" else "ubuntu:22.04"
    data_dir: Path = tmp_path_factory.mktemp(f"tes-nextflow-{runtime}")
    proc = ServerProcess(data_dir, server_env(
        data_dir,
        TES_LOCAL_RUNTIME=runtime,
        TES_STORAGE_CONNECTION_STRING=blobs.connection_string,
    )).start()
    yield Tes(proc, image)
    proc.stop()


def work_folder() -> str:
    """A fresh Nextflow task folder name: ``runs/<2 hex>/<30 hex>``."""
    digest = secrets.token_hex(16)
    return f"runs/{digest[:2]}/{digest[2:]}"


def stage_task_files(blobs: Blobs, folder: str, script: str) -> None:
    """What Nextflow writes before it submits: the task's scripts and an input file."""
    blobs.put(f"{folder}/.command.sh", script)
    blobs.put(f"{folder}/.command.run", COMMAND_RUN)
    blobs.put("data/reads.txt", "acgt\nttga\n")


def nextflow_task(
    base: str, data: str, launcher: list[str], name: str, image: str
) -> dict[str, Any]:
    """A task as Nextflow builds it, with ``base`` the work folder URL."""
    outputs = [{"url": f"{base}/{n}", "path": f"/work/{n}"}
               for n in (".command.out", ".command.err", ".command.log", ".exitcode")]
    return {
        "name": name,
        "inputs": [
            {"url": f"{base}/.command.sh", "path": "/work/.command.sh", "type": "FILE"},
            {"url": f"{base}/.command.run", "path": "/work/.command.run", "type": "FILE"},
            {"url": f"{data}/reads.txt", "path": "/work/reads.txt", "type": "FILE"},
        ],
        "outputs": outputs + [
            {"url": base, "path": "/work/*.tsv", "path_prefix": "/work", "type": "FILE"},
            {"url": f"{base}/result.txt", "path": "/work/result.txt", "type": "FILE"},
        ],
        "resources": {"cpu_cores": 1, "ram_gb": 1.0, "backend_parameters_strict": False},
        "executors": [{"image": image, "command": launcher, "workdir": "/work"}],
    }


def create(tes: Tes, task: dict[str, Any]) -> str:
    response = requests.post(f"{tes.url}/tasks", json=task, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["id"]


def get(tes: Tes, task_id: str, view: str = "FULL") -> dict[str, Any]:
    return requests.get(f"{tes.url}/tasks/{task_id}", params={"view": view}, timeout=30).json()


def test_plugin_form_runs_and_uploads_to_the_rewritten_urls(
    tes: Tes, blobs: Blobs
) -> None:
    folder = work_folder()
    stage_task_files(blobs, folder, (
        "tr a-z A-Z < reads.txt > result.txt\n"
        "echo one > a.tsv\necho two > b.tsv\n"
        "echo 'hello from the task'\necho 'a warning' >&2\n"
    ))
    root = f"az://{ACCOUNT}/{blobs.container}"
    task_id = create(tes, nextflow_task(f"{root}/{folder}", f"{root}/data", PLUGIN_LAUNCHER,
                                           "NF:ALIGN:COUNT (sample 1)", tes.image))

    done = wait_for_state(tes.url, task_id, TERMINAL, timeout=180)
    full = get(tes, task_id)
    assert done["state"] == "COMPLETE", system_logs(full)

    assert full["tags"] == {
        "ms-submitter-name": "nextflow",
        "ms-submitter-workflow-id": f"{root}/runs",
        "ms-submitter-workflow-stage": "NF:ALIGN:COUNT",
    }
    # The runner got every URL as a blob URL on Azurite with a SAS that Azurite accepted
    # (the blobs below); the task keeps them as Nextflow sent them, with no token.
    assert [item["url"] for item in full["inputs"]] == [
        f"{root}/{folder}/.command.sh", f"{root}/{folder}/.command.run", f"{root}/data/reads.txt"
    ]
    assert "sig=" not in json.dumps(full)

    assert blobs.text(f"{folder}/.exitcode").strip() == "0"
    assert blobs.text(f"{folder}/.command.out") == "hello from the task\n"
    assert blobs.text(f"{folder}/.command.err") == "a warning\n"
    assert "hello from the task" in blobs.text(f"{folder}/.command.log")
    assert blobs.text(f"{folder}/result.txt") == "ACGT\nTTGA\n"
    assert blobs.text(f"{folder}/a.tsv") == "one\n"
    assert blobs.text(f"{folder}/b.tsv") == "two\n"
    # The task log lists what was uploaded, at the rewritten URLs (SAS not logged).
    uploaded = {o["path"]: o for o in full["logs"][-1]["outputs"]}
    assert set(uploaded) >= {"/work/.exitcode", "/work/a.tsv", "/work/b.tsv"}


def test_builtin_form_failure_still_uploads_exitcode(tes: Tes, blobs: Blobs) -> None:
    """Nextflow up to 24.02 reads .exitcode: it must be there when the task has failed."""
    folder = work_folder()
    stage_task_files(blobs, folder, "echo 'about to fail' >&2\nexit 3\n")
    root = f"az://{blobs.container}"  # the built-in executor's az://<container>/<path>
    task_id = create(tes, nextflow_task(f"{root}/{folder}", f"{root}/data", BUILTIN_LAUNCHER,
                                           "FAILING", tes.image))

    done = wait_for_state(tes.url, task_id, TERMINAL, timeout=180)
    full = get(tes, task_id)
    assert done["state"] == "EXECUTOR_ERROR", system_logs(full)
    assert full["logs"][-1]["logs"][-1]["exit_code"] == 3
    assert full["tags"]["ms-submitter-workflow-id"] == f"{root}/runs"
    assert blobs.text(f"{folder}/.exitcode").strip() == "3"
    assert "about to fail" in blobs.text(f"{folder}/.command.err")
    assert "about to fail" in blobs.text(f"{folder}/.command.log")


def test_an_unknown_account_is_refused_and_nothing_is_stored(
    tes: Tes, blobs: Blobs
) -> None:
    folder = work_folder()
    elsewhere = f"az://someoneelse/{blobs.container}"
    task = nextflow_task(f"{elsewhere}/{folder}", f"{elsewhere}/data", PLUGIN_LAUNCHER, "X",
                         tes.image)
    before = requests.get(f"{tes.url}/tasks", params={"page_size": 2000}, timeout=30).json()

    response = requests.post(f"{tes.url}/tasks", json=task, timeout=30)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["msg"].startswith("inputs[0].url: ")
    assert "'someoneelse'" in body["msg"] and f"'{ACCOUNT}'" in body["msg"]
    assert "TES_STORAGE_CONNECTION_STRING" in body["msg"]
    assert list(body["errors"]) == ["inputs.0.url"]
    after = requests.get(f"{tes.url}/tasks", params={"page_size": 2000}, timeout=30).json()
    assert after == before
