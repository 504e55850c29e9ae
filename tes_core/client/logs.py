"""``tes logs --follow``: a running task's executor output as it is written.

Output comes from ``GET /tasks/{id}/executors/{i}/stdout|stderr?offset=N`` (a tes-core
addition), polled from the byte after the last one printed, so each byte is printed once
and in order; state changes come from the events stream (or, without one, from polling
the task). Once the task ended, what the live reads had not reached yet is printed from
the stored executor logs' tails. A stream the server does not serve live (404: a remote
backend, an executor writing to its own file) is printed from its stored tail at the end.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from .follow import FINISHED, follow
from .http import ClientError, TesClient, hang_up

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
"""How often running executors' output is read."""
STATE_POLL_SECONDS = 2.0
"""How often the task is read when the server has no events stream."""
LOST = "lost"
"""The event the stream's reader puts when the stream ended: the task is polled from then."""
KEPT = 64 * 1024
"""How much of the end of each stream printed is remembered (to join the stored tail)."""


class OutputFollower:
    """Prints each executor stream of one task as it grows: ``stdout`` to ``out``,
    ``stderr`` to ``err``, notes (system logs, executor ends, gaps) to ``notes``."""

    def __init__(
        self,
        client: TesClient,
        task_id: str,
        streams: tuple[str, ...],
        out: TextIO = sys.stdout,
        err: TextIO = sys.stderr,
        notes: TextIO = sys.stderr,
    ) -> None:
        self.client = client
        self.task_id = task_id
        self.streams = streams
        self.sinks = {"stdout": out, "stderr": err}
        self.notes = notes
        self.offsets: dict[tuple[int, str], int] = {}
        """The next byte to read of each (executor, stream) read live so far."""
        self.printed: dict[tuple[int, str], str] = {}
        """The end of what was printed of each (executor, stream) read live."""
        self.not_live: set[tuple[int, str]] = set()
        """Streams the server does not serve live: printed from the stored tail at the end."""

    def run(self, task: dict[str, Any]) -> str:
        """Follow ``task`` (a FULL view) until it ends; print what is left; its end state."""
        events: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        stream = self._listen(events)
        try:
            # Read again once the stream is open: a change before it is not lost.
            state = self.client.get(self.task_id)["state"]
            ended = _ended_count(task)
            count = len(task.get("executors") or [])
            next_state_poll = time.monotonic() + STATE_POLL_SECONDS
            while state not in FINISHED:
                self.read(min(ended, count - 1))
                deadline = time.monotonic() + POLL_SECONDS
                while (wait := deadline - time.monotonic()) > 0 and state not in FINISHED:
                    try:
                        kind, data = events.get(timeout=wait)
                    except queue.Empty:
                        break
                    if kind == LOST:
                        stream = None
                    else:
                        state, ended = self._event(kind, data, state, ended)
                if stream is None and time.monotonic() >= next_state_poll:
                    state = self.client.get(self.task_id)["state"]
                    next_state_poll = time.monotonic() + STATE_POLL_SECONDS
        finally:
            if stream is not None:
                hang_up(stream)
        final = self.client.get(self.task_id, "FULL")
        self.finish(final)
        return final.get("state", state)

    def read(self, last: int) -> None:
        """Print what executors ``0..last`` wrote since the last read."""
        for index in range(last + 1):
            for name in self.streams:
                if (index, name) not in self.not_live:
                    self._read(index, name)

    def finish(self, task: dict[str, Any]) -> None:
        """The task ended: print what the live reads had not reached, from the stored
        tails of its executor logs (FULL view ``task``)."""
        attempts = task.get("logs") or [{}]
        for index, entry in enumerate(attempts[-1].get("logs") or []):
            for name in self.streams:
                stored = entry.get(name) or ""
                key = (index, name)
                if key in self.offsets:
                    self._print(name, unprinted(self.printed.get(key, ""), stored))
                elif stored:
                    self.notes.write(f"--- executor {index} {name} (its end) ---\n")
                    self._print(name, stored if stored.endswith("\n") else stored + "\n")

    def _read(self, index: int, name: str) -> None:
        key = (index, name)
        while True:
            offset = self.offsets.get(key, 0)
            try:
                text, first, after = self.client.executor_output(self.task_id, index, name, offset)
            except ClientError as exc:
                if exc.status != 404:
                    raise
                log.info("no live output for executor %d %s: %s", index, name, exc)
                self.not_live.add(key)
                return
            if first is None or after is None:
                return  # the stored log: the task ended, finish() prints what is left
            if first > offset:
                lost = first - offset
                self.notes.write(f"--- executor {index} {name}: {lost} bytes gone ---\n")
            self.offsets[key] = after
            if not text:
                return
            self._print(name, text)
            self.printed[key] = (self.printed.get(key, "") + text)[-KEPT:]

    def _print(self, name: str, text: str) -> None:
        if text:
            self.sinks[name].write(text)
            self.sinks[name].flush()

    def _event(self, kind: str, data: dict[str, Any], state: str, ended: int) -> tuple[str, int]:
        """Note one event of the task; its state and how many executors ended, after it."""
        if kind == "state":
            return data.get("state", state), ended
        if "executor" in data:
            index = int(data["executor"].get("index", ended))
            self.read(index)  # all of it, while the live copy is there
            code = data["executor"].get("exit_code")
            self.notes.write(f"--- executor {index} ended, exit code {code} ---\n")
            return state, max(ended, index + 1)
        self.notes.write(f"[system] {data.get('system_log', '')}\n")
        return state, ended

    def _listen(self, events: queue.Queue[tuple[str, dict[str, Any]]]) -> Any:
        """Open the events stream and feed this task's events to ``events`` from a
        thread; ``None`` when the server has no stream for us (the task is polled)."""
        try:
            response = self.client.open_events()
        except ClientError as exc:
            log.info("no events stream (%s); polling the task", exc)
            return None
        thread = threading.Thread(
            target=_feed, args=(self.client, response, self.task_id, events.put), daemon=True
        )
        thread.start()
        return response


def _feed(
    client: TesClient,
    response: Any,
    task_id: str,
    put: Callable[[tuple[str, dict[str, Any]]], None],
) -> None:
    """Put each event of ``task_id`` from the stream ``response``; stop when it is closed."""
    try:
        for kind, data in follow(client, None, response):
            if data.get("task_id") == task_id and kind in ("state", "log"):
                put((kind, data))
    except (ClientError, OSError, ValueError) as exc:  # hung up, or lost: poll the task
        log.info("events stream ended: %s", exc)
        put((LOST, {}))


def _ended_count(task: dict[str, Any]) -> int:
    """How many executors of the last attempt have ended."""
    attempts = task.get("logs") or [{}]
    return len(attempts[-1].get("logs") or [])


def unprinted(printed: str, stored: str) -> str:
    """The part of ``stored`` (the end of a stream) after what ``printed`` (what was
    printed of it, its end) already covers: after the longest start of ``stored`` that
    ``printed`` ends with. A stream that repeats itself exactly may lose a repeat here."""
    stored = stored.lstrip("\ufffd")  # a character the tail cut at its start
    for length in range(min(len(printed), len(stored)), 0, -1):
        if printed.endswith(stored[:length]):
            return stored[length:]
    return stored
