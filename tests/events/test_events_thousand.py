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
import selectors
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tes_core.client.sse import ServerEvent, read_events
from tests.api.support import create, task
from tests.deployment import Deployment
from tests.servers import ServerProcess, server_env
from tests.test_production import REDIS_URL, _redis_up

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
    if not _redis_up():
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


class RawStream:
    """One ``GET /events`` over a bare socket (HTTP/1.0: the body is the stream itself)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.sendall(b"GET /ga4gh/tes/v1/events HTTP/1.0\r\nHost: 127.0.0.1\r\n"
                          b"Accept: text/event-stream\r\n\r\n")
        self.received = b""
        self.closed = False

    def read(self) -> None:
        """Take what arrived (the socket is readable)."""
        try:
            chunk = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.closed = True
        self.received += chunk

    @property
    def status(self) -> int | None:
        """The response's status code once its first line arrived."""
        head, _, _ = self.received.partition(b"\r\n")
        return int(head.split()[1]) if b" " in head else None

    @property
    def opened(self) -> bool:
        """The stream began: headers and the ``retry:`` line arrived."""
        return b"\r\n\r\nretry:" in self.received

    def events(self) -> list[ServerEvent]:
        """The ``state`` events received so far."""
        _, _, body = self.received.partition(b"\r\n\r\n")
        complete = body[: body.rfind(b"\n\n") + 2]
        return [e for e in read_events(complete.splitlines(keepends=True)) if e.event == "state"]


def pump(streams: list[RawStream], until, timeout: float) -> None:  # noqa: ANN001
    """Read every stream until ``until()`` holds or ``timeout`` seconds pass."""
    selector = selectors.DefaultSelector()
    for stream in streams:
        if not stream.closed:
            stream.sock.setblocking(False)
            selector.register(stream.sock, selectors.EVENT_READ, stream)
    deadline = time.monotonic() + timeout
    try:
        while not until() and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.5):
                key.data.read()
                if key.data.closed:
                    selector.unregister(key.fileobj)
    finally:
        selector.close()


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
        refused = [s.received[:200] for s in streams if not s.opened]
        assert not refused, f"{len(refused)} of {STREAMS} streams did not open: {refused[:3]}"

        one_too_many = RawStream(port)
        pump([one_too_many], lambda: one_too_many.status is not None, timeout=60)
        assert one_too_many.status == 503, one_too_many.received[:300]
        assert b"Retry-After" in one_too_many.received
        one_too_many.sock.close()

        task_ids = [create(url, task("sh", "-c", f"echo {n}", name=f"crowd-{n}"))
                    for n in range(3)]
        pump(streams, lambda: all(len(finished_states(s, task_ids)) == len(task_ids)
                                  for s in streams), timeout=180)
    finally:
        for stream in streams:
            stream.sock.close()

    heard = [finished_states(s, task_ids) for s in streams]
    missing = sum(len(h) < len(task_ids) for h in heard)
    assert missing == 0, f"{missing} of {STREAMS} listeners missed a finished task"
    assert all(h == dict.fromkeys(task_ids, "COMPLETE") for h in heard), heard[0]
    # Every listener heard the same events, in the same order.
    first = [(e.id, e.data) for e in streams[0].events()]
    assert len(first) >= 3 * len(task_ids)  # QUEUED ... COMPLETE for each task
    differing = [i for i, s in enumerate(streams) if [(e.id, e.data) for e in s.events()] != first]
    assert not differing, f"{len(differing)} listeners heard other events than the first"
