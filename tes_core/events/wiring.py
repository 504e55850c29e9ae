"""Plugging the event journal, its readers and the webhooks into one process."""

from __future__ import annotations

import logging

from ..config import Settings
from ..db import Database
from ..plugins import Hooks
from .hub import EventHub
from .journal import EventJournal

log = logging.getLogger(__name__)

JOURNAL_PLUGIN = "tes_core.events.journal"
WEBHOOK_PLUGIN = "tes_core.events.webhooks"


def wire_events(settings: Settings, db: Database, hooks: Hooks) -> EventHub:
    """Register the journal (and the webhooks when configured) as plugins of ``hooks``;
    return this process's hub, woken by its own writes and, with a Redis broker, by
    every other process's."""
    channel = f"{settings.broker_namespace}:task-events"
    redis_url = settings.broker_url if settings.broker_url.startswith(("redis://", "rediss://")) \
        else ""
    hub = EventHub(db, poll_interval=settings.events_poll_interval,
                   keep_seconds=settings.events_keep_seconds, redis_url=redis_url,
                   channel=channel)
    journal = EventJournal(db)
    journal.on_write(hub.notify)
    if redis_url:
        journal.on_write(RedisPublisher(redis_url, channel, settings.broker_timeout).publish)
    _register(hooks, journal, JOURNAL_PLUGIN)
    if settings.webhook_url or settings.webhook_task_tag:
        from .webhooks import Webhooks

        _register(hooks, Webhooks(settings, db), WEBHOOK_PLUGIN)
    return hub


def _register(hooks: Hooks, plugin: object, name: str) -> None:
    previous = hooks.pm.get_plugin(name)
    if previous is not None:  # a second core built on the same plugins (tests)
        hooks.pm.unregister(previous)
    hooks.pm.register(plugin, name=name)


class RedisPublisher:
    """Tells other processes' hubs that the journal grew (a wake-up; the rows say what)."""

    def __init__(self, url: str, channel: str, timeout: float) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=timeout,
                                           socket_connect_timeout=timeout)
        self.channel = channel

    def publish(self) -> None:
        """Publish one wake-up; a failure only delays readers to their next poll."""
        try:
            self.client.publish(self.channel, b"1")
        except Exception as exc:
            log.warning("publishing a task event wake-up to Redis failed: %s", exc)
