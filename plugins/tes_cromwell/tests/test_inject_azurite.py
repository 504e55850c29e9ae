"""The write_tsv workaround against Azurite: listing the call's execution folder."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
import requests
from tes_core.errors import ServiceUnavailable
from tests.azurite import azurite_connection_string, new_container

from .test_rewrite import rewrite_one

WF = "1f0e2d3c-4b5a-4987-8a6b-5c4d3e2f1a0b"
FOLDER = f"tsvflow/{WF}/call-count/execution"
LOCAL = f"/cromwell-executions/{FOLDER}"


@pytest.fixture(scope="module")
def connection_string() -> str:
    return azurite_connection_string()


@pytest.fixture(scope="module")
def container(connection_string: str) -> str:
    """A container holding what Cromwell wrote into the call's folder before the task."""
    from azure.storage.blob import BlobServiceClient

    name = new_container(connection_string, "cromwell")
    client = BlobServiceClient.from_connection_string(connection_string)
    for blob, data in {
        f"{FOLDER}/script": b"#!/bin/sh\n",
        f"{FOLDER}/write_tsv_0c4f2a1e9b8d7c6e5f4a3b2c1d0e9f8a.tmp": b"a\tb\n",
        f"{FOLDER}/write_lines_e0967026d1ded73399d6683aa4e5c209.tmp": b"x\ny\n",
        f"{FOLDER}/rc": b"1\n",  # an earlier run of the same attempt: an output, not an input
        f"{FOLDER}/glob-0a1b/part.txt": b"in a sub-folder\n",
        f"{FOLDER}x/elsewhere.tmp": b"a sibling folder with the same prefix\n",
        f"tsvflow/{WF}/call-other/execution/write_tsv_other.tmp": b"another call\n",
    }.items():
        client.get_blob_client(name, blob).upload_blob(data)
    return name


def inject(
    hook: Any, task: dict[str, Any], settings: Any, storage: Any, backend: Any
) -> list[dict[str, Any]]:
    submitter = hook.tes_detect_submitter(task=task, settings=settings)
    results = hook.tes_inject_inputs(task=task, submitter=submitter, backend=backend,
                                     settings=settings, storage=storage)
    return [item for result in results if result for item in result]


def test_unlisted_files_of_the_execution_folder_are_added(
    hook: Any, document: Callable, make_settings: Callable, make_storage: Callable,
    backend: Callable, connection_string: str, container: str,
) -> None:
    task = document("v71-local-root-granular")
    # The write_lines file is listed already, under its full path.
    task["inputs"].insert(0, {
        "name": "e0967026.0", "type": "FILE",
        "url": f"{LOCAL}/write_lines_e0967026d1ded73399d6683aa4e5c209.tmp",
        "path": f"{LOCAL}/write_lines_e0967026d1ded73399d6683aa4e5c209.tmp",
    })
    settings = make_settings(TES_CROMWELL_CONTAINER=container)

    added = inject(hook, task, settings, make_storage(connection_string), backend("local"))

    tsv = "write_tsv_0c4f2a1e9b8d7c6e5f4a3b2c1d0e9f8a.tmp"
    assert [(item["path"], item["url"], item["type"]) for item in added] == [
        (f"{LOCAL}/{tsv}", f"{LOCAL}/{tsv}", "FILE")
    ]


def test_the_injected_input_is_rewritten_and_readable(
    hook: Any, document: Callable, make_settings: Callable, make_storage: Callable,
    backend: Callable, connection_string: str, container: str,
) -> None:
    task = document("v71-local-root-granular")
    settings = make_settings(TES_CROMWELL_CONTAINER=container)
    storage = make_storage(connection_string)
    submitter = hook.tes_detect_submitter(task=task, settings=settings)
    [added, *_] = inject(hook, task, settings, storage, backend("local"))

    url = rewrite_one(hook, url=added["url"], direction="input", task=task,
                      submitter=submitter, backend=backend("local"), settings=settings,
                      storage=storage)
    got = requests.get(url, timeout=10)
    assert got.status_code == 200 and got.content in (b"a\tb\n", b"x\ny\n")


def test_the_same_base_name_elsewhere_does_not_count(
    hook: Any, document: Callable, make_settings: Callable, make_storage: Callable,
    backend: Callable, connection_string: str, container: str,
) -> None:
    task = document("v71-local-root-granular")
    task["inputs"].insert(0, {
        "name": "other", "type": "FILE",
        "url": "/data/write_tsv_0c4f2a1e9b8d7c6e5f4a3b2c1d0e9f8a.tmp",
        "path": "/cromwell-executions/inputs/write_tsv_0c4f2a1e9b8d7c6e5f4a3b2c1d0e9f8a.tmp",
    })
    settings = make_settings(TES_CROMWELL_CONTAINER=container)
    added = inject(hook, task, settings, make_storage(connection_string), backend("local"))
    assert f"{LOCAL}/write_tsv_0c4f2a1e9b8d7c6e5f4a3b2c1d0e9f8a.tmp" in [i["path"] for i in added]


def test_blob_url_roots_get_blob_urls(
    hook: Any, document: Callable, make_settings: Callable, make_storage: Callable,
    backend: Callable, connection_string: str, container: str,
) -> None:
    storage = make_storage(connection_string)
    task = document("v71-local-root-granular")
    for item in task["inputs"] + task["outputs"]:
        item["url"] = storage.blob_url(container, item["url"][len("/cromwell-executions/"):])
    added = inject(hook, task, make_settings(), storage, backend("batch"))

    folder = storage.blob_url(container, FOLDER)
    assert {item["url"] for item in added} == {
        f"{folder}/write_tsv_0c4f2a1e9b8d7c6e5f4a3b2c1d0e9f8a.tmp",
        f"{folder}/write_lines_e0967026d1ded73399d6683aa4e5c209.tmp",
    }
    assert all(item["path"].startswith(LOCAL + "/") for item in added)


def test_the_workaround_can_be_switched_off(
    hook: Any, document: Callable, make_settings: Callable, make_storage: Callable,
    backend: Callable, connection_string: str, container: str,
) -> None:
    settings = make_settings(TES_CROMWELL_CONTAINER=container,
                             TES_CROMWELL_LIST_EXECUTION_FOLDER="false")
    task = document("v71-local-root-granular")
    assert inject(hook, task, settings, make_storage(connection_string), backend("local")) == []


def test_other_engines_and_no_storage_get_nothing(
    hook: Any, document: Callable, make_settings: Callable, make_storage: Callable,
    backend: Callable, connection_string: str, container: str,
) -> None:
    settings = make_settings(TES_CROMWELL_CONTAINER=container)
    assert inject(hook, document("v71-local-root-granular"), settings, None, backend("local")) == []
    storage = make_storage(connection_string)
    assert inject(hook, document("nextflow-1"), settings, storage, backend("local")) == []


def test_storage_that_cannot_be_listed_is_a_503(
    hook: Any, document: Callable, make_settings: Callable, make_storage: Callable,
    backend: Callable,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
    storage = make_storage(
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={key};"
        f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1"
    )
    with pytest.raises(ServiceUnavailable, match="execution folder"):
        inject(hook, document("v71-local-root-granular"), make_settings(), storage,
               backend("local"))
