"""The batch backend's requests to Azure Batch: per reconcile pass and per submitted task.

The plugin's fake Batch service (``plugins/tes_batch/tests/fakebatch``) answers over HTTP
on loopback to the real ``BatchClient`` (SharedKey signing); its simulator is paused, so
every task stays where the bench puts it. Tasks are spread over 10 pools (5 VM sizes,
dedicated and low-priority).

* Submitting: ``BatchBackend.submit`` of 100 and of 1,000 tasks, requests counted per
  task (a pool and its job are made once per pool, then one task add per task). Target:
  1,000 tasks cost no more per task than 100, and at most 2 requests per task.
* Polling: one ``BatchBackend.poll`` over the 100 and the 1,000 active (running) tasks.
  Target: 1,000 tasks make no more requests than 100 (one pool list, one node-count list per
  10 pools, one task list per pool job and page of 1,000), none per task, so never ten times
  as many.
* The same with ``TES_BATCH_POOL_MODE=per-task`` (an auto-pool per task): submitting is a
  job add (with its pool) and a task add per task; a pass lists the jobs and the pools (one
  request per page of 1,000) and the node counts (one per 10 pools, so per 10 tasks here):
  nothing per task, but the node counts grow with the tasks (target: under tenfold).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._common import AllRunning, Outcome, at_most, bench_main, passes_arguments
from tes_core.backends.base import BackendContext, TaskRecord
from tes_core.config import Settings

REPO = Path(__file__).resolve().parents[1]
FAKE = REPO / "plugins" / "tes_batch" / "tests"

COUNTS = (100, 1000)
SHAPES = [{"cpu_cores": cores, "preemptible": spot}
          for cores in (1, 4, 8, 16) for spot in (False, True)] + [
    {"cpu_cores": 2, "ram_gb": 12, "preemptible": spot} for spot in (False, True)]
"""Ten kinds of task, each on a pool of its own (5 sizes, dedicated and low-priority)."""


def arguments() -> argparse.ArgumentParser:
    """The command line."""
    return passes_arguments(__doc__)


def _submit(fake: Any, backend: Any, count: int) -> tuple[list[TaskRecord], int]:
    """Submit ``count`` tasks over the ten shapes; the requests it took."""
    before = len(fake.requests)
    tasks = []
    for index in range(count):
        document = {"executors": [{"image": "alpine", "command": ["sleep", "600"]}],
                    "resources": SHAPES[index % len(SHAPES)]}
        record = TaskRecord(id=str(uuid.uuid4()), state="QUEUED", document=document,
                            creation_time=datetime.now(UTC), logs=[{}])
        ref = backend.submit(record)
        tasks.append(TaskRecord(**{**record.__dict__, "backend_ref": ref, "state": "RUNNING"}))
    return tasks, len(fake.requests) - before


def _run_all(fake: Any) -> None:
    """Every task running on a node of its pool (what a busy account looks like)."""
    from fakebatch.service import Node

    with fake.lock:
        for job, tasks in fake.tasks.items():
            pool = fake.job_pool(job)
            for number, task in enumerate(tasks.values()):
                task.update(state="running", nodeInfo={"poolId": pool,
                                                       "nodeId": f"tvmps_{number}"})
                task["executionInfo"]["startTime"] = "2026-12-03T06:00:00.000Z"
                fake.nodes[pool].append(Node(f"tvmps_{number}", pool, False, fake.root,
                                             task=(job, task["id"])))


def _pass(fake: Any, backend: Any, tasks: list[TaskRecord]) -> tuple[dict, float]:
    backend.snapshots.forget()
    before = len(fake.requests)
    started = time.perf_counter()
    observations = list(backend.poll(tasks))
    took = time.perf_counter() - started
    assert len(observations) == len(tasks), "each task is seen running on its node"
    calls: dict[str, int] = {}
    for request in fake.requests[before:]:
        kind = {"/pools": "list pools", "/nodecounts": "list node counts",
                "/jobs": "list jobs"}.get(
            request.path, "list tasks" if request.path.endswith("/tasks") else request.path)
        key = f"{request.method} {kind}"
        calls[key] = calls.get(key, 0) + 1
    return calls, took


def _measure(args: argparse.Namespace, scratch: Path, mode: str,
             count: int) -> tuple[dict, float, float]:
    """Requests per pass (by kind), the median pass, requests per submitted task."""
    from fakebatch import FakeBatch  # the plugin's fake Batch service (its tests' own)
    from tes_batch import ids
    from tes_batch.backend import BatchBackend

    fake = FakeBatch(scratch / f"nodes-{mode}-{count}").start()
    fake.paused = True
    try:
        settings = Settings.from_env({
            **fake.settings(TES_BATCH_SWEEP_INTERVAL="86400", TES_BATCH_POOL_MODE=mode),
            "TES_DATA_DIR": str(scratch / f"data-{mode}-{count}")})
        backend = BatchBackend(BackendContext(settings, AllRunning(), "bench"))
        backend.sweeper._last = time.monotonic()  # the sweep is not measured
        tasks, submitted = _submit(fake, backend, count)
        _run_all(fake)
        rounds = [_pass(fake, backend, tasks) for _ in range(args.rounds)]
        pools = {fake.job_pool(ids.parse_ref(t.backend_ref)[0]) for t in tasks}
    finally:
        fake.stop()
    calls = rounds[-1][0]
    if any(r[0] != calls for r in rounds):
        calls = {"varied": 999}
    took = sorted(r[1] for r in rounds)[len(rounds) // 2]
    print(f"  {mode:>8} pools, {count:>5} tasks over {len(pools)} pools: {submitted} requests "
          f"to submit ({submitted / count:.2f} per task); requests per pass "
          f"{json.dumps(calls, sort_keys=True)}, median pass {took * 1000:.0f} ms", flush=True)
    return calls, took, submitted / count


def run(args: argparse.Namespace) -> list[Outcome]:
    """Count the requests of submits and passes at 100 and 1,000 tasks, in shared and in
    per-task pool mode; judge 1,000 by 100."""
    sys.path.insert(0, str(FAKE))
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as scratch:
        for mode, limit in (("shared", 1.0), ("per-task", 10.0)):
            passes, per_task = {}, {}
            for count in COUNTS:
                calls, _, per_task[count] = _measure(args, Path(scratch), mode, count)
                passes[count] = calls
            small, large = (sum(passes[c].values()) for c in COUNTS)
            others = sum(v for k, v in passes[COUNTS[1]].items() if not k.startswith("GET list"))
            ratio = large / max(small, 1)
            target, ok = at_most(ratio, limit)
            note = ("must not grow tenfold" if mode == "shared" else
                    "a pool per task: node counts cost 1 request per 10 pools; nothing per task")
            outcomes.append(Outcome(
                "batch", f"requests per pass, 1,000 vs 100 tasks ({mode})", small, large,
                "requests", ratio, target, ok and others == 0,
                f"{others} requests other than lists; {note}"))
            base, ours = per_task[COUNTS[0]], per_task[COUNTS[1]]
            target, ok = at_most(ours / base, 1.0)
            outcomes.append(Outcome(
                "batch", f"requests per submitted task, 1,000 vs 100 ({mode})", base, ours,
                "req/task", ours / base, target, ok and ours <= 2, "at most 2 per task"))
    return outcomes


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 if every figure meets its target."""
    return bench_main(arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
