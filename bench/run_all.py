"""Run the benchmarks one after another and print one summary table.

    python -m bench.run_all
        [--only create,get,list,run,burst,submitters,reconcile,poll,transfer,auth,dashboard,slurm,
               aks,runner,events,shutdown,batch]
        [--database URL] [--json FILE] [--skip-large-transfer]

Exit status: 0 when every judged figure meets its target, 1 when one misses,
2 when a benchmark could not run (e.g. no Docker engine for ``run``).
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback

from bench import (
    bench_aks,
    bench_auth,
    bench_batch,
    bench_burst,
    bench_create,
    bench_dashboard,
    bench_events,
    bench_get,
    bench_list,
    bench_poll,
    bench_reconcile,
    bench_run,
    bench_runner,
    bench_shutdown,
    bench_slurm,
    bench_submitters,
    bench_transfer,
)
from bench._common import Outcome, measured, report

BENCHES = {
    "create": bench_create,
    "get": bench_get,
    "list": bench_list,
    "run": bench_run,
    "burst": bench_burst,
    "submitters": bench_submitters,
    "reconcile": bench_reconcile,
    "poll": bench_poll,
    "transfer": bench_transfer,
    "auth": bench_auth,
    "dashboard": bench_dashboard,
    "slurm": bench_slurm,
    "aks": bench_aks,
    "runner": bench_runner,
    "events": bench_events,
    "shutdown": bench_shutdown,
    "batch": bench_batch,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(BENCHES), help="comma-separated subset")
    parser.add_argument("--database", metavar="URL", help="PostgreSQL server instead of SQLite")
    parser.add_argument("--json", metavar="FILE", help="also write every outcome as JSON here")
    parser.add_argument("--skip-large-transfer", action="store_true",
                        help="transfer: skip the 1 GB ratios and the 2 GB memory check")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(BENCHES))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")

    outcomes: list[Outcome] = []
    broken: list[str] = []
    for name in chosen:
        module = BENCHES[name]
        options = ["--database", args.database] if args.database else []
        if name == "transfer" and args.skip_large_transfer:
            options.append("--skip-large")
        bench_args = module.arguments().parse_args(options)
        started = time.monotonic()
        print(f"\n=== {name} ===", flush=True)
        try:
            outcomes += measured(module.run, bench_args)
        except SystemExit as exc:
            print(f"{name}: could not run: {exc}", flush=True)
            broken.append(name)
        except Exception:
            traceback.print_exc()
            broken.append(name)
        print(f"=== {name}: {time.monotonic() - started:.0f} s ===", flush=True)

    print("\n=== summary (ratio = ours / baseline; list: 100k / 1k tasks) ===")
    status = report(outcomes, args.json)
    if broken:
        print(f"\nnot run: {', '.join(broken)}")
        return 2
    return status


if __name__ == "__main__":
    sys.exit(main())
