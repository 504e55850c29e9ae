"""Fixtures for the real-task tests: a server per container runtime, an HTTP file server.

Start the engines first: ``bash scripts/test-services.sh`` then
``source /tmp/tes-test-services/env.sh``. A runtime whose probe fails is
skipped, unless ``TES_REQUIRE_RUNTIMES`` (comma list) names it: then it fails.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from tests.local.support import RUNTIME_NAMES, Tes, require_runtime, start_server


@pytest.fixture(scope="module", params=RUNTIME_NAMES)
def tes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tes]:
    """A real server whose local backend uses one runtime (TES_LOCAL_RUNTIME), per module."""
    runtime = request.param
    require_runtime(runtime)
    data_dir = tmp_path_factory.mktemp(f"tes-local-{runtime}")
    server = start_server(data_dir, runtime)
    yield Tes(server, runtime)
    server.stop()


@dataclass
class HttpFiles:
    """Files served over plain HTTP on 127.0.0.1, with a count of GETs per path."""

    root: Path
    url: str
    gets: Counter
    delays: dict[str, float]
    """Seconds to wait before answering a GET of a path (``/name``): a slow storage."""


@pytest.fixture(scope="module")
def http_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpFiles]:
    """A tiny ``http.server`` on 127.0.0.1 serving a temporary folder."""
    root = tmp_path_factory.mktemp("http-root")
    gets: Counter = Counter()
    delays: dict[str, float] = {}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            gets[self.path] += 1
            time.sleep(delays.get(self.path, 0.0))
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(Handler, directory=str(root))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield HttpFiles(root, f"http://127.0.0.1:{httpd.server_address[1]}", gets, delays)
    httpd.shutdown()
    httpd.server_close()
