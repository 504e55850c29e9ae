"""The reconcile pass at scale, on SQLite and the real PostgreSQL: a fixed number of
queries per batch (never one per task), batch size honoured, and a lock that expires."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select, update

from tes_core.backends.base import BackendContext, Observation
from tes_core.config import Settings
from tes_core.db import Database, utcnow
from tes_core.models import leases, tasks
from tes_core.plugins import load_plugins
from tes_core.reporting import DatabaseReporter
from tes_core.store import NewTask, insert_task
from tes_core.worker.lifecycle import RECONCILE_LEASE, Lifecycle
from tes_core.worker.registry import WorkerRegistry, acquire_lease
from tests.querycount import QueryCounter
from tests.remote_platform import Messages, PlatformBackend


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'reconcile.sqlite3'}"
    return request.getfixturevalue("postgres_url_factory")()


class World:
    """A database, the in-memory platform, a registered worker and its lifecycle."""

    def __init__(self, url: str, tmp_path, *, batch_size: int, lock_ttl: float = 60.0) -> None:
        self.db = Database(url)
        self.db.create_all()
        settings = Settings.from_env({}, data_dir=tmp_path)
        self.reporter = DatabaseReporter(self.db, load_plugins(settings))
        self.registry = WorkerRegistry(self.db, heartbeat_interval=5)
        self.backend = PlatformBackend(
            BackendContext(settings, self.reporter, self.registry.worker_id)
        )
        self.messages = Messages()
        self.lifecycle = Lifecycle(
            self.db, self.backend, self.reporter, self.registry, self.messages,
            stale_after=0, batch_size=batch_size, lock_ttl=lock_ttl,
        )
        self.registry.register()

    def close(self) -> None:
        self.registry.unregister()
        self.db.dispose()

    def add(self, count: int, state: str, *, submitted: bool = True) -> list[str]:
        """``count`` tasks in ``state``, with a platform job each if ``submitted``."""
        document = {"executors": [{"image": "alpine", "command": ["true"]}]}
        with self.db.driver_write() as tx:
            ids = [insert_task(tx, NewTask(document=document, backend="platform"))
                   for _ in range(count)]
        with self.db.write() as conn:
            for task_id in ids:
                conn.execute(
                    update(tasks).where(tasks.c.id == task_id).values(
                        state=state, backend_ref=f"job-{task_id}" if submitted else None,
                        updated_at=utcnow(),
                    )
                )
        return ids

    def states(self) -> dict[str, str]:
        with self.db.read() as conn:
            return dict(conn.execute(select(tasks.c.id, tasks.c.state)).all())


@pytest.fixture
def make_world(database_url, tmp_path) -> Iterator[Callable[..., World]]:
    made: list[World] = []

    def make(**kwargs: Any) -> World:
        folder = tmp_path / f"w{len(made)}"
        folder.mkdir()
        url = database_url if not made else _another(database_url, folder)
        made.append(World(url, folder, **kwargs))
        return made[-1]

    def _another(url: str, folder) -> str:
        if url.startswith("sqlite"):
            return f"sqlite:///{folder / 'reconcile.sqlite3'}"
        from tests.servers import create_postgres_database

        return create_postgres_database()

    yield make
    for world in made:
        world.close()


def _script(world: World, scale: int) -> list[str]:
    """A mix of every kind of work a pass does, ``scale`` tasks of each kind."""
    running = world.add(scale, "RUNNING")
    finishing = world.add(scale, "RUNNING")
    starting = world.add(scale, "QUEUED")
    never_sent = world.add(scale, "QUEUED", submitted=False)
    cancelled = world.add(scale, "CANCELING", submitted=False)
    now = utcnow()
    for task_id in running:
        world.backend.reports[task_id] = Observation(task_id, metadata={"node": "n1"})
    for task_id in finishing:
        world.backend.reports[task_id] = Observation(
            task_id, state="COMPLETE", end_time=now, executor_logs=[{"exit_code": 0}]
        )
    for task_id in starting:
        world.backend.reports[task_id] = Observation(task_id, state="RUNNING", start_time=now)
    return [*running, *finishing, *starting, *never_sent, *cancelled]


def test_a_pass_makes_the_same_number_of_queries_for_n_and_10n_tasks(
    make_world, monkeypatch
) -> None:
    counts = {}
    for scale in (40, 400):
        world = make_world(batch_size=2000)
        _script(world, scale)
        counter = QueryCounter(world.db, monkeypatch)
        counts[scale] = counter.during(world.lifecycle.reconcile)
        states = world.states()
        assert sorted(states.values()).count("COMPLETE") == scale
        assert sorted(states.values()).count("CANCELED") == scale
        assert sorted(states.values()).count("RUNNING") == 2 * scale
        assert len(world.messages.submits) == scale  # never sent: sent again, no query each
        assert [len(batch) for batch in world.backend.polled] == [2 * scale, scale]
    assert counts[40] == counts[400], counts


def test_each_batch_costs_a_fixed_number_of_queries(make_world, monkeypatch) -> None:
    counts = {}
    for scale in (300, 600):
        world = make_world(batch_size=100)
        ids = world.add(scale, "RUNNING")
        for task_id in ids:
            world.backend.reports[task_id] = Observation(task_id, metadata={"seen": "yes"})
        counter = QueryCounter(world.db, monkeypatch)
        counts[scale] = counter.during(world.lifecycle.reconcile)
        assert all(len(batch) == 100 for batch in world.backend.polled)
        assert sum(len(batch) for batch in world.backend.polled) == scale
        with world.db.read() as conn:
            logs = conn.execute(select(tasks.c.logs)).scalars().all()
        assert all(json.loads(text)[-1]["metadata"] == {"seen": "yes"} for text in logs)
    per_batch = (counts[600] - counts[300]) / 3
    assert per_batch == int(per_batch) and per_batch <= 6, counts
    assert counts[300] < 300 / 10, counts  # far fewer than one per task


def test_the_lock_is_renewed_during_a_pass_and_expires_after_a_dead_worker(
    make_world,
) -> None:
    world = make_world(batch_size=5, lock_ttl=0.6)
    ids = world.add(15, "RUNNING")
    contested: list[bool] = []
    poll = world.backend.poll

    def slow_poll(records):  # type: ignore[no-untyped-def]
        time.sleep(0.35)  # the pass outlives the lock's TTL; renewals keep it
        contested.append(acquire_lease(world.db, RECONCILE_LEASE, "another-worker", ttl=5))
        return poll(records)

    world.backend.poll = slow_poll  # type: ignore[method-assignment]
    world.lifecycle.reconcile()
    assert [len(batch) for batch in world.backend.polled] == [5, 5, 5]
    assert contested == [False, False, False]
    with world.db.read() as conn:
        assert conn.execute(select(leases)).first() is None  # released at the end

    # A worker that died holding the lock: nothing happens until the lock expires.
    world.backend.poll = poll  # type: ignore[method-assignment]
    world.backend.polled.clear()
    assert acquire_lease(world.db, RECONCILE_LEASE, "dead-worker", ttl=0.6)
    world.lifecycle.reconcile()
    assert world.backend.polled == []
    time.sleep(0.7)
    world.lifecycle.reconcile()
    assert sorted(sum(world.backend.polled, [])) == sorted(ids)


def test_batch_size_is_checked() -> None:
    from tes_core.config import ConfigError

    with pytest.raises(ConfigError, match="TES_RECONCILE_BATCH_SIZE"):
        Lifecycle(None, None, None, None, None, batch_size=0)  # type: ignore[arg-type]
