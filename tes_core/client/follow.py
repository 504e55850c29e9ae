"""Following tasks as they run: through the server's events stream when it has one,
else by polling ``GET /tasks/{id}``."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from .http import ClientError, TesClient
from .sse import read_events

log = logging.getLogger(__name__)

FINISHED = frozenset({"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED", "PREEMPTED"})
POLL_SECONDS = 2.0


def follow(
    client: TesClient, params: list[tuple[str, str]] | None = None, response: Any = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(kind, data)`` of each event, reconnecting with ``Last-Event-ID`` whenever the
    server ends a stream; keepalives come as ``("comment", {})``. ``response``: a stream
    opened already (:meth:`TesClient.open_events`)."""
    last: str | None = None
    while True:
        response = response or client.open_events(params, last)
        with response:
            for event in read_events(response):
                last = event.id or last
                try:
                    yield event.event, json.loads(event.data) if event.data else {}
                except ValueError:
                    continue
        response = None


def wait_for(
    client: TesClient, task_ids: list[str], on_change: Callable[[str, str], None],
    timeout: float | None = None,
) -> dict[str, str]:
    """Wait until every task has finished; return each one's final state.

    ``on_change(task_id, state)`` is called for every state seen. The events stream is
    opened before the states are read, so no change falls between the two; without a
    stream (another server, or every stream taken) the tasks are polled. Raises
    :class:`TimeoutError` after ``timeout`` seconds.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    states: dict[str, str] = {}
    try:
        response = client.open_events()
    except ClientError as exc:
        log.info("no events stream (%s); polling", exc)
        return _poll(client, task_ids, states, on_change, deadline)
    try:
        for task_id in task_ids:
            _seen(states, task_id, client.get(task_id)["state"], on_change)
        for kind, data in _checked(follow(client, None, response), states, deadline):
            if kind == "state" and data.get("task_id") in states:
                _seen(states, data["task_id"], data["state"], on_change)
    except ClientError as exc:
        log.info("events stream lost (%s); polling", exc)
    finally:
        response.close()
    if all(state in FINISHED for state in states.values()):
        return states
    return _poll(client, task_ids, states, on_change, deadline)


def _checked(
    events: Iterator[tuple[str, dict[str, Any]]], states: dict[str, str],
    deadline: float | None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``events`` until every task has finished; :class:`TimeoutError` at ``deadline``."""
    while not all(state in FINISHED for state in states.values()):
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError
        yield next(events)


def _poll(
    client: TesClient, task_ids: list[str], states: dict[str, str],
    on_change: Callable[[str, str], None], deadline: float | None,
) -> dict[str, str]:
    while True:
        for task_id in task_ids:
            if states.get(task_id) not in FINISHED:
                _seen(states, task_id, client.get(task_id)["state"], on_change)
        if all(states.get(task_id) in FINISHED for task_id in task_ids):
            return states
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(POLL_SECONDS)


def _seen(
    states: dict[str, str], task_id: str, state: str, on_change: Callable[[str, str], None]
) -> None:
    if states.get(task_id) != state and states.get(task_id) not in FINISHED:
        states[task_id] = state
        on_change(task_id, state)
