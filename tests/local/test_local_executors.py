"""Executors of real tasks: volumes, workdir, env, stdio, order, exit codes, logs, resources.

Every test runs on each container runtime (see ``conftest.tes``).
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from tests.local.support import (
    ENGINES,
    HAPPY_PATH,
    Tes,
    executor_logs,
    is_subsequence,
    parse_time,
    sh,
    stdouts,
    system_logs,
    token,
)

pytestmark = pytest.mark.timeout(120)


def _engines_only(tes: Tes) -> None:
    if tes.runtime not in ENGINES:
        pytest.skip(f"{tes.runtime} has no container engine for this")


def test_volume_is_an_empty_folder_shared_by_executors(tes: Tes) -> None:
    task = tes.run({
        "volumes": ["/scratch", "/other/vol"],
        "executors": [
            sh("ls -A /scratch /other/vol | grep -v : | grep -c . ; echo one > /scratch/v.txt"),
            sh("cat /scratch/v.txt; touch /other/vol/w && echo ok", image="busybox"),
        ],
    })
    assert task["state"] == "COMPLETE", system_logs(task)
    assert stdouts(task) == ["0\n", "one\nok\n"]


def test_workdir(tes: Tes) -> None:
    task = tes.run({
        "volumes": ["/vol"],
        "executors": [
            sh("pwd; echo rel > here.txt", workdir="/vol/sub"),
            sh("pwd; cat /vol/sub/here.txt", workdir="/somewhere/new"),
        ],
    })
    assert task["state"] == "COMPLETE", system_logs(task)
    assert stdouts(task) == ["/vol/sub\n", "/somewhere/new\nrel\n"]


def test_env(tes: Tes) -> None:
    task = tes.run({
        "executors": [sh(
            'printf "%s|%s|%s" "$GREETING" "$SPECIAL" "${UNSET-unset}"',
            env={"GREETING": "hello world", "SPECIAL": "a=b;$HOME 'q'"},
        )],
    })
    assert task["state"] == "COMPLETE", system_logs(task)
    assert stdouts(task) == ["hello world|a=b;$HOME 'q'|unset"]


def test_stdin_from_input_and_stdout_stderr_to_output_files(tes: Tes, tmp_path: Path) -> None:
    task = tes.run({
        "inputs": [{"path": "/in/lines.txt", "content": "alpha\nbeta\n"}],
        "outputs": [
            {"path": "/out/std.out", "url": str(tmp_path / "std.out")},
            {"path": "/out/std.err", "url": str(tmp_path / "std.err")},
        ],
        "executors": [
            sh(
                "tr a-z A-Z; echo to-err >&2",
                stdin="/in/lines.txt",
                stdout="/out/std.out",
                stderr="/out/std.err",
            ),
            sh("cat /out/std.out /out/std.err"),
        ],
    })
    assert task["state"] == "COMPLETE", system_logs(task)
    assert (tmp_path / "std.out").read_text() == "ALPHA\nBETA\n"
    assert (tmp_path / "std.err").read_text() == "to-err\n"
    # The files were written before the next executor started; the tails are in the logs too.
    assert stdouts(task)[1] == "ALPHA\nBETA\nto-err\n"
    assert executor_logs(task)[0]["stdout"] == "ALPHA\nBETA\n"
    assert executor_logs(task)[0]["stderr"] == "to-err\n"


def test_executors_run_in_order(tes: Tes) -> None:
    task = tes.run({
        "volumes": ["/v"],
        "executors": [sh(f"sleep 0.2; echo {i} >> /v/order; cat /v/order") for i in range(3)],
    })
    assert task["state"] == "COMPLETE", system_logs(task)
    assert stdouts(task)[-1] == "0\n1\n2\n"
    logs = executor_logs(task)
    assert len(logs) == 3
    for before, after in zip(logs, logs[1:], strict=False):
        assert parse_time(before["end_time"]) <= parse_time(after["start_time"])


def test_nonzero_exit_is_executor_error_and_later_executors_do_not_run(tes: Tes) -> None:
    marker = token()
    task = tes.run({
        "executors": [
            sh("echo before; exit 3"),
            sh(f"touch /tes-wd/shared-global/{marker}"),
        ],
    })
    assert task["state"] == "EXECUTOR_ERROR"
    assert [e["exit_code"] for e in executor_logs(task)] == [3]
    assert "exited with code 3" in system_logs(task)
    time.sleep(0.5)
    assert not (tes.data_dir / "shared-global" / marker).exists()


def test_ignore_error_continues(tes: Tes) -> None:
    task = tes.run({
        "executors": [
            sh("exit 5", ignore_error=True),
            sh("echo after"),
        ],
    })
    assert task["state"] == "COMPLETE", system_logs(task)
    assert [e["exit_code"] for e in executor_logs(task)] == [5, 0]
    assert stdouts(task)[1] == "after\n"


def test_executor_logs_and_views(tes: Tes) -> None:
    task = tes.run({"executors": [sh("echo out-line; echo err-line >&2; exit 0")]})
    assert task["state"] == "COMPLETE", system_logs(task)
    attempt = task["logs"][-1]
    start, end = parse_time(attempt["start_time"]), parse_time(attempt["end_time"])
    assert start <= end
    (entry,) = attempt["logs"]
    assert type(entry["exit_code"]) is int and entry["exit_code"] == 0
    assert start <= parse_time(entry["start_time"]) <= parse_time(entry["end_time"]) <= end
    assert entry["stdout"] == "out-line\n"
    assert entry["stderr"] == "err-line\n"
    assert attempt["outputs"] == []

    basic = tes.get(task["id"], "BASIC")
    (basic_entry,) = basic["logs"][-1]["logs"]
    assert "stdout" not in basic_entry and "stderr" not in basic_entry
    assert basic_entry["exit_code"] == 0 and type(basic_entry["exit_code"]) is int
    assert "system_logs" not in basic["logs"][-1]
    assert basic["executors"] == task["executors"]
    assert tes.get(task["id"], "MINIMAL") == {"id": task["id"], "state": "COMPLETE"}


def test_state_sequence(tes: Tes) -> None:
    task_id = tes.submit({"executors": [sh("sleep 1")]})
    seen: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = tes.get(task_id, "FULL")["state"]
        if not seen or seen[-1] != state:
            seen.append(state)
        if state in ("COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED"):
            break
    assert seen[-1] == "COMPLETE", seen
    assert is_subsequence(seen, HAPPY_PATH), seen
    assert "RUNNING" in seen, seen  # a one-second executor cannot be missed


def test_memory_limit_stops_a_memory_hog(tes: Tes) -> None:
    if tes.runtime not in ENGINES:
        task = tes.run({"resources": {"ram_gb": 0.05}, "executors": [sh("true")]})
        assert task["state"] == "COMPLETE", system_logs(task)
        assert "cannot apply cpu_cores or ram_gb" in system_logs(task)
        return
    task = tes.run({
        "resources": {"ram_gb": 0.05},
        "executors": [
            sh("dd if=/dev/zero of=/dev/null bs=1M count=1", ignore_error=True),
            sh("dd if=/dev/zero of=/dev/null bs=256M count=1"),
        ],
    })
    codes = [e["exit_code"] for e in executor_logs(task)]
    assert codes[0] == 0, task  # a small allocation fits in the limit
    assert task["state"] == "EXECUTOR_ERROR", system_logs(task)
    assert codes[1] != 0


CPU_QUOTA = (
    "cat /sys/fs/cgroup/cpu.max 2>/dev/null || "
    "echo $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)"
)


def test_cpu_cores_limit(tes: Tes) -> None:
    task = tes.run({"resources": {"cpu_cores": 1}, "executors": [sh(CPU_QUOTA)]})
    assert task["state"] == "COMPLETE", system_logs(task)
    if tes.runtime not in ENGINES:
        assert "cannot apply cpu_cores or ram_gb" in system_logs(task)
        return
    # The engine applies cpu_cores as a CFS quota; read it from the container's cgroup
    # (v2 cpu.max or v1 cfs files). nproc is not affected by a quota, so it is not checked.
    fields = stdouts(task)[0].split()
    if len(fields) != 2 or not all(f.isdigit() for f in fields):
        pytest.skip(f"the container's cgroup CPU quota is not readable here: {fields}")
    quota, period = map(int, fields)
    assert quota / period == pytest.approx(1.0)


def test_more_cpu_cores_than_the_machine_has(tes: Tes) -> None:
    _engines_only(tes)
    wanted = (os.cpu_count() or 1) + 1
    task = tes.run({"resources": {"cpu_cores": wanted}, "executors": [sh(CPU_QUOTA)]})
    assert task["state"] == "COMPLETE", system_logs(task)
    assert "cpu_cores" in system_logs(task)


def test_image_that_does_not_exist_is_system_error(tes: Tes) -> None:
    _engines_only(tes)
    # A registry on a closed 127.0.0.1 port: the pull fails without leaving this machine.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    image = f"127.0.0.1:{port}/tes-tests/no-such-image:{token()}"
    task = tes.run({"executors": [sh("true", image=image)]}, timeout=90)
    assert task["state"] == "SYSTEM_ERROR"
    assert image in system_logs(task)
    assert executor_logs(task) == []


def test_missing_command_is_executor_error_with_127(tes: Tes) -> None:
    """Not a SYSTEM_ERROR: an executor log with 127 and the engine's message as stderr."""
    missing = f"no-such-command-{token()}"
    task = tes.run({"executors": [
        {"image": "alpine", "command": [missing, "arg"]},
        sh("echo never"),
    ]})
    assert task["state"] == "EXECUTOR_ERROR", system_logs(task)
    (entry,) = executor_logs(task)
    assert entry["exit_code"] == 127
    assert missing in entry["stderr"]
    assert entry["start_time"] and entry["end_time"]
    assert f"its command '{missing}' was not found (exit code 127)" in system_logs(task)
    basic = tes.get(task["id"], "BASIC")
    assert [e["exit_code"] for e in basic["logs"][-1]["logs"]] == [127]


def test_missing_command_with_ignore_error_goes_on(tes: Tes) -> None:
    missing = f"/no/such/{token()}"
    task = tes.run({
        "volumes": ["/data"],
        "executors": [
            {"image": "alpine", "command": [missing], "ignore_error": True,
             "stderr": "/data/err.txt"},
            sh("cat /data/err.txt"),
        ],
    })
    assert task["state"] == "COMPLETE", system_logs(task)
    assert [e["exit_code"] for e in executor_logs(task)] == [127, 0]
    assert missing in stdouts(task)[1]  # the executor's own stderr file has the message
    assert stdouts(task)[1] == executor_logs(task)[0]["stderr"]


def test_command_that_is_not_executable_is_126(tes: Tes) -> None:
    task = tes.run({
        "volumes": ["/data"],
        "executors": [
            sh("printf 'echo hi\\n' > /data/script; chmod 644 /data/script"),
            {"image": "alpine", "command": ["/data/script"]},
        ],
    })
    assert task["state"] == "EXECUTOR_ERROR", system_logs(task)
    assert [e["exit_code"] for e in executor_logs(task)] == [0, 126]
    assert "/data/script" in executor_logs(task)[1]["stderr"]
    assert "'/data/script' is not executable (exit code 126)" in system_logs(task)
