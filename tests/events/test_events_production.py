"""Events in the production shape (gunicorn API processes, separate workers, PostgreSQL,
Redis), and the journal reader's handling of ids that commit out of order."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tes_core.db import Database, utcnow
from tes_core.events.hub import EventFilter, EventHub
from tes_core.models import task_events
from tests.api.support import create, task
from tests.deployment import Deployment
from tests.events.support import Listener, finished, states
from tests.servers import redis_up
from tests.test_production import REDIS_URL


@pytest.fixture
def deployment(tmp_path, postgres_url_factory) -> Iterator[Deployment]:
    if not redis_up():
        pytest.skip("Redis is not running")
    # A long poll interval: what arrives early came through Redis pub/sub.
    deployment = Deployment(tmp_path, postgres_url_factory(), REDIS_URL, api_workers=2,
                            TES_EVENTS_POLL_INTERVAL="30")
    deployment.migrate()
    deployment.start_api()
    deployment.start_worker()
    yield deployment
    deployment.stop()


def test_every_api_process_streams_what_separate_workers_do(deployment):
    # Two listeners on two connections: gunicorn hands them to either process.
    listeners = [Listener(deployment.url, [("name_prefix", "prod")]) for _ in range(3)]
    try:
        task_id = create(deployment.url, task("sh", "-c", "echo hi", name="prod-1"))
        heard = [listener.until(finished(task_id), timeout=25) for listener in listeners]
    finally:
        for listener in listeners:
            listener.close()
    for events in heard:
        assert states(events)[-1] == "COMPLETE", deployment.logs()
        assert any(event.event == "log" and "executor" in event.data for event in events)


@pytest.fixture
def postgres_db(postgres_url_factory) -> Iterator[Database]:
    db = Database(postgres_url_factory())
    db.create_all()
    yield db
    db.dispose()


def _insert(conn: sa.Connection, task_id: str) -> int:
    return conn.execute(sa.insert(task_events).values(
        time=utcnow(), task_id=task_id, kind="state", state="RUNNING", name=None, tags="{}",
        owner=None, tenant=None, data=f'{{"task_id": "{task_id}"}}',
    ).returning(task_events.c.seq)).scalar_one()


def test_an_id_committed_late_is_delivered_in_order_not_skipped(postgres_db):
    hub = EventHub(postgres_db, poll_interval=0.05)
    subscription = hub.subscribe(EventFilter())
    try:
        slow = postgres_db.engine.connect()
        slow_tx = slow.begin()
        early = _insert(slow, "early")  # id taken, not committed yet
        with postgres_db.engine.begin() as conn:
            late = _insert(conn, "late")  # a higher id, committed first
        assert late > early
        hub.notify()
        assert subscription.wait(0.5) == [], "an id after an uncommitted one was delivered"
        slow_tx.commit()
        slow.close()
        got = []
        while len(got) < 2:
            more = subscription.wait(5)
            assert more, got
            got += more
        assert [event.seq for event in got] == [early, late]
    finally:
        hub.unsubscribe(subscription)
        hub.close()


def test_a_hole_left_by_a_rollback_is_passed_after_a_grace(postgres_db):
    hub = EventHub(postgres_db, poll_interval=0.05)
    subscription = hub.subscribe(EventFilter())
    try:
        with postgres_db.engine.connect() as conn:
            tx = conn.begin()
            _insert(conn, "never")
            tx.rollback()
        with postgres_db.engine.begin() as conn:
            after = _insert(conn, "after")
        got = subscription.wait(10)  # after GAP_GRACE
        assert [event.seq for event in got] == [after]
    finally:
        hub.unsubscribe(subscription)
        hub.close()
