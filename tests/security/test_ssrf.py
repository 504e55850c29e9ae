"""Class 4 (server-side request forgery), on a real server.

An ``http(s)://``, ``ftp://`` or Azurite-style input or output naming a loopback address,
in any spelling, or a host that redirects there, is refused before any connection: the
loopback sentinel sees nothing, the task ends SYSTEM_ERROR naming ``TES_ALLOWED_HOSTS``,
and a closed port gets the very same refusal as an open one (no port-scanning oracle).
The access policy is the same code for every runtime, so one runtime (Docker) is enough.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.local.support import Tes, sh, start_server, system_logs, token
from tests.security.support import LoopbackSentinel, assert_no_leak, server_canary_env
from tests.servers import NO_TEST_ALLOW_LISTS

RUNTIME = "docker"
REDIRECTOR_HOST = "127.0.0.2"
"""The one loopback address the ``trusting`` server allow-lists."""

ON_ONE_RUNTIME = pytest.mark.parametrize("attacked", [RUNTIME], indirect=True)


def _spellings(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/x",
        f"http://2130706433:{port}/x",
        f"http://0x7f.1:{port}/x",
        f"http://127.1:{port}/x",
        f"http://[::ffff:127.0.0.1]:{port}/x",
        f"http://localhost:{port}/x",
        f"https://127.0.0.1:{port}/x",
        f"ftp://127.0.0.1:{port}/x",
        f"http://127.0.0.1:{port}/devstoreaccount1/c/b?sv=2021-08-06&sr=b&sp=rw&sig=abc",
    ]


def _refused(task: dict) -> str:
    assert task["state"] == "SYSTEM_ERROR", task["state"]
    logs = system_logs(task)
    assert "TES_ALLOWED_HOSTS" in logs and "refused" in logs, logs
    assert "sig=" not in logs
    return logs


@ON_ONE_RUNTIME

def _refused_both_ways(tes: Tes, url: str) -> None:
    """``url`` as an input, then as an output: each task must end refused, leaking nothing."""
    task = tes.run({"inputs": [{"url": url, "path": "/in/x"}], "executors": [sh("cat /in/x")]})
    _refused(task)
    assert_no_leak(task)
    task = tes.run({
        "outputs": [{"path": "/out/o.txt", "url": url}],
        "executors": [sh("mkdir -p /out && echo data > /out/o.txt")],
    })
    _refused(task)

def test_inputs_and_outputs_never_reach_loopback(
    attacked: Tes, sentinel: LoopbackSentinel
) -> None:
    for url in _spellings(sentinel.port):
        _refused_both_ways(attacked, url)
    # the sentinel fixture checks that nothing connected


@ON_ONE_RUNTIME
def test_a_closed_port_answers_like_an_open_one(
    attacked: Tes, sentinel: LoopbackSentinel
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    answers = []
    for port in (sentinel.port, closed):
        task = attacked.run({"inputs": [{"url": f"http://127.0.0.1:{port}/x", "path": "/x"}],
                             "executors": [sh("true")]})
        answers.append(_refused(task).replace(str(port), "PORT"))
    assert answers[0] == answers[1]


class Redirector:
    """An HTTP server on :data:`REDIRECTOR_HOST` redirecting every request to ``target``."""

    def __init__(self, target: str) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _redirect(self) -> None:
                self.send_response(302 if self.command in ("GET", "HEAD") else 307)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_HEAD = do_PUT = _redirect

        self.server = ThreadingHTTPServer((REDIRECTOR_HOST, 0), Handler)
        self.url = f"http://{REDIRECTOR_HOST}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def trusting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tes]:
    """A server that trusts only the redirector's address."""
    data_dir = tmp_path_factory.mktemp("tes-ssrf-trusting")
    env = {**server_canary_env(), **NO_TEST_ALLOW_LISTS, "TES_ALLOWED_HOSTS": REDIRECTOR_HOST}
    server = start_server(data_dir, RUNTIME, **env)
    yield Tes(server, RUNTIME)
    server.stop()


def test_a_trusted_host_cannot_redirect_to_loopback(
    trusting: Tes, sentinel: LoopbackSentinel
) -> None:
    redirector = Redirector(f"http://2130706433:{sentinel.port}/secret")
    try:
        _refused_both_ways(trusting, f"{redirector.url}/{token()}")
    finally:
        redirector.close()
