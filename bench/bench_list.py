"""List scaling: filtered ``GET /tasks`` over 100,000 stored tasks against the same over 1,000.

Target: each kind of query (tag filter, state filter, name_prefix, tag plus
state, a workflow's tasks by ``ms-submitter-workflow-id``) takes at most 2x as
long over 100,000 tasks as over 1,000. Both databases hold the same mix, written directly with
:func:`tes_core.store.insert_task` (after ``tes-server db upgrade``):

* tags: ``project`` = ``alpha`` for 10% of tasks, one of nine others for the rest;
  ``sample`` (1,000 values) and ``workflow_id`` (one per 50 tasks); the submitter tags
  ``ms-submitter-workflow-id`` (the same) and ``ms-submitter-name`` (``toil`` for 1%,
  ``cromwell`` for the rest), which are columns of the task row, not tag rows;
* names ``<workflow>.<call>``: ``wgs_align.`` starts 10% of them, ``calibrate.`` 0.1%;
* states: 70% COMPLETE, 10% EXECUTOR_ERROR, 5% SYSTEM_ERROR, 3% CANCELED,
  7% RUNNING, 5% QUEUED, spread evenly over creation order.

Each database is served by its own ``tes-server serve`` (workers idle:
``TES_WORKER_THREADS=0``, no reconcile during the run). For each query the
benchmark times the first page (``page_size=256``) and a walk of up to 5 pages
following ``next_page_token`` (time per page), alternating between the two
servers, and compares medians. Unfiltered listing, the BASIC view and rare
matches (0.1% of tasks) are shown for reference only. Note that over 1,000
tasks a 10% filter matches 100 tasks, fewer than a page, so the small server's
pages hold fewer tasks than the large one's (the printout gives both counts).

    python -m bench.bench_list [--small 1000] [--large 100000] [--database URL]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench._common import (
    API,
    Client,
    Outcome,
    Scratch,
    Server,
    at_most,
    bench_arguments,
    bench_main,
    child_env,
    interleave,
    median,
    running,
    tes_server,
)

TARGET = 2.0
PAGE_SIZE = 256
WALK_PAGES = 5
PROJECTS = ("beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa")
WORKFLOWS = ("rna_quant", "qc_reads", "wgs_call", "wgs_align", "joint_geno", "annotate",
             "mark_dups", "bqsr", "cnv_call", "sv_call")
CALLS = ("Run", "Merge", "Index", "Sort", "Collect", "Scatter", "Gather")
STATES = "\n".join([
    "CASE WHEN seq % 100 < 70 THEN 'COMPLETE'",
    "WHEN seq % 100 < 80 THEN 'EXECUTOR_ERROR'",
    "WHEN seq % 100 < 85 THEN 'SYSTEM_ERROR'",
    "WHEN seq % 100 < 88 THEN 'CANCELED'",
    "WHEN seq % 100 < 95 THEN 'RUNNING'",
    "ELSE 'QUEUED' END",
])

QUERIES: list[tuple[str, dict[str, str], bool]] = [
    # (label, parameters, judged)
    ("no filter (reference)", {}, False),
    ("tag project=alpha", {"tag_key": "project", "tag_value": "alpha"}, True),
    ("state=RUNNING", {"state": "RUNNING"}, True),
    ("name_prefix=wgs_align.", {"name_prefix": "wgs_align."}, True),
    ("tag project=alpha + state=COMPLETE",
     {"tag_key": "project", "tag_value": "alpha", "state": "COMPLETE"}, True),
    ("tag project=alpha, view=BASIC",
     {"tag_key": "project", "tag_value": "alpha", "view": "BASIC"}, False),
    ("tag ms-submitter-workflow-id (50 tasks)",
     {"tag_key": "ms-submitter-workflow-id", "tag_value": "wf-000010"}, True),
    ("rare tag sample=S0042 (0.1%)", {"tag_key": "sample", "tag_value": "S0042"}, False),
    ("tag ms-submitter-name=toil (1%)",
     {"tag_key": "ms-submitter-name", "tag_value": "toil"}, False),
    ("rare name_prefix=calibrate. (0.1%)", {"name_prefix": "calibrate."}, False),
]


def arguments() -> argparse.ArgumentParser:
    parser = bench_arguments(__doc__)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=15, help="timed first pages per server")
    parser.add_argument("--walks", type=int, default=5, help="timed page walks per server")
    return parser


def document(i: int) -> dict[str, Any]:
    """Task number ``i`` of the stored mix."""
    workflow = WORKFLOWS[i % len(WORKFLOWS)]
    call = CALLS[i % len(CALLS)]
    root = f"s3://bench-bucket/{workflow}/{i // 50:06d}/call-{call}/shard-{i % 50}"
    return {
        "name": f"{workflow}.{call}" if i % 1000 != 7 else "calibrate.Run",
        "description": f"{workflow} call {call} shard {i % 50}",
        "inputs": [{"name": "reads", "url": f"{root}/in.bam", "path": "/data/in.bam",
                    "type": "FILE"}],
        "outputs": [{"name": "result", "url": f"{root}/out.txt", "path": "/data/out.txt",
                     "type": "FILE"}],
        "resources": {"cpu_cores": 2, "ram_gb": 4.0},
        "executors": [{"image": "ubuntu:22.04",
                       "command": ["bash", "-c", "wc -c /data/in.bam > /data/out.txt"]}],
        "tags": {
            "project": "alpha" if i % 10 == 0 else PROJECTS[(i // 10) % len(PROJECTS)],
            "sample": f"S{i % 1000:04d}",
            "workflow_id": f"wf-{i // 50:06d}",
            # What a submitter plugin records (kept in columns of the task row).
            "ms-submitter-name": "toil" if i % 100 == 3 else "cromwell",
            "ms-submitter-workflow-id": f"wf-{i // 50:06d}",
        },
    }


def populate(url: str, data_dir: Path, count: int) -> float:
    """Migrate a fresh database and store ``count`` tasks; return the seconds it took."""
    from sqlalchemy import text

    from tes_core.db import Database
    from tes_core.store import NewTask, insert_task

    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "tes_core.cli", "--log-level", "warning", "db", "upgrade",
         "--data-dir", str(data_dir)],
        env=child_env(TES_DATABASE_URL=url), cwd=data_dir.parent, check=True,
    )
    db = Database(url)
    try:
        chunk = 5_000
        for first in range(0, count, chunk):
            with db.driver_write() as tx:
                for i in range(first, min(count, first + chunk)):
                    insert_task(tx, NewTask(document=document(i), backend="local"))
        with db.write() as conn:
            conn.execute(text(f"UPDATE tasks SET backend_ref = 'bench', state = {STATES}"))
        if not db.is_sqlite:
            # What autovacuum does on a live server after this many inserts: the
            # planner needs statistics to choose between the name index and a walk.
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("ANALYZE"))
    finally:
        db.dispose()
    return time.perf_counter() - started


def list_path(params: dict[str, str], token: str | None = None) -> str:
    query = {"page_size": str(PAGE_SIZE), **params}
    if token:
        query["page_token"] = token
    return f"{API}/tasks?{urlencode(query)}"


def first_page(client: Client, params: dict[str, str]) -> tuple[float, int]:
    """Seconds for the first page, and how many tasks it held."""
    status, body, seconds = client.json("GET", list_path(params))
    if status != 200:
        raise SystemExit(f"list failed: {status} {body}")
    return seconds, len(body["tasks"])


def walk(client: Client, params: dict[str, str]) -> tuple[float, int]:
    """Seconds per page over up to ``WALK_PAGES`` pages, and the pages walked."""
    total, pages, token = 0.0, 0, None
    while pages < WALK_PAGES:
        status, body, seconds = client.json("GET", list_path(params, token))
        if status != 200:
            raise SystemExit(f"list failed: {status} {body}")
        total += seconds
        pages += 1
        token = body.get("next_page_token")
        if not token:
            break
    return total / pages, pages


def run(args: argparse.Namespace) -> list[Outcome]:
    return on_populated_servers(args, "list", measure)


def on_populated_servers(
    args: argparse.Namespace, label: str,
    measure: Callable[[argparse.Namespace, Server, Server], list[Outcome]],
) -> list[Outcome]:
    """``measure(args, small, large)`` with two idle servers holding ``args.small`` and
    ``args.large`` tasks of the mix (workers idle, no reconcile during the run)."""
    scratch = Scratch(args.database, keep=args.keep)
    try:
        servers: list[Server] = []
        for size in (args.small, args.large):
            data_dir = scratch.dir / f"tes-{size}"
            data_dir.mkdir(parents=True)
            url = scratch.database(f"{label}_{size}")
            seconds = populate(url, data_dir, size)
            print(f"bench_{label}: stored {size} tasks in {seconds:.1f} s")
            servers.append(tes_server(data_dir, url, TES_WORKER_THREADS="0",
                                      TES_RECONCILE_INTERVAL="3600"))
        with running(*servers):
            return measure(args, servers[0], servers[1])
    finally:
        scratch.close()


def measure(args: argparse.Namespace, small: Server, large: Server) -> list[Outcome]:
    clients = [Client(small.base), Client(large.base)]
    outcomes: list[Outcome] = []
    print(f"bench_list: page_size={PAGE_SIZE}, MINIMAL unless said; medians of {args.reps} "
          f"first pages and {args.walks} walks of up to {WALK_PAGES} pages, "
          f"{args.small} vs {args.large} tasks")
    print(f"  {'query':<38} {'first page ms':>21} {'ratio':>6}   {'ms per page (walk)':>21} "
          f"{'ratio':>6}  verdict")
    try:
        for label, params, judged in QUERIES:
            for client in clients:  # warm the caches and the SQL compile cache
                for _ in range(3):
                    first_page(client, params)
                    walk(client, params)
            firsts = interleave(
                args.reps, *[lambda c=c, p=params: first_page(c, p) for c in clients]
            )
            walks = interleave(args.walks, *[lambda c=c, p=params: walk(c, p) for c in clients])
            first_ms = [median([s for s, _ in runs]) * 1000 for runs in firsts]
            walk_ms = [median([s for s, _ in runs]) * 1000 for runs in walks]
            rows = [firsts[0][0][1], firsts[1][0][1]]
            pages = [walks[0][0][1], walks[1][0][1]]
            first_ratio = first_ms[1] / first_ms[0]
            walk_ratio = walk_ms[1] / walk_ms[0]
            target, first_ok = at_most(first_ratio, TARGET)
            _, walk_ok = at_most(walk_ratio, TARGET)
            verdict = ("PASS" if first_ok and walk_ok else "FAIL") if judged else "(info)"
            print(f"  {label:<38} {first_ms[0]:9.2f} {first_ms[1]:9.2f}    {first_ratio:6.2f}   "
                  f"{walk_ms[0]:9.2f} {walk_ms[1]:9.2f}    {walk_ratio:6.2f}  {verdict}"
                  f"   (tasks on page 1: {rows[0]}/{rows[1]}; pages walked: "
                  f"{pages[0]}/{pages[1]})")
            if not judged:
                continue
            outcomes.append(Outcome("list", f"{label}: first page", first_ms[0], first_ms[1],
                                    "ms", first_ratio, target, first_ok))
            outcomes.append(Outcome("list", f"{label}: per page, walk", walk_ms[0], walk_ms[1],
                                    "ms", walk_ratio, target, walk_ok))
    finally:
        for client in clients:
            client.close()
    return outcomes


def main(argv: list[str] | None = None) -> int:
    return bench_main(arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
