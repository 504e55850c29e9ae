"""Webhooks of a real server: signed POSTs of every state change, retried; a URL a task
names obeys the outbound rules (no loopback unless the operator allows it)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.support import create, task
from tests.jsonhttp import JsonHandler, LocalServer
from tests.servers import NO_TEST_ALLOW_LISTS, TERMINAL, ServerProcess, server_env, wait_for_state

SECRET = "webhook-s3cret"


class Receiver:
    """A webhook endpoint on 127.0.0.1 that records what it is sent; the first
    ``fail_first`` POSTs get a 500."""

    def __init__(self, fail_first: int = 0) -> None:
        self.posts: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.posts.append({"headers": self.headers, "body": body})
                    failing = len(receiver.posts) <= fail_first
                self.reply(500 if failing else 200, {})

        self.server = LocalServer(Handler)
        self.url = f"http://127.0.0.1:{self.server.port}/hook"

    def states(self, task_id: str) -> list[str]:
        """The states POSTed about ``task_id`` (repeats included), in order."""
        with self.lock:
            bodies = [json.loads(post["body"]) for post in self.posts]
        return [body["state"] for body in bodies if body["task_id"] == task_id]


@pytest.fixture(scope="module")
def receivers() -> Iterator[dict[str, Receiver]]:
    made = {"operator": Receiver(fail_first=2), "allowed": Receiver(), "loopback": Receiver()}
    yield made
    for receiver in made.values():
        receiver.server.close()


@pytest.fixture(scope="module")
def server(receivers, tmp_path_factory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("tes-webhooks")
    env = server_env(
        data_dir, **{**NO_TEST_ALLOW_LISTS,
        # The operator trusts this one loopback port (and no other) for task URLs.
        "TES_ALLOWED_HOSTS": f"127.0.0.1:{receivers['allowed'].server.port}"},
        TES_WEBHOOK_URL=receivers["operator"].url, TES_WEBHOOK_SECRET=SECRET,
        TES_WEBHOOK_TASK_TAG="webhook",
    )
    proc = ServerProcess(data_dir, env).start()
    yield proc
    proc.stop()


def _eventually(check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the webhook POSTs did not arrive"
        time.sleep(0.1)


def test_every_change_is_posted_signed_and_retried_after_failures(server, receivers):
    operator = receivers["operator"]
    task_id = create(server.url, task("true", name="hooked", tags={"team": "a"}))
    assert wait_for_state(server.url, task_id, TERMINAL)["state"] == "COMPLETE"
    _eventually(lambda: "COMPLETE" in operator.states(task_id))
    # The first two POSTs got 500s: each was sent again, so every change arrived.
    assert set(operator.states(task_id)) == {"INITIALIZING", "RUNNING", "COMPLETE"}
    with operator.lock:
        posts = list(operator.posts)
    for post in posts:
        headers, body = post["headers"], post["body"]
        assert headers["Content-Type"] == "application/json"
        expected = "sha256=" + hmac.new(
            SECRET.encode(), headers["X-TES-Timestamp"].encode() + b"." + body, hashlib.sha256
        ).hexdigest()
        assert hmac.compare_digest(headers["X-TES-Signature"], expected), headers
        assert abs(int(headers["X-TES-Timestamp"]) - time.time()) < 120
        data = json.loads(body)
        assert set(data) == {"task_id", "name", "state", "old_state", "time", "tags"}
        assert data["name"] == "hooked" and data["tags"] == {"team": "a"}
    assert SECRET not in server.log()


def test_a_task_cannot_make_the_server_post_to_loopback(server, receivers):
    refused = create(server.url, task("true", tags={"webhook": receivers["loopback"].url}))
    also_refused = create(server.url, task("true", tags={
        "webhook": receivers["loopback"].url.replace("127.0.0.1", "localhost")}))
    allowed = create(server.url, task("true", tags={"webhook": receivers["allowed"].url}))
    for task_id in (refused, also_refused, allowed):
        assert wait_for_state(server.url, task_id, TERMINAL)["state"] == "COMPLETE"
    _eventually(lambda: "COMPLETE" in receivers["allowed"].states(allowed))
    _eventually(lambda: "COMPLETE" in receivers["operator"].states(also_refused))
    assert receivers["loopback"].posts == [], "a task's tag made the server POST to loopback"
    assert "loopback" in server.log() and "not sent" in server.log()
