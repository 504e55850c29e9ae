"""Folding backend observations into a task's ``logs`` (a list of tesTaskLog, one per attempt)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from .backends.base import Observation
from .db import rfc3339

MAX_SYSTEM_LOG_LINES = 200
WAITING_REASON = "waiting_reason"
"""The task log ``metadata`` key that says why a QUEUED or INITIALIZING task waits (kept
in the BASIC view, which leaves ``system_logs`` out)."""


def new_attempt(system_logs: list[str] | None = None) -> dict[str, Any]:
    """An empty task log: ``logs`` and ``outputs`` are always present lists."""
    attempt: dict[str, Any] = {"logs": [], "outputs": []}
    if system_logs:
        attempt["system_logs"] = list(system_logs)
    return attempt


def apply(logs: list[dict[str, Any]], observation: Observation) -> list[dict[str, Any]]:
    """Return ``logs`` with the observation applied to the current (last) attempt."""
    if not logs or (observation.new_attempt and logs[-1].get("start_time")):
        logs.append(new_attempt())
    attempt = logs[-1]
    if observation.start_time is not None:
        attempt["start_time"] = rfc3339(_naive_utc(observation.start_time))
    if observation.end_time is not None:
        attempt["end_time"] = rfc3339(_naive_utc(observation.end_time))
    if observation.executor_logs is not None:
        attempt["logs"] = observation.executor_logs
    if observation.outputs is not None:
        attempt["outputs"] = observation.outputs
    if observation.metadata:
        attempt.setdefault("metadata", {}).update(observation.metadata)
    if observation.waiting_reason is not None:
        _set_waiting_reason(attempt, observation.waiting_reason)
    if observation.system_logs:
        attempt.setdefault("system_logs", []).extend(observation.system_logs)
    if len(attempt.get("system_logs") or ()) > MAX_SYSTEM_LOG_LINES:
        del attempt["system_logs"][:-MAX_SYSTEM_LOG_LINES]
    return logs


def _set_waiting_reason(attempt: dict[str, Any], reason: str) -> None:
    """Replace the attempt's waiting reason (metadata and its one system log line) by
    ``reason``; ``""`` removes it from the metadata and leaves the line as it is."""
    metadata = attempt.get("metadata") or {}
    previous = metadata.pop(WAITING_REASON, None)
    if not reason:
        if previous is not None and not metadata:
            del attempt["metadata"]
        return
    attempt["metadata"] = {**metadata, WAITING_REASON: reason}
    lines = attempt.setdefault("system_logs", [])
    if previous in lines:
        lines[len(lines) - 1 - lines[::-1].index(previous)] = reason
    else:
        lines.append(reason)


def _naive_utc(value: datetime) -> datetime:
    """A timestamp in UTC without tzinfo; naive ones are taken to be UTC already."""
    return value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)


def is_empty(observation: Observation) -> bool:
    """Whether applying the observation would change nothing but the state."""
    return not (
        observation.start_time
        or observation.end_time
        or observation.executor_logs is not None
        or observation.outputs is not None
        or observation.metadata
        or observation.system_logs
        or observation.new_attempt
        or observation.backend_ref
        or observation.waiting_reason is not None
    )


def executor_ends(logs: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The executors of the current attempt that have ended: index -> ``{"index",
    "exit_code", "end_time"}`` (what a ``log`` event says of an executor's end)."""
    if not logs:
        return {}
    return {
        index: {"index": index, "exit_code": entry.get("exit_code"),
                "end_time": entry["end_time"]}
        for index, entry in enumerate(logs[-1].get("logs") or [])
        if entry.get("end_time")
    }


def logged_lines(observation: Observation) -> list[str]:
    """The ``system_logs`` lines an observation adds or replaces (a new waiting reason)."""
    lines = list(observation.system_logs)
    if observation.waiting_reason:
        lines.insert(0, observation.waiting_reason)
    return lines


def fold_logs(
    logs_json: str, observation: Observation
) -> tuple[str, list[str], list[dict[str, Any]]]:
    """Apply ``observation`` to a task's stored ``logs`` (JSON text); return the new JSON,
    the system log lines it added and the executors that ended with it."""
    logs = json.loads(logs_json)
    attempts = len(logs)
    before = executor_ends(logs) if observation.executor_logs is not None else {}
    logs = apply(logs, observation)
    ended: list[dict[str, Any]] = []
    if observation.executor_logs is not None:
        if len(logs) != attempts:
            before = {}
        ended = [end for index, end in executor_ends(logs).items() if index not in before]
    return json.dumps(logs), logged_lines(observation), ended
