"""A remote compute platform in memory, for tests and benchmarks of the core's logic.

It follows the poll model of :class:`~tes_core.backends.base.Backend`: ``submit``
returns a job reference, ``poll`` reports on a batch of tasks at once. What it
reports is scripted in :attr:`PlatformBackend.reports`. Used where the thing under
test is the core (claims, reconcile, batching), not a platform.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tes_core.backends.base import Backend, BackendContext, Observation, TaskRecord


class PlatformBackend(Backend):
    """A remote platform in memory: submitted jobs, and what polling reports."""

    name = "platform"

    def __init__(self, context: BackendContext) -> None:
        super().__init__(context)
        self.submitted: list[str] = []
        self.cancelled: list[str] = []
        self.reports: dict[str, Observation] = {}
        self.polled: list[list[str]] = []
        self.fail_submit = False

    def submit(self, task: TaskRecord) -> str:
        if self.fail_submit:
            raise RuntimeError("quota exceeded")
        self.submitted.append(task.id)
        return f"job-{task.id}"

    def cancel(self, task: TaskRecord) -> bool:
        self.cancelled.append(task.id)
        return True

    def poll(self, tasks: Sequence[TaskRecord]) -> Iterable[Observation]:
        self.polled.append([r.id for r in tasks])
        return [self.reports[r.id] for r in tasks if r.id in self.reports]


class Messages:
    """Records the messages a reconcile pass sends instead of queueing them."""

    def __init__(self) -> None:
        self.submits: list[str] = []
        self.cancels: list[str] = []

    def submit(self, task_id: str) -> None:
        self.submits.append(task_id)

    def cancel(self, task_id: str) -> None:
        self.cancels.append(task_id)
