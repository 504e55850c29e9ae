"""``tes-runner run TASK_DIR`` for real: Docker, podman and bubblewrap, files through
file:// and moto's S3, ignore_error, a missing command, SIGTERM, a second run after a
crash."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from pathlib import Path

import boto3
import pytest
from runner_support import (
    S3_ENDPOINT,
    require_runtime,
    run_runner,
    sh,
    start_runner,
    status,
    task_dir_for,
    wait_for,
)

pytestmark = pytest.mark.timeout(300)

RUNTIME_NAMES = ("docker", "podman", "bubblewrap")


@pytest.fixture
def bucket() -> str:
    """A fresh bucket in moto's S3 (scripts/test-services.sh starts it)."""
    client = boto3.client("s3", endpoint_url=S3_ENDPOINT, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
    name = f"runner-{uuid.uuid4().hex[:10]}"
    try:
        client.create_bucket(Bucket=name)
    except Exception as exc:  # the service is down
        if os.environ.get("CI"):
            raise
        pytest.skip(f"moto S3 does not answer at {S3_ENDPOINT}: {exc}")
    return name


def _s3_object(bucket: str, key: str) -> bytes:
    client = boto3.client("s3", endpoint_url=S3_ENDPOINT, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()


@pytest.mark.parametrize("runtime", RUNTIME_NAMES)
def test_a_task_with_inputs_outputs_and_ignore_error(
    runtime: str, tmp_path: Path, bucket: str
) -> None:
    require_runtime(runtime)
    data = tmp_path / "data"
    data.mkdir()
    (data / "in.txt").write_text("hello runner\n")
    task = {
        "inputs": [
            {"url": f"file://{data}/in.txt", "path": "/data/in.txt"},
            {"content": "inline\n", "path": "/data/inline.txt"},
        ],
        "outputs": [
            {"url": f"file://{data}/up.txt", "path": "/out/up.txt"},
            {"url": f"s3://{bucket}/results/up.txt", "path": "/out/up.txt"},
        ],
        "executors": [
            sh("tr a-z A-Z < /data/in.txt > /out/up.txt; echo first; exit 3", ignore_error=True),
            sh("cat /out/up.txt /data/inline.txt; echo oops >&2"),
        ],
    }
    folder = task_dir_for(tmp_path / "tasks", task, runtime, allowed=[data])
    result = run_runner(folder)
    assert result.returncode == 0, result.stderr
    document = status(folder)
    assert document["state"] == "COMPLETE", document
    assert document["final"] is True
    log = document["log"]
    assert [e["exit_code"] for e in log["logs"]] == [3, 0]
    assert log["logs"][0]["stdout"] == "first\n"
    assert log["logs"][1]["stdout"] == "HELLO RUNNER\ninline\n"
    assert log["logs"][1]["stderr"] == "oops\n"
    assert log["metadata"]["runtime"] == runtime
    assert log["start_time"] < log["end_time"]
    assert sorted(o["url"] for o in log["outputs"]) == sorted(
        [f"file://{data}/up.txt", f"s3://{bucket}/results/up.txt"]
    )
    assert all(o["path"] == "/out/up.txt" and o["size_bytes"] == "13" for o in log["outputs"])
    assert (data / "up.txt").read_text() == "HELLO RUNNER\n"
    assert _s3_object(bucket, "results/up.txt") == b"HELLO RUNNER\n"
    assert not (folder / "work").exists()  # removed after the run
    if runtime in ("docker", "podman"):  # containers removed before the command exits
        listed = subprocess.run(
            [runtime, "ps", "-a", "-q", "--filter", f"name=^tes-{folder.name}-"],
            capture_output=True, text=True, check=True,
        )
        assert listed.stdout.strip() == ""


@pytest.mark.parametrize("runtime", RUNTIME_NAMES)
def test_a_missing_command_is_an_executor_error_127(runtime: str, tmp_path: Path) -> None:
    require_runtime(runtime)
    task = {"executors": [{"image": "alpine", "command": ["no-such-command-tes"]},
                          sh("echo never")],
            "resources": {"disk_gb": 1}}
    folder = task_dir_for(tmp_path, task, runtime)
    result = run_runner(folder, "--keep-work")
    assert result.returncode == 0, result.stderr
    document = status(folder)
    assert document["state"] == "EXECUTOR_ERROR", document
    (entry,) = document["log"]["logs"]
    assert entry["exit_code"] == 127
    assert entry["stderr"].strip()
    assert any("'no-such-command-tes' was not found" in line
               for line in document["log"]["system_logs"])
    assert "disk_gb is not enforced by tes-runner" in document["log"]["system_logs"]
    assert (folder / "work" / "tes-wd").is_dir()  # --keep-work


def test_an_input_outside_the_policy_is_a_system_error(tmp_path: Path) -> None:
    require_runtime("bubblewrap")
    secret = tmp_path / "secret.txt"
    secret.write_text("no")
    task = {"inputs": [{"url": f"file://{secret}", "path": "/in/s.txt"}],
            "executors": [sh("cat /in/s.txt")]}
    folder = task_dir_for(tmp_path / "tasks", task, "bubblewrap", allowed=[tmp_path / "other"])
    result = run_runner(folder)
    assert result.returncode == 0, result.stderr
    document = status(folder)
    assert document["state"] == "SYSTEM_ERROR"
    assert any("staging inputs failed" in line for line in document["log"]["system_logs"])
    assert document["log"]["logs"] == []


@pytest.mark.parametrize("runtime", ["docker", "bubblewrap"])
def test_sigterm_stops_the_container_and_records_canceled(runtime: str, tmp_path: Path) -> None:
    require_runtime(runtime)
    folder = task_dir_for(tmp_path, {"executors": [sh("echo started; sleep 300")]}, runtime)
    proc = start_runner(folder)
    try:
        wait_for(lambda: (folder / "status.json").exists()
                 and status(folder)["state"] == "RUNNING", "the task to run")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    document = status(folder)
    assert document["state"] == "CANCELED" and document["final"] is True
    assert document["log"]["end_time"]
    if runtime == "docker":
        name = f"tes-{document_id(folder)}-1-0"
        listed = subprocess.run(["docker", "ps", "-a", "-q", "--filter", f"name=^{name}$"],
                                capture_output=True, text=True, check=True)
        assert listed.stdout.strip() == ""


def test_a_second_run_after_a_crash_reattaches(tmp_path: Path) -> None:
    """kill -9 the runner while its container runs: the next run waits for that container
    (never starting the executor twice), runs the rest and uploads the outputs."""
    require_runtime("docker")
    out = tmp_path / "out"
    out.mkdir()
    task = {
        "outputs": [{"url": f"file://{out}/starts.txt", "path": "/w/starts.txt"}],
        "executors": [
            sh("echo start >> /w/starts.txt; sleep 4; echo slept"),
            sh("echo second"),
        ],
    }
    folder = task_dir_for(tmp_path / "tasks", task, "docker", allowed=[out])
    proc = start_runner(folder)
    try:
        starts = folder / "work" / "tes-wd" / "shared" / "w" / "starts.txt"
        wait_for(starts.exists, "the first executor to start")
        proc.kill()  # SIGKILL: no clean-up, the container keeps running
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert status(folder)["state"] == "RUNNING"
    result = run_runner(folder)
    assert result.returncode == 0, result.stderr
    document = status(folder)
    assert document["state"] == "COMPLETE", document
    log = document["log"]
    assert [e["stdout"] for e in log["logs"]] == ["slept\n", "second\n"]
    assert any("re-attached to executor container" in line for line in log["system_logs"])
    assert (out / "starts.txt").read_text() == "start\n"  # started once


def test_a_second_run_after_a_crash_on_bubblewrap_does_not_run_twice(tmp_path: Path) -> None:
    require_runtime("bubblewrap")
    folder = task_dir_for(tmp_path, {"executors": [sh("sleep 300")]}, "bubblewrap")
    proc = start_runner(folder)
    try:
        wait_for(lambda: (folder / "status.json").exists()
                 and status(folder)["state"] == "RUNNING", "the task to run")
        proc.kill()  # the sandbox dies with it
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    result = run_runner(folder)
    assert result.returncode == 0, result.stderr
    document = status(folder)
    assert document["state"] == "SYSTEM_ERROR"
    assert any("cannot pick up a running executor" in line
               for line in document["log"]["system_logs"])


def document_id(folder: Path) -> str:
    """The task id of a task folder (its name)."""
    return folder.name


def test_a_new_attempt_starts_from_an_empty_workspace(tmp_path: Path) -> None:
    require_runtime("bubblewrap")
    task = {"volumes": ["/v"], "executors": [sh("test ! -e /v/stale.txt")]}
    folder = task_dir_for(tmp_path, task, "bubblewrap")
    stale = folder / "work" / "tes-wd" / "shared" / "v" / "stale.txt"
    stale.parent.mkdir(parents=True)
    stale.write_text("left by attempt 0")
    result = run_runner(folder)
    assert result.returncode == 0, result.stderr
    assert status(folder)["state"] == "COMPLETE", status(folder)
