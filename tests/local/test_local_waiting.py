"""Why a task waits: a real server with one task slot tells it in BASIC and FULL views.

One runtime is enough (what a task waits for does not depend on it): the first usable of
bubblewrap, Docker, podman. The image pull is Docker's, from a slow registry on 127.0.0.1
(podman refuses plain HTTP registries unless configured).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.jsonhttp import JsonHandler, LocalServer
from tests.local.support import (
    RUNTIME_NAMES,
    Tes,
    probe,
    sh,
    start_server,
    system_logs,
    token,
)

pytestmark = pytest.mark.timeout(120)

SLOT = "waiting for a local slot: 1 of 1 in use"


@pytest.fixture(scope="module")
def tes1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tes]:
    """A server whose worker runs one task at a time and stages one file at a time."""
    usable = [n for n in ("bubblewrap", *RUNTIME_NAMES) if probe(n) is None]
    if not usable:
        pytest.skip("no container runtime is usable here")
    server = start_server(
        tmp_path_factory.mktemp("tes-waiting"), usable[0],
        TES_LOCAL_MAX_TASKS="1", TES_LOCAL_TRANSFER_PARALLEL="1",
    )
    yield Tes(server, usable[0])
    server.stop()


def _reason(task: dict[str, Any]) -> str | None:
    logs = task.get("logs") or [{}]
    return (logs[-1].get("metadata") or {}).get("waiting_reason")


def _watch(tes: Tes, task_id: str, states: set[str], timeout: float = 60) -> list[str]:
    """The waiting reasons the BASIC view showed, in order, while the task was in ``states``."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = tes.get(task_id, "BASIC")
        if task["state"] not in states:
            return seen
        assert "system_logs" not in (task.get("logs") or [{}])[-1]
        reason = _reason(task)
        if reason and (not seen or seen[-1] != reason):
            seen.append(reason)
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} stayed in {states} for {timeout} s")


def test_a_task_waiting_for_a_slot_says_so_once(tes1: Tes) -> None:
    first = tes1.submit({"executors": [sh("sleep 6")]})
    tes1.wait(first, {"RUNNING"})
    second = tes1.submit({"executors": [sh("echo done")]})

    seen = _watch(tes1, second, {"QUEUED"})
    assert seen == [SLOT]

    done = tes1.wait(second)
    assert done["state"] == "COMPLETE", system_logs(done)
    # The reason went from the metadata once the task ran; its one line stayed.
    assert _reason(done) is None
    assert system_logs(done).splitlines().count(SLOT) == 1
    # The first task started at once: nothing was written about waiting.
    started_fast = tes1.wait(first)
    assert started_fast["state"] == "COMPLETE"
    assert "waiting" not in system_logs(started_fast)
    assert _reason(started_fast) is None


def test_staging_says_how_many_files_and_replaces_its_line(tes1: Tes, http_files) -> None:
    names = [f"slow-{token()}.txt" for _ in range(6)]
    for name in names:
        (http_files.root / name).write_text(name)
        http_files.delays[f"/{name}"] = 1.0
    task_id = tes1.submit({
        "inputs": [{"path": f"/in/{n}", "url": f"{http_files.url}/{n}"} for n in names],
        "executors": [sh("cat /in/*")],
    })

    seen = _watch(tes1, task_id, {"QUEUED", "INITIALIZING"})
    assert len(seen) >= 2, seen  # updated as files arrive
    assert all(reason.startswith("staging inputs: ") for reason in seen), seen
    assert all(reason.endswith(" of 6 files") for reason in seen), seen

    done = tes1.wait(task_id)
    assert done["state"] == "COMPLETE", system_logs(done)
    assert _reason(done) is None
    staging = [line for line in system_logs(done).splitlines() if line.startswith("staging")]
    assert staging == [seen[-1]]  # one line, replaced in place, never repeated


class _SlowRegistry(JsonHandler):
    """A registry that takes its time to answer, then knows no image: a pull that waits."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path == "/v2/":
            time.sleep(PULL_SECONDS)
            self.reply(200, {})
        else:
            self.reply(404, {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "unknown"}]})

    do_HEAD = do_GET  # noqa: N815


PULL_SECONDS = 4.0


def test_pulling_an_image_says_so(tmp_path: Path) -> None:
    """Docker pulls from a slow registry on 127.0.0.1 (Docker allows plain HTTP there)."""
    if probe("docker") is not None:
        pytest.skip(f"docker is not usable here: {probe('docker')}")
    registry = LocalServer(_SlowRegistry)
    server = start_server(tmp_path / "data", "docker")
    try:
        tes = Tes(server, "docker")
        image = f"127.0.0.1:{registry.port}/tes-tests/slow:{token()}"
        task_id = tes.submit({"executors": [sh("true", image=image)]})
        seen = _watch(tes, task_id, {"QUEUED", "INITIALIZING"})
        assert f"pulling image '{image}'" in seen, seen
        done = tes.wait(task_id)
        assert done["state"] == "SYSTEM_ERROR"  # the registry has no such image
        assert _reason(done) is None
        assert f"pulling image '{image}'" in system_logs(done).splitlines()
    finally:
        server.stop()
        registry.close()
