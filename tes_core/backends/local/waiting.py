"""Why a task of the local backend waits, told in its logs while it is QUEUED or INITIALIZING.

A run's own thread says what it is doing (:meth:`WaitReason.stage`: staging inputs,
pulling an image); the backend's explainer thread calls :meth:`WaitReason.tick` once per
:data:`EXPLAIN_TICK` with the reason of a run still waiting for a task slot. Nothing is
written for a task that starts within ``TES_LOCAL_WAIT_EXPLAIN_AFTER`` seconds; after
that, a reason is written when it changes, at most once per tick, and the state change
that ends the wait removes it from the task's metadata (see
:attr:`~tes_core.backends.base.Observation.waiting_reason`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ...states import State
from ..base import Observation, TaskReporter

EXPLAIN_TICK = 1.0
"""Seconds between two looks at the waiting tasks: the most often one task's reason is
written."""

WAITING_STATES = frozenset({State.QUEUED, State.INITIALIZING})


def slot_reason(in_use: int, slots: int) -> str:
    """The reason of a task waiting for one of a worker's ``slots`` task slots."""
    return f"waiting for a local slot: {in_use} of {slots} in use"


class WaitReason:
    """What one run waits for, and what of it the task's logs already say."""

    def __init__(
        self,
        task_id: str,
        reporter: TaskReporter,
        after: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.task_id = task_id
        self.reporter = reporter
        self.after = after
        """Seconds the task may wait before its logs say why."""
        self.since = clock()
        self._stage: Callable[[], str | None] | None = None
        self._written: str | None = None
        self._over = False
        self._lock = threading.Lock()

    def stage(self, reason: str | Callable[[], str | None] | None) -> None:
        """What the run is busy with now (a text, or a function giving the current text,
        e.g. a count of files); ``None`` when nothing slow."""
        self._stage = (lambda: reason) if isinstance(reason, str) else reason

    def tick(self, now: float, queued: str | None = None) -> None:
        """Write the current reason (the stage's, else ``queued``) if the task has waited
        longer than :attr:`after` and the reason differs from the one its logs hold."""
        if now - self.since < self.after:
            return
        with self._lock:
            if self._over:
                return
            stage = self._stage
            reason = (stage() if stage is not None else None) or queued
            if not reason or reason == self._written:
                return
            if self.reporter.report(Observation(task_id=self.task_id, waiting_reason=reason)):
                self._written = reason

    def report(self, observation: Observation) -> bool:
        """Report ``observation`` (a state change, or none when the wait ends otherwise),
        removing the reason the logs hold; after any state but QUEUED or INITIALIZING,
        nothing more is written."""
        with self._lock:
            if observation.state not in WAITING_STATES:
                self._over = True
            if self._written is not None:
                observation.waiting_reason = ""
            reported = self.reporter.report(observation)
            if reported:
                self._written = None
            return reported

    def end(self) -> None:
        """The run ends without starting (cancelled while it waited for a slot): remove the
        reason the logs hold, if any; nothing more is written."""
        with self._lock:
            self._over = True
            if self._written is not None and self.reporter.report(
                Observation(task_id=self.task_id, waiting_reason="")
            ):
                self._written = None
