"""Fixtures for tes-filetransfer tests: a real HTTP server on 127.0.0.1 in a thread, and
fresh containers in Azurite (see services.py)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

# The HTTP test server, Azurite, moto and the FTP server listen on loopback, which the
# access policy refuses unless allow-listed: allow it for these tests only (set before
# any TransferConfig is built; test_ft_policy.py builds its own policies).
os.environ.setdefault("TES_FT_ALLOWED_HOSTS", "127.0.0.1,localhost,::1")

from tes_filetransfer import progress, register_storage  # noqa: E402
from tes_filetransfer.storage import AzureBlobStorage, HttpStorage, storage_for  # noqa: E402


@dataclass
class FileServer:
    """Serves files from ``root`` (GET), stores PUT bodies there, fails on demand.

    ``plan[path]`` is a list of actions used up one per request to that path (query string
    ignored): an int is an HTTP status to answer with, ``"truncate"`` sends half the body.
    HEAD is answered (size and Last-Modified, what the node cache keys on) only when
    ``head_plan`` is set, its actions used up likewise: an int is a status, ``"drop"``
    closes the connection without an answer.
    """

    root: Path
    port: int = 0
    plan: dict[str, list[int | str]] = field(default_factory=dict)
    head_plan: dict[str, list[int | str]] | None = None
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

        def do_HEAD(self) -> None:
            server.requests.append((self.command, self.path))
            if server.head_plan is None:
                self._send_status(501)
                return
            actions = server.head_plan.get(urlsplit(self.path).path)
            action = actions.pop(0) if actions else None
            if action == "drop":
                self.close_connection = True
                return
            local = self._local()
            if isinstance(action, int) or not local.is_file():
                self._send_status(action if isinstance(action, int) else 404)
                return
            info = local.stat()
            self.send_response(200)
            self.send_header("Content-Length", str(info.st_size))
            self.send_header("Last-Modified", self.date_time_string(info.st_mtime))
            self.end_headers()

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
    """Short retry waits (HTTP, and the Azure SDK's own per-request retries), and no proxy
    for 127.0.0.1 whatever the environment says."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    schemes = ("http", "https", "az", "abfs", "abfss")
    before = {scheme: storage_for(f"{scheme}://x") for scheme in schemes}
    fast = HttpStorage(backoff=0.01, connect_timeout=5, read_timeout=10)
    register_storage("http", fast)
    register_storage("https", fast)
    azure = AzureBlobStorage(backoff=0.01)
    for scheme in ("az", "abfs", "abfss"):
        register_storage(scheme, azure)
    yield
    for scheme, storage in before.items():
        register_storage(scheme, storage)


@pytest.fixture
def fast_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    """Log progress lines on every chunk (the 2 s throttle made 0)."""
    monkeypatch.setattr(progress, "PROGRESS_INTERVAL_SECONDS", 0.0)


# -- storage services started by scripts/test-services.sh ---------------------------------
# A test that needs one skips when it does not answer, except under CI (CI set), where a
# missing service is a failure: CI must start it.

AZURITE_ACCOUNT_URL = "http://127.0.0.1:10000/devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
AZURITE_CONNECTION_STRING = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    f"AccountKey={AZURITE_KEY};BlobEndpoint={AZURITE_ACCOUNT_URL};"
)


def _answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), 2):
            return True
    except OSError:
        return False


def require_service(name: str, variable: str, default: str) -> str:
    """The service's URL from ``variable`` (else ``default``); skip or fail if it is down."""
    url = os.environ.get(variable, default)
    if not _answers(url):
        message = (
            f"{name} does not answer at {url}: start it with bash scripts/test-services.sh "
            f"and source the env.sh it writes"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return url


def azurite_account_url() -> str:
    """Azurite's account URL (``TES_TEST_AZURITE_ACCOUNT_URL``)."""
    return require_service("Azurite", "TES_TEST_AZURITE_ACCOUNT_URL", AZURITE_ACCOUNT_URL)


def azurite_connection_string() -> str:
    """Azurite's connection string (``TES_TEST_AZURITE_CONNECTION_STRING``)."""
    azurite_account_url()
    return os.environ.get("TES_TEST_AZURITE_CONNECTION_STRING", AZURITE_CONNECTION_STRING)


def s3_endpoint() -> str:
    """moto_server's URL (``TES_TEST_S3_ENDPOINT``)."""
    return require_service("moto_server", "TES_TEST_S3_ENDPOINT", "http://127.0.0.1:5000")


@dataclass
class BlobContainer:
    """A fresh Azurite container with helpers to make SAS URLs for its blobs."""

    client: Any
    account_url: str
    connection_string: str

    @property
    def name(self) -> str:
        return str(self.client.container_name)

    def sas(self, *, permission: str = "racwdl", expiry: datetime | None = None,
            key: str = AZURITE_KEY) -> str:
        """A container SAS signed with ``key`` (a wrong key makes a forged one)."""
        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        return generate_container_sas(
            account_name="devstoreaccount1",
            container_name=self.name,
            account_key=key,
            permission=ContainerSasPermissions.from_string(permission),
            expiry=expiry or datetime.now(UTC) + timedelta(hours=1),
        )

    @staticmethod
    def sas_key_tail() -> str:
        """The well-known key without its first 4 characters (to forge a signing key)."""
        return AZURITE_KEY[4:]

    def url(self, blob: str = "", sas: str | None = None) -> str:
        """``<account_url>/<container>/<blob>?<SAS>`` as the Cromwell plugin writes it."""
        base = f"{self.account_url}/{self.name}" + (f"/{blob}" if blob else "")
        return f"{base}?{self.sas() if sas is None else sas}" if sas != "" else base

    def put(self, blob: str, data: bytes) -> None:
        self.client.upload_blob(blob, data, overwrite=True)

    def get(self, blob: str) -> bytes:
        return bytes(self.client.download_blob(blob).readall())

    def names(self) -> list[str]:
        return sorted(b.name for b in self.client.list_blobs())


@pytest.fixture
def blob_container() -> Iterator[BlobContainer]:
    """A new container in Azurite, deleted afterwards."""
    from azure.storage.blob import BlobServiceClient

    account_url = azurite_account_url()
    connection_string = azurite_connection_string()
    service = BlobServiceClient.from_connection_string(connection_string)
    client = service.create_container(f"t{uuid.uuid4().hex[:20]}")
    try:
        yield BlobContainer(client, account_url, connection_string)
    finally:
        client.delete_container()


@dataclass
class DroppingProxy:
    """A TCP proxy to ``target`` that cuts the first ``drops`` connections once
    ``after_bytes`` went either way (mid-response for downloads, mid-request for uploads)."""

    target: tuple[str, int]
    drops: int
    after_bytes: int = 2048
    port: int = 0
    dropped: int = 0
    connections: int = 0

    def url_for(self, url: str) -> str:
        """``url`` with its host and port replaced by the proxy's."""
        parts = urlsplit(url)
        return parts._replace(netloc=f"127.0.0.1:{self.port}").geturl()


def _pipe(src: socket.socket, dst: socket.socket, limit: int | None) -> None:
    """Copy src to dst; with ``limit``, stop (and close both) after that many bytes."""
    sent = 0
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if limit is not None and sent + len(data) > limit:
                dst.sendall(data[: max(0, limit - sent)])
                break
            dst.sendall(data)
            sent += len(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def dropping_proxy() -> Iterator[Callable[[str, int], DroppingProxy]]:
    """Make a proxy in front of a URL's server that drops its first connections."""
    listeners: list[socket.socket] = []

    def make(url: str, drops: int) -> DroppingProxy:
        parts = urlsplit(url)
        proxy = DroppingProxy((parts.hostname or "127.0.0.1", parts.port or 80), drops)
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)
        proxy.port = listener.getsockname()[1]

        def serve() -> None:
            while True:
                try:
                    client, _ = listener.accept()
                except OSError:
                    return
                proxy.connections += 1
                upstream = socket.create_connection(proxy.target)
                limit = None
                if proxy.dropped < proxy.drops:
                    proxy.dropped += 1
                    limit = proxy.after_bytes
                threading.Thread(target=_pipe, args=(client, upstream, limit), daemon=True).start()
                threading.Thread(target=_pipe, args=(upstream, client, limit), daemon=True).start()

        threading.Thread(target=serve, daemon=True).start()
        return proxy

    yield make
    for listener in listeners:
        listener.close()


@pytest.fixture
def s3_endpoint_url() -> str:
    """moto_server's URL (``TES_TEST_S3_ENDPOINT``); skipped, or failed under CI, if down."""
    return require_service("moto_server", "TES_TEST_S3_ENDPOINT", "http://127.0.0.1:5000")


def point_azure_at(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """Make ``az://`` URLs reach Azurite's account at ``url`` (e.g. a ``HangingStore``)."""
    monkeypatch.setenv(
        "TES_FT_AZURE_CONNECTION_STRING",
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={AZURITE_KEY};BlobEndpoint={url}/devstoreaccount1;",
    )
