"""One reconcile pass over 1,000 and over 10,000 active tasks: queries and time.

A test backend (``tests/remote_platform.py``, the poll model of a remote platform)
reports on every active task in every pass, with a change each time (new metadata),
so every pass reads, polls and writes every task. The pass runs in this process on
a fresh database per size (SQLite, or ``--database`` PostgreSQL), counted by
``tests/querycount.py`` (SQLAlchemy's ``before_cursor_execute`` plus the driver
fast paths). Sizes are measured alternately (ABBA), medians compared.

Judged: queries per batch at 10,000 tasks <= at 1,000 (a fixed cost per batch, none
per task; the total is ``fixed + per_batch x ceil(tasks / batch size)``), and time
10,000 / 1,000 <= ~10 (at most linear: 10 means the same time per task; judged <= 11 to
leave room for noise).

    python -m bench.bench_reconcile [--database URL] [--batch-size 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

from bench._common import (
    Outcome,
    Scratch,
    at_most,
    bench_arguments,
    bench_main,
    interleave,
    median,
)

SIZES = (1_000, 10_000)
TIME_TARGET = 11.0
"""10 is exactly linear (the same time per task at both sizes); the 10% above it is room
for noise, since the time per task is what is judged to stay flat."""


def arguments() -> argparse.ArgumentParser:
    parser = bench_arguments(__doc__)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="TES_RECONCILE_BATCH_SIZE (default: the setting's default)")
    parser.add_argument("--rounds", type=int, default=3)
    return parser


class Pass:
    """A database with ``size`` active tasks and a lifecycle to reconcile them."""

    def __init__(self, url: str, folder: Any, size: int, batch_size: int) -> None:
        from tes_core.backends.base import BackendContext, Observation
        from tes_core.config import Settings
        from tes_core.db import Database
        from tes_core.plugins import load_plugins
        from tes_core.reporting import DatabaseReporter
        from tes_core.store import NewTask, insert_task
        from tes_core.worker.lifecycle import Lifecycle
        from tes_core.worker.registry import WorkerRegistry
        from tests.querycount import Patcher, QueryCounter
        from tests.remote_platform import Messages, PlatformBackend

        self.size = size
        self.batch_size = batch_size
        self.db = Database(url)
        self.db.create_all()
        document = {"name": "bench", "executors": [{"image": "alpine", "command": ["true"]}],
                    "tags": {"workflow": "bench"}}
        with self.db.driver_write() as tx:
            self.ids = [insert_task(tx, NewTask(document=document, backend="platform"))
                        for _ in range(size)]
            tx.execute("UPDATE tasks SET state = 'RUNNING', backend_ref = 'job-' || id")
        if not self.db.is_sqlite:
            with self.db.write() as conn:
                conn.exec_driver_sql("ANALYZE tasks")
        folder.mkdir(parents=True, exist_ok=True)
        settings = Settings.from_env({}, data_dir=folder)
        reporter = DatabaseReporter(self.db, load_plugins(settings))
        self.registry = WorkerRegistry(self.db, heartbeat_interval=5)
        self.backend = PlatformBackend(BackendContext(settings, reporter, self.registry.worker_id))
        self.lifecycle = Lifecycle(self.db, self.backend, reporter, self.registry, Messages(),
                                   batch_size=batch_size)
        self.registry.register()
        self.counter = QueryCounter(self.db, Patcher())
        self.observation = Observation
        self.number = 0

    def run(self) -> tuple[float, int]:
        """One pass in which every task reports a change; ``(seconds, queries)``."""
        self.number += 1
        tag = {"reconcile_pass": str(self.number)}
        self.backend.reports = {i: self.observation(i, metadata=tag) for i in self.ids}
        self.backend.polled.clear()
        before = self.counter.count
        started = time.perf_counter()
        self.lifecycle.reconcile()
        seconds = time.perf_counter() - started
        polled = sum(len(batch) for batch in self.backend.polled)
        if polled != self.size:
            raise SystemExit(f"bench_reconcile: the pass polled {polled} of {self.size} tasks")
        return seconds, self.counter.count - before

    def close(self) -> None:
        self.registry.unregister()
        self.db.dispose()


def run(args: argparse.Namespace) -> list[Outcome]:
    from tes_core.config import Settings

    batch_size = args.batch_size or Settings().reconcile_batch_size
    scratch = Scratch(args.database, keep=args.keep)
    passes: dict[int, Pass] = {}
    try:
        for size in SIZES:
            started = time.perf_counter()
            passes[size] = Pass(scratch.database(f"reconcile_{size}"), scratch.dir / str(size),
                                size, batch_size)
            print(f"  loaded {size} active tasks in {time.perf_counter() - started:.1f} s")
        passes[SIZES[0]].run()  # warm-up: statement caches, first connections
        passes[SIZES[1]].run()
        small, large = interleave(args.rounds, passes[SIZES[0]].run, passes[SIZES[1]].run)
    finally:
        for one in passes.values():
            one.close()
        scratch.close()
    outcomes = []
    figures = {}
    for size, rounds in zip(SIZES, (small, large), strict=True):
        batches = math.ceil(size / batch_size)
        seconds = median([s for s, _ in rounds])
        queries = rounds[0][1]
        if any(q != queries for _, q in rounds):
            print(f"  NOTE: query counts varied between rounds: {[q for _, q in rounds]}")
        figures[size] = (seconds, queries, batches)
        print(f"  {size:>6} tasks: {batches:>3} batches of {batch_size}, {queries:>4} queries "
              f"({queries / batches:.1f} per batch, {queries / size:.3f} per task), "
              f"median {seconds * 1000:.0f} ms ({seconds / size * 1e6:.0f} us per task); "
              f"rounds: {', '.join(f'{s * 1000:.0f} ms' for s, _ in rounds)}")
    (s1, q1, b1), (s2, q2, b2) = figures[SIZES[0]], figures[SIZES[1]]
    per_batch = (q2 / b2) / (q1 / b1)
    label, passed = at_most(per_batch, 1.0)
    outcomes.append(Outcome(
        "recon", "queries per batch, 10k vs 1k tasks", q1 / b1, q2 / b2, "q/bat", per_batch,
        label, passed, f"total queries: {q1} for 1k, {q2} for 10k (batch size {batch_size})",
    ))
    ratio = s2 / s1
    label, passed = at_most(ratio, TIME_TARGET)
    outcomes.append(Outcome("recon", "pass time, 10k vs 1k tasks", s1 * 1000, s2 * 1000, "ms",
                            ratio, label, passed))
    return outcomes


def main(argv: list[str] | None = None) -> int:
    return bench_main(arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
