"""The dashboard's task list data over 100,000 tasks: what its list page loads, against
the same over 1,000 tasks and against a plain API list call.

The list page asks for one page of 50 tasks in the BASIC view (names, tags, times) and,
at the same time, for the counts by state (``GET /task-counts``); a load is timed until
both have arrived, over two connections, as the browser does. Both servers hold the mix of
``bench_list`` (70% COMPLETE, 10% EXECUTOR_ERROR, ...; written directly with
:func:`tes_core.store.insert_task`), served with idle workers.

Judged (ratios, medians of interleaved runs):

* the dashboard's first page over 100,000 tasks within 2x of the same over 1,000
  (the issue's target);
* its deep page (the page holding the oldest 1% of tasks, reached by ``page_token``)
  over 100,000 tasks within 2x of its first page there: paging stays fast;

Printed for reference, not judged: over 100,000 tasks, the dashboard's load against a
plain API list call (``GET /tasks?view=BASIC&page_size=50``), and the counts alone. The
page makes two calls, so its load is about the list call plus the counts (bounded by
``TES_COUNT_LIMIT``; on a 2-core machine the two calls hardly overlap): about 2x.

    python -m bench.bench_dashboard [--small 1000] [--large 100000] [--database URL]
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

from bench._common import (
    API,
    Client,
    Outcome,
    Server,
    at_most,
    bench_arguments,
    bench_main,
    interleave,
    median,
)
from bench.bench_list import on_populated_servers

TARGET = 2.0
PAGE_SIZE = 50
"""Tasks on one dashboard list page."""


def arguments() -> argparse.ArgumentParser:
    parser = bench_arguments(__doc__)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=21, help="timed loads per measure")
    return parser


def list_path(page_token: str | None = None, **filters: str) -> str:
    """The list call the dashboard makes (BASIC, 50 a page)."""
    query = {"view": "BASIC", "page_size": str(PAGE_SIZE), **filters}
    if page_token:
        query["page_token"] = page_token
    return f"{API}/tasks?{urlencode(query)}"


def timed(client: Client, path: str) -> float:
    """Seconds for one GET that must succeed."""
    status, body, seconds = client.request("GET", path)
    if status != 200:
        raise SystemExit(f"GET {path} failed: {status} {body[:300]!r}")
    return seconds


class Page:
    """A browser's view of one server: two connections, as the page fetches the list and
    the counts at the same time (``Promise.all``)."""

    def __init__(self, base: str) -> None:
        self.list_client = Client(base)
        self.count_client = Client(base)
        self.pool = ThreadPoolExecutor(max_workers=1)

    def load(self, page_token: str | None = None) -> float:
        """Seconds until both the list page and the counts have arrived."""
        started = time.perf_counter()
        counts = self.pool.submit(timed, self.count_client, f"{API}/task-counts")
        timed(self.list_client, list_path(page_token))
        counts.result()
        return time.perf_counter() - started

    def close(self) -> None:
        self.pool.shutdown()
        self.list_client.close()
        self.count_client.close()


def deep_token(count: int) -> str:
    """The page token of the page holding the oldest 1% of ``count`` tasks."""
    from tes_core.schemas.query import encode_page_token

    return encode_page_token(max(count // 100, PAGE_SIZE + 1))


def run(args: argparse.Namespace) -> list[Outcome]:
    return on_populated_servers(args, "dashboard", measure)


def measure(args: argparse.Namespace, small: Server, large: Server) -> list[Outcome]:
    few, many = Page(small.base), Page(large.base)
    deep = deep_token(args.large)
    try:
        for page in (few, many):  # warm caches and the SQL compile cache
            for _ in range(5):
                page.load()
                page.load(deep)
                timed(page.list_client, list_path())
        runs = interleave(
            args.reps,
            few.load,
            many.load,
            lambda: many.load(deep),
            lambda: timed(many.list_client, list_path()),
            lambda: timed(many.count_client, f"{API}/task-counts"),
        )
    finally:
        few.close()
        many.close()
    small_first, large_first, large_deep, plain, counts = (median(r) * 1000 for r in runs)
    print(f"bench_dashboard: medians of {args.reps} loads, {args.small} vs {args.large} tasks")
    print(f"  dashboard first page, {args.small} tasks      {small_first:8.2f} ms")
    print(f"  dashboard first page, {args.large} tasks    {large_first:8.2f} ms")
    print(f"  dashboard deep page (oldest 1%), {args.large} {large_deep:8.2f} ms")
    print(f"  plain GET /tasks BASIC x50, {args.large} tasks {plain:8.2f} ms")
    print(f"  of which GET /task-counts, {args.large} tasks  {counts:8.2f} ms")
    print(f"  (info) dashboard vs plain list call, {args.large} tasks: ratio "
          f"{large_first / plain:.2f}; counts vs plain list call: {counts / plain:.2f}")
    outcomes = []
    for name, baseline, ours in (
        (f"first page: {args.large} vs {args.small} tasks", small_first, large_first),
        (f"deep vs first page, {args.large} tasks", large_first, large_deep),
    ):
        ratio = ours / baseline
        target, passed = at_most(ratio, TARGET)
        outcomes.append(Outcome("dash", name, baseline, ours, "ms", ratio, target, passed))
    return outcomes


def main(argv: list[str] | None = None) -> int:
    return bench_main(arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
