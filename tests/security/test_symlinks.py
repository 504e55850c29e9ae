"""Class 2: symlinks planted by one executor must not be followed by the server.

Executor 0 replaces a folder or file of the task (seen through ``/tes-wd``) with a link
to a host folder. Without the fix the server then binds the host folder into executor 1
(Docker and podman resolve a bind source's links on the host), opens executor 1's
stdout/stdin through the link, or stages a later task's input through a link left in
``/tes-wd/shared-global``. Each attack must end the task before executor 1 starts (or
fail the staging), say why, and leave the canary folder as it was.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.local.support import Tes, executor_logs, sh, system_logs, token
from tests.security.support import HostCanary, LoopbackSentinel, assert_no_leak

pytestmark = pytest.mark.timeout(120)

FAILED = ("EXECUTOR_ERROR", "SYSTEM_ERROR")


def _planted_and_refused(task: dict[str, Any], container_path: str) -> None:
    """The task failed; if executor 0 managed to plant its link, executor 1 never ran and
    the system logs name the path. (A sandbox whose executor may not write there fails
    executor 0 instead: the attack failed either way.)"""
    assert task["state"] in FAILED, task["state"]
    logs = executor_logs(task)
    if logs and logs[0].get("exit_code") == 0:
        assert len(logs) == 1, "executor 1 ran after executor 0 planted a link"
        assert f"{container_path} is a symbolic link" in system_logs(task), system_logs(task)
        assert "executors must not replace" in system_logs(task)


def _swap_for_link(folder: str, target: str) -> str:
    """Shell: move ``/tes-wd/shared<folder>`` away and put a link to ``target`` there.

    The folder is the parent of a mount point: a mount point itself cannot be moved
    inside the container, its parent can.
    """
    inner = f"/tes-wd/shared{folder}"
    return f"mv {inner} {inner}.old && ln -s {target} {inner}"


def test_a_volume_swapped_for_a_link_is_not_bound(attacked: Tes, canary: HostCanary) -> None:
    """A volume ``/v/<canary>``: ``/v`` becomes a link to ``/var/tmp``, so its bind source
    would be the canary folder."""
    volume = f"/v/{canary.folder.name}"
    task = attacked.run({
        "volumes": [volume],
        "executors": [
            sh(_swap_for_link("/v", str(canary.folder.parent))),
            sh(f"cat {volume}/secret.txt; echo pwned > {volume}/pwned.txt; ls -la {volume}"),
        ],
    })
    _planted_and_refused(task, "/v")
    assert_no_leak(task, canary=canary)


def test_an_input_file_swapped_for_a_link_is_not_bound(
    attacked: Tes, canary: HostCanary
) -> None:
    """A FILE input is its own bind source: replaced by a link to the canary file, the
    next executor would read it at the input's path."""
    task = attacked.run({
        "inputs": [{"path": "/in/data.txt", "content": "harmless"}],
        "executors": [
            sh("mv /tes-wd/shared/in /tes-wd/shared/in.old && mkdir /tes-wd/shared/in && "
               f"ln -s {canary.file} /tes-wd/shared/in/data.txt"),
            sh("cat /in/data.txt"),
        ],
    })
    _planted_and_refused(task, "/in/data.txt")
    assert_no_leak(task, canary=canary)


@pytest.mark.parametrize("stream", ["stdout", "stdin"])
def test_stdout_and_stdin_are_not_opened_through_a_link(
    attacked: Tes, canary: HostCanary, stream: str
) -> None:
    """``/out`` becomes a link to the canary folder; executor 1's stdout would overwrite
    the secret file, its stdin would feed it to the executor."""
    task = attacked.run({
        "volumes": ["/work"],
        "executors": [
            sh(f"mkdir -p /tes-wd/shared/out && rmdir /tes-wd/shared/out && "
               f"ln -s {canary.folder} /tes-wd/shared/out"),
            sh("cat", **{stream: "/out/secret.txt"}),
        ],
    })
    _planted_and_refused(task, "/out")
    assert_no_leak(task, canary=canary)


def test_staging_does_not_write_through_a_link_in_shared_global(
    attacked: Tes, canary: HostCanary
) -> None:
    """Task A leaves ``/tes-wd/shared-global/<x>`` as a link to the canary folder; task
    B's input under it would be written into the canary folder by the server."""
    name = f"drop-{token()}"
    first = attacked.run({
        "executors": [sh(f"ln -s {canary.folder} /tes-wd/shared-global/{name}")],
    })
    assert first["state"] in ("COMPLETE", *FAILED)
    second = attacked.run({
        "inputs": [
            {"path": f"/tes-wd/shared-global/{name}/secret.txt", "content": "overwritten"},
        ],
        "executors": [sh("true")],
    })
    assert second["state"] == "SYSTEM_ERROR", second["state"]
    if first["state"] == "COMPLETE":
        assert f"/{name} is a symbolic link" in system_logs(second), system_logs(second)
    assert_no_leak(first, second, canary=canary)


def test_outputs_are_not_read_through_a_swapped_task_root(
    attacked: Tes, canary: HostCanary, sentinel: LoopbackSentinel
) -> None:
    """The executor swaps ``/tes-wd/shared`` itself (every output's root) for a link to
    the canary folder: the output ``/secret.txt`` would be the canary's secret file."""
    task = attacked.run({
        "outputs": [{"path": "/secret.txt", "url": f"{sentinel.url}/{token()}"}],
        "executors": [sh(f"mv /tes-wd/shared /tes-wd/shared.old && "
                         f"ln -s {canary.folder} /tes-wd/shared")],
    })
    assert task["state"] in FAILED, task["state"]
    if executor_logs(task)[0].get("exit_code") == 0:
        assert "/tes-wd/shared is a symbolic link" in system_logs(task), system_logs(task)
    assert_no_leak(task, canary=canary)
