"""Retention (``TES_RETENTION``) on a real server: a finished task and its folder are
removed by the reconcile loop once they are older than the setting, counted in the
metrics; queued and running tasks never are, and age counts from a task's end.

Bubblewrap runs the tasks (no image to pull); one server per database.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.local.support import Tes, require_runtime, sh, start_server

RETENTION = 8.0
"""Seconds: long enough to look at a finished task several passes after it ended."""
RECONCILE = 1.0


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def tes(request, tmp_path_factory, postgres_url_factory_lazy) -> Iterator[Tes]:
    """A server keeping finished tasks and their folders for :data:`RETENTION` seconds,
    one task at a time (so a second one waits, QUEUED, while the first runs)."""
    require_runtime("bubblewrap")
    data_dir = tmp_path_factory.mktemp(f"tes-retention-{request.param}")
    database = postgres_url_factory_lazy() if request.param == "postgresql" else None
    server = start_server(
        data_dir, "bubblewrap", database, TES_RETENTION=f"{RETENTION:g}s",
        TES_RECONCILE_INTERVAL=f"{RECONCILE:g}", TES_LOCAL_KEEP_WORKDIRS="true",
        TES_LOCAL_MAX_TASKS="1",
    )
    server.database_url = database or f"sqlite:///{data_dir / 'tes.sqlite3'}"
    yield Tes(server, "bubblewrap")
    server.stop()


def _status(tes: Tes, task_id: str) -> int:
    return requests.get(f"{tes.url}/tasks/{task_id}", timeout=30).status_code


def _removed_count(tes: Tes, state: str) -> float:
    root = tes.url.rsplit("/ga4gh/", 1)[0]
    metrics = requests.get(f"{root}/metrics", timeout=30).text
    found = re.search(rf'^tes_tasks_removed_total{{state="{state}"}} (\S+)$', metrics, re.M)
    return float(found.group(1)) if found else 0.0


def _passes(tes: Tes) -> float:
    root = tes.url.rsplit("/ga4gh/", 1)[0]
    metrics = requests.get(f"{root}/metrics", timeout=30).text
    found = re.search(r"^tes_reconcile_duration_seconds_count (\S+)$", metrics, re.M)
    return float(found.group(1)) if found else 0.0


def _wait_for_passes(tes: Tes, count: int) -> None:
    target = _passes(tes) + count
    deadline = time.monotonic() + 30
    while _passes(tes) < target:
        assert time.monotonic() < deadline, "the reconcile loop does not run"
        time.sleep(0.2)


def _tag_rows(tes: Tes) -> int:
    engine = create_engine(tes.server.database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM task_tags")).scalar_one()
    finally:
        engine.dispose()


def _folder(tes: Tes, task_id: str) -> Path:
    return tes.data_dir / "tasks" / task_id


def test_finished_tasks_go_after_the_retention_and_active_ones_stay(
    tes: Tes, tmp_path: Path
) -> None:
    # The task plants links to a folder of the host's (a path its author could guess):
    # removing the task's folder unlinks them and leaves what they point at alone.
    victim = tmp_path / "victim"
    (victim / "inner").mkdir(parents=True)
    (victim / "precious").write_text("keep me")
    (victim / "inner" / "also").write_text("keep me too")
    plant = (f"ln -s {victim} /tes-wd/shared/to-dir && ln -s {victim}/precious /tes-wd/to-file"
             f" && mkdir -p /tes-wd/shared/deep && ln -s {victim}/inner /tes-wd/shared/deep/up")
    done = tes.submit({"executors": [sh(f"echo kept for a while && {plant}")],
                       "tags": {"batch": "old"}})
    assert tes.wait(done, {"COMPLETE"})["state"] == "COMPLETE"
    assert _folder(tes, done).is_dir()  # TES_LOCAL_KEEP_WORKDIRS keeps it until retention
    assert (_folder(tes, done) / "tes-wd" / "shared" / "deep" / "up").is_symlink()
    assert _tag_rows(tes) == 1
    removed_before = _removed_count(tes, "COMPLETE")
    running = tes.submit({"executors": [sh("sleep 120")]})
    tes.wait(running, {"RUNNING"})
    queued = tes.submit({"executors": [sh("true")]})  # waits for the one slot

    deadline = time.monotonic() + RETENTION + 30
    while _status(tes, done) == 200:
        assert time.monotonic() < deadline, tes.server.log()[-3000:]
        time.sleep(0.2)
    assert _status(tes, done) == 404
    assert not _folder(tes, done).exists()
    assert sorted(p.name for p in victim.rglob("*")) == ["also", "inner", "precious"]
    assert (victim / "precious").read_text() == "keep me"
    assert _tag_rows(tes) == 0  # its tags went with it
    assert _removed_count(tes, "COMPLETE") == removed_before + 1
    listed = requests.get(f"{tes.url}/tasks", params={"tag_key": "batch"}, timeout=30).json()
    assert listed["tasks"] == []

    # Created before the finished one was removed, and older than the retention by now:
    # still there, as they were, since they have not finished.
    _wait_for_passes(tes, 2)
    assert tes.get(running, "MINIMAL")["state"] == "RUNNING"
    assert tes.get(queued, "MINIMAL")["state"] == "QUEUED"
    assert _folder(tes, running).is_dir()

    # Age counts from the end: cancelled now, the old running task stays a while.
    tes.cancel(running)
    tes.wait(running, {"CANCELED"})
    _wait_for_passes(tes, 2)
    assert tes.get(running, "MINIMAL")["state"] == "CANCELED"
    tes.wait(queued, {"COMPLETE"})
    _wait_for_passes(tes, 2)
    assert tes.get(queued, "MINIMAL")["state"] == "COMPLETE"  # younger than the retention
    assert _folder(tes, queued).is_dir()
