"""Inputs and outputs of real tasks: staging, visibility in executors, uploads.

Every test runs on each container runtime (see ``conftest.tes``).
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.azurite import azurite_connection_string, new_container
from tests.local.support import Tes, executor_logs, sh, stdouts, system_logs, token

pytestmark = pytest.mark.timeout(120)

READ_ALL = (
    "cat /inputs/content.txt /inputs/local.txt /data/file-url.txt /inputs/web.txt "
    "/inputs/tree/a.txt /inputs/tree/sub/b.txt"
)
EXPECTED = "inline|local|file-url|web|tree-a|tree-b|"


def _sources(tmp_path: Path, http_files) -> tuple[list[dict], str]:
    src = tmp_path / "src"
    (src / "tree" / "sub").mkdir(parents=True)
    (src / "local.txt").write_text("local|")
    (src / "file url.txt").write_text("file-url|")
    (src / "tree" / "a.txt").write_text("tree-a|")
    (src / "tree" / "sub" / "b.txt").write_text("tree-b|")
    web_name = f"web-{token()}.txt"
    (http_files.root / web_name).write_text("web|")
    inputs = [
        {"path": "/inputs/content.txt", "content": "inline|"},
        {"path": "/inputs/local.txt", "url": str(src / "local.txt")},
        {"path": "/data/file-url.txt", "url": (src / "file url.txt").as_uri(), "type": "FILE"},
        {"path": "/inputs/web.txt", "url": f"{http_files.url}/{web_name}"},
        {"path": "/inputs/tree", "url": str(src / "tree"), "type": "DIRECTORY"},
    ]
    return inputs, f"/{web_name}"


def test_inputs_of_every_kind_staged_once_and_seen_by_every_executor(
    tes: Tes, tmp_path: Path, http_files
) -> None:
    inputs, web_path = _sources(tmp_path, http_files)
    task = tes.run({
        "inputs": inputs,
        "executors": [
            sh(READ_ALL),
            sh(READ_ALL, image="busybox"),
            # Inputs are read-only in the executors: writing one must fail.
            sh("echo x > /inputs/local.txt && echo writable || echo read-only"),
        ],
    })
    assert task["state"] == "COMPLETE", system_logs(task)
    assert stdouts(task)[:2] == [EXPECTED, EXPECTED]
    assert stdouts(task)[2].strip() == "read-only"
    # Staged once: one staging line per input, and the HTTP file fetched once.
    staged = [line for line in system_logs(task).splitlines() if line.startswith("input ")]
    assert len(staged) == len(inputs), staged
    assert http_files.gets[web_path] == 1
    # Inline content is returned in FULL but not in BASIC.
    assert task["inputs"][0]["content"] == "inline|"
    assert "content" not in tes.get(task["id"], "BASIC")["inputs"][0]


def test_staged_inputs_are_under_tes_wd_shared(tes: Tes, tmp_path: Path, http_files) -> None:
    inputs, _ = _sources(tmp_path, http_files)
    task = tes.run({
        "inputs": inputs,
        "executors": [sh(
            "cd /tes-wd/shared && cat inputs/content.txt inputs/local.txt data/file-url.txt "
            "inputs/web.txt inputs/tree/a.txt inputs/tree/sub/b.txt"
        )],
    })
    assert task["state"] == "COMPLETE", system_logs(task)
    assert stdouts(task) == [EXPECTED]


def test_missing_input_is_system_error_and_nothing_runs(tes: Tes, tmp_path: Path) -> None:
    marker = token()
    task = tes.run({
        "inputs": [{"path": "/inputs/nope.txt", "url": str(tmp_path / "does-not-exist.txt")}],
        "executors": [sh(f"touch /tes-wd/shared-global/{marker}")],
    })
    assert task["state"] == "SYSTEM_ERROR"
    assert "does-not-exist.txt" in system_logs(task)
    assert executor_logs(task) == []
    assert not (tes.data_dir / "shared-global" / marker).exists()


def test_file_directory_and_wildcard_outputs(tes: Tes, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    task = tes.run({
        "outputs": [
            {"path": "/out/file.txt", "url": str(dest / "file.txt")},
            {"path": "/out/dir", "url": (dest / "dir").as_uri(), "type": "DIRECTORY"},
            {
                "path": "/work/res/*.csv",
                "path_prefix": "/work/res",
                "url": str(dest / "glob"),
                "type": "FILE",
            },
        ],
        "executors": [sh(
            "mkdir -p /out/dir/sub /work/res && printf 12345 > /out/file.txt && "
            "printf ab > /out/dir/x.txt && printf abc > /out/dir/sub/y.txt && "
            "printf 1 > /work/res/a.csv && printf 22 > /work/res/b.csv && "
            "printf no > /work/res/c.txt"
        )],
    })
    assert task["state"] == "COMPLETE", system_logs(task)
    logged = {(o["path"], o["url"], o["size_bytes"]) for o in task["logs"][-1]["outputs"]}
    assert logged == {
        ("/out/file.txt", str(dest / "file.txt"), "5"),
        ("/out/dir/x.txt", (dest / "dir" / "x.txt").as_uri(), "2"),
        ("/out/dir/sub/y.txt", (dest / "dir" / "sub" / "y.txt").as_uri(), "3"),
        ("/work/res/a.csv", str(dest / "glob" / "a.csv"), "1"),
        ("/work/res/b.csv", str(dest / "glob" / "b.csv"), "2"),
    }
    assert all(isinstance(o["size_bytes"], str) for o in task["logs"][-1]["outputs"])
    assert (dest / "file.txt").read_text() == "12345"
    assert (dest / "dir" / "x.txt").read_text() == "ab"
    assert (dest / "dir" / "sub" / "y.txt").read_text() == "abc"
    assert sorted(p.name for p in (dest / "glob").iterdir()) == ["a.csv", "b.csv"]
    # BASIC keeps the output file logs.
    assert tes.get(task["id"], "BASIC")["logs"][-1]["outputs"] == task["logs"][-1]["outputs"]


def test_outputs_uploaded_after_last_executor_and_before_complete(
    tes: Tes, tmp_path: Path
) -> None:
    dest = tmp_path / "result.txt"
    task_id = tes.submit({
        "outputs": [{"path": "/out/result.txt", "url": str(dest)}],
        "executors": [
            sh("printf first > /out/result.txt"),
            sh("sleep 1; printf %s -second >> /out/result.txt"),
        ],
    })
    # Each poll looks at the destination first, then at the task: if the task then
    # still had its last executor to finish, nothing can have been uploaded yet.
    seen: list[tuple[str, int, bool]] = []
    while True:
        existed = dest.exists()
        task = tes.get(task_id, "BASIC")
        seen.append((task["state"], len(executor_logs(task)), existed))
        if task["state"] in ("COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR"):
            # COMPLETE means uploaded: the file is there as soon as COMPLETE is seen.
            assert dest.exists()
            break
        assert len(seen) < 2000, seen[-5:]
    assert task["state"] == "COMPLETE"
    assert dest.read_text() == "first-second"
    assert not any(existed for _, done, existed in seen if done < 2), seen
    assert ("RUNNING", 1, False) in seen, seen  # the second executor was watched running


def test_missing_output_is_system_error(tes: Tes, tmp_path: Path) -> None:
    task = tes.run({
        "outputs": [
            {"path": "/out/made.txt", "url": str(tmp_path / "made.txt")},
            {"path": "/out/never.txt", "url": str(tmp_path / "never.txt")},
        ],
        "executors": [sh("echo made > /out/made.txt")],
    })
    assert task["state"] == "SYSTEM_ERROR"
    assert "/out/never.txt" in system_logs(task)
    assert [e["exit_code"] for e in executor_logs(task)] == [0]
    assert not (tmp_path / "never.txt").exists()


def test_unwritable_output_url_is_system_error(tes: Tes, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    target = blocker / "out.txt"  # its parent is a file: nobody, not even root, can write it
    task = tes.run({
        "outputs": [{"path": "/out/r.txt", "url": str(target)}],
        "executors": [sh("echo r > /out/r.txt")],
    })
    assert task["state"] == "SYSTEM_ERROR"
    assert str(target) in system_logs(task)
    assert [e["exit_code"] for e in executor_logs(task)] == [0]


def test_shared_global_persists_between_tasks(tes: Tes) -> None:
    name = f"global-{token()}.txt"
    first = tes.run({"executors": [sh(f"echo kept > /tes-wd/shared-global/{name}")]})
    assert first["state"] == "COMPLETE", system_logs(first)
    assert (tes.data_dir / "shared-global" / name).read_text() == "kept\n"
    second = tes.run({"executors": [sh(f"cat /tes-wd/shared-global/{name}")]})
    assert second["state"] == "COMPLETE", system_logs(second)
    assert stdouts(second) == ["kept\n"]


def test_second_task_with_the_same_inputs_downloads_nothing(tes: Tes, http_files) -> None:
    """The node-local content cache: a blob (with a new SAS per task, as the submitter
    plugins make them) and an HTTP file needed by two tasks are fetched once. The runner
    logs what staging moved; the HTTP server's own count of GETs confirms it."""
    from azure.storage.blob import (
        BlobServiceClient,
        ContainerSasPermissions,
        generate_container_sas,
    )

    connection_string = azurite_connection_string()
    service = BlobServiceClient.from_connection_string(connection_string)
    container = new_container(connection_string, "cache")
    blob_data = os.urandom(300_000)
    service.get_blob_client(container, "in/data.bin").upload_blob(blob_data)
    web_name = f"web-{token()}.bin"
    web_data = os.urandom(50_000)
    (http_files.root / web_name).write_bytes(web_data)
    expected = [hashlib.md5(d).hexdigest() for d in (blob_data, web_data)]  # noqa: S324

    def task(hours: int) -> dict:
        sas = generate_container_sas(
            service.account_name, container, account_key=service.credential.account_key,
            permission=ContainerSasPermissions(read=True),
            expiry=datetime.now(UTC) + timedelta(hours=hours),
        )
        return {
            "inputs": [
                {"path": "/in/data.bin", "url": f"{service.url}{container}/in/data.bin?{sas}"},
                {"path": "/in/web.bin", "url": f"{http_files.url}/{web_name}"},
            ],
            "executors": [sh("md5sum /in/data.bin /in/web.bin")],
        }

    try:
        first, second = tes.run(task(1)), tes.run(task(2))
    finally:
        service.delete_container(container)
    total = len(blob_data) + len(web_data)
    for run, fetched, cached in ((first, total, 0), (second, 0, total)):
        assert run["state"] == "COMPLETE", system_logs(run)
        assert [line.split()[0] for line in stdouts(run)[0].splitlines()] == expected
        # On a failure, what the worker said of these files (a cache miss says why).
        said = [line for line in tes.server.log().splitlines()
                if web_name in line or container in line]
        assert (
            f"inputs staged, 2 files: {fetched} bytes downloaded, "
            f"{cached} bytes from the node cache"
        ) in system_logs(run), said
    assert http_files.gets[f"/{web_name}"] == 1
