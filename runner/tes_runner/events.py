"""What a run tells the world, and how it hears of a cancel.

The runner never writes a database or a status file itself: it hands each change to an
:class:`Events` object. The server's local backend passes one that reports to the task
store; ``tes-runner run`` one that keeps ``status.json`` (see :mod:`tes_runner.status`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

INITIALIZING = "INITIALIZING"
RUNNING = "RUNNING"
COMPLETE = "COMPLETE"
EXECUTOR_ERROR = "EXECUTOR_ERROR"
SYSTEM_ERROR = "SYSTEM_ERROR"
CANCELED = "CANCELED"
FINAL_STATES = frozenset({COMPLETE, EXECUTOR_ERROR, SYSTEM_ERROR, CANCELED})
"""States after which a run does nothing more (the TES terminal states a run can reach)."""


@dataclass
class Update:
    """One change of a run; ``None`` fields say nothing (the TES ``TaskLog`` vocabulary)."""

    state: str | None = None
    """A TES state (``INITIALIZING`` ... ``CANCELED``), or ``None`` for log lines only."""
    start_time: datetime | None = None
    end_time: datetime | None = None
    executor_logs: list[dict[str, Any]] | None = None
    """Replaces the attempt's executor logs (``ExecutorLog`` objects) when given."""
    outputs: list[dict[str, str]] | None = None
    system_logs: list[str] = field(default_factory=list)
    """Lines appended to the attempt's system logs."""
    metadata: dict[str, str] | None = None
    """Merged into the attempt's metadata."""
    new_attempt: bool = False
    """This update starts a new attempt (the first ``INITIALIZING`` of a run)."""


Stage = str | Callable[[], str | None] | None
"""What a run is busy with: a text, a function giving the current text, or nothing."""


class Events(Protocol):
    """Where a run sends its updates."""

    def report(self, update: Update) -> bool:
        """Record ``update``; ``False`` when its state change is refused (the task was
        cancelled, or moved on without this run)."""
        ...

    def cancel_requested(self) -> bool:
        """Whether someone outside the run asked to cancel the task (asked between steps)."""
        ...

    def stage(self, reason: Stage) -> None:
        """What the run is busy with now (staging inputs, pulling an image); ``None``
        when nothing slow. For telling a user why a task waits."""
        ...
