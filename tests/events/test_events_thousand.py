"""1,000 event streams held open at once by one API process, every one getting every event.

The settings the README documents for that many listeners: a gunicorn process with
``--threads`` above ``TES_EVENTS_MAX_CLIENTS`` (each stream holds a thread) and
``--worker-connections`` above both (gunicorn's ``gthread`` accepts no more connections
than that); or ``tes-server serve`` with ``TES_HTTP_THREADS`` above the limit (it sizes
waitress's connection cap from the threads). The 1,000 clients are plain sockets read
by one selector in this process, so the test measures the server, not 1,000 client
threads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.api.support import create, task
from tests.deployment import Deployment
from tests.events.rawstream import RawStream, pump
from tests.servers import ServerProcess, redis_up, server_env
from tests.test_production import REDIS_URL

STREAMS = 1000
TERMINAL = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED"}


@pytest.fixture(params=["gunicorn", "waitress"])
def crowded_api(request, tmp_path, postgres_url_factory_lazy) -> Iterator[tuple[str, int]]:
    """``(API URL, port)`` of a server set up for 1,000 streams: gunicorn (one process,
    PostgreSQL, Redis, a separate worker) or ``tes-server serve`` (waitress, SQLite)."""
    settings = {"TES_EVENTS_MAX_CLIENTS": str(STREAMS)}
    if request.param == "waitress":
        data_dir = tmp_path / "serve"
        server = ServerProcess(data_dir, server_env(
            data_dir, TES_HTTP_THREADS=str(STREAMS + 24), **settings)).start()
        try:
            yield server.url, urlsplit(server.url).port or 0
        finally:
            server.stop()
        return
    if not redis_up():
        pytest.skip("Redis is not running")
    deployment = Deployment(
        tmp_path, postgres_url_factory_lazy(), REDIS_URL, api_workers=1,
        api_threads=STREAMS + 24, GUNICORN_CMD_ARGS=f"--worker-connections {STREAMS + 100}",
        **settings,
    )
    deployment.migrate()
    deployment.start_api()
    deployment.start_worker()
    try:
        yield deployment.url, deployment.port
    finally:
        deployment.stop()


def finished_states(stream: RawStream, task_ids: list[str]) -> dict[str, str]:
    """Each task's finished state as ``stream`` heard it."""
    done: dict[str, str] = {}
    for event in stream.events():
        data = json.loads(event.data)
        if data["task_id"] in task_ids and data["state"] in TERMINAL:
            done[data["task_id"]] = data["state"]
    return done


def test_a_thousand_listeners_each_get_every_event(crowded_api):
    url, port = crowded_api
    streams: list[RawStream] = []
    try:
        for _ in range(STREAMS):
            streams.append(RawStream(port))
        pump(streams, lambda: all(s.opened or s.closed for s in streams), timeout=180)
        refused = [s.head[:200] for s in streams if not s.opened]
        assert not refused, f"{len(refused)} of {STREAMS} streams did not open: {refused[:3]}"

        one_too_many = RawStream(port)
        pump([one_too_many], lambda: one_too_many.status is not None, timeout=60)
        assert one_too_many.status == 503, one_too_many.head[:300]
        assert b"Retry-After" in one_too_many.head
        one_too_many.close()

        task_ids = [create(url, task("sh", "-c", f"echo {n}", name=f"crowd-{n}"))
                    for n in range(3)]
        pump(streams, lambda: all(len(finished_states(s, task_ids)) == len(task_ids)
                                  for s in streams), timeout=180)
    finally:
        for stream in streams:
            stream.close()

    heard = [finished_states(s, task_ids) for s in streams]
    missing = sum(len(h) < len(task_ids) for h in heard)
    assert missing == 0, f"{missing} of {STREAMS} listeners missed a finished task"
    assert all(h == dict.fromkeys(task_ids, "COMPLETE") for h in heard), heard[0]
    # Every listener heard the same events, in the same order.
    first = [(e.id, e.data) for e in streams[0].events()]
    assert len(first) >= 3 * len(task_ids)  # QUEUED ... COMPLETE for each task
    differing = [i for i, s in enumerate(streams) if [(e.id, e.data) for e in s.events()] != first]
    assert not differing, f"{len(differing)} listeners heard other events than the first"
