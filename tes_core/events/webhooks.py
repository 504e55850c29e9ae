"""Webhooks: each task state change POSTed as signed JSON, off the task's path.

The hook implementation only queues the change; one sender thread per process reads the
task's facts, signs the body and POSTs it, retrying with exponential backoff. A URL a
task names through ``TES_WEBHOOK_TASK_TAG`` obeys the same outbound rules as the task's
storage URLs (``TES_ALLOWED_HOSTS``), checked when the POST is made; redirects are not
followed. The operator's ``TES_WEBHOOK_URL`` is trusted as it is.

Signature: ``X-TES-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`` with
``TES_WEBHOOK_SECRET`` as the key and ``X-TES-Timestamp`` the Unix time it was signed.
"""

from __future__ import annotations

import heapq
import hmac
import itertools
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from hashlib import sha256

import pluggy
from tes_filetransfer.policy import AccessDenied

from ..config import Settings
from ..db import Database, rfc3339, utcnow
from ..storage_policy import access_policy
from .journal import EventJournal

log = logging.getLogger(__name__)
hookimpl = pluggy.HookimplMarker("tes")

MAX_PENDING = 10_000
"""Deliveries waiting at once; beyond that new changes are dropped with a warning."""
USER_AGENT = "tes-core-webhook/1"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-TES-Signature`` value of ``body`` signed at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, sha256).hexdigest()
    return f"sha256={digest}"


@dataclass
class Delivery:
    """One POST to make (and remake)."""

    url: str
    body: bytes
    task_id: str
    trusted: bool
    """The operator's URL (not checked against the outbound rules)."""
    attempt: int = 0


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None  # a 3xx is an answer, not a new place to send the body


class Webhooks:
    """The plugin: queues state changes, and its thread delivers them."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.facts = EventJournal(db)  # only its cache of task facts
        self.policy = access_policy(settings)
        self._opener = urllib.request.build_opener(_NoRedirect)
        self._changes: queue.Queue[tuple[str, str, str]] = queue.Queue(MAX_PENDING)
        self._retries: list[tuple[float, int, Delivery]] = []
        self._order = itertools.count()
        self._thread = threading.Thread(target=self._run, name="tes-webhooks", daemon=True)
        self._thread.start()

    @hookimpl
    def tes_task_state_changed(self, task_id: str, old_state: str, new_state: str) -> None:
        """Queue the change (never blocks the caller)."""
        try:
            self._changes.put_nowait((task_id, old_state, new_state))
        except queue.Full:
            log.warning("webhooks: %d deliveries pending; dropping task %s -> %s",
                        MAX_PENDING, task_id, new_state)

    def _run(self) -> None:
        while True:
            timeout = max(0.0, self._retries[0][0] - time.monotonic()) if self._retries else None
            try:
                change = self._changes.get(timeout=timeout)
            except queue.Empty:
                change = None
            if change is not None:
                for delivery in self._deliveries(*change):
                    self._send(delivery)
            while self._retries and self._retries[0][0] <= time.monotonic():
                self._send(heapq.heappop(self._retries)[2])

    def _deliveries(self, task_id: str, old_state: str, new_state: str) -> list[Delivery]:
        try:
            facts, _ = self.facts.task(task_id)
        except Exception:
            log.warning("webhooks: reading task %s failed", task_id, exc_info=True)
            return []
        if facts is None:
            return []
        body = json.dumps({
            "task_id": task_id, "name": facts.name, "state": new_state,
            "old_state": old_state, "time": rfc3339(utcnow()), "tags": facts.tags,
        }, separators=(",", ":")).encode()
        deliveries = []
        if self.settings.webhook_url:
            deliveries.append(Delivery(self.settings.webhook_url, body, task_id, True))
        own = facts.tags.get(self.settings.webhook_task_tag) if self.settings.webhook_task_tag \
            else None
        if own:
            deliveries.append(Delivery(own, body, task_id, False))
        return deliveries

    def _send(self, delivery: Delivery) -> None:
        if not delivery.trusted:
            if not delivery.url.lower().startswith(("http://", "https://")):
                log.warning("webhooks: task %s: tag %s is not an http(s) URL; not sent",
                            delivery.task_id, self.settings.webhook_task_tag)
                return
            try:
                self.policy.check_url(delivery.url)
            except AccessDenied as exc:
                log.warning("webhooks: task %s: not sent: %s", delivery.task_id, exc)
                return
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   "X-TES-Timestamp": timestamp}
        if self.settings.webhook_secret:
            headers["X-TES-Signature"] = signature(
                self.settings.webhook_secret, timestamp, delivery.body
            )
        request = urllib.request.Request(delivery.url, data=delivery.body, headers=headers,
                                         method="POST")
        try:
            with self._opener.open(request, timeout=self.settings.webhook_timeout) as answer:
                answer.read(1024)
            return
        except urllib.error.HTTPError as exc:
            failure = f"HTTP {exc.code}"
            if 300 <= exc.code < 400 or exc.code in (400, 401, 403, 404, 410):
                log.warning("webhooks: task %s: %s answered %s; not retried",
                            delivery.task_id, _host(delivery.url), failure)
                return
        except (OSError, ValueError) as exc:
            failure = str(exc)
        if delivery.attempt >= self.settings.webhook_retries:
            log.warning("webhooks: task %s: giving up on %s after %d attempts (%s)",
                        delivery.task_id, _host(delivery.url), delivery.attempt + 1, failure)
            return
        delay = 2.0 ** delivery.attempt
        delivery.attempt += 1
        log.info("webhooks: task %s: %s failed (%s); retrying in %.0f s",
                 delivery.task_id, _host(delivery.url), failure, delay)
        heapq.heappush(self._retries, (time.monotonic() + delay, next(self._order), delivery))


def _host(url: str) -> str:
    """Where a URL points, without its path or query (which may hold a secret)."""
    from urllib.parse import urlsplit

    return urlsplit(url).netloc.rsplit("@", 1)[-1]
