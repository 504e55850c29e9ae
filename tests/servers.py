"""Starting real ``tes-server`` processes for tests and benchmarks."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

READY = re.compile(r"TES server ready at (\S+)")
WORKER_READY = re.compile(r"TES worker (\S+) running")
POSTGRES_ADMIN_URL = os.environ.get(
    "TES_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@dataclass
class ChildServer:
    """A child HTTP server process that prints a "ready at URL" line once it listens.

    Shared by the tests and the benchmarks (``bench/``).
    """

    name: str
    argv: list[str]
    env: dict[str, str]
    ready: re.Pattern[str] = READY
    cwd: Path | None = None
    url: str = ""
    proc: subprocess.Popen | None = None
    output: deque = field(default_factory=lambda: deque(maxlen=400))

    def start(self, timeout: float = 60.0) -> ChildServer:
        """Start the process and wait until it prints its URL."""
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        found = threading.Event()

        def read() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line.rstrip())
                match = self.ready.search(line)
                if match and not found.is_set():
                    self.url = match.group(1)
                    found.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not found.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not start:\n" + self.log())
        return self

    @property
    def pid(self) -> int:
        """The process id."""
        assert self.proc is not None
        return self.proc.pid

    def log(self) -> str:
        """The last lines the server printed."""
        return "\n".join(self.output)

    def wait_for_output(self, found: Callable[[list[str]], bool], timeout: float = 15.0) -> bool:
        """Wait until ``found(lines printed so far)`` holds; False if it still fails at the end.

        ``start`` returns at the ready line; what the process prints after it (the
        backend's description, the README's ready lines) may still be on its way.
        """
        deadline = time.monotonic() + timeout
        while not found(list(self.output)):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), killing after 20 s."""
        stop_process(self.proc)

    def kill(self) -> None:
        """kill -9, as a crash would."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self) -> ChildServer:
        """Start again with the same settings (a new port)."""
        return self.start()


class ServerProcess(ChildServer):
    """``tes-server serve`` on ``data_dir``; ``url`` is the API base (``.../ga4gh/tes/v1``)."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        super().__init__(
            name="tes-server",
            argv=[sys.executable, "-m", "tes_core.cli", "serve", "--port", "0",
                  "--data-dir", str(data_dir)],
            env=env,
        )
        self.data_dir = data_dir


def redis_up(host: str = "127.0.0.1", port: int = 6379) -> bool:
    """Whether a Redis server answers PING at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def worker_process(env: dict[str, str]) -> ChildServer:
    """A ``tes-server worker`` child with ``env``, not yet started (``.start()`` returns
    once it says it runs)."""
    return ChildServer(
        name="worker", argv=[sys.executable, "-m", "tes_core.cli", "worker"], env=env,
        ready=WORKER_READY,
    )


def stop_process(proc: subprocess.Popen | None, grace: float = 20.0) -> None:
    """Stop a child process gracefully (SIGTERM), killing it after ``grace`` seconds."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


UNSET = "\0unset"
"""A :func:`server_env` value that leaves the variable out (the server's own default)."""

TEST_ALLOW_LISTS = {
    # The suites' HTTP file servers, Azurite (127.0.0.1:10000) and moto listen on loopback.
    "TES_ALLOWED_HOSTS": "127.0.0.1,localhost,::1",
    "TES_ALLOWED_LOCAL_DIRS": tempfile.gettempdir(),  # tmp_path inputs and outputs
}
"""Access-policy allow-lists every test server gets unless the caller sets them (the
attack tests turn them off: ``NO_TEST_ALLOW_LISTS``)."""

NO_TEST_ALLOW_LISTS = dict.fromkeys(TEST_ALLOW_LISTS, UNSET)
"""Pass as ``**NO_TEST_ALLOW_LISTS`` for a server with the embedded defaults."""


def server_env(data_dir: Path, database_url: str | None = None, **extra: str) -> dict[str, str]:
    """Environment for a test server: this one, plus TES_* settings for an isolated run
    (and :data:`TEST_ALLOW_LISTS`; a value of :data:`UNSET` leaves a variable out)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TES_")
        or k in ("TES_SERVICES_DIR", "TES_REQUIRE_RUNTIMES", "TES_TEST_POSTGRES")
    }
    env["TES_DATA_DIR"] = str(data_dir)
    env["TES_RECONCILE_INTERVAL"] = extra.pop("TES_RECONCILE_INTERVAL", "2")
    env["TES_HEARTBEAT_INTERVAL"] = extra.pop("TES_HEARTBEAT_INTERVAL", "1")
    if database_url:
        env["TES_DATABASE_URL"] = database_url
    env.update(TEST_ALLOW_LISTS)
    env.update(extra)
    return {k: v for k, v in env.items() if v != UNSET}


def create_postgres_database() -> str:
    """Create an empty PostgreSQL database for one test server; return its URL."""
    import psycopg

    name = f"tes_test_{uuid.uuid4().hex[:12]}"
    admin = POSTGRES_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_postgres_database(url: str) -> None:
    """Drop a database made by :func:`create_postgres_database`."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin = POSTGRES_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wait_for_state(
    url: str,
    task_id: str,
    states: set[str] | frozenset[str],
    timeout: float = 60.0,
    view: str = "MINIMAL",
) -> dict:
    """Poll ``GET /tasks/{id}`` until the task is in one of ``states``; return the task."""
    deadline = time.monotonic() + timeout
    task: dict = {}
    while time.monotonic() < deadline:
        task = requests.get(f"{url}/tasks/{task_id}", params={"view": view}, timeout=10).json()
        if task.get("state") in states:
            return task
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} did not reach {sorted(states)}; last seen: {task}")


TERMINAL = frozenset({"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED", "PREEMPTED"})
