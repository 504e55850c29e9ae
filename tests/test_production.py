"""The production shape: PostgreSQL, Redis as the broker, gunicorn serving create_app(),
and separate ``tes-server worker`` processes."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
import requests

from tests.deployment import Deployment
from tests.servers import TERMINAL, redis_up, wait_for_state

REDIS_URL = os.environ.get("TES_TEST_REDIS", "redis://127.0.0.1:6379/0")




@pytest.fixture
def deployment(tmp_path, postgres_url_factory) -> Iterator[Deployment]:
    if not redis_up():
        if os.environ.get("CI"):
            pytest.fail("Redis is required in CI but does not answer on 127.0.0.1:6379")
        pytest.skip("Redis is not running")
    deployment = Deployment(tmp_path, postgres_url_factory(), REDIS_URL)
    deployment.migrate()
    deployment.start_api()
    yield deployment
    deployment.stop()


def _submit(url: str, command: list[str], **extra) -> str:
    body = {"executors": [{"image": "alpine", "command": command}], **extra}
    response = requests.post(f"{url}/tasks", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["id"]


def test_tasks_run_through_redis_and_separate_workers(deployment: Deployment) -> None:
    deployment.start_worker()
    deployment.start_worker()
    ids = [_submit(deployment.url, ["sh", "-c", f"echo task {n}"]) for n in range(6)]
    for task_id in ids:
        task = wait_for_state(deployment.url, task_id, TERMINAL, view="FULL")
        assert task["state"] == "COMPLETE", task
        assert task["logs"][0]["logs"][0]["stdout"].startswith("task ")
    listed = requests.get(f"{deployment.url}/tasks", params={"page_size": 100}, timeout=10).json()
    assert {t["id"] for t in listed["tasks"]} == set(ids)


def test_tasks_wait_in_queue_until_a_worker_starts(deployment: Deployment) -> None:
    task_id = _submit(deployment.url, ["true"])
    time.sleep(1.0)
    assert requests.get(f"{deployment.url}/tasks/{task_id}", timeout=5).json()["state"] == "QUEUED"
    deployment.start_worker()
    assert wait_for_state(deployment.url, task_id, TERMINAL)["state"] == "COMPLETE"


def test_cancel_reaches_the_worker_running_the_task(deployment: Deployment) -> None:
    deployment.start_worker()
    task_id = _submit(deployment.url, ["sleep", "60"])
    wait_for_state(deployment.url, task_id, {"RUNNING"})
    assert requests.post(f"{deployment.url}/tasks/{task_id}:cancel", timeout=5).json() == {}
    started = time.monotonic()
    assert wait_for_state(deployment.url, task_id, TERMINAL, timeout=30)["state"] == "CANCELED"
    assert time.monotonic() - started < 20


def test_a_killed_worker_loses_no_task(deployment: Deployment, tmp_path) -> None:
    """kill -9 a worker mid-task: another worker re-attaches to the running container,
    runs the remaining executors, and nothing runs twice."""
    counter = tmp_path / "data" / "shared-global" / "count"
    first = deployment.start_worker()
    body = {
        "executors": [
            {"image": "alpine",
             "command": ["sh", "-c", "sleep 4; echo one >> /tes-wd/shared-global/count"]},
            {"image": "alpine",
             "command": ["sh", "-c", "echo two >> /tes-wd/shared-global/count"]},
        ]
    }
    response = requests.post(f"{deployment.url}/tasks", json=body, timeout=10)
    running = response.json()["id"]
    wait_for_state(deployment.url, running, {"RUNNING"})
    deployment.kill_worker(first)
    queued = _submit(deployment.url, ["true"])
    deployment.start_worker()
    ended = wait_for_state(deployment.url, running, TERMINAL, timeout=60, view="FULL")
    assert ended["state"] == "COMPLETE", ended
    assert any("re-attached" in line for line in ended["logs"][-1]["system_logs"])
    assert [log["exit_code"] for log in ended["logs"][-1]["logs"]] == [0, 0]
    assert counter.read_text().split() == ["one", "two"]
    assert wait_for_state(deployment.url, queued, TERMINAL, timeout=60)["state"] == "COMPLETE"
