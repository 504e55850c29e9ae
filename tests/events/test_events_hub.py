"""The journal reader's batching: what many listeners cost the process stays bounded."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tes_core.db import Database, utcnow
from tes_core.events.hub import (
    BATCH_WINDOW,
    MAX_BATCH_WINDOW,
    EventFilter,
    EventHub,
    Subscription,
    batch_window,
)
from tes_core.models import task_events

BURST = 200


@pytest.fixture
def db(tmp_path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'events.db'}")
    database.create_all()
    yield database
    database.dispose()


class CountingSubscription(Subscription):
    """A subscription counting the hub's hand-overs (each one wakes its listener)."""

    pushes = 0

    def push(self, events):  # noqa: ANN001, ANN201
        self.pushes += 1
        super().push(events)


def test_a_burst_reaches_each_listener_in_few_wake_ups_and_in_order(db, monkeypatch):
    monkeypatch.setattr("tes_core.events.hub.Subscription", CountingSubscription)
    matched = []
    real_matches = EventFilter.matches
    monkeypatch.setattr(EventFilter, "matches",
                        lambda self, event: matched.append(1) or real_matches(self, event))
    hub = EventHub(db, poll_interval=5.0)  # only the writers' wake-ups make it read
    listeners = [hub.subscribe(EventFilter()) for _ in range(20)]
    try:
        started = time.monotonic()
        for n in range(BURST):  # as the journal does: one row, one wake-up
            with db.write() as conn:
                conn.execute(sa.insert(task_events).values(
                    time=utcnow(), task_id=f"t{n}", kind="state", state="QUEUED", name=None,
                    tags="{}", owner=None, tenant=None, data=f'{{"n": {n}}}'))
            hub.notify()
        got: list[list] = []
        for listener in listeners:
            events: list = []
            while len(events) < BURST:
                more = listener.wait(10)
                assert more, f"stopped after {len(events)} events"
                events += more
            got.append(events)
        took = time.monotonic() - started
    finally:
        hub.close()
    assert [e.data for e in got[0]] == [
        f'{{"n": {n}}}' for n in range(BURST)]
    # Every listener was handed the same event objects: each frame is built once.
    assert all(a is b for events in got[1:] for a, b in zip(got[0], events, strict=True))
    assert got[0][0].frame is got[1][0].frame
    # One hand-over (one wake-up of the listener) per read, and a read at most every
    # batch window (longer with more listeners) after a wake-up: a bound on wake-ups
    # whatever the event rate (one per event before, 200 here).
    pushes = [listener.pushes for listener in listeners]
    assert max(pushes) <= took / batch_window(len(listeners)) + 2, (pushes, took)
    assert max(pushes) < BURST, pushes
    # The 20 listeners have one filter: each event was matched once, not 20 times.
    assert len(matched) == BURST, len(matched)


def test_the_batch_window_grows_with_the_listeners_up_to_a_bound():
    assert batch_window(0) == BATCH_WINDOW
    assert BATCH_WINDOW < batch_window(1) < batch_window(100) < MAX_BATCH_WINDOW
    assert batch_window(100_000) == MAX_BATCH_WINDOW


def test_a_listener_too_far_behind_is_cut_off_not_grown_without_bound(db, monkeypatch):
    monkeypatch.setattr("tes_core.events.hub.MAX_QUEUED", 10)
    subscription = Subscription(EventFilter())
    events = [object()] * 6
    subscription.push(events)  # type: ignore[arg-type]
    assert not subscription.over
    subscription.push(events)  # type: ignore[arg-type]
    assert subscription.overflowed and subscription.over
    assert len(subscription.wait(0)) == 6
