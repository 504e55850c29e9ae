"""Start-up of real ``tes-server`` and gunicorn processes: what they print when ready, their
``--help``, and each mistake a newcomer makes stopping start-up with one line on stderr
(never a traceback, never a server that says ready while every task would fail);
``/readyz`` of a server whose container runtime stops working after start."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.api.support import API_SUFFIX
from tests.local.support import require_runtime
from tests.servers import ServerProcess, server_env

CLOSED_REDIS = "redis://127.0.0.1:9/0"
"""A broker URL nothing answers at: the worker must stop before it would use it."""


def tes_server(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """Run ``tes-server ARGS`` to its end (a process that starts serving times out)."""
    return subprocess.run(
        [sys.executable, "-m", "tes_core.cli", *args], env=env, capture_output=True,
        text=True, timeout=60, stdin=subprocess.DEVNULL,
    )


def stopped(result: subprocess.CompletedProcess, status: int = 1) -> str:
    """Check the process stopped at start-up the way the operator should see it; return the
    last line of its stderr."""
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert "ready at" not in result.stdout and "running" not in result.stdout, result.stdout
    return result.stderr.strip().splitlines()[-1]


def serve(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    data = tmp_path / "data"
    return tes_server(server_env(data, **env), "serve", "--port", "0", "--data-dir", str(data),
                      *args)


def worker(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    return tes_server(server_env(tmp_path / "data", **env), "worker")


# -- --help -----------------------------------------------------------------------------------


def test_help_shows_each_options_variable_and_default(tmp_path: Path) -> None:
    env = server_env(tmp_path)
    text = " ".join(tes_server(env, "serve", "--help").stdout.split())
    for option, variable, default in [
        ("--host", "TES_HOST", "127.0.0.1"), ("--port", "TES_PORT", "8000"),
        ("--threads", "TES_HTTP_THREADS", "16"), ("--data-dir", "TES_DATA_DIR", ""),
    ]:
        assert option in text and f"env {variable}; default: {default}" in text, text
    text = " ".join(tes_server(env, "worker", "--help").stdout.split())
    assert "TES_BROKER_URL" in text and "env TES_DATA_DIR; default:" in text, text
    text = " ".join(tes_server(env, "db", "upgrade", "--help").stdout.split())
    assert "env TES_DATABASE_URL; default: empty" in text, text


def test_an_option_overrides_its_variable_and_the_variable_the_default(tmp_path: Path) -> None:
    # TES_PORT names a port in use, --port 0 wins; TES_HOST is taken (no --host).
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = server_env(tmp_path / "data", TES_PORT=str(taken.getsockname()[1]),
                         TES_HOST="localhost")
        proc = ServerProcess(tmp_path / "data", env).start()  # with --port 0
        try:
            assert proc.url.startswith("http://localhost:"), proc.url
            assert f":{taken.getsockname()[1]}/" not in proc.url
        finally:
            proc.stop()


# -- mistakes that stop start-up ----------------------------------------------------------------


def test_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        data = tmp_path / "data"
        result = tes_server(server_env(data), "serve", "--port", str(port),
                            "--data-dir", str(data))
    line = stopped(result)
    assert f"port {port} on 127.0.0.1 is already in use" in line
    assert "--port or TES_PORT" in line


def test_a_misspelled_runtime(tmp_path: Path) -> None:
    line = stopped(serve(tmp_path, TES_LOCAL_RUNTIME="dokcer"), status=2)
    assert line.startswith("tes-server: configuration error: TES_LOCAL_RUNTIME='dokcer'"), line
    assert "did you mean 'docker'?" in line
    assert "choose one of auto, docker, podman, bubblewrap" in line


def test_docker_without_an_engine(tmp_path: Path) -> None:
    dead = tmp_path / "no-dockerd-here.sock"
    line = stopped(serve(tmp_path, TES_LOCAL_RUNTIME="docker", DOCKER_HOST=f"unix://{dead}"))
    assert "Container runtime 'docker' is not usable" in line
    if shutil.which("docker"):
        assert f"no Docker engine answers at unix://{dead}; start dockerd" in line
    assert "or set TES_LOCAL_RUNTIME=auto" in line


def test_podman_not_installed(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    line = stopped(serve(tmp_path, TES_LOCAL_RUNTIME="podman", PATH=str(empty)))
    assert "Container runtime 'podman' is not usable: podman is not installed" in line
    assert "install podman (apt-get install podman runc)" in line


def test_bubblewrap_that_cannot_make_a_sandbox(tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    bwrap = fake / "bwrap"  # as on a host where unprivileged user namespaces are off
    bwrap.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\n"
                     "exit 1\n")
    bwrap.chmod(0o755)
    path = f"{fake}{os.pathsep}{os.environ.get('PATH', '')}"
    line = stopped(serve(tmp_path, TES_LOCAL_RUNTIME="bubblewrap", PATH=path))
    assert "Container runtime 'bubblewrap' is not usable" in line
    assert "bwrap cannot create a hardened sandbox here: " \
           "bwrap: No permissions to create new namespace" in line


def test_a_worker_on_a_database_never_upgraded(tmp_path: Path) -> None:
    line = stopped(worker(tmp_path, TES_BROKER_URL=CLOSED_REDIS))
    assert "has no tables yet; run `tes-server db upgrade`" in line
    assert "same TES_DATABASE_URL" in line


def test_a_worker_without_a_broker(tmp_path: Path) -> None:
    line = stopped(worker(tmp_path))
    assert line.startswith("tes-server: tes-server worker needs TES_BROKER_URL"), line
    assert "run `tes-server serve`" in line


def test_a_malformed_setting(tmp_path: Path) -> None:
    line = stopped(serve(tmp_path, TES_MAX_TAGS="lots"), status=2)
    assert line == "tes-server: configuration error: TES_MAX_TAGS='lots' is not a valid int"


def test_a_shutdown_grace_that_is_not_above_zero(tmp_path: Path) -> None:
    line = stopped(serve(tmp_path, TES_SHUTDOWN_GRACE="0"), status=2)
    assert line == "tes-server: configuration error: TES_SHUTDOWN_GRACE=0 must be above 0 (seconds)"


def test_a_database_that_does_not_answer(tmp_path: Path) -> None:
    closed = "postgresql+psycopg://postgres@127.0.0.1:9/tes"
    line = stopped(serve(tmp_path, TES_DATABASE_URL=closed))
    assert line.startswith(f"tes-server: cannot reach the database {closed}: "), line
    assert line.endswith("check TES_DATABASE_URL and that the database server runs")


def test_gunicorn_on_a_database_never_upgraded(tmp_path: Path) -> None:
    env = server_env(tmp_path / "data", TES_BROKER_URL=CLOSED_REDIS)
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "python:tes_core.gunicorn_conf",
         "--bind", "127.0.0.1:0", "tes_core.app:create_app()"],
        env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    line = stopped(result)
    assert line.startswith("tes-core: the database sqlite:"), line
    assert "has no tables yet; run `tes-server db upgrade`" in line


# -- the ready line and /readyz -----------------------------------------------------------------


def test_the_ready_line_names_the_runtime_and_why(tmp_path: Path) -> None:
    proc = ServerProcess(tmp_path / "data", server_env(tmp_path / "data")).start()
    try:
        lines = _ready_message(proc)
        runtime = [line for line in lines if line.startswith("runtime: ")]
        assert runtime, proc.log()
        name = runtime[0].split()[1]
        assert name in ("docker", "podman", "bubblewrap"), runtime
        assert "(TES_LOCAL_RUNTIME=auto: the first of docker, podman, bubblewrap that works" \
            in runtime[0]
        skipped = ("docker", "podman", "bubblewrap")[: ("docker", "podman", "bubblewrap")
                                                       .index(name)]
        for other in skipped:  # each runtime passed over says why
            assert f"; not {other}: " in runtime[0], runtime
    finally:
        proc.stop()


def test_without_a_runtime_when_allowed_readyz_says_why(tmp_path: Path) -> None:
    dead = tmp_path / "no-dockerd-here.sock"
    data = tmp_path / "data"
    proc = ServerProcess(data, server_env(
        data, TES_LOCAL_RUNTIME="docker", DOCKER_HOST=f"unix://{dead}",
        TES_LOCAL_START_WITHOUT_RUNTIME="true",
    )).start()
    try:
        assert "runtime: none usable, every task will fail: Container runtime 'docker' is not " \
            "usable" in "\n".join(_ready_message(proc))
        response = requests.get(f"{proc.url[: -len(API_SUFFIX)]}/readyz", timeout=30)
        assert response.status_code == 503, response.text
        body = response.json()
        assert set(body["errors"]) == {"backend"}, body
        assert body["msg"].startswith("not ready: the backend cannot run tasks: ")
        assert "Container runtime 'docker' is not usable" in body["errors"]["backend"][0]
    finally:
        proc.stop()


def _ready_message(proc: ServerProcess) -> list[str]:
    """The lines the server printed from "ready at" to its last ("try: curl ...")."""
    deadline = time.monotonic() + 30
    while not any(line.lstrip().startswith("try: curl") for line in proc.output):
        assert time.monotonic() < deadline, proc.log()
        time.sleep(0.05)
    lines = [line.strip() for line in proc.output]
    return lines[next(i for i, line in enumerate(lines) if "ready at" in line):]


class SocketRelay:
    """A Unix socket at ``path`` relaying every connection to the Unix socket ``target``:
    a Docker engine this test can take away and give back without touching the real one."""

    def __init__(self, path: Path, target: str) -> None:
        self.path = path
        self.target = target
        self.server: socket.socket | None = None

    def start(self) -> None:
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(str(self.path))
        self.server.listen(16)
        threading.Thread(target=self._accept, args=(self.server,), daemon=True).start()

    def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        self.path.unlink()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return  # closed
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass


@pytest.fixture
def relayed_docker(tmp_path: Path) -> Iterator[SocketRelay]:
    require_runtime("docker")
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        pytest.skip(f"the Docker engine is not on a Unix socket here: {host}")
    relay = SocketRelay(tmp_path / "docker.sock", host.removeprefix("unix://"))
    relay.start()
    yield relay
    if relay.server is not None and relay.path.exists():
        relay.stop()


def test_readyz_when_the_docker_engine_goes_away_and_comes_back(
    tmp_path: Path, relayed_docker: SocketRelay
) -> None:
    data = tmp_path / "data"
    proc = ServerProcess(data, server_env(
        data, TES_LOCAL_RUNTIME="docker", DOCKER_HOST=f"unix://{relayed_docker.path}",
    )).start()
    readyz = f"{proc.url[: -len(API_SUFFIX)]}/readyz"
    try:
        assert "runtime: docker (TES_LOCAL_RUNTIME=docker)" in _ready_message(proc)
        ready = requests.get(readyz, timeout=30)
        assert ready.status_code == 200 and ready.json()["backend"] == "ok", ready.text
        relayed_docker.stop()  # the engine stops answering
        body = _wait_for_readyz(readyz, 503)
        assert set(body["errors"]) == {"backend"}, body
        reason = body["errors"]["backend"][0]
        assert reason.startswith("container runtime docker stopped working: "), reason
        assert f"no Docker engine answers at unix://{relayed_docker.path}" in reason
        relayed_docker.start()  # and comes back
        assert _wait_for_readyz(readyz, 200)["status"] == "ready"
    finally:
        proc.stop()


def _wait_for_readyz(url: str, status: int, timeout: float = 30.0) -> dict:
    """Poll ``/readyz`` until it answers ``status`` (the runtime check is cached a few
    seconds); return the body."""
    deadline = time.monotonic() + timeout
    while True:
        response = requests.get(url, timeout=30)
        if response.status_code == status or time.monotonic() > deadline:
            assert response.status_code == status, response.text
            return response.json()
        time.sleep(0.5)
