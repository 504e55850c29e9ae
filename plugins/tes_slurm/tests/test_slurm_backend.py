"""The Slurm backend's pieces: the batch script, parameter checks, what a job's state and
the runner's status file become, and (on the real test Slurm) the cost of a poll."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("tes_slurm")

from tes_core.backends.base import BackendContext, TaskRecord  # noqa: E402
from tes_core.config import ConfigError, Settings  # noqa: E402
from tests.signing import UNSIGNED_INPUT, CountingSigner, signed_url  # noqa: E402

from tes_slurm import jobscript  # noqa: E402
from tes_slurm.backend import SlurmBackend  # noqa: E402
from tes_slurm.observe import observe  # noqa: E402
from tes_slurm.parse import JobInfo  # noqa: E402
from tes_slurm.snapshot import Lookup  # noqa: E402
from tes_slurm.taskdir import TaskFolder  # noqa: E402
from tes_slurm.watch import StatusWatch  # noqa: E402


def record(task_id: str, document: dict[str, Any] | None = None, *, state: str = "QUEUED",
           logs: list | None = None, ref: str | None = None) -> TaskRecord:
    return TaskRecord(
        id=task_id, state=state,
        document=document or {"executors": [{"image": "busybox", "command": ["true"]}]},
        creation_time=datetime.now(UTC), logs=logs if logs is not None else [{}],
        backend_ref=ref,
    )


# -- the batch script ---------------------------------------------------------------------


def test_resources_and_parameters_become_sbatch_options() -> None:
    document = {"resources": {
        "cpu_cores": 4, "ram_gb": 1.5, "disk_gb": 10, "preemptible": True,
        "backend_parameters": {"qos": "high", "time_limit": "1-12:00:00", "gres": "gpu:a100:1",
                               "constraint": "avx512&ib"},
    }}
    options = jobscript.sbatch_options(
        document, {"partition": "main", "account": "lab", "qos": "normal", "time_limit": "60"},
        {"partition": "spot", "qos": "scavenger"},
    )
    assert options == [
        ("cpus-per-task", "4"), ("mem", "1536M"), ("tmp", "10240M"),
        ("partition", "spot"), ("account", "lab"), ("qos", "high"), ("time", "1-12:00:00"),
        ("constraint", "avx512&ib"), ("gres", "gpu:a100:1"),
    ]
    assert jobscript.sbatch_options({}, {"partition": "main"}, {"partition": "spot"}) == [
        ("partition", "main")]


def test_the_script_is_readable_and_names_task_and_attempt() -> None:
    text = jobscript.render(
        task_id="t1", attempt=2, name="tes-t1-a2", folder="/scratch/tes/t1",
        options=[("mem", "512M")], runner="/opt/tes/bin/tes-runner",
        prologue="module load apptainer",
    )
    assert text.startswith("#!/bin/bash\n")
    assert "#SBATCH --job-name=tes-t1-a2\n" in text
    assert "#SBATCH --comment=tes-task=t1,attempt=2\n" in text
    assert "#SBATCH --mem=512M\n" in text
    assert "module load apptainer\n" in text
    assert text.rstrip().endswith("exec /opt/tes/bin/tes-runner run /scratch/tes/t1")


@pytest.mark.parametrize("key, value", [
    ("time_limit", "1\n#SBATCH --uid=0"), ("time_limit", "forever"), ("time_limit", "1-"),
    ("partition", "a b"), ("partition", "-p"), ("account", "x" * 65), ("qos", "$(id)"),
    ("constraint", "a b"), ("constraint", "x\ny"), ("gres", "gpu:2;rm"), ("gres", "gpu 2"),
])
def test_hostile_parameters_are_refused_naming_the_field(key: str, value: str) -> None:
    with pytest.raises(ValueError, match=rf"^backend_parameters\.{key}="):
        jobscript.validate({key: value})


@pytest.mark.parametrize("value", ["30", "10:00", "1:00:00", "2-0", "2-12:30", "7-00:00:00",
                                   "UNLIMITED"])
def test_slurm_time_formats_are_taken(value: str) -> None:
    jobscript.validate({"time_limit": value})


def test_bad_settings_stop_start_up(tmp_path: Path) -> None:
    for name, value in [("TES_SLURM_RUNTIME", "lxc"), ("TES_SLURM_PARTITION", "a b"),
                        ("TES_SLURM_MAX_ATTEMPTS", "0"), ("TES_SLURM_JOB_PREFIX", "a/b"),
                        ("TES_SLURM_PREEMPTIBLE_QOS", "x\n#SBATCH -A y")]:
        settings = Settings.from_env({name: value}, data_dir=tmp_path)
        with pytest.raises(ConfigError, match=name):
            SlurmBackend(BackendContext(settings, reporter=None, worker_id="w"))  # type: ignore[arg-type]


# -- from a job's state and status.json to an observation ---------------------------------


def status(folder: TaskFolder, state: str, *, final: bool, **log: Any) -> None:
    folder.write_json("status.json", {"state": state, "final": final, "updated": "x",
                                      "log": log})


def look(task: TaskRecord, folder: TaskFolder, state: str | None, *, gone: bool = False,
         resubmitted: list[int] | None = None, reason: str | None = None):
    job = JobInfo("7", state, "tes-x", reason) if state else None
    asked = resubmitted if resubmitted is not None else []
    return observe(task, Lookup(job, gone=gone), folder,
                   resubmit=lambda n: asked.append(n) or "8", max_attempts=2)


def test_final_runner_states_win(tmp_path: Path) -> None:
    folder = TaskFolder(tmp_path, "t1")
    status(folder, "COMPLETE", final=True, start_time="2026-01-01T00:00:00Z",
           end_time="2026-01-01T00:00:05Z", logs=[{"exit_code": 0, "stdout": "hi"}],
           outputs=[{"url": "file:///x", "path": "/x", "size_bytes": "1"}],
           system_logs=["staged 1 input"])
    seen = look(record("t1", ref="7"), folder, "COMPLETED")
    assert seen.state == "COMPLETE" and seen.executor_logs[0]["stdout"] == "hi"
    assert seen.outputs and seen.end_time and seen.system_logs == ["staged 1 input"]
    # Already shown lines are not repeated.
    again = look(record("t1", ref="7", logs=[{"system_logs": ["staged 1 input"]}]), folder,
                 "COMPLETED")
    assert again.system_logs == []


def test_pending_reason_is_reported_once(tmp_path: Path) -> None:
    folder = TaskFolder(tmp_path, "t2")
    seen = look(record("t2", ref="7"), folder, "PENDING", reason="Priority")
    assert seen.waiting_reason.startswith("Slurm job 7 is pending: Priority (")
    shown = record("t2", ref="7", logs=[{"metadata": {"waiting_reason": seen.waiting_reason}}])
    assert look(shown, folder, "PENDING", reason="Priority") is None


@pytest.mark.parametrize("slurm_state, runner_state, words", [
    ("TIMEOUT", "CANCELED", "time limit"), ("NODE_FAIL", None, "node failed"),
    ("OUT_OF_MEMORY", "RUNNING", "out of memory"), ("CANCELLED", "CANCELED", "outside TES"),
    ("FAILED", None, "without its runner recording a final state"),
])
def test_slurm_endings_are_system_errors_with_the_reason(
    tmp_path: Path, slurm_state: str, runner_state: str | None, words: str
) -> None:
    folder = TaskFolder(tmp_path, "t3")
    if runner_state:
        status(folder, runner_state, final=runner_state == "CANCELED",
               logs=[{"exit_code": None, "stdout": "partial"}])
    seen = look(record("t3", state="RUNNING", ref="7"), folder, slurm_state)
    assert seen.state == "SYSTEM_ERROR"
    assert words in seen.system_logs[-1]
    if runner_state:
        assert seen.executor_logs[0]["stdout"] == "partial"


def test_preemption_starts_a_new_attempt_then_ends_preempted(tmp_path: Path) -> None:
    folder = TaskFolder(tmp_path, "t4")
    asked: list[int] = []
    seen = look(record("t4", state="RUNNING", ref="7", logs=[{"start_time": "x"}]), folder,
                "PREEMPTED", resubmitted=asked)
    assert asked == [2] and seen.new_attempt and seen.backend_ref == "8"
    last = look(record("t4", state="RUNNING", ref="8", logs=[{}, {}]), folder, "PREEMPTED")
    assert last.state == "PREEMPTED"


def test_our_own_cancel_is_left_to_cancel(tmp_path: Path) -> None:
    folder = TaskFolder(tmp_path, "t5")
    assert look(record("t5", state="CANCELING", ref="7"), folder, "CANCELLED") is None


def test_a_job_slurm_forgot(tmp_path: Path) -> None:
    folder = TaskFolder(tmp_path, "t6")
    assert look(record("t6", ref="7"), folder, None) is None  # not asked yet: wait
    assert look(record("t6", ref="7"), folder, None, gone=True).state == "SYSTEM_ERROR"


# -- on the real test Slurm: what a poll costs --------------------------------------------



def test_the_status_watch_hands_over_a_recorded_end_once(tmp_path: Path) -> None:
    ended: list[str] = []
    watch = StatusWatch(lambda task_id: TaskFolder(tmp_path, task_id), ended.append,
                        interval=1.0, keep_for=60.0)
    for task_id in ("done", "running", "cancelled", "unwritten"):
        watch.follow(task_id)
    status(TaskFolder(tmp_path, "done"), "RUNNING", final=False)
    status(TaskFolder(tmp_path, "running"), "RUNNING", final=False)
    status(TaskFolder(tmp_path, "cancelled"), "CANCELED", final=True)
    assert watch.look() == [] and ended == []

    status(TaskFolder(tmp_path, "done"), "COMPLETE", final=True)
    assert watch.look() == ["done"] and ended == ["done"]
    assert watch.following() == {"running", "cancelled", "unwritten"}  # "done" is dropped
    assert watch.look() == [] and ended == ["done"]  # handed over once

    watch.keep_for = 0.0  # no pass followed them again: they are dropped
    time.sleep(0.01)
    watch.look()
    assert watch.following() == set()


def test_the_status_watch_follows_jobs_that_may_run_not_waiting_ones(
    tmp_path: Path,
) -> None:
    settings = Settings.from_env({"TES_SLURM_WORKDIR": str(tmp_path)}, data_dir=tmp_path)
    backend = SlurmBackend(BackendContext(settings, reporter=None, worker_id="w"))  # type: ignore[arg-type]
    assert backend.watch is not None
    backend._watch(record("r", state="RUNNING"), JobInfo("7", "RUNNING", "n", None))
    backend._watch(record("q", state="QUEUED"), None)  # submitted, not seen by Slurm yet
    backend._watch(record("p"), JobInfo("8", "PENDING", "n", "Priority"))
    assert backend.watch.following() == {"r", "q"}
    backend._watch(record("r", state="CANCELING"), JobInfo("7", "RUNNING", "n", None))
    assert backend.watch.following() == {"q"}
    off = Settings.from_env({"TES_SLURM_WORKDIR": str(tmp_path),
                             "TES_SLURM_STATUS_WATCH": "0"}, data_dir=tmp_path)
    assert SlurmBackend(BackendContext(off, reporter=None, worker_id="w")).watch is None  # type: ignore[arg-type]


@pytest.fixture
def backend(tmp_path: Path) -> SlurmBackend:
    if not os.environ.get("TES_TEST_SLURM"):
        pytest.skip("no test Slurm (scripts/slurm-services.sh)")
    settings = Settings.from_env({
        "TES_SLURM_WORKDIR": str(tmp_path / "tasks"), "TES_SLURM_RUNNER": "/bin/true",
        "TES_SLURM_JOB_PREFIX": f"tesu{os.getpid()}-",
    }, data_dir=tmp_path)
    backend = SlurmBackend(BackendContext(settings, reporter=None, worker_id="w"))  # type: ignore[arg-type]
    backend.start()
    return backend


def test_a_poll_costs_at_most_two_commands_and_submit_is_idempotent(
    backend: SlurmBackend, caplog: pytest.LogCaptureFixture
) -> None:
    closed = {"executors": [{"image": "busybox", "command": ["true"]}],
              "resources": {"backend_parameters": {"partition": "closed"}}}
    tasks = [record(f"u{n}-{os.getpid()}", closed) for n in range(3)]
    caplog.set_level("DEBUG", logger="tes_slurm.shell")
    refs = [backend.submit(t) for t in tasks]
    try:
        commands = [r.getMessage() for r in caplog.records if "sbatch" in r.getMessage()]
        assert len(commands) == 3 and not any("squeue" in c for c in commands)  # no script yet
        caplog.clear()
        assert backend.submit(tasks[0]) == refs[0]  # a repeated submit finds the job
        assert "squeue" in caplog.records[-1].getMessage()
        records = [record(t.id, closed, ref=r) for t, r in zip(tasks, refs, strict=True)]
        records.append(record("forgotten", ref="99999999"))
        before = backend.shell.calls
        seen = {o.task_id: o for o in backend.poll(records)}
        assert backend.shell.calls - before == 2  # squeue + sacct (for the unknown job)
        assert all("PartitionDown" in seen[t.id].waiting_reason for t in tasks)
        assert seen["forgotten"].state == "SYSTEM_ERROR"
        backend.poll(records[:1])  # another batch of the same pass: no command
        assert backend.shell.calls - before == 2
        script = backend.folder(tasks[0].id).script(1).read_text()
        assert "#SBATCH --partition=closed" in script
        assert json.loads((backend.folder(tasks[0].id).path / "task.json").read_text())[
            "task"]["id"] == tasks[0].id
    finally:
        for t, r in zip(tasks, refs, strict=True):
            assert backend.cancel(record(t.id, state="CANCELING", ref=r))
            assert not backend.folder(t.id).path.exists()
    left = subprocess.run(["squeue", "-h", "-j", ",".join(refs), "-o", "%T"],
                          capture_output=True, text=True).stdout.split()
    assert set(left) <= {"CANCELLED"}


def test_each_attempt_gets_urls_signed_for_it(backend: SlurmBackend) -> None:
    """A new attempt's ``task.json`` has the task's URLs signed again."""
    backend.context.prepare_task = CountingSigner()
    closed = {"executors": [{"image": "busybox", "command": ["true"]}],
              "inputs": [UNSIGNED_INPUT],
              "resources": {"backend_parameters": {"partition": "closed"}}}
    task = record(f"signed-{os.getpid()}", closed)
    task_file = backend.folder(task.id).path / "task.json"
    refs = [backend.submit(task)]
    try:
        assert json.loads(task_file.read_text())["task"]["inputs"][0]["url"] == signed_url(1)
        refs.append(backend.submit_attempt(task, 2))
        assert json.loads(task_file.read_text())["task"]["inputs"][0]["url"] == signed_url(2)
    finally:
        for ref in refs:
            backend.cancel(record(task.id, state="CANCELING", ref=ref))


def test_the_job_does_not_inherit_the_servers_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not os.environ.get("TES_TEST_SLURM"):
        pytest.skip("no test Slurm (scripts/slurm-services.sh)")
    monkeypatch.setenv("TES_STORAGE_CONNECTION_STRING", "AccountKey=not-for-jobs")
    settings = Settings.from_env({
        "TES_SLURM_WORKDIR": str(tmp_path / "tasks"), "TES_SLURM_RUNNER": "/bin/true",
        "TES_SLURM_PROLOGUE": "env > env.txt",
    }, data_dir=tmp_path)
    backend = SlurmBackend(BackendContext(settings, reporter=None, worker_id="w"))  # type: ignore[arg-type]
    backend.start()
    task = record(f"env-{os.getpid()}")
    backend.submit(task)
    seen = backend.folder(task.id).path / "env.txt"
    deadline = time.monotonic() + 60
    while not (seen.exists() and "PATH=" in seen.read_text()):
        assert time.monotonic() < deadline, "the job did not run within 60 s"
        time.sleep(0.2)
    assert "not-for-jobs" not in seen.read_text()
    assert "SLURM_JOB_ID=" in seen.read_text()



def unreachable_controller(conf: Path, original: Path) -> None:
    """Write ``conf``: the test Slurm's configuration ``original`` with a controller port
    nobody serves (the shared Slurm itself keeps running)."""
    lines = original.read_text().splitlines()
    changed = ["SlurmctldPort=1" if line.startswith("SlurmctldPort=") else line
               for line in lines]
    assert changed != lines  # the port line was there to change
    conf.write_text("\n".join(changed) + "\n")


def test_readiness_follows_whether_slurm_answers(
    backend: SlurmBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Path(os.environ["SLURM_CONF"])
    conf = tmp_path / "slurm.conf"
    conf.write_text(original.read_text())
    monkeypatch.setenv("SLURM_CONF", str(conf))
    backend.health.recheck = 0  # probe at every call
    assert backend.unready_reason() is None

    unreachable_controller(conf, original)
    reason = backend.unready_reason()
    assert reason is not None
    assert reason.startswith("Slurm does not answer on this machine: squeue on this machine")
    assert "Unable to contact slurm controller" in reason or "no answer within 5 s" in reason

    conf.write_text(original.read_text())  # the controller answers again
    assert backend.unready_reason() is None

    tools = tmp_path / "bin"  # a PATH with squeue but no sbatch
    tools.mkdir()
    for name in ("sh", "squeue"):
        (tools / name).symlink_to(subprocess.run(
            ["sh", "-c", f"command -v {name}"], capture_output=True, text=True, check=True
        ).stdout.strip())
    monkeypatch.setenv("PATH", str(tools))
    reason = backend.unready_reason()
    assert reason is not None and reason.endswith("sbatch: not found on the PATH")


def test_a_probe_answer_is_reused_for_a_while(backend: SlurmBackend) -> None:
    before = backend.health.shell.calls
    assert backend.unready_reason() is None
    assert backend.unready_reason() is None  # within RECHECK seconds: no second probe
    assert backend.health.shell.calls - before == 1
    assert backend.shell.calls == 1  # the probes do not count as the reconcile's commands


def test_an_apptainer_job_without_apptainer_on_the_node_is_a_system_error_saying_so(
    tmp_path: Path,
) -> None:
    # Apptainer cannot be installed here: the job runs the real runner, which finds no
    # apptainer on the node and records why (the command line it would run is tested in
    # runner/tests/test_apptainer.py).
    if not os.environ.get("TES_TEST_SLURM"):
        pytest.skip("no test Slurm (scripts/slurm-services.sh)")
    runner = Path(sys.executable).parent / "tes-runner"
    if not runner.exists():
        pytest.skip("tes-runner is not installed in this environment")
    settings = Settings.from_env({
        "TES_SLURM_WORKDIR": str(tmp_path / "tasks"), "TES_SLURM_RUNNER": str(runner),
        "TES_SLURM_RUNTIME": "apptainer", "TES_SLURM_JOB_PREFIX": f"tesa{os.getpid()}-",
        "TES_SLURM_PROLOGUE": "export PATH=/usr/local/bin:/usr/bin:/bin",
    }, data_dir=tmp_path)
    backend = SlurmBackend(BackendContext(settings, reporter=None, worker_id="w"))  # type: ignore[arg-type]
    backend.start()
    task = record(f"app-{os.getpid()}")
    ref = backend.submit(task)
    assert json.loads((backend.folder(task.id).path / "task.json").read_text())[
        "runtime"] == "apptainer"
    running = record(task.id, state="INITIALIZING", ref=ref)
    deadline = time.monotonic() + 120
    while True:
        observation = backend.refresh(running)
        if observation is not None and observation.state == "SYSTEM_ERROR":
            break
        assert time.monotonic() < deadline, "the job recorded no final state within 120 s"
        time.sleep(0.5)
    reason = " ".join(observation.system_logs)
    assert "'apptainer' is not usable" in reason and "install Apptainer" in reason, reason
