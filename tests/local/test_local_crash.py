"""Crash safety: ``kill -9`` the server mid-run, start it again, and no task runs twice.

One task slot (TES_LOCAL_MAX_TASKS=1): Docker on SQLite and on PostgreSQL,
and bubblewrap on SQLite. Every executor appends ``start <name>`` and
``end <name>`` lines to one file in /tes-wd/shared-global (``<data
dir>/shared-global`` on this machine), so counting lines shows whether
anything ran twice.

What the design promises (LocalBackend.recover) for the task that was
RUNNING when the server died: a Docker container lives on, so the restarted
server re-attaches to it (never starting it again), uploads its outputs and
completes it; a bubblewrap sandbox dies with the server and cannot be picked
up, so that task ends SYSTEM_ERROR with the reason rather than run twice.
Tasks still queued run once after the restart.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.local.support import (
    ENGINES,
    Tes,
    containers_of,
    processes_with,
    require_runtime,
    sh,
    start_server,
    system_logs,
    token,
    wait_until,
)
from tests.servers import TERMINAL

pytestmark = pytest.mark.timeout(180)

NAMES = ("running", "queued-1", "queued-2", "queued-3")


@pytest.fixture(
    params=[("docker", "sqlite"), ("docker", "postgresql"), ("bubblewrap", "sqlite")],
    ids=["docker-sqlite", "docker-postgresql", "bubblewrap-sqlite"],
)
def crashable(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Tes]:
    runtime, db = request.param
    require_runtime(runtime)
    database = request.getfixturevalue("postgres_url_factory")() if db == "postgresql" else None
    server = start_server(tmp_path / "data", runtime, database, TES_LOCAL_MAX_TASKS="1")
    yield Tes(server, runtime)
    server.stop()


def _job(journal: str, name: str, seconds: float, dest: Path) -> dict:
    log = f"/tes-wd/shared-global/{journal}"
    script = (
        f"echo start {name} >> {log}; sleep {seconds}; echo end {name} >> {log}; "
        f"echo {name} > /out/{name}.txt"
    )
    return {
        "name": name,
        "executors": [sh(script)],
        "outputs": [{"path": f"/out/{name}.txt", "url": str(dest / f"{name}.txt")}],
    }


def _lines(path: Path) -> Counter:
    return Counter(path.read_text().splitlines()) if path.exists() else Counter()


def test_kill_9_and_restart_runs_nothing_twice(crashable: Tes, tmp_path: Path) -> None:
    tes = crashable
    journal = f"crash-{token()}.log"
    host_journal = tes.data_dir / "shared-global" / journal
    dest = tmp_path / "outputs"
    jobs = {name: _job(journal, name, 3 if name == "running" else 0.2, dest) for name in NAMES}
    ids = {"running": tes.submit(jobs["running"])}
    tes.wait(ids["running"], {"RUNNING"}, timeout=30)
    for name in NAMES[1:]:
        ids[name] = tes.submit(jobs[name])

    # Kill the server while the first task's executor runs and the others wait for the slot.
    deadline = time.monotonic() + 30
    while _lines(host_journal)["start running"] == 0:
        assert time.monotonic() < deadline, "the first task never started"
        time.sleep(0.05)
    assert tes.get(ids["queued-1"], "MINIMAL")["state"] == "QUEUED"
    tes.server.kill()
    if tes.runtime in ENGINES:
        assert containers_of(tes.runtime, ids["running"]), "the container outlives the server"

    tes.server.restart()
    final = {name: tes.wait(task_id, TERMINAL, timeout=90) for name, task_id in ids.items()}
    states = {name: task["state"] for name, task in final.items()}
    lines = _lines(host_journal)

    # Nothing ran twice.
    for name in NAMES:
        assert lines[f"start {name}"] == 1, (name, lines)
        assert lines[f"end {name}"] <= 1, (name, lines)

    running = final["running"]
    if tes.runtime in ENGINES:
        # Re-attached to the container that ran on, then completed with its outputs.
        assert states["running"] == "COMPLETE", (states, system_logs(running))
        assert "re-attached" in system_logs(running)
        assert lines["end running"] == 1
        assert (dest / "running.txt").read_text() == "running\n"
    else:
        # The sandbox died with the server: stopped, with the reason, never restarted.
        assert states["running"] == "SYSTEM_ERROR", (states, system_logs(running))
        assert "rather than run again" in system_logs(running)
        assert lines["end running"] == 0
        assert not (dest / "running.txt").exists()
        assert not (tes.data_dir / "tasks" / ids["running"]).exists()

    # The queued tasks ran exactly once each, after the restart.
    for name in NAMES[1:]:
        assert states[name] == "COMPLETE", (name, system_logs(final[name]))
        assert lines[f"end {name}"] == 1, (name, lines)
        assert (dest / f"{name}.txt").read_text() == f"{name}\n"
    # No executor is left running (an orphaned "docker run" of the killed server included).
    wait_until(lambda: not processes_with(journal), 10, "no process of these tasks to be left")
    if tes.runtime in ENGINES:
        # Containers are removed right after the final state is reported.
        for task_id in ids.values():
            wait_until(lambda t=task_id: not containers_of(tes.runtime, t), 10,
                       f"the containers of task {task_id} to be removed")
