"""Reading the event journal in one API process and handing each event to its listeners.

One :class:`EventHub` per process reads new rows of ``task_events`` in one thread (one
query per wake-up, however many listeners) and appends each event to the queue of every
:class:`Subscription` whose filter it matches. It wakes when this process wrote an event,
when Redis pub/sub says another process did, and at least every ``poll_interval``.

What listeners cost the rest of the process is one wake-up and one socket write per
listener per delivery, all competing with request threads for the GIL. So the hub
gathers what arrives within a batch window of a wake-up into one read, and hands
each listener everything of one read at once (one wake-up, one write), and each
event's Server-Sent Events form is built once however many listeners send it: the
wake-ups per second stay ``listeners / window`` at most, whatever the event rate. The
window grows with the listeners (:func:`batch_window`: ``BATCH_WINDOW``, plus
``WINDOW_PER_LISTENER`` each, up to ``MAX_BATCH_WINDOW``), so many listeners wake up
less often rather than take more and more of the process from its requests. Listeners
with the same filter (the usual case: everything the caller may see) are matched once
per read, not once each.

Event ids come from the table's sequence. On PostgreSQL two writers may commit ids out
of order (11 visible before 10): the reader stops at a missing id until it appears or
``GAP_GRACE`` seconds pass (a rolled-back insert leaves a hole for ever), so a listener
never skips an event that commits late.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import Any

from sqlalchemy import delete, func, select

from ..auth.principal import Owner
from ..db import Database, utcnow
from ..models import task_events

log = logging.getLogger(__name__)

GAP_GRACE = 2.0
"""Seconds a missing event id holds back the ones after it (see the module docstring)."""
MAX_QUEUED = 10_000
"""Events waiting for one slow listener before it is cut off (it reconnects and resumes)."""
BATCH = 1000
"""Rows read per query."""
EXPIRE_EVERY = 60.0
"""Seconds between two deletions of expired events."""
BATCH_WINDOW = 0.05
"""Seconds the reader waits after a wake-up so that one read (and one wake-up of each
listener) carries every event written meanwhile; the latency this adds, at most, with
few listeners."""
WINDOW_PER_LISTENER = 0.001
"""Seconds the batch window grows by per listener: 100 listeners wake up 6.7 times a
second at most instead of 20 (one wake-up and one write of each costs the process's
requests about 50 us)."""
MAX_BATCH_WINDOW = 0.25
"""The longest batch window, however many listeners (the latency it adds, at most)."""


def batch_window(listeners: int) -> float:
    """Seconds the reader gathers writes after a wake-up, with ``listeners`` listening."""
    return min(MAX_BATCH_WINDOW, BATCH_WINDOW + WINDOW_PER_LISTENER * listeners)

_COLUMNS = (task_events.c.seq, task_events.c.kind, task_events.c.state, task_events.c.name,
            task_events.c.tags, task_events.c.owner, task_events.c.tenant, task_events.c.data)


@dataclass(frozen=True)
class Event:
    """One journal entry as a listener gets it."""

    seq: int
    kind: str
    state: str
    name: str | None
    tags: dict[str, str]
    owner: Owner | None
    data: str

    @cached_property
    def frame(self) -> bytes:
        """The event in Server-Sent Events form (built once, sent to every listener)."""
        return f"id: {self.seq}\nevent: {self.kind}\ndata: {self.data}\n\n".encode()


@dataclass(frozen=True)
class EventFilter:
    """Which events a listener wants: the list filters, and whose tasks it may see."""

    state: str | None = None
    name_prefix: str | None = None
    tags: tuple[tuple[str, str | None], ...] = ()
    owner: Owner | None = None
    """Only this owner's tasks; ``None``: every task (auth off, or an admin)."""

    def matches(self, event: Event) -> bool:
        """Whether ``event`` passes every condition."""
        if self.owner is not None and event.owner != self.owner:
            return False
        if self.state is not None and event.state != self.state:
            return False
        if self.name_prefix and not (event.name or "").startswith(self.name_prefix):
            return False
        for key, value in self.tags:
            if key not in event.tags or (value is not None and event.tags[key] != value):
                return False
        return True


@dataclass(eq=False)
class Subscription:
    """One listener's queue: a backlog (resumed events) then live ones."""

    filter: EventFilter
    backlog: list[Event] = field(default_factory=list)
    overflowed: bool = False
    closed: bool = False
    """The hub stopped (the server is stopping): end the stream."""
    _queue: deque[Event] = field(default_factory=deque)
    _ready: threading.Condition = field(default_factory=threading.Condition)

    def push(self, events: list[Event]) -> None:
        """Queue ``events`` (the hub's thread) and wake the listener once; a listener too
        far behind is cut off."""
        with self._ready:
            if len(self._queue) + len(events) > MAX_QUEUED:
                self.overflowed = True
            else:
                self._queue.extend(events)
            self._ready.notify()

    def close(self) -> None:
        """End the subscription: a waiting :meth:`wait` returns at once."""
        with self._ready:
            self.closed = True
            self._ready.notify()

    @property
    def over(self) -> bool:
        """Whether the stream must end: cut off, or closed."""
        return self.overflowed or self.closed

    def wait(self, timeout: float) -> list[Event]:
        """The events queued so far, waiting up to ``timeout`` seconds for one."""
        with self._ready:
            if not self._queue and not self.over:
                self._ready.wait(timeout)
            events = list(self._queue)
            self._queue.clear()
            return events


class EventHub:
    """This process's reader of the journal and its listeners."""

    def __init__(
        self, db: Database, *, poll_interval: float = 0.5, keep_seconds: float = 3600.0,
        redis_url: str = "", channel: str = "tes:events",
    ) -> None:
        self.db = db
        self.poll_interval = poll_interval
        self.keep_seconds = keep_seconds
        self.redis_url = redis_url
        self.channel = channel
        self._subscribers: set[Subscription] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cursor = 0
        self._gap_since: float | None = None
        self._expired_at = 0.0

    @property
    def listeners(self) -> int:
        """How many subscriptions are open."""
        return len(self._subscribers)

    def notify(self) -> None:
        """Something was written to the journal: read it now (this process's writers)."""
        self._wake.set()

    def subscribe(self, event_filter: EventFilter, after: int | None = None) -> Subscription:
        """Listen from now on; with ``after`` (a ``Last-Event-ID``), first every kept event
        after that id matching the filter (the subscription's ``backlog``)."""
        self._start()
        subscription = Subscription(event_filter)
        with self._lock:
            self._subscribers.add(subscription)
            boundary = self._cursor
        if after is not None and after < boundary:
            subscription.backlog = self._read_between(after, boundary, event_filter)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop delivering to ``subscription``."""
        with self._lock:
            self._subscribers.discard(subscription)

    def close(self) -> None:
        """Stop the reader thread and end every subscription."""
        with self._lock:
            subscribers = list(self._subscribers)
        for subscription in subscribers:
            subscription.close()
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)

    # -- the reader thread ------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._cursor = self._last_seq()
            self._thread = threading.Thread(target=self._run, name="tes-events", daemon=True)
            self._thread.start()

    def _last_seq(self) -> int:
        with self.db.read() as conn:
            return int(conn.execute(select(func.max(task_events.c.seq))).scalar() or 0)

    def _run(self) -> None:
        if self.redis_url:
            threading.Thread(target=self._listen_redis, name="tes-events-redis",
                             daemon=True).start()
        while not self._stop.is_set():
            if self._wake.wait(self.poll_interval):
                # Let the writes of the next moments join.
                self._stop.wait(batch_window(len(self._subscribers)))
            self._wake.clear()
            try:
                while self._poll() >= BATCH:
                    pass
                self._expire()
            except Exception:
                log.warning("reading task events failed; trying again", exc_info=True)
                self._stop.wait(self.poll_interval)

    def _listen_redis(self) -> None:
        """Wake the reader whenever a writer in another process publishes."""
        import redis

        while not self._stop.is_set():
            try:
                client = redis.Redis.from_url(self.redis_url, socket_timeout=None)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.channel)
                for _message in pubsub.listen():
                    self._wake.set()
                    if self._stop.is_set():
                        break
            except Exception:
                log.warning("Redis pub/sub for task events failed; polling meanwhile",
                            exc_info=True)
                self._stop.wait(5.0)

    def _poll(self) -> int:
        """Deliver the new events in order; return how many rows were read."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(*_COLUMNS).where(task_events.c.seq > self._cursor)
                .order_by(task_events.c.seq).limit(BATCH)
            ).all()
        events: list[Event] = []
        try:
            for row in rows:
                if row.seq != self._cursor + 1:
                    now = time.monotonic()
                    if self._gap_since is None:
                        self._gap_since = now
                    if now - self._gap_since < GAP_GRACE:
                        self._wake.set()  # look again soon, not after a whole interval
                        time.sleep(0.05)
                        return 0
                self._gap_since = None
                events.append(_event(row))
                self._cursor = row.seq
        finally:
            self._deliver(events)
        return len(rows)

    def _deliver(self, events: list[Event]) -> None:
        """Hand each listener, at once, the events of ``events`` its filter lets through."""
        if not events:
            return
        with self._lock:
            subscribers = list(self._subscribers)
        matched: dict[EventFilter, list[Event]] = {}
        for subscription in subscribers:
            wanted = matched.get(subscription.filter)
            if wanted is None:
                wanted = matched[subscription.filter] = [
                    event for event in events if subscription.filter.matches(event)]
            if wanted:
                subscription.push(wanted)

    def _read_between(self, after: int, until: int, event_filter: EventFilter) -> list[Event]:
        """Kept events with ``after < id <= until`` that match ``event_filter``."""
        statement = select(*_COLUMNS).where(
            task_events.c.seq > after, task_events.c.seq <= until
        ).order_by(task_events.c.seq)
        if event_filter.owner is not None:
            statement = statement.where(task_events.c.owner == event_filter.owner.subject,
                                        task_events.c.tenant == event_filter.owner.tenant)
        if event_filter.state is not None:
            statement = statement.where(task_events.c.state == event_filter.state)
        with self.db.read() as conn:
            rows = conn.execute(statement.limit(MAX_QUEUED)).all()
        return [event for event in map(_event, rows) if event_filter.matches(event)]

    def _expire(self) -> None:
        now = time.monotonic()
        if now - self._expired_at < EXPIRE_EVERY:
            return
        self._expired_at = now
        cutoff = utcnow() - timedelta(seconds=self.keep_seconds)
        with self.db.write() as conn:
            conn.execute(delete(task_events).where(task_events.c.time < cutoff))


def _event(row: Any) -> Event:
    owner = Owner(row.owner, row.tenant or "") if row.owner is not None else None
    return Event(row.seq, row.kind, row.state, row.name, json.loads(row.tags), owner, row.data)
