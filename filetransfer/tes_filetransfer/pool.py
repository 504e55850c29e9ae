"""A bounded pool that runs transfer jobs side by side and stops at the first failure.

Its threads are daemon threads: a job stuck in a blocking call (a store that never
answers) never keeps the process from exiting, and under an interrupt
(:mod:`.interrupt`) the pool returns as soon as it is set, without waiting for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from .interrupt import Interrupted, current_interrupt, interruptible

T = TypeVar("T")

WAKE_UP = 0.2
"""Seconds between two looks at the interrupt while jobs run."""


def run_all(jobs: Sequence[Callable[[], T]], parallel: int) -> list[T]:
    """Run ``jobs`` on at most ``parallel`` threads; return their results in order.

    The first job that raises stops the jobs not started yet, waits for the running
    ones and re-raises its exception (the earliest job's, if several failed). Under a set
    interrupt it raises :class:`Interrupted` at once, whatever the jobs are doing.
    """
    if not jobs:
        return []
    event = current_interrupt()
    if event is None and (parallel <= 1 or len(jobs) == 1):
        return [job() for job in jobs]
    return _Batch(jobs, event).run(min(max(1, parallel), len(jobs)))


def call(job: Callable[[], T]) -> T:
    """Run one ``job``, in a thread of its own when an interrupt is current (so that a
    blocking call in it does not hold the caller once the interrupt is set)."""
    return run_all([job], 1)[0]


class _Batch:
    """One :func:`run_all` call: its jobs, their results and the threads taking them."""

    def __init__(self, jobs: Sequence[Callable[[], Any]], event: threading.Event | None) -> None:
        self.jobs = list(jobs)
        self.event = event
        self.results: list[Any] = [None] * len(self.jobs)
        self.errors: dict[int, BaseException] = {}
        self.next = 0
        self.busy = 0
        self.stopped = False
        self.changed = threading.Condition()

    def run(self, threads: int) -> list[Any]:
        self.busy = threads
        for _ in range(threads):
            threading.Thread(target=self._take, name="tes-ft", daemon=True).start()
        with self.changed:
            while self.busy:
                self.changed.wait(WAKE_UP if self.event is not None else None)
                if self.event is not None and self.event.is_set():
                    self.stopped = True
                    raise Interrupted()
        if self.errors:
            raise self.errors[min(self.errors)]
        return self.results

    def _take(self) -> None:
        with interruptible(self.event):
            while True:
                with self.changed:
                    if self.stopped or self.errors or self.next >= len(self.jobs):
                        self.busy -= 1
                        self.changed.notify_all()
                        return
                    index = self.next
                    self.next += 1
                try:
                    result = self.jobs[index]()
                except BaseException as exc:  # handed to the caller, who re-raises it
                    with self.changed:
                        self.errors[index] = exc
                else:
                    self.results[index] = result
