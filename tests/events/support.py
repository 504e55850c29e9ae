"""Listening to a real server's ``GET /events`` in a background thread."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from tes_core.client.http import ClientError, TesClient, hang_up
from tes_core.client.sse import ServerEvent, read_events

TIMEOUT = 60.0


class Listener:
    """One open event stream; its events (keepalives left out) queue up as they come."""

    def __init__(
        self, url: str, params: list[tuple[str, str]] | None = None,
        last_event_id: str | None = None, token: str = "", patience: float = 5.0,
    ) -> None:
        # A place freed by a client that just left is seen free within about a second:
        # wait ``patience`` seconds for one, as a client honouring Retry-After would.
        deadline = time.monotonic() + patience
        while True:
            try:
                self.response = TesClient(url, token).open_events(params, last_event_id)
                break
            except ClientError as exc:
                if exc.status != 503 or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.events: queue.Queue[ServerEvent | None] = queue.Queue()
        self.ended = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for event in read_events(self.response):
                if event.event != "comment":
                    self.events.put(event)
        except (OSError, ValueError, AttributeError):
            pass  # hung up (http.client drops its socket on close())
        finally:
            self.ended.set()
            self.events.put(None)

    def next(self, timeout: float = TIMEOUT) -> ServerEvent | None:
        """The next event; ``None`` when the server ended the stream."""
        return self.events.get(timeout=timeout)

    def until(
        self, done: Callable[[str, dict[str, Any]], bool], timeout: float = TIMEOUT
    ) -> list[ServerEvent]:
        """Events up to and including the first for which ``done(kind, data)`` holds."""
        seen: list[ServerEvent] = []
        deadline = time.monotonic() + timeout
        while True:
            event = self.events.get(timeout=max(0.1, deadline - time.monotonic()))
            assert event is not None, f"the stream ended after {seen}"
            seen.append(event)
            if done(event.event, json.loads(event.data)):
                return seen

    def quiet(self, seconds: float) -> list[ServerEvent]:
        """Whatever arrives within ``seconds`` (expected: nothing)."""
        got = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                break
            if event is not None:
                got.append(event)
        return got

    def close(self) -> None:
        """Hang up."""
        hang_up(self.response)


def finished(task_id: str) -> Callable[[str, dict[str, Any]], bool]:
    """``done`` for :meth:`Listener.until`: the task's state event of a finished state."""
    terminal = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED", "PREEMPTED"}
    return lambda kind, data: (kind == "state" and data["task_id"] == task_id
                               and data["state"] in terminal)


def of_task(events: list[ServerEvent], task_id: str) -> list[ServerEvent]:
    """The events about one task."""
    return [e for e in events if json.loads(e.data)["task_id"] == task_id]


def states(events: list[ServerEvent]) -> list[str]:
    """The states of the ``state`` events, in order."""
    return [json.loads(e.data)["state"] for e in events if e.event == "state"]
