"""Class 5: a task must not poison the node-local input cache for the next task.

Without the fix a cached input was hard-linked (mode 0444) into the task's writable
tree: task A, root in its container, could chmod it, write other bytes of the same
size and put the old mtime back, and task B (perhaps another user's) received A's bytes.
Now each task gets a copy and every reuse checks the entry's SHA-256.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from tests.local.support import (
    RUNTIME_NAMES,
    Tes,
    require_runtime,
    sh,
    start_server,
    stdouts,
    system_logs,
)
from tests.local.support import token as unique
from tests.security.support import HostCanary, assert_no_leak, server_canary_env
from tests.servers import NO_TEST_ALLOW_LISTS

pytestmark = pytest.mark.timeout(120)

ORIGINAL = "original-bytes"
POISON = "poisoned-bytes"  # same size: the old size+mtime check could not tell


@pytest.fixture(scope="module")
def web_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on 127.0.0.1 (Last-Modified makes its files cacheable)."""
    root = tmp_path_factory.mktemp("cache-web")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=root))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module", params=RUNTIME_NAMES)
def cached(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Tes]:
    """A server with its default cache, trusting only the test's web server address."""
    require_runtime(request.param)
    data_dir = tmp_path_factory.mktemp(f"tes-cache-{request.param}")
    env = {**server_canary_env(), **NO_TEST_ALLOW_LISTS, "TES_ALLOWED_HOSTS": "127.0.0.1"}
    server = start_server(data_dir, request.param, **env)
    yield Tes(server, request.param)
    server.stop()


def test_a_task_cannot_change_a_cached_input_for_the_next_task(
    cached: Tes, web_root: tuple[Path, str], canary: HostCanary
) -> None:
    root, base = web_root
    name = f"data-{unique()}.txt"
    (root / name).write_text(ORIGINAL)
    url = f"{base}/{name}"
    inner = "/tes-wd/shared/in/data.txt"
    poisoner = cached.run({
        "inputs": [{"path": "/in/data.txt", "url": url}],
        "executors": [sh(
            f"touch -r {inner} /tmp/when && chmod 644 {inner} && printf {POISON} > {inner} "
            f"&& touch -r /tmp/when {inner}; cat /in/data.txt"
        )],
    })
    victim = cached.run({
        "inputs": [{"path": "/in/data.txt", "url": url}],
        "executors": [sh("cat /in/data.txt")],
    })
    assert victim["state"] == "COMPLETE", victim
    assert stdouts(victim) == [ORIGINAL]
    if poisoner["state"] == "COMPLETE":  # the executor could write its copy (root)
        assert stdouts(poisoner) == [POISON]
    assert f"0 bytes downloaded, {len(ORIGINAL)} bytes from the node cache" in system_logs(victim)
    assert (root / name).read_text() == ORIGINAL
    assert_no_leak(poisoner, victim, canary=canary)
