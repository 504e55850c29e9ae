"""Reliability at full size: 1,000 tasks through kill -9, Redis, API and PostgreSQL restarts.

The scenario is ``tests/reliability.py`` (CI runs it with 120 tasks in
``tests/test_reliability.py``): gunicorn + two workers + a private PostgreSQL and
Redis, tasks created by 16 concurrent clients while the faults are injected. It
prints what happened and every broken promise; exit status 0 when every task
ended COMPLETE, none was lost or duplicated and none ran twice. Needs Docker
(``bash scripts/test-services.sh``), ``redis-server`` and PostgreSQL's server binaries.

    python -m bench.bench_reliability [--tasks 1000] [--clients 16] [--rate 10]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench._common import machine_load
from bench.bench_run import docker_environment


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rate", type=float, help="tasks created per second (default: "
                        "spread over tasks/10 seconds)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args(argv)
    docker_environment()
    from tests.reliability import run_scenario

    folder = Path(tempfile.mkdtemp(prefix="tes-bench-reliability-"))
    machine_load("before")
    started = time.monotonic()
    try:
        outcome = run_scenario(
            folder, args.tasks, clients=args.clients, rate=args.rate,
            timeout=max(600.0, args.tasks * 1.5),
            say=lambda line: print(f"  [{time.monotonic() - started:5.0f} s] {line}", flush=True),
        )
    finally:
        machine_load("after")
        if args.keep:
            print(f"  (scratch kept in {folder})")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"bench_reliability: {outcome.summary()}")
    problems = outcome.problems()
    incomplete = set(outcome.states.values()) - {"COMPLETE"}
    if incomplete:
        problems.append(f"not every task ended COMPLETE: {sorted(incomplete)}")
    for line in problems:
        print(f"  PROBLEM: {line}")
    print("  verdict:", "PASS" if not problems else "FAIL")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
