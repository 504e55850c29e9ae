"""``/healthz`` and ``/readyz``: real servers, real PostgreSQL and Redis, and
dependencies that are down (closed ports)."""

from __future__ import annotations

import uuid

import pytest
import requests

from tes_core.app import create_app
from tes_core.config import Settings
from tests.api.support import API_SUFFIX, assert_error
from tests.servers import ServerProcess, server_env

CLOSED_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:9/none"
CLOSED_REDIS = "redis://127.0.0.1:9/0"


def test_a_server_is_healthy_and_ready(tmp_path) -> None:
    proc = ServerProcess(tmp_path, server_env(tmp_path)).start()
    try:
        root = proc.url[: -len(API_SUFFIX)]
        health = requests.get(f"{root}/healthz", timeout=10)
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        ready = requests.get(f"{root}/readyz", timeout=10)
        assert ready.status_code == 200
        # This process runs the tasks (embedded): its backend is asked too.
        assert ready.json() == {"status": "ready", "database": "ok", "broker": "ok",
                                "backend": "ok"}
        # Outside the API prefix: the TES paths do not have them.
        assert requests.get(f"{proc.url}/healthz", timeout=10).status_code == 404
    finally:
        proc.stop()


def _client(tmp_path, **env: str):
    settings = Settings.from_env(env, data_dir=tmp_path)
    app = create_app(settings, start_worker=False)
    return app, app.test_client()


@pytest.mark.parametrize(
    ("database", "broker", "down"),
    [
        (CLOSED_POSTGRES, "", {"database"}),
        (None, CLOSED_REDIS, {"broker"}),
        (CLOSED_POSTGRES, CLOSED_REDIS, {"database", "broker"}),
    ],
    ids=["database-down", "broker-down", "both-down"],
)
def test_readyz_names_what_is_down(tmp_path, database, broker, down, postgres_url_factory):
    app, client = _client(
        tmp_path,
        TES_DATABASE_URL=database or postgres_url_factory(),
        TES_BROKER_URL=broker,
    )
    try:
        response = client.get("/readyz")
        assert response.status_code == 503
        body = response.get_json()
        assert set(body["errors"]) == down, body
        for name in down:
            assert f"the {name}" in body["msg"]
            assert body["errors"][name][0]  # the reason, e.g. "Connection refused"
        assert client.get("/healthz").status_code == 200  # liveness asks nothing else
    finally:
        app.extensions["tes"].close()


def test_readyz_with_real_postgresql_and_redis(tmp_path, postgres_url_factory) -> None:
    app, client = _client(
        tmp_path, TES_DATABASE_URL=postgres_url_factory(),
        TES_BROKER_URL="redis://127.0.0.1:6379/0",
        TES_BROKER_NAMESPACE=f"tes-health-{uuid.uuid4().hex[:8]}",
    )
    try:
        response = client.get("/readyz")
        assert response.status_code == 200, response.get_json()
    finally:
        app.extensions["tes"].close()


def test_readyz_error_shape_over_http(tmp_path) -> None:
    env = server_env(tmp_path, TES_BROKER_URL=CLOSED_REDIS)
    # A server whose broker is down still starts and answers, saying it is not ready.
    proc = ServerProcess(tmp_path, env).start()
    try:
        response = requests.get(proc.url[: -len(API_SUFFIX)] + "/readyz", timeout=30)
        body = assert_error(response, 503)
        assert set(body["errors"]) == {"broker"}
    finally:
        proc.stop()
