"""Helpers for the real-task tests of the local backend (``tests/local``).

Each test module starts real ``tes-server serve`` processes (one per container
runtime) and talks to them over HTTP only, the way a workflow engine would.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from tes_runner.runtimes import RUNTIMES

from tests.servers import TERMINAL, ServerProcess, server_env

RUNTIME_NAMES = ("docker", "podman", "bubblewrap")
ENGINES = ("docker", "podman")
"""Runtimes with a container engine (images, resource limits, labelled containers)."""

REQUIRED = {n.strip() for n in os.environ.get("TES_REQUIRE_RUNTIMES", "").split(",") if n.strip()}
_PROBES: dict[str, str | None] = {}

HAPPY_PATH = ("QUEUED", "INITIALIZING", "RUNNING", "COMPLETE")


def probe(name: str) -> str | None:
    """Why runtime ``name`` cannot be used here (``None`` if it can); asked once per session."""
    if name not in _PROBES:
        _PROBES[name] = RUNTIMES[name].probe()
    return _PROBES[name]


def require_runtime(name: str) -> None:
    """Skip the test when ``name`` is unusable, or fail if TES_REQUIRE_RUNTIMES lists it."""
    reason = probe(name)
    if reason is None:
        return
    if name in REQUIRED:
        pytest.fail(f"runtime {name} is required (TES_REQUIRE_RUNTIMES) but unusable: {reason}")
    pytest.skip(f"runtime {name} is not usable here: {reason}")


def sh(script: str, image: str = "alpine", **fields: Any) -> dict[str, Any]:
    """An executor running ``sh -c SCRIPT`` (busybox and coreutils compatible scripts only)."""
    return {"image": image, "command": ["sh", "-c", script], **fields}


def token() -> str:
    """A short unique string for file names and markers."""
    return uuid.uuid4().hex[:12]


@dataclass
class Tes:
    """A running server and a tiny client for it."""

    server: ServerProcess
    runtime: str

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def data_dir(self) -> Path:
        return self.server.data_dir

    def submit(self, task: dict[str, Any]) -> str:
        """POST the task; return its id (the answer must be 200 with only an id)."""
        response = requests.post(f"{self.url}/tasks", json=task, timeout=30)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"id"}, body
        return body["id"]

    def get(self, task_id: str, view: str = "FULL") -> dict[str, Any]:
        response = requests.get(f"{self.url}/tasks/{task_id}", params={"view": view}, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def cancel(self, task_id: str) -> None:
        response = requests.post(f"{self.url}/tasks/{task_id}:cancel", timeout=30)
        assert response.status_code == 200, response.text
        assert response.json() == {}

    def wait(
        self,
        task_id: str,
        states: Iterable[str] = TERMINAL,
        timeout: float = 60.0,
        view: str = "FULL",
    ) -> dict[str, Any]:
        """Poll until the task is in one of ``states``; return it in ``view``."""
        wanted = frozenset(states)
        deadline = time.monotonic() + timeout
        task: dict[str, Any] = {}
        while time.monotonic() < deadline:
            task = self.get(task_id, view)
            if task["state"] in wanted:
                return task
            time.sleep(0.05)
        raise AssertionError(
            f"task {task_id} did not reach {sorted(wanted)} within {timeout} s; last seen:\n"
            f"{task}\n--- server log ---\n{self.server.log()[-4000:]}"
        )

    def run(self, task: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
        """Submit and wait for a terminal state; return the task in FULL."""
        return self.wait(self.submit(task), TERMINAL, timeout)


def start_server(data_dir: Path, runtime: str | None, database_url: str | None = None,
                 **env: str) -> ServerProcess:
    """Start ``tes-server serve`` on ``data_dir`` with the given runtime and settings."""
    extra = dict(env)
    if runtime is not None:
        extra["TES_LOCAL_RUNTIME"] = runtime
    return ServerProcess(data_dir, server_env(data_dir, database_url, **extra)).start()


def system_logs(task: dict[str, Any]) -> str:
    """Every system log line of every attempt, joined (FULL view)."""
    attempts = task.get("logs") or []
    return "\n".join(line for log in attempts for line in log.get("system_logs") or [])


def executor_logs(task: dict[str, Any]) -> list[dict[str, Any]]:
    """The executor logs of the task's last attempt."""
    logs = task.get("logs") or [{}]
    return list(logs[-1].get("logs") or [])


def stdouts(task: dict[str, Any]) -> list[str]:
    """The stdout tails of the last attempt's executors (FULL view)."""
    return [entry.get("stdout", "") for entry in executor_logs(task)]


def parse_time(value: str) -> datetime:
    """An RFC 3339 timestamp that must carry a time zone."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None, value
    return parsed


def containers_of(runtime: str, task_id: str) -> list[str]:
    """Ids of every container (running or not) labelled with ``task_id`` in the engine."""
    result = subprocess.run(
        [runtime, "ps", "-a", "-q", "--filter", f"label=org.ga4gh.tes.task={task_id}"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    return result.stdout.split()


def processes_with(marker: str, argv0: str | None = None) -> list[str]:
    """Command lines of this machine's processes that mention ``marker``.

    With ``argv0``, only processes whose first argument it is (``"sh"``: the executor's
    own shell inside its container, not the ``docker run``/``bwrap`` command that starts it).
    """
    found = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline and (argv0 is None or cmdline.split(" ", 1)[0] == argv0):
            found.append(f"{entry.name}: {cmdline}")
    return found


def wait_until(check: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``check`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def is_subsequence(seen: list[str], order: Iterable[str]) -> bool:
    """Whether the distinct states in ``seen`` appear in ``order`` and in that order."""
    ranks = {state: i for i, state in enumerate(order)}
    if any(state not in ranks for state in seen):
        return False
    numbers = [ranks[state] for state in seen]
    return numbers == sorted(numbers)
