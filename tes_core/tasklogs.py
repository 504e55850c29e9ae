"""Folding backend observations into a task's ``logs`` (a list of tesTaskLog, one per attempt)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .backends.base import Observation
from .db import rfc3339

MAX_SYSTEM_LOG_LINES = 200


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
    if observation.system_logs:
        lines = attempt.setdefault("system_logs", [])
        lines.extend(observation.system_logs)
        del lines[:-MAX_SYSTEM_LOG_LINES]
    return logs


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
    )
