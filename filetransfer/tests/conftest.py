"""Fixtures for tes-filetransfer tests: a real HTTP server on 127.0.0.1 in a thread."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tes_filetransfer import progress, register_storage
from tes_filetransfer.storage import HttpStorage, storage_for


@dataclass
class FileServer:
    """Serves files from ``root`` (GET), stores PUT bodies there, fails on demand.

    ``plan[path]`` is a list of actions used up one per request to that path (query string
    ignored): an int is an HTTP status to answer with, ``"truncate"`` sends half the body.
    """

    root: Path
    port: int = 0
    plan: dict[str, list[int | str]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p in self.requests if m == method and urlsplit(p).path == path)


def _handler(server: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output clean

        def _next_action(self) -> int | str | None:
            server.requests.append((self.command, self.path))
            actions = server.plan.get(urlsplit(self.path).path)
            return actions.pop(0) if actions else None

        def _local(self) -> Path:
            return server.root / unquote(urlsplit(self.path).path).lstrip("/")

        def _send_status(self, status: int) -> None:
            body = f"status {status}\n".encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:
            action = self._next_action()
            if isinstance(action, int):
                self._send_status(action)
                return
            local = self._local()
            if not local.is_file():
                self._send_status(404)
                return
            size = local.stat().st_size
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            with open(local, "rb") as f:
                if action == "truncate":
                    self.wfile.write(f.read(size // 2))
                    self.wfile.flush()
                    self.close_connection = True
                    return
                shutil.copyfileobj(f, self.wfile, 1024 * 1024)

        def do_PUT(self) -> None:
            action = self._next_action()
            length = int(self.headers.get("Content-Length", "0"))
            data = self.rfile.read(length) if length else b""
            if isinstance(action, int):
                self._send_status(action)
                return
            local = self._local()
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(data)
            self._send_status(201)

    return Handler


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[FileServer]:
    """A live HTTP file server on 127.0.0.1 (random port) serving ``tmp_path/served``."""
    root = tmp_path / "served"
    root.mkdir()
    state = FileServer(root=root)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _fast_http_retries(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Short retry waits, and no proxy for 127.0.0.1 whatever the environment says."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    before = {scheme: storage_for(f"{scheme}://x") for scheme in ("http", "https")}
    fast = HttpStorage(backoff=0.01, connect_timeout=5, read_timeout=10)
    register_storage("http", fast)
    register_storage("https", fast)
    yield
    for scheme, storage in before.items():
        register_storage(scheme, storage)


@pytest.fixture
def fast_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    """Log progress lines on every chunk (the 2 s throttle made 0)."""
    monkeypatch.setattr(progress, "PROGRESS_INTERVAL_SECONDS", 0.0)
