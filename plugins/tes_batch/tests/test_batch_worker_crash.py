"""A worker killed mid-submit loses no task and makes no second Batch task: the
production shape (gunicorn API, ``tes-server worker`` processes, PostgreSQL, Redis) on the
fake Batch service. The fake carries out the worker's task add, then keeps the answer
waiting; the worker is killed (kill -9) right then, so Batch has the task and nobody knows.
A new worker submits again (deterministic ids), gets ``TaskExists`` and adopts the task,
which runs to COMPLETE."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

servers = pytest.importorskip("tests.servers", reason="needs the tes-core repository")
deployment_module = pytest.importorskip("tests.deployment")
requests = pytest.importorskip("requests")

from fakebatch import FakeBatch  # noqa: E402
from fakebatch.service import wait_until  # noqa: E402

REDIS_URL = os.environ.get("TES_TEST_REDIS", "redis://127.0.0.1:6379/0")
PREFIX = "crash"

if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
    pytest.skip(
        "no Docker (source $TES_SERVICES_DIR/env.sh after scripts/test-services.sh)",
        allow_module_level=True,
    )




@pytest.fixture
def deployment(batch: FakeBatch, tmp_path: Path) -> Iterator[Any]:
    if not servers.redis_up():
        pytest.skip("Redis is not running")
    try:
        database = servers.create_postgres_database()
    except Exception as exc:  # PostgreSQL down
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    made = deployment_module.Deployment(
        tmp_path,
        database,
        REDIS_URL,
        TES_RECONCILE_INTERVAL="1",
        **batch.settings(TES_BATCH_POOL_PREFIX=PREFIX),
    )
    try:
        made.migrate()
        made.start_api()
        yield made
    finally:
        batch.release()
        made.stop()
        servers.drop_postgres_database(database)
        batch.drop(PREFIX)


def test_a_worker_killed_after_its_task_add_makes_no_second_task(deployment, batch):
    first = deployment.start_worker()
    batch.hold_adds = 1
    answer = requests.post(
        f"{deployment.url}/tasks",
        timeout=30,
        json={"executors": [{"image": "busybox:latest", "command": ["sh", "-c", "echo once"]}]},
    )
    assert answer.status_code == 200, answer.text
    task_id = answer.json()["id"]

    def adds() -> list[int]:
        return [
            r.status
            for r in batch.recorded("POST", "/jobs/")
            if r.path.endswith("/tasks") and (r.body or {}).get("displayName") == task_id
        ]

    # Batch has added the task; its answer waits; the worker dies before it hears it.
    wait_until(lambda: adds() == [201] and batch.holding == 1, timeout=120)
    deployment.kill_worker(first)
    batch.release()
    deployment.start_worker()
    task = servers.wait_for_state(
        deployment.url, task_id, servers.TERMINAL, timeout=240, view="FULL"
    )
    assert task["state"] == "COMPLETE", (task, deployment.logs())
    assert task["logs"][-1]["logs"][0]["stdout"] == "once\n"
    assert adds() == [201, 409]  # the second worker's add: TaskExists, adopted
    mine = [
        (job, name)
        for job, tasks in batch.tasks.items()
        for name, t in tasks.items()
        if t.get("displayName") == task_id
    ]
    assert mine == [(task["logs"][-1]["metadata"]["batch_job_id"], f"{task_id}-1")]
    assert len(task["logs"]) == 1  # one attempt
