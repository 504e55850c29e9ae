"""Dramatiq actors (submit, cancel, reconcile, provision) and the broker they use.

Actors are declared on a broker built at start-up, never at import time. In
the embedded mode the broker is Dramatiq's in-memory ``StubBroker`` and the
workers are threads of the server process; in production it is Redis and the
workers are ``tes-server worker`` processes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker

from ..config import Settings

log = logging.getLogger(__name__)

QUEUE = "tes"
PROVISION_TIME_LIMIT_MS = 60 * 60 * 1000
"""How long one provisioning request may take in a worker (an Azure deployment: minutes)."""


def build_broker(settings: Settings) -> dramatiq.Broker:
    """Redis when ``TES_BROKER_URL`` is set, else the in-memory broker."""
    if settings.broker_url:
        if not settings.broker_url.startswith(("redis://", "rediss://", "unix://")):
            from ..config import ConfigError

            raise ConfigError(
                f"TES_BROKER_URL={settings.broker_url!r}: only redis:// URLs are supported"
            )
        import redis
        from dramatiq.brokers.redis import RedisBroker
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        pool = redis.ConnectionPool.from_url(
            settings.broker_url,
            socket_connect_timeout=settings.broker_timeout,
            socket_timeout=max(10.0, settings.broker_timeout),
            # One immediate retry on a new connection: after a Redis restart every pooled
            # connection is dead, and the first command on each would fail otherwise.
            retry=Retry(NoBackoff(), 1),
        )
        return RedisBroker(connection_pool=pool, namespace=settings.broker_namespace)
    broker = StubBroker()
    broker.emit_after("process_boot")
    return broker


class BrokerUnavailable(RuntimeError):
    """A message was not sent because the broker is unreachable (the task stays stored)."""


class Actors:
    """The actors, bound to one broker; also the core's message dispatcher.

    ``handler`` (the task lifecycle) and ``provisioning`` are set in processes that run
    workers; processes that only send (a gunicorn API process) never set them.

    Sending fails fast: when the broker cannot be reached, sends raise
    :class:`BrokerUnavailable` without trying again for ``cooldown`` seconds, so
    ``POST /tasks`` stays quick during a Redis outage. Messages are hints: the
    reconcile loop sends again whatever a stored task still waits for.
    """

    def __init__(self, broker: dramatiq.Broker, cooldown: float = 2.0) -> None:
        self.broker = broker
        self.handler: Any = None
        self.provisioning: Any = None
        self.cooldown = cooldown
        self._down_until = 0.0
        self._down = False
        self._lock = threading.Lock()
        self._submit = self._declare("tes_submit", lambda h, task_id: h.submit(task_id))
        self._cancel = self._declare("tes_cancel", lambda h, task_id: h.finish_cancel(task_id))
        self._reconcile = self._declare("tes_reconcile", lambda h: h.reconcile(), retries=0)
        # Not retried: a failed step is recorded; a crash is found by the reconcile pass.
        self._provision = dramatiq.actor(
            self._run_provision, actor_name="tes_provision", queue_name=QUEUE,
            broker=self.broker, max_retries=0, time_limit=PROVISION_TIME_LIMIT_MS,
        )

    def _run_provision(self, request_id: str) -> None:
        if self.provisioning is None:
            raise RuntimeError("actor tes_provision ran in a process without a worker")
        self.provisioning.run(request_id)

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
        self._send(self._submit, task_id)

    def cancel(self, task_id: str) -> None:
        """Queue a cancel message for ``task_id``."""
        self._send(self._cancel, task_id)

    def reconcile(self) -> None:
        """Queue one reconcile pass."""
        self._send(self._reconcile)

    def provision(self, request_id: str) -> None:
        """Queue the running of provisioning request ``request_id``."""
        self._send(self._provision, request_id)

    def _send(self, actor: dramatiq.Actor, *args: str) -> None:
        if self._down and time.monotonic() < self._down_until:
            raise BrokerUnavailable("the message broker is unreachable")
        try:
            actor.send(*args)
        except Exception as exc:
            with self._lock:
                self._down_until = time.monotonic() + self.cooldown
                if not self._down:
                    # Once per outage; the exception text names the host, never a password.
                    log.warning("message broker unreachable (%s: %s); tasks are stored and "
                                "will be sent when it is back", type(exc).__name__, exc)
                self._down = True
            raise BrokerUnavailable(f"the message broker is unreachable: {exc}") from exc
        if self._down:
            with self._lock:
                if self._down:
                    log.warning("message broker reachable again")
                self._down = False
