"""``GET /events``: Server-Sent Events of task state changes and new log lines.

Each open stream holds one HTTP thread (WSGI has no other way to stream), so a process
serves at most ``TES_EVENTS_MAX_CLIENTS`` streams at once (more get 503 with
``Retry-After``) and closes each after ``TES_EVENTS_MAX_SECONDS``: the client reconnects
with ``Last-Event-ID`` and loses nothing. A comment line every ``KEEPALIVE`` seconds keeps
proxies from closing an idle stream and tells a server when its client is gone.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from flask import Blueprint, Response, current_app, request
from flask.views import MethodView

from ..errors import BadRequest, ServiceUnavailable
from ..events.hub import EventFilter, EventHub, Subscription
from ..schemas import parse_list_query
from .auth import current_principal

blueprint = Blueprint("events", __name__)

KEEPALIVE = 15.0
"""Seconds between two keepalive comments on an idle stream."""
LOOK_EVERY = 1.0
"""Seconds between two checks that the client is still there (:func:`departure_check`)."""
RETRY_MS = 2000
"""The reconnection delay a stream asks of its client (the SSE ``retry:`` field)."""


class TooManyListeners(ServiceUnavailable):
    """503: this process already serves as many event streams as it may."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"this server already serves {limit} event streams (TES_EVENTS_MAX_CLIENTS); "
            "retry later or poll GET /tasks"
        )
        self.headers = {"Retry-After": "5"}


class EventStream(MethodView):
    """``GET /events``: the stream, filtered like ``GET /tasks``."""

    init_every_request = False

    def get(self) -> Response:
        """Open a stream; resume after ``Last-Event-ID`` when given."""
        query = parse_list_query(request.args)
        principal = current_principal()
        event_filter = EventFilter(
            state=query.state, name_prefix=query.name_prefix, tags=tuple(query.tags),
            owner=principal.scope if principal is not None else None,
        )
        after = _last_event_id()
        core = current_app.extensions["tes"]
        limits = current_app.extensions["tes_events_limits"]
        if not limits.acquire():
            raise TooManyListeners(limits.limit)
        try:
            subscription = core.events.subscribe(event_filter, after)
        except BaseException:
            limits.release()
            raise
        body = _stream(core.events, subscription, limits, core.settings.events_max_seconds,
                       departure_check(request.environ))
        return Response(body, mimetype="text/event-stream", headers={
            "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
        })


class StreamLimits:
    """How many streams this process serves at once, at most."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open = 0
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        """Take a place; ``False`` when every place is taken."""
        with self._lock:
            if self._open >= self.limit:
                return False
            self._open += 1
            return True

    def release(self) -> None:
        """Give a place back."""
        with self._lock:
            self._open -= 1


def stream_limit(max_clients: int, http_threads: int) -> int:
    """``TES_EVENTS_MAX_CLIENTS``, or half the HTTP threads when it is 0."""
    return max_clients if max_clients > 0 else max(1, http_threads // 2)


def departure_check(environ: dict[str, Any]) -> Callable[[], bool] | None:
    """How to tell, without writing, that the client hung up: waitress's
    ``waitress.client_disconnected`` (``tes-server serve`` turns it on), or a peek at
    gunicorn's socket (end of file: gone). ``None`` elsewhere: a write (the keepalive)
    tells."""
    waitress_check = environ.get("waitress.client_disconnected")
    if waitress_check is not None:
        return waitress_check
    sock = environ.get("gunicorn.socket")
    if sock is None:
        return None

    def gone() -> bool:
        try:
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (BlockingIOError, InterruptedError, ValueError):
            return False  # nothing to read (still there), or TLS: a write will tell
        except OSError:
            return True

    return gone


def _last_event_id() -> int | None:
    """The ``Last-Event-ID`` header (or ``last_event_id`` parameter) as an event id."""
    raw = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    if raw in (None, ""):
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise BadRequest(f"Last-Event-ID must be an event id this server sent, got {raw!r}",
                         field="Last-Event-ID")
    return int(raw)


def _stream(
    hub: EventHub, subscription: Subscription, limits: StreamLimits, max_seconds: float,
    disconnected: Callable[[], bool] | None = None,
) -> Iterator[bytes]:
    """The response body: the backlog, then live events and keepalives, until the time is
    up, the client is gone or the server stops."""
    try:
        yield f"retry: {RETRY_MS}\n\n".encode()
        if subscription.backlog:
            yield b"".join(event.frame for event in subscription.backlog)
            subscription.backlog = []
        now = time.monotonic()
        deadline, quiet_since, looked = now + max_seconds, now, now
        while not subscription.over:
            now = time.monotonic()
            if now >= deadline:
                break
            if disconnected is not None and now - looked >= LOOK_EVERY:
                if disconnected():  # at most once a LOOK_EVERY, not at every delivery
                    break
                looked = now
            events = subscription.wait(min(LOOK_EVERY, deadline - now))
            if events:
                yield b"".join(event.frame for event in events)
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= KEEPALIVE:
                yield b": keepalive\n\n"
                quiet_since = time.monotonic()
    finally:
        hub.unsubscribe(subscription)
        limits.release()


blueprint.add_url_rule("/events", view_func=EventStream.as_view("events"))
