"""End to end on a real Azure Batch account: runs only when ``TES_BATCH_TEST_ACCOUNT_URL``,
``TES_BATCH_TEST_ACCOUNT_KEY`` and ``TES_BATCH_TEST_RUNNER_INSTALL`` are set (README.md,
"Testing against a real Batch account", says how); CI skips it. It makes a pool of its own
(prefix ``tt<pid>``), runs one task, and deletes the pool and job it made."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

servers = pytest.importorskip("tests.servers", reason="needs the tes-core repository")
requests = pytest.importorskip("requests")

NEEDED = ("TES_BATCH_TEST_ACCOUNT_URL", "TES_BATCH_TEST_ACCOUNT_KEY",
          "TES_BATCH_TEST_RUNNER_INSTALL")
if not all(os.environ.get(name) for name in NEEDED):
    pytest.skip(f"no real Batch account: set {', '.join(NEEDED)} (see the plugin's README)",
                allow_module_level=True)

from tes_core.config import Settings  # noqa: E402

from tes_batch.client import BatchApi, make_client  # noqa: E402
from tes_batch.settings import BatchSettings  # noqa: E402

PREFIX = f"tt{os.getpid()}"


def settings() -> dict[str, str]:
    env = {"TES_BACKEND": "batch", "TES_BATCH_POOL_PREFIX": PREFIX,
           "TES_BATCH_ACCOUNT_URL": os.environ["TES_BATCH_TEST_ACCOUNT_URL"],
           "TES_BATCH_ACCOUNT_KEY": os.environ["TES_BATCH_TEST_ACCOUNT_KEY"],
           "TES_BATCH_RUNNER_INSTALL": os.environ["TES_BATCH_TEST_RUNNER_INSTALL"],
           "TES_BATCH_MAX_NODES": "1", "TES_BATCH_POOL_IDLE": "60"}
    for name in ("ACCOUNT_NAME", "NODE_IMAGE", "NODE_AGENT_SKU", "VM_SIZES", "REGISTRY_SERVER",
                 "REGISTRY_USERNAME", "REGISTRY_PASSWORD", "REGISTRY_IDENTITY"):
        if os.environ.get(f"TES_BATCH_TEST_{name}"):
            env[f"TES_BATCH_{name}"] = os.environ[f"TES_BATCH_TEST_{name}"]
    return env


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    data = tmp_path_factory.mktemp("batch-real")
    proc = servers.ServerProcess(data, servers.server_env(data, **settings())).start()
    try:
        yield proc
    finally:
        proc.stop()
        conf = BatchSettings.from_settings(Settings.from_env(settings()))
        api = BatchApi(make_client(conf))
        for pool in api.list_pools(f"{PREFIX}-"):
            api.delete_pool_and_job(pool.id, f"{pool.id}-job")


def test_a_task_runs_on_a_real_pool(server) -> None:
    answer = requests.post(f"{server.url}/tasks", timeout=60, json={
        "inputs": [{"path": "/data/in.txt", "content": "hello from TES\n"}],
        "executors": [{"image": "busybox:latest", "command": ["cat", "/data/in.txt"]}],
        "resources": {"cpu_cores": 1, "preemptible": True}})
    assert answer.status_code == 200, answer.text
    task = servers.wait_for_state(server.url, answer.json()["id"], servers.TERMINAL,
                                  timeout=45 * 60, view="FULL")
    assert task["state"] == "COMPLETE", task
    assert task["logs"][-1]["logs"][0]["stdout"] == "hello from TES\n"
    assert task["logs"][-1]["metadata"]["vm_price_per_hour_usd"]


@pytest.mark.skipif(not os.environ.get("TES_BATCH_TEST_PRIVATE_IMAGE"),
                    reason="no private image: set TES_BATCH_TEST_PRIVATE_IMAGE and "
                           "TES_BATCH_TEST_REGISTRY_* (see the plugin's README)")
def test_a_task_runs_an_image_of_the_private_registry(server) -> None:
    """The image (with ``sh``) is in ``TES_BATCH_TEST_REGISTRY_SERVER``; the node's runner
    logs in with the password or the identity before pulling it."""
    image = os.environ["TES_BATCH_TEST_PRIVATE_IMAGE"]
    answer = requests.post(f"{server.url}/tasks", timeout=60, json={
        "executors": [{"image": image, "command": ["sh", "-c", "echo private"]}],
        "resources": {"cpu_cores": 1, "preemptible": True}})
    assert answer.status_code == 200, answer.text
    task = servers.wait_for_state(server.url, answer.json()["id"], servers.TERMINAL,
                                  timeout=45 * 60, view="FULL")
    assert task["state"] == "COMPLETE", task
    assert task["logs"][-1]["logs"][0]["stdout"] == "private\n"
    assert any(line.startswith("docker: logged in to registry ")
               for line in task["logs"][-1]["system_logs"])
