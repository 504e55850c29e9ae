"""Tests of the template backend: the class on its own, then a real server using it.

The unit tests call the backend directly with a fake reporter, as the core's
worker would: ``submit``, then ``poll`` until the task ends. The end-to-end test
starts ``tes-server serve`` with ``TES_BACKEND=template`` and runs a task over
HTTP; it needs the distribution installed (``pip install -e plugins/_template``).
"""

from __future__ import annotations

import importlib.metadata
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

try:
    importlib.metadata.distribution("tes-template-backend")
except importlib.metadata.PackageNotFoundError:
    pytest.skip(
        "tes-template-backend is not installed (pip install -e plugins/_template)",
        allow_module_level=True,
    )

from tes_core.backends.base import BackendContext, Observation, TaskRecord  # noqa: E402
from tes_core.config import Settings  # noqa: E402

from tes_template_backend.backend import TemplateBackend  # noqa: E402
from tes_template_backend.jobfiles import read_pid, runner_alive  # noqa: E402

FINAL = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR"}


class FakeReporter:
    """Stands in for the core's database reporter (a poll backend rarely uses it)."""

    def __init__(self) -> None:
        self.observations: list[Observation] = []
        self.states: dict[str, str] = {}

    def report(self, observation: Observation) -> bool:
        self.observations.append(observation)
        if observation.state:
            self.states[observation.task_id] = observation.state
        return True

    def current_state(self, task_id: str) -> str | None:
        return self.states.get(task_id)


@pytest.fixture
def backend(tmp_path: Path) -> TemplateBackend:
    settings = Settings.from_env({}, data_dir=tmp_path / "data")
    made = TemplateBackend(BackendContext(settings, FakeReporter(), "worker-1"))
    made.start()
    yield made
    for job in made.root.iterdir():  # never leave a runner behind
        made.cancel(record(job.name, {"executors": []}))


def record(task_id: str, document: dict[str, Any], logs: list | None = None) -> TaskRecord:
    return TaskRecord(
        id=task_id,
        state="QUEUED",
        document=document,
        creation_time=datetime.now(UTC),
        logs=logs or [],
    )


def task(*commands: list[str], **extra: Any) -> dict[str, Any]:
    return {"executors": [{"image": "ignored", "command": c} for c in commands], **extra}


def poll_until(
    backend: TemplateBackend, rec: TaskRecord, states: set[str], timeout: float = 30.0
) -> Observation:
    deadline = time.monotonic() + timeout
    seen: Observation | None = None
    while time.monotonic() < deadline:
        found = list(backend.poll([rec]))
        if found:
            seen = found[-1]
            if seen.state in states:
                return seen
        time.sleep(0.05)
    raise AssertionError(f"task {rec.id} did not reach {states}; last: {seen}")


def test_submit_runs_the_task_to_complete(backend: TemplateBackend, tmp_path: Path) -> None:
    out = tmp_path / "result.txt"
    rec = record(
        "t-complete",
        task(
            ["sh", "-c", "tr a-z A-Z < data/in.txt > out/up.txt; echo made it"],
            inputs=[{"path": "/data/in.txt", "content": "hello\n", "type": "FILE"}],
            outputs=[{"path": "/out/up.txt", "url": str(out), "type": "FILE"}],
        ),
    )
    ref = backend.submit(rec)
    assert ref.endswith(f":{read_pid(backend.job_dir(rec.id))}")

    final = poll_until(backend, rec, FINAL)

    assert final.state == "COMPLETE", final.system_logs
    assert out.read_text() == "HELLO\n"
    [log] = final.executor_logs
    assert log["exit_code"] == 0
    assert log["stdout"] == "made it\n"
    assert log["start_time"].endswith("Z") and log["end_time"].endswith("Z")
    assert final.outputs == [{"url": str(out), "path": "/out/up.txt", "size_bytes": "6"}]
    assert final.start_time is not None and final.end_time is not None
    assert any("inline content" in line for line in final.system_logs)
    assert not (backend.job_dir(rec.id) / "work").exists(), "the runner removes the task files"


def test_executor_settings_are_honoured(backend: TemplateBackend) -> None:
    rec = record(
        "t-settings",
        {
            "inputs": [{"path": "/in/words.txt", "content": "b\na\n", "type": "FILE"}],
            "executors": [
                {
                    "image": "ignored",
                    "command": ["sh", "-c", 'sort; echo "$GREETING from $(pwd)" >&2'],
                    "workdir": "/in",
                    "stdin": "/in/words.txt",
                    "stdout": "/logs/sorted.txt",
                    "stderr": "/logs/err.txt",
                    "env": {"GREETING": "hi"},
                },
                {"image": "ignored", "command": ["cat", "logs/sorted.txt", "logs/err.txt"]},
            ],
        },
    )
    backend.submit(rec)
    final = poll_until(backend, rec, FINAL)

    assert final.state == "COMPLETE", final.system_logs
    first, second = final.executor_logs
    assert first["stdout"] == "a\nb\n"
    assert first["stderr"].startswith("hi from ") and first["stderr"].rstrip().endswith("/in")
    assert second["stdout"].startswith("a\nb\nhi from ")


def test_a_failing_executor_stops_the_task(backend: TemplateBackend) -> None:
    rec = record("t-fail", task(["sh", "-c", "echo oops >&2; exit 3"], ["echo", "never"]))
    backend.submit(rec)
    final = poll_until(backend, rec, FINAL)

    assert final.state == "EXECUTOR_ERROR"
    [log] = final.executor_logs
    assert log["exit_code"] == 3
    assert log["stderr"] == "oops\n"
    assert "executor 0 exited with code 3" in final.system_logs


def test_ignore_error_goes_on(backend: TemplateBackend) -> None:
    doc = task(["false"], ["echo", "after"])
    doc["executors"][0]["ignore_error"] = True
    rec = record("t-ignore", doc)
    backend.submit(rec)
    final = poll_until(backend, rec, FINAL)

    assert final.state == "COMPLETE"
    assert [log["exit_code"] for log in final.executor_logs] == [1, 0]
    assert final.executor_logs[1]["stdout"] == "after\n"


def test_a_missing_command_is_an_executor_error(backend: TemplateBackend) -> None:
    rec = record("t-nocmd", task(["no-such-command-anywhere"]))
    backend.submit(rec)
    final = poll_until(backend, rec, FINAL)

    assert final.state == "EXECUTOR_ERROR"
    assert final.executor_logs[0]["exit_code"] == 127
    assert "no-such-command-anywhere" in final.executor_logs[0]["stderr"]


def test_a_missing_input_is_a_system_error(backend: TemplateBackend, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.txt"
    rec = record("t-noinput", task(["true"], inputs=[{"path": "/in/x", "url": str(missing)}]))
    backend.submit(rec)
    final = poll_until(backend, rec, FINAL)

    assert final.state == "SYSTEM_ERROR"
    assert any("staging inputs failed" in line for line in final.system_logs)
    assert final.executor_logs == []


def test_the_job_applies_the_servers_access_policy(
    backend: TemplateBackend, tmp_path: Path
) -> None:
    """The job process runs under the server's policy, not its own defaults: a file of
    the server's data folder (which the job's own defaults, ``/tmp`` here, would allow)
    is refused."""
    secret = backend.root.parent / "secret.txt"
    secret.write_text("not for tasks")
    rec = record("t-policy", task(["true"], inputs=[{"path": "/in/x", "url": str(secret)}]))
    backend.submit(rec)
    final = poll_until(backend, rec, FINAL)

    assert final.state == "SYSTEM_ERROR"
    assert any("server's own folders" in line for line in final.system_logs), final
    assert not (backend.job_dir("t-policy") / "work/in/x").exists()


def test_cancel_kills_the_job_and_removes_its_folder(backend: TemplateBackend) -> None:
    rec = record("t-cancel", task(["sh", "-c", "sleep 60 & sleep 60"]))
    backend.submit(rec)
    poll_until(backend, rec, {"RUNNING"})
    job = backend.job_dir(rec.id)
    pid = read_pid(job)
    assert pid is not None and runner_alive(pid, job)

    assert backend.cancel(rec) is True

    assert not job.exists()
    with pytest.raises(ProcessLookupError):  # the runner and both sleeps are gone
        os.killpg(pid, 0)
    assert backend.cancel(rec) is True, "cancelling again is fine"


def test_submit_is_idempotent(backend: TemplateBackend) -> None:
    rec = record("t-twice", task(["sleep", "30"]))
    first = backend.submit(rec)
    pid = read_pid(backend.job_dir(rec.id))

    assert backend.submit(rec) == first
    assert read_pid(backend.job_dir(rec.id)) == pid, "no second runner"


def test_submit_again_after_the_runner_died(backend: TemplateBackend) -> None:
    rec = record("t-died", task(["sleep", "30"]))
    first = backend.submit(rec)
    job = backend.job_dir(rec.id)
    os.killpg(read_pid(job), signal.SIGKILL)

    observed = poll_until(backend, rec, FINAL)
    assert observed.state == "SYSTEM_ERROR"
    assert "ended without finishing it" in observed.system_logs[0]

    second = backend.submit(rec)  # e.g. a worker crashed mid-submit: start afresh
    assert second != first
    assert poll_until(backend, rec, {"RUNNING"}).state == "RUNNING"


def test_max_runtime_seconds_is_enforced(backend: TemplateBackend) -> None:
    rec = record(
        "t-slow",
        task(["sleep", "30"], resources={"backend_parameters": {"max_runtime_seconds": "1"}}),
    )
    started = time.monotonic()
    backend.submit(rec)
    final = poll_until(backend, rec, FINAL, timeout=15)

    assert time.monotonic() - started < 10
    assert final.state == "EXECUTOR_ERROR"
    assert final.executor_logs[0]["exit_code"] == 128 + signal.SIGTERM
    assert "max_runtime_seconds=1" in final.system_logs[-1]


@pytest.mark.parametrize("value", ["1", "3600", " 60 ", str(30 * 24 * 3600)])
def test_valid_max_runtime_seconds(backend: TemplateBackend, value: str) -> None:
    backend.validate_parameters({"max_runtime_seconds": value})


@pytest.mark.parametrize("value", ["0", "-5", "1.5", "soon", "", str(30 * 24 * 3600 + 1)])
def test_invalid_max_runtime_seconds(backend: TemplateBackend, value: str) -> None:
    with pytest.raises(ValueError, match="max_runtime_seconds"):
        backend.validate_parameters({"max_runtime_seconds": value})


def test_no_parameters_are_fine(backend: TemplateBackend) -> None:
    backend.validate_parameters({})
    assert set(TemplateBackend.backend_parameters) == {"max_runtime_seconds"}


def test_poll_reports_each_system_log_line_once(backend: TemplateBackend) -> None:
    rec = record("t-lines", task(["true"]))
    backend.submit(rec)
    final = poll_until(backend, rec, FINAL)
    assert final.system_logs

    already = record(rec.id, rec.document, logs=[{"system_logs": list(final.system_logs)}])
    [again] = backend.poll([already])
    assert again.state == "COMPLETE"
    assert again.system_logs == []


def test_poll_of_a_vanished_job(backend: TemplateBackend) -> None:
    [observation] = backend.poll([record("t-ghost", task(["true"]))])
    assert observation.state == "SYSTEM_ERROR"
    assert "is gone" in observation.system_logs[0]


# -- end to end: a real server with TES_BACKEND=template ---------------------------------


def test_a_server_runs_a_task_on_the_template_backend(tmp_path: Path) -> None:
    servers = pytest.importorskip("tests.servers", reason="needs the tes-core repository")
    requests = pytest.importorskip("requests")
    data = tmp_path / "server"
    result = tmp_path / "result.txt"
    server = servers.ServerProcess(
        data, servers.server_env(data, TES_BACKEND="template", TES_RECONCILE_INTERVAL="0.5")
    ).start()
    try:
        info = requests.get(f"{server.url}/service-info", timeout=10).json()
        assert "'template' backend" in info["description"]
        assert "max_runtime_seconds" in info["tesResources_backend_parameters"]

        bad = requests.post(
            f"{server.url}/tasks",
            json={
                "executors": [{"image": "x", "command": ["true"]}],
                "resources": {"backend_parameters": {"max_runtime_seconds": "forever"}},
            },
            timeout=10,
        )
        assert bad.status_code == 400
        assert "max_runtime_seconds" in bad.json()["msg"]

        created = requests.post(
            f"{server.url}/tasks",
            json={
                "name": "template e2e",
                "inputs": [{"path": "/in/name.txt", "content": "world"}],
                "outputs": [{"path": "/out/greeting.txt", "url": f"file://{result}"}],
                "executors": [
                    {
                        "image": "ignored",
                        "command": [
                            "sh", "-c", 'echo "hello $(cat in/name.txt)" | tee out/greeting.txt'
                        ],
                    }
                ],
                "resources": {"backend_parameters": {"max_runtime_seconds": "60"}},
            },
            timeout=10,
        )
        assert created.status_code == 200, created.text
        task_id = created.json()["id"]

        done = servers.wait_for_state(server.url, task_id, servers.TERMINAL, view="FULL")

        assert done["state"] == "COMPLETE", done
        [attempt] = done["logs"]
        assert attempt["logs"][0]["exit_code"] == 0
        assert attempt["logs"][0]["stdout"] == "hello world\n"
        assert attempt["outputs"][0]["path"] == "/out/greeting.txt"
        assert result.read_text() == "hello world\n"
    finally:
        server.stop()
