"""A bounded pool that runs transfer jobs side by side and stops at the first failure."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")


def run_all(jobs: Sequence[Callable[[], T]], parallel: int) -> list[T]:
    """Run ``jobs`` on at most ``parallel`` threads; return their results in order.

    The first job that raises cancels every job not started yet, waits for the running
    ones and re-raises its exception (the earliest job's, if several failed).
    """
    if not jobs:
        return []
    if parallel <= 1 or len(jobs) == 1:
        return [job() for job in jobs]
    with ThreadPoolExecutor(
        max_workers=min(parallel, len(jobs)), thread_name_prefix="tes-ft"
    ) as pool:
        futures = [pool.submit(job) for job in jobs]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        if any(f.exception() is not None for f in done):
            for f in pending:
                f.cancel()
            wait(futures)
            for f in futures:
                if not f.cancelled() and f.exception() is not None:
                    raise f.exception()  # type: ignore[misc]
        return [f.result() for f in futures]
