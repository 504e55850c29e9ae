"""Dramatiq actors (submit, cancel, reconcile) and the broker they use.

Actors are declared on a broker built at start-up, never at import time. In
the embedded mode the broker is Dramatiq's in-memory ``StubBroker`` and the
workers are threads of the server process; in production it is Redis and the
workers are ``tes-server worker`` processes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker

from ..config import Settings

log = logging.getLogger(__name__)

QUEUE = "tes"


def build_broker(settings: Settings) -> dramatiq.Broker:
    """Redis when ``TES_BROKER_URL`` is set, else the in-memory broker."""
    if settings.broker_url:
        if not settings.broker_url.startswith(("redis://", "rediss://", "unix://")):
            from ..config import ConfigError

            raise ConfigError(
                f"TES_BROKER_URL={settings.broker_url!r}: only redis:// URLs are supported"
            )
        from dramatiq.brokers.redis import RedisBroker

        return RedisBroker(url=settings.broker_url, namespace=settings.broker_namespace)
    broker = StubBroker()
    broker.emit_after("process_boot")
    return broker


class Actors:
    """The three actors, bound to one broker; also the core's message dispatcher.

    ``handler`` is set in processes that run workers; processes that only send
    (a gunicorn API process) never set it.
    """

    def __init__(self, broker: dramatiq.Broker) -> None:
        self.broker = broker
        self.handler: Any = None
        self._submit = self._declare("tes_submit", lambda h, task_id: h.submit(task_id))
        self._cancel = self._declare("tes_cancel", lambda h, task_id: h.finish_cancel(task_id))
        self._reconcile = self._declare("tes_reconcile", lambda h: h.reconcile(), retries=0)

    def _declare(self, name: str, call: Callable[..., None], retries: int = 3) -> dramatiq.Actor:
        def run(*args: str) -> None:
            if self.handler is None:
                raise RuntimeError(f"actor {name} ran in a process without a worker")
            call(self.handler, *args)

        run.__name__ = name
        return dramatiq.actor(
            run,
            actor_name=name,
            queue_name=QUEUE,
            broker=self.broker,
            max_retries=retries,
            min_backoff=500,
            max_backoff=30_000,
            time_limit=10 * 60 * 1000,
        )

    def submit(self, task_id: str) -> None:
        """Queue a submit message for ``task_id``."""
        self._submit.send(task_id)

    def cancel(self, task_id: str) -> None:
        """Queue a cancel message for ``task_id``."""
        self._cancel.send(task_id)

    def reconcile(self) -> None:
        """Queue one reconcile pass."""
        self._reconcile.send()
