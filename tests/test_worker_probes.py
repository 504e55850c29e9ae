"""``tes-server worker``'s ``/healthz`` and ``/readyz`` (the probes of its Deployment),
served with ``/metrics`` on ``TES_WORKER_METRICS_PORT``."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

import requests

from tes_core.config import Settings
from tes_core.core import build_core
from tes_core.worker.probes import serve_probes
from tests.private_services import PrivateRedis, free_port
from tests.servers import server_env, worker_process


def eventually(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def status(port: int, path: str) -> tuple[int, dict]:
    response = requests.get(f"http://127.0.0.1:{port}{path}", timeout=10)
    return response.status_code, response.json()


def test_a_worker_is_unready_while_its_broker_is_down_and_alive_throughout(tmp_path) -> None:
    redis = PrivateRedis(tmp_path / "redis").start()
    port = free_port()
    env = server_env(
        tmp_path / "data", TES_BROKER_URL=redis.url, TES_WORKER_METRICS_PORT=str(port),
        TES_LOCAL_RUNTIME="bubblewrap",
    )
    upgrade = subprocess.run([sys.executable, "-m", "tes_core.cli", "db", "upgrade"], env=env,
                             capture_output=True, text=True, timeout=120, check=False)
    assert upgrade.returncode == 0, upgrade.stderr
    worker = worker_process(env).start()
    try:
        assert status(port, "/healthz") == (200, {"status": "ok"})
        assert status(port, "/readyz") == (
            200, {"status": "ready", "database": "ok", "broker": "ok", "backend": "ok"}
        ), worker.log()
        assert "tes_" in requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text

        redis.stop()
        code, body = status(port, "/readyz")
        assert code == 503 and set(body["errors"]) == {"broker"}, body
        assert body["msg"].startswith("not ready: the broker cannot be reached"), body
        assert status(port, "/healthz")[0] == 200, "a broker outage is no reason to restart"

        redis.start()
        eventually(lambda: status(port, "/readyz")[0] == 200, "ready again with the broker")
    finally:
        worker.stop()
        redis.stop()


def test_healthz_says_which_thread_of_the_worker_died(tmp_path) -> None:
    settings = Settings.from_env(server_env(tmp_path, TES_LOCAL_RUNTIME="bubblewrap"))
    core = build_core(settings)
    core.db.create_all()
    core.start_worker()
    server = serve_probes(0, core)
    port = server.server_address[1]
    try:
        assert status(port, "/healthz") == (200, {"status": "ok"})
        core.worker._stop.set()  # the reconcile clock's loop ends: its thread dies
        eventually(lambda: status(port, "/healthz")[0] == 503, "the dead clock is seen")
        assert status(port, "/healthz")[1]["msg"] == (
            "not alive: the reconcile clock thread has died"
        )
    finally:
        server.shutdown()
        core.close()
