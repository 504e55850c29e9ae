"""task.json in, status.json out: bad input named, writes atomic, exit codes."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from runner_support import run_runner, sh, status, task_dir_for
from tes_filetransfer import TransferError

from tes_runner.events import Update
from tes_runner.status import StatusFile, read_status
from tes_runner.taskfile import BadTaskFile, load_task_file, parse_task_file

GOOD = {"task": {"id": "t1", "executors": [sh("true")]}, "attempt": 1, "runtime": "docker",
        "policy": {"local_dirs": [], "hosts": []}}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"task": None}, "'task'"),
        ({"task": {"id": "../x", "executors": [sh("true")]}}, "task.id"),
        ({"task": {"id": "t1", "executors": []}}, "task.executors"),
        ({"task": {"id": "t1", "executors": [{"image": "alpine", "command": "ls"}]}},
         "task.executors"),
        ({"attempt": 0}, "'attempt'"),
        ({"attempt": True}, "'attempt'"),
        ({"runtime": "lxc"}, "'runtime'"),
        ({"policy": None}, "'policy'"),
        ({"policy": {"local_dirs": ["relative/dir"]}}, "'policy'"),
        ({"transfer": {"paralel": 2}}, "transfer.paralel"),
        ({"transfer": {"parallel": 0}}, "'transfer'"),
        ({"shared_global": "rel"}, "'shared_global'"),
        ({"runtime_options": {"pids_limit": -1}}, "runtime_options.pids_limit"),
        ({"runtime_options": {"sandbox": 1}}, "runtime_options: unknown field 'sandbox'"),
        ({"network": 5}, "'network'"),
        ({"live_output_max": 1}, "'live_output_max'"),
        ({"live_output_max": "4MiB"}, "'live_output_max'"),
        ({"extra": 1}, "unknown field 'extra'"),
    ],
)
def test_bad_task_file_names_the_field(change: dict, field: str, tmp_path: Path) -> None:
    with pytest.raises(BadTaskFile) as info:
        parse_task_file({**GOOD, **change}, tmp_path)
    assert field in str(info.value)


def test_good_task_file_denies_the_task_folder(tmp_path: Path) -> None:
    parsed = parse_task_file(
        {**GOOD, "policy": {"local_dirs": [str(tmp_path)], "hosts": []},
         "transfer": {"parallel": 2, "cache_dir": str(tmp_path / "cache")},
         "runtime_options": {"pids_limit": 10}, "live_output_max": 1000},
        tmp_path / "task",
    )
    assert parsed.live_output_max == 1000
    assert parsed.task_id == "t1" and parsed.attempt == 1 and parsed.runtime == "docker"
    assert parsed.transfer.parallel == 2 and parsed.transfer.cache_dir == tmp_path / "cache"
    assert parsed.runtime_options.pids_limit == 10
    policy = parsed.transfer.policy
    policy.check_local(tmp_path / "data.txt")  # allowed
    with pytest.raises(TransferError, match="is refused"):
        policy.check_local(tmp_path / "task" / "status.json")


def test_shared_global_may_start_with_a_node_variable(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TES_TEST_MOUNTS_DIR", str(tmp_path / "mounts"))
    parsed = parse_task_file({**GOOD, "shared_global": "$TES_TEST_MOUNTS_DIR/share"},
                             tmp_path / "task")
    assert parsed.shared_global == tmp_path / "mounts" / "share"
    monkeypatch.delenv("TES_TEST_MOUNTS_DIR")
    with pytest.raises(BadTaskFile, match=r"\$TES_TEST_MOUNTS_DIR, which is not set"):
        parse_task_file({**GOOD, "shared_global": "$TES_TEST_MOUNTS_DIR/share"},
                        tmp_path / "task")
    monkeypatch.setenv("TES_TEST_RELATIVE", "relative")
    with pytest.raises(BadTaskFile, match="absolute path"):
        parse_task_file({**GOOD, "shared_global": "$TES_TEST_RELATIVE/share"}, tmp_path / "t")


def test_missing_or_broken_task_file(tmp_path: Path) -> None:
    with pytest.raises(BadTaskFile, match="does not exist"):
        load_task_file(tmp_path)
    (tmp_path / "task.json").write_text("{nope")
    with pytest.raises(BadTaskFile, match="not JSON"):
        load_task_file(tmp_path)


def test_command_exit_codes_for_files_it_cannot_use(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "task.json").write_text(json.dumps({**GOOD, "attempt": "one"}))
    result = run_runner(folder)
    assert result.returncode == 2, result
    assert "'attempt' must be a positive integer" in result.stderr
    assert not (folder / "status.json").exists()

    # status.json cannot be written (here: a folder is in its place).
    folder = task_dir_for(tmp_path, {"executors": [sh("true")]}, "docker")
    (folder / "status.json").mkdir()
    result = run_runner(folder)
    assert result.returncode == 1, result
    assert "cannot record the task's status" in result.stderr


def test_status_file_is_replaced_atomically(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    events = StatusFile(path)
    seen: list[str] = []
    stop = threading.Event()

    def read() -> None:  # a reader on the side never sees a partial document
        while not stop.is_set():
            if path.exists():
                seen.append(json.loads(path.read_text())["state"])

    reader = threading.Thread(target=read)
    reader.start()
    try:
        now = datetime.now(UTC)
        assert events.report(Update(state="INITIALIZING", start_time=now, new_attempt=True,
                                    metadata={"hostname": "n1"}))
        for i in range(200):
            events.report(Update(system_logs=[f"line {i}"]))
        events.report(Update(executor_logs=[{"exit_code": 0}]))
        assert events.report(Update(state="COMPLETE", end_time=now, outputs=[]))
        assert not events.report(Update(state="RUNNING"))  # nothing after a final state
    finally:
        stop.set()
        reader.join()
    assert set(seen) <= {"INITIALIZING", "COMPLETE"} and seen
    document = read_status(path)
    assert document is not None
    assert document["state"] == "COMPLETE" and document["final"] is True
    assert document["updated"].endswith("Z")
    log = document["log"]
    assert log["metadata"] == {"hostname": "n1"}
    assert len(log["system_logs"]) == 200 and log["logs"] == [{"exit_code": 0}]
    assert log["start_time"] and log["end_time"] and log["outputs"] == []
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]  # no temporary left


def test_a_final_status_is_not_run_again(tmp_path: Path) -> None:
    folder = task_dir_for(tmp_path, {"executors": [sh("exit 9")]}, "docker")
    (folder / "status.json").write_text(json.dumps(
        {"state": "COMPLETE", "final": True, "attempt": 1, "log": {}}
    ))
    before = os.stat(folder / "status.json").st_mtime_ns
    result = run_runner(folder)
    assert result.returncode == 0, result
    assert status(folder)["state"] == "COMPLETE"
    assert os.stat(folder / "status.json").st_mtime_ns == before
