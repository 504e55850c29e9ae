"""Class 1 (local paths and ``file://`` URLs reach the whole host), on a real server.

The server runs with the embedded defaults (auth off: ``/tmp`` and its start directory
are allowed; its data folder, cache and task folders never). An input naming a host file
outside those folders, the server's own process environment, its database or another
task's folder is refused before anything is copied, and the task ends SYSTEM_ERROR
naming ``TES_ALLOWED_LOCAL_DIRS``; an output to a folder outside them writes nothing.
The access policy is the same code for every runtime, so one runtime (Docker) is enough.
"""

from __future__ import annotations

import os

import pytest

from tests.local.support import Tes, sh, system_logs, token
from tests.security.support import HostCanary, assert_no_leak

ON_ONE_RUNTIME = pytest.mark.parametrize("attacked", ["docker"], indirect=True)


def _input_task(url: str, **extra: object) -> dict:
    return {
        "name": f"local-path-attack-{token()}",
        "inputs": [{"url": url, "path": "/in/x", **extra}],
        "executors": [sh("cat /in/x; ls -R /in")],
    }


def _assert_refused(task: dict, *needles: str) -> None:
    assert task["state"] == "SYSTEM_ERROR", task["state"]
    logs = system_logs(task)
    assert any(needle in logs for needle in needles), logs
    assert not task["logs"][-1].get("logs"), "an executor ran"


@ON_ONE_RUNTIME
def test_host_files_are_not_inputs(attacked: Tes, canary: HostCanary) -> None:
    for url in (canary.url, str(canary.file), f"file://localhost{canary.file}",
                f"/tmp/../{canary.file}", "/proc/self/environ", "file:///etc/shadow"):
        task = attacked.run(_input_task(url))
        _assert_refused(task, "TES_ALLOWED_LOCAL_DIRS", "/proc, /sys and /dev")
        assert_no_leak(task, canary=canary)


@ON_ONE_RUNTIME
def test_server_database_and_task_folders_are_not_inputs(
    attacked: Tes, canary: HostCanary
) -> None:
    # A running task holding a secret in its folder: another task must not read it.
    secret = f"other-task-secret-{token()}"
    victim = attacked.submit({
        "inputs": [{"path": "/data/secret.txt", "content": secret}],
        "executors": [sh("sleep 30")],
    })
    attacked.wait(victim, {"RUNNING"}, timeout=60)
    victim_file = attacked.data_dir / "tasks" / victim / "tes-wd/shared/data/secret.txt"
    try:
        for url in (str(attacked.data_dir / "tes.sqlite3"), f"file://{victim_file}",
                    str(victim_file.parent)):
            kind = {"type": "DIRECTORY"} if url == str(victim_file.parent) else {}
            task = attacked.run(_input_task(url, **kind))
            _assert_refused(task, "server's own folders")
            assert_no_leak(task, canary=canary)
            assert secret not in str(task)
    finally:
        attacked.cancel(victim)


@ON_ONE_RUNTIME
def test_outputs_never_write_outside_the_allowed_folders(
    attacked: Tes, canary: HostCanary
) -> None:
    for url in (f"file://{canary.folder}/new.txt", str(canary.file),
                f"file://{canary.folder}/sub/new.txt", f"/tmp/../{canary.folder}/x.txt"):
        task = attacked.run({
            "outputs": [{"path": "/out/o.txt", "url": url}],
            "executors": [sh("mkdir -p /out && echo overwritten > /out/o.txt")],
        })
        assert task["state"] == "SYSTEM_ERROR", task["state"]
        assert "TES_ALLOWED_LOCAL_DIRS" in system_logs(task)
    # the canary fixture checks that its folder is untouched


@ON_ONE_RUNTIME
def test_directory_input_never_copies_into_itself(attacked: Tes, canary: HostCanary) -> None:
    # The data folder lives in pytest's temporary folder under /tmp (allowed): copying that
    # temporary folder must skip the server's folders instead of copying the task into itself.
    source = attacked.data_dir.parent
    task = attacked.run({
        "inputs": [{"url": str(source), "path": "/in", "type": "DIRECTORY"}],
        "executors": [sh(f"find /in -path '*{attacked.data_dir.name}*' | wc -l")],
    }, timeout=120)
    assert task["state"] == "COMPLETE", system_logs(task)
    assert task["logs"][-1]["logs"][0]["stdout"].strip() == "0"
    assert_no_leak(task, canary=canary)


def test_server_policy_defaults(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """Auth off: /tmp and the start directory; auth on: nothing local unless listed; the
    data folder, cache, task folders and database are denied whatever is allowed."""
    from tes_core.config import Settings
    from tes_core.storage_policy import access_policy

    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    open_ = access_policy(Settings(data_dir=data, local_cache_dir=str(tmp_path / "c")))
    assert set(open_.local_dirs) == {os.path.realpath("/tmp"), str(tmp_path.resolve())}
    for denied in (data / "tasks/x", data / "tes.sqlite3", tmp_path / "c/entry"):
        assert open_.is_denied(str(denied.resolve()))
    assert access_policy(Settings(data_dir=data, auth_enabled=True)).local_dirs == ()
    listed = access_policy(Settings(data_dir=data, auth_enabled=True,
                                    allowed_local_dirs=(str(tmp_path),)))
    assert listed.local_dirs == (str(tmp_path.resolve()),)
    assert listed.network.setting == "TES_ALLOWED_HOSTS"
    assert listed.dirs_setting == "TES_ALLOWED_LOCAL_DIRS"
