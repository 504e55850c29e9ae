"""Polling while tasks are created: 200 GET/s of MINIMAL polling with p99 under 50 ms.

The production shape: tes-core under gunicorn with ``tes_core.gunicorn_conf``,
PostgreSQL (``--database``; SQLite otherwise), Redis as the broker (a private
``redis-server``) and no worker, so tasks stay QUEUED and every poll reads the
database (a state that may still change is never served from memory in this mode).

1,000 Nextflow tasks (``data/nextflow-1.json``) are created first. Then, for
``--seconds``: each of them is polled every 5 s with ``GET /tasks/{id}`` (MINIMAL)
by an open-loop load generator (200 requests per second, each due at a fixed time,
latency counted from when it was due), while a second one creates tasks at
``--create-rate`` per second. Judged: p99 of the polls < 50 ms, and the polls
achieve >= 95% of 200/s. Printed: p50/p90/p99, rates, errors, and the creates' figures.

For reference (not judged), the same polling is first sent to ``baseline_app --mode
const`` under the same gunicorn configuration: its p99 is what the machine itself adds
(on a busy machine, scheduling delays dominate the tail of both).

    python -m bench.bench_poll [--database URL] [--seconds 30] [--create-rate 20]
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from bench._common import (
    API,
    DATA,
    Load,
    Outcome,
    Scratch,
    at_least,
    at_most,
    baseline_gunicorn,
    bench_arguments,
    bench_main,
    create_tasks,
    run_load,
    running,
    tes_gunicorn,
    without_submitter_plugins,
)

TASKS = 1000
POLL_EVERY = 5.0
P99_TARGET_MS = 50.0
RATE_TARGET = 0.95
DOCUMENT = DATA / "nextflow-1.json"


def arguments() -> argparse.ArgumentParser:
    parser = bench_arguments(__doc__)
    parser.add_argument("--seconds", type=float, default=30.0, help="counted seconds")
    parser.add_argument("--create-rate", type=float, default=20.0,
                        help="tasks created per second during the polling")
    parser.add_argument("--connections", type=int, default=16, help="polling connections")
    return parser


def run(args: argparse.Namespace) -> list[Outcome]:
    from tests.private_services import PrivateRedis

    scratch = Scratch(args.database, keep=args.keep)
    redis = PrivateRedis(scratch.dir / "redis").start()
    try:
        # Submitter plugins would rewrite Nextflow's local paths to blob URLs and refuse
        # them with no storage configured; their cost is bench_submitters'.
        tes = tes_gunicorn(scratch.dir / "tes", scratch.database("poll"), redis.url,
                           TES_DISABLED_PLUGINS=without_submitter_plugins())
        with running(baseline_gunicorn("const")) as (base,):
            floor = run_load(base.base, [f"{API}/tasks/{n}" for n in range(TASKS)],
                             connections=args.connections, duration=min(args.seconds, 15.0),
                             warmup=2.0, rate=TASKS / POLL_EVERY, max_requests=10**7)
        with running(tes):
            ids = create_tasks(tes.base, Path(DOCUMENT).read_bytes(), TASKS, "bench_poll")
            rate = TASKS / POLL_EVERY
            print(f"bench_poll: {TASKS} tasks polled every {POLL_EVERY:g} s ({rate:g} GET/s, "
                  f"MINIMAL) for {args.seconds:g} s while creating {args.create_rate:g} tasks/s; "
                  "gunicorn + Redis broker")
            paths = [f"{API}/tasks/{task_id}" for task_id in ids]
            results: dict[str, Load] = {}

            def creates() -> None:
                results["create"] = run_load(
                    tes.base, [f"{API}/tasks"], method="POST", body_file=DOCUMENT,
                    connections=4, duration=args.seconds, warmup=2.0,
                    rate=args.create_rate, max_requests=10**7,
                )

            creator = threading.Thread(target=creates)
            creator.start()
            results["poll"] = run_load(
                tes.base, paths, connections=args.connections, duration=args.seconds,
                warmup=2.0, rate=rate, max_requests=10**7, server_pid=None,
            )
            creator.join()
    finally:
        redis.stop()
        scratch.close()
    poll, create = results["poll"], results["create"]
    for name, load in (("floor", floor), ("poll", poll), ("create", create)):
        print(f"  {name:<6} {load.rps:7.1f} req/s  {load.requests:6d} req  "
              f"p50 {load.p50_ms:6.1f} ms  p90 {load.p90_ms:6.1f} ms  p99 {load.p99_ms:6.1f} ms  "
              f"errors {load.errors}"
              + (f"  first error: {load.first_error}" if load.first_error else ""))
    label, passed = at_most(poll.p99_ms / P99_TARGET_MS, 1.0)
    note = (f"p50 {poll.p50_ms:.1f} ms, p90 {poll.p90_ms:.1f} ms; creates: {create.rps:.1f}/s, "
            f"p99 {create.p99_ms:.1f} ms, {create.errors} errors; constant-answer baseline "
            f"at the same rate: p50 {floor.p50_ms:.1f} ms, p99 {floor.p99_ms:.1f} ms")
    outcomes = [Outcome("poll", "GET MINIMAL p99 while creating (target ms)", P99_TARGET_MS,
                        poll.p99_ms, "ms", poll.p99_ms / P99_TARGET_MS, label,
                        passed and not poll.errors, note)]
    achieved = poll.rps / rate
    label, passed = at_least(achieved, RATE_TARGET)
    outcomes.append(Outcome("poll", "GET MINIMAL rate achieved (asked req/s)", rate, poll.rps,
                            "req/s", achieved, label, passed and not poll.errors))
    return outcomes


def main(argv: list[str] | None = None) -> int:
    return bench_main(arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
