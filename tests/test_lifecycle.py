"""Worker-side task handling: claims, cancel, the reconcile pass and its lease.

A small in-test backend of the poll model stands in for a remote platform, so
these tests cover the core's logic alone; the local backend and real servers
are covered elsewhere.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from tes_core.backends.base import BackendContext, Observation, WorkerStopping
from tes_core.config import Settings
from tes_core.db import Database, utcnow
from tes_core.models import tasks, workers
from tes_core.plugins import load_plugins
from tes_core.reporting import DatabaseReporter
from tes_core.shutdown import Deadline
from tes_core.store import NewTask, insert_task, load_record
from tes_core.worker.lifecycle import Lifecycle
from tes_core.worker.process import WorkerProcess
from tes_core.worker.registry import WorkerRegistry, acquire_lease, release_lease
from tests.remote_platform import Messages, PlatformBackend


@pytest.fixture
def world(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'lifecycle.sqlite3'}")
    db.create_all()
    settings = Settings.from_env({}, data_dir=tmp_path)
    reporter = DatabaseReporter(db, load_plugins(settings))
    registry = WorkerRegistry(db, heartbeat_interval=0.2)
    backend = PlatformBackend(BackendContext(settings, reporter, registry.worker_id))
    messages = Messages()
    lifecycle = Lifecycle(db, backend, reporter, registry, messages, stale_after=0)
    registry.register()
    yield db, backend, messages, lifecycle, registry
    registry.unregister()


def _new_task(db: Database) -> str:
    with db.driver_write() as tx:
        return insert_task(
            tx,
            NewTask(document={"executors": [{"image": "a", "command": ["b"]}]}, backend="platform"),
        )


def _row(db: Database, task_id: str):
    with db.read() as conn:
        return conn.execute(select(tasks).where(tasks.c.id == task_id)).first()


def test_submit_claims_once(world) -> None:
    db, backend, _, lifecycle, _ = world
    task_id = _new_task(db)
    lifecycle.submit(task_id)
    lifecycle.submit(task_id)  # a redelivered message
    assert backend.submitted == [task_id]
    assert _row(db, task_id).backend_ref == f"job-{task_id}"


def test_a_refused_submission_ends_in_system_error(world) -> None:
    db, backend, _, lifecycle, _ = world
    backend.fail_submit = True
    task_id = _new_task(db)
    lifecycle.submit(task_id)
    row = _row(db, task_id)
    assert row.state == "SYSTEM_ERROR"
    assert "quota exceeded" in json.loads(row.logs)[-1]["system_logs"][0]


def test_reconcile_resends_tasks_never_submitted(world) -> None:
    db, _, messages, lifecycle, _ = world
    task_id = _new_task(db)
    lifecycle.reconcile()
    assert messages.submits == [task_id]


def test_reconcile_resubmits_a_claim_whose_worker_died(world) -> None:
    db, backend, messages, lifecycle, _ = world
    task_id = _new_task(db)
    with db.write() as conn:
        conn.execute(update(tasks).values(backend_ref="claimed", worker_id="gone-worker"))
    lifecycle.reconcile()
    assert messages.submits == [task_id]
    assert _row(db, task_id).backend_ref is None
    lifecycle.submit(task_id)
    assert backend.submitted == [task_id]


def test_reconcile_polls_in_one_batch_and_applies_states(world) -> None:
    db, backend, _, lifecycle, _ = world
    ids = [_new_task(db) for _ in range(3)]
    for task_id in ids:
        lifecycle.submit(task_id)
    backend.reports[ids[0]] = Observation(ids[0], state="RUNNING", start_time=utcnow())
    backend.reports[ids[1]] = Observation(
        ids[1], state="COMPLETE", executor_logs=[{"exit_code": 0}], end_time=utcnow()
    )
    backend.reports[ids[2]] = Observation(ids[2], state="CANCELED")
    lifecycle.reconcile()
    assert backend.polled == [ids]
    assert _row(db, ids[0]).state == "RUNNING"
    assert _row(db, ids[1]).state == "COMPLETE"
    assert json.loads(_row(db, ids[1]).logs)[0]["logs"] == [{"exit_code": 0}]
    # QUEUED -> CANCELED is allowed (a cancel that raced the submission)
    assert _row(db, ids[2]).state == "CANCELED"
    backend.reports[ids[0]] = Observation(ids[0], state="QUEUED")  # RUNNING -> QUEUED: refused
    lifecycle.reconcile()
    assert _row(db, ids[0]).state == "RUNNING"


def test_finish_cancel_asks_the_backend_then_marks_canceled(world) -> None:
    db, backend, _, lifecycle, _ = world
    task_id = _new_task(db)
    lifecycle.submit(task_id)
    with db.write() as conn:
        conn.execute(update(tasks).values(state="CANCELING"))
    lifecycle.finish_cancel(task_id)
    assert backend.cancelled == [task_id]
    assert _row(db, task_id).state == "CANCELED"


def test_cancel_of_a_never_submitted_task_skips_the_backend(world) -> None:
    db, backend, _, lifecycle, _ = world
    task_id = _new_task(db)
    with db.write() as conn:
        conn.execute(update(tasks).values(state="CANCELING"))
    lifecycle.reconcile()
    assert backend.cancelled == []
    assert _row(db, task_id).state == "CANCELED"


def test_one_lease_holder_at_a_time(world) -> None:
    db = world[0]
    assert acquire_lease(db, "job", "a", ttl=60)
    assert not acquire_lease(db, "job", "b", ttl=60)
    assert acquire_lease(db, "job", "a", ttl=60)  # renew
    release_lease(db, "job", "a")
    assert acquire_lease(db, "job", "b", ttl=0.2)
    time.sleep(0.3)
    assert acquire_lease(db, "job", "a", ttl=60)  # b's lease expired


def test_reconcile_does_nothing_while_another_worker_holds_the_lease(world) -> None:
    db, _, messages, lifecycle, _ = world
    _new_task(db)
    assert acquire_lease(db, "reconcile", "someone-else", ttl=60)
    lifecycle.reconcile()
    assert messages.submits == []


def test_worker_liveness(world) -> None:
    db, _, _, _, registry = world
    assert registry.is_alive(registry.worker_id)
    assert not registry.is_alive("never-existed")
    now = utcnow()
    with db.write() as conn:
        conn.execute(
            workers.insert().values(
                id="dead-pid", hostname=__import__("socket").gethostname(), pid=2**22 + 7,
                started_at=now, heartbeat_at=now,
            )
        )
        conn.execute(
            workers.insert().values(
                id="silent", hostname="elsewhere", pid=1, started_at=now,
                heartbeat_at=now - timedelta(seconds=10),
            )
        )
        conn.execute(
            workers.insert().values(
                id="fresh", hostname="elsewhere", pid=1, started_at=now, heartbeat_at=now,
            )
        )
    assert not registry.is_alive("dead-pid")  # same host, process gone: dead at once
    # Until its own heartbeats have gone through for 3 intervals (after a start or a
    # database outage) a worker does not judge others by the age of theirs...
    assert registry.is_alive("silent")
    time.sleep(3 * registry.interval + 0.1)
    with db.write() as conn:
        conn.execute(update(workers).where(workers.c.id == "fresh").values(heartbeat_at=utcnow()))
    # ...then a stale heartbeat means dead.
    assert not registry.is_alive("silent")
    assert registry.is_alive("fresh")


def test_records_carry_the_document(world) -> None:
    db = world[0]
    task_id = _new_task(db)
    with db.read() as conn:
        record = load_record(conn, task_id)
    assert record is not None
    assert record.document["executors"][0]["image"] == "a"
    assert record.state == "QUEUED"


def test_a_claim_whose_submission_was_interrupted_is_given_back(world) -> None:
    """The claim was stored but its submission stopped (e.g. the database restarted
    between the claim and the submission): the claiming worker, alive, gives it back."""
    db, backend, messages, lifecycle, registry = world
    task_id = _new_task(db)
    assert lifecycle._claim(task_id)
    lifecycle._submitting.add(task_id)  # still being submitted: left alone
    assert lifecycle.release_stale_claims() == []
    lifecycle._submitting.discard(task_id)
    assert lifecycle.release_stale_claims() == [task_id]
    assert messages.submits == [task_id]
    assert _row(db, task_id).backend_ref is None
    lifecycle.submit(task_id)
    assert backend.submitted == [task_id]
    assert lifecycle.release_stale_claims() == []  # submitted: nothing to give back


def test_states_of_reads_many_tasks_in_chunks(world, monkeypatch) -> None:
    """The local backend's cancel watcher reads every waiting task's state at once."""
    import tes_core.reporting as reporting

    db, backend, _, _, _ = world
    monkeypatch.setattr(reporting, "_IDS_PER_QUERY", 2)
    ids = [_new_task(db) for _ in range(5)]
    with db.write() as conn:
        conn.execute(update(tasks).where(tasks.c.id == ids[3]).values(state="CANCELING"))
    states = backend.context.reporter.states_of([*ids, "no-such-task"])
    assert states == {**{task_id: "QUEUED" for task_id in ids}, ids[3]: "CANCELING"}


def test_a_submission_as_the_worker_stops_leaves_the_task_claimed(world, monkeypatch) -> None:
    """A message handled while the worker stops must not fail its task: the backend says
    ``WorkerStopping`` and the task stays QUEUED, claimed until the claim is released."""
    db, backend, _, lifecycle, registry = world

    def stopping(task):
        raise WorkerStopping("the worker is stopping")

    monkeypatch.setattr(backend, "submit", stopping)
    task_id = _new_task(db)
    lifecycle.submit(task_id)
    row = _row(db, task_id)
    assert (row.state, row.backend_ref, row.worker_id) == ("QUEUED", "claimed", registry.worker_id)


class _Reconciles:
    def __init__(self) -> None:
        self.asked = 0

    def reconcile(self) -> None:
        self.asked += 1


@pytest.mark.parametrize("hand_over_ends", [True, False])
def test_a_stop_gives_the_claims_back_only_once_the_hand_over_ended(
    world, hand_over_ends: bool
) -> None:
    """The hand-over gets a deadline; once it ends the worker's row goes (its claims with
    it) and a reconcile pass is asked for. A hand-over still going at its deadline is left
    behind and the row stays (claims released only once the process is gone): no task may
    be taken over while this process could still act on it."""
    db, backend, _, lifecycle, registry = world
    release = threading.Event()
    given: list[Deadline] = []

    def shutdown(deadline: Deadline) -> None:
        given.append(deadline)
        if not hand_over_ends:
            release.wait(60)

    backend.shutdown = shutdown  # type: ignore[method-assign]
    actors = _Reconciles()
    process = WorkerProcess(db, backend, actors, lifecycle, registry,  # type: ignore[arg-type]
                            threads=1, reconcile_interval=1, grace=1)
    try:
        assert process.stop(Deadline(1)) is hand_over_ends
    finally:
        release.set()
    assert len(given) == 1 and given[0].remaining() < 1
    with db.read() as conn:
        row = conn.execute(select(workers).where(workers.c.id == registry.worker_id)).first()
    assert (row is None) is hand_over_ends
    assert actors.asked == (1 if hand_over_ends else 0)
