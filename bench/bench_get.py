"""Read rate: ``GET /tasks/{id}`` (MINIMAL) against a constant-JSON Flask endpoint.

Target: tes-server answers at >= 0.7x the rate of a minimal Flask endpoint that
returns a constant small JSON (``baseline_app --mode const``), both served by
waitress with ``tes-server serve``'s threads. The load cycles over 64 stored
tasks (created through the API first; ``TES_WORKER_THREADS=0`` keeps them QUEUED).

    python -m bench.bench_get [--seconds 6] [--rounds 3] [--database URL]
"""

from __future__ import annotations

import argparse
import sys

from bench._common import (
    API,
    Client,
    Load,
    Outcome,
    Scratch,
    Server,
    baseline_server,
    bench_arguments,
    bench_main,
    interleave,
    run_load,
    running,
    tes_server,
    throughput_arguments,
    throughput_outcome,
)

TARGET = 0.7
TASK = {
    "name": "bench-get",
    "executors": [{"image": "alpine", "command": ["true"]}],
    "tags": {"project": "bench"},
}


def arguments() -> argparse.ArgumentParser:
    parser = throughput_arguments(bench_arguments(__doc__))
    parser.add_argument("--tasks", type=int, default=64, help="distinct task ids to cycle over")
    return parser


def run(args: argparse.Namespace) -> list[Outcome]:
    scratch = Scratch(args.database, keep=args.keep)
    try:
        tes = tes_server(scratch.dir / "tes", scratch.database("get_tes"), TES_WORKER_THREADS="0")
        base = baseline_server("const")
        with running(tes, base):
            client = Client(tes.base)
            ids = []
            for _ in range(args.tasks):
                status, body, _ = client.json("POST", f"{API}/tasks", TASK)
                if status != 200:
                    raise SystemExit(f"could not create a task: {status} {body}")
                ids.append(body["id"])
            client.close()
            paths = [f"{API}/tasks/{task_id}?view=MINIMAL" for task_id in ids]
            print(f"bench_get: GET {API}/tasks/{{id}}?view=MINIMAL over {len(ids)} tasks, "
                  f"{args.connections} connections, {args.rounds} rounds x {args.seconds:g} s")

            def load(server: Server) -> Load:
                return run_load(server.base, paths, connections=args.connections,
                                duration=args.seconds, server_pid=server.pid)

            baseline_runs, tes_runs = interleave(
                args.rounds, lambda: load(base), lambda: load(tes)
            )
    finally:
        scratch.close()
    return [throughput_outcome("get", "GET /tasks/{id} MINIMAL", baseline_runs, tes_runs,
                               TARGET)]


def main(argv: list[str] | None = None) -> int:
    return bench_main(arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
