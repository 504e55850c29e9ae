"""Faults of the services production depends on, with private PostgreSQL and Redis
instances this test starts, stops and restarts (never the shared ones).

* Redis down: ``POST /tasks`` still stores the task and answers its id; the task is
  submitted once Redis is back (by the reconcile loop: the message was never sent).
* PostgreSQL down: every route that needs it answers 503 with a clear message; when
  it is back, the API and the workers carry on without a restart, and a task that
  was running meanwhile still reports its end.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator

import pytest
import requests

from tests.deployment import Deployment
from tests.private_services import PrivatePostgres, PrivateRedis
from tests.servers import TERMINAL, wait_for_state

FAST = {"TES_RECONCILE_INTERVAL": "1", "TES_HEARTBEAT_INTERVAL": "0.5",
        "TES_LOCAL_RUNTIME": "docker"}


def _require(binary: str) -> None:
    if shutil.which(binary) or os.path.exists(binary):
        return
    if os.environ.get("CI"):
        pytest.fail(f"{binary} is required in CI")
    pytest.skip(f"{binary} is not installed")


def _task(command: list[str]) -> dict:
    return {"executors": [{"image": "alpine", "command": command}]}


def _post(url: str, command: list[str]) -> str:
    response = requests.post(f"{url}/tasks", json=_task(command), timeout=15)
    assert response.status_code == 200, response.text
    return response.json()["id"]


@pytest.fixture
def redis(tmp_path) -> Iterator[PrivateRedis]:
    _require("redis-server")
    server = PrivateRedis(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    from tests.private_services import PG_BIN

    _require(str(PG_BIN / "pg_ctl"))
    server = PrivatePostgres().start()
    yield server
    server.remove()


def test_redis_down_tasks_are_stored_and_submitted_when_it_is_back(
    tmp_path, redis: PrivateRedis, postgres_url_factory
) -> None:
    deployment = Deployment(tmp_path / "deploy", postgres_url_factory(), redis.url, **FAST)
    try:
        deployment.migrate()
        deployment.start_api()
        deployment.start_worker()
        before = _post(deployment.url, ["true"])
        assert wait_for_state(deployment.url, before, TERMINAL)["state"] == "COMPLETE"

        redis.stop()
        during = [_post(deployment.url, ["echo", str(n)]) for n in range(5)]
        for task_id in during:
            task = requests.get(f"{deployment.url}/tasks/{task_id}", timeout=10).json()
            assert task == {"id": task_id, "state": "QUEUED"}
        listed = requests.get(f"{deployment.url}/tasks", timeout=10).json()["tasks"]
        assert {t["id"] for t in listed} == {before, *during}

        redis.start()  # empty: whatever was queued before is gone too
        for task_id in during:
            done = wait_for_state(deployment.url, task_id, TERMINAL, timeout=120)
            assert done["state"] == "COMPLETE", deployment.logs()
        after = _post(deployment.url, ["true"])
        assert wait_for_state(deployment.url, after, TERMINAL)["state"] == "COMPLETE"
    finally:
        deployment.stop()
    assert "message broker unreachable" in deployment.logs()


def _assert_unavailable(response: requests.Response) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status_code"] == 503
    assert "database is not available" in body["msg"]


def test_postgres_down_answers_503_and_recovers_without_a_restart(
    tmp_path, postgres: PrivatePostgres
) -> None:
    redis = PrivateRedis(tmp_path / "redis").start()
    deployment = Deployment(tmp_path / "deploy", postgres.url, redis.url, **FAST)
    try:
        deployment.migrate()
        deployment.start_api()
        deployment.start_worker()
        url = deployment.url
        finished = _post(url, ["true"])
        assert wait_for_state(url, finished, TERMINAL)["state"] == "COMPLETE"
        # Runs across the outage: its end is reported once the database is back.
        running = _post(url, ["sh", "-c", "sleep 3; echo survived"])
        wait_for_state(url, running, {"RUNNING"})

        postgres.stop()
        _assert_unavailable(requests.post(f"{url}/tasks", json=_task(["true"]), timeout=15))
        for view in ("MINIMAL", "BASIC", "FULL"):
            _assert_unavailable(
                requests.get(f"{url}/tasks/{running}", params={"view": view}, timeout=15)
            )
            _assert_unavailable(requests.get(f"{url}/tasks", params={"view": view}, timeout=15))
        _assert_unavailable(requests.post(f"{url}/tasks/{running}:cancel", timeout=15))
        assert requests.get(f"{url}/service-info", timeout=15).status_code == 200

        postgres.start()
        # The same processes answer again: no restart.
        assert requests.get(f"{url}/tasks/{finished}", timeout=15).json()["state"] == "COMPLETE"
        assert requests.get(f"{url}/tasks", timeout=15).status_code == 200
        ended = wait_for_state(url, running, TERMINAL, timeout=90, view="FULL")
        assert ended["state"] == "COMPLETE", deployment.logs()
        assert ended["logs"][-1]["logs"][0]["stdout"] == "survived\n"
        after = _post(url, ["true"])
        assert wait_for_state(url, after, TERMINAL, timeout=60)["state"] == "COMPLETE"
    finally:
        deployment.stop()
        redis.stop()


def test_a_worker_stopped_while_redis_hangs_hands_over_within_the_grace(
    tmp_path, redis: PrivateRedis, postgres_url_factory
) -> None:
    """SIGTERM to a worker whose broker accepts and never answers (Redis paused with
    SIGSTOP): every call to it waits for its socket timeout (10 s, more than the grace) when
    the worker stops taking messages, puts prefetched ones back and asks for a reconcile
    pass. Those calls are left behind and the hand-over still ends: exit status 0 (not
    the watchdog's 1) within the grace. With Redis back, the next worker re-attaches and
    the task ends COMPLETE, its executor run once."""
    grace = 6
    deployment = Deployment(tmp_path / "deploy", postgres_url_factory(), redis.url,
                            **FAST, TES_SHUTDOWN_GRACE=str(grace))
    runs = tmp_path / "deploy" / "data" / "shared-global" / "runs"
    assert redis.proc is not None
    paused = False
    try:
        deployment.migrate()
        deployment.start_api()
        worker = deployment.start_worker()
        task_id = _post(deployment.url, ["sh", "-c", "echo run >> /tes-wd/shared-global/runs; "
                                                     "sleep 8"])
        wait_for_state(deployment.url, task_id, {"RUNNING"})
        os.kill(redis.proc.pid, signal.SIGSTOP)
        paused = True
        worker.send_signal(signal.SIGTERM)
        try:
            status = worker.wait(grace + 1)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {grace + 1} s after SIGTERM:\n{deployment.logs()}")
        deployment.workers.remove(worker)
        assert status == 0, deployment.logs()
        assert "was still going when its time was up" in deployment.logs()
        os.kill(redis.proc.pid, signal.SIGCONT)
        paused = False
        deployment.start_worker()
        ended = wait_for_state(deployment.url, task_id, TERMINAL, timeout=120, view="FULL")
        assert ended["state"] == "COMPLETE", deployment.logs()
        assert "re-attached" in " ".join(ended["logs"][-1]["system_logs"])
        assert runs.read_text().split() == ["run"]
    finally:
        if paused:
            os.kill(redis.proc.pid, signal.SIGCONT)
        deployment.stop()
