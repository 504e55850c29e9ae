"""A small closed-loop HTTP load generator, run as its own process.

``--connections`` threads each keep one HTTP/1.1 connection (``http.client``,
lighter on the CPU than ``requests``) and send requests back to back, cycling
through ``--paths-file``. Requests started during ``--warmup`` are not counted;
then it counts for ``--duration`` seconds or ``--max-requests`` requests,
whichever comes first. It prints one JSON object: the count, the seconds, the
rate, the status codes and latency percentiles.

``--rate R`` makes it open-loop instead: request ``i`` is due at ``start + i / R``
(threads take the next due request, wait for its time, send it), and latency is
counted from when it was due, so a server that falls behind is charged for the wait
(no coordinated omission). The rate achieved is reported as usual.

    python -m bench.loadgen --base http://127.0.0.1:8000 --paths-file p.txt \
        --method POST --body-file tests/fixtures/submitters/cromwell-2.json --duration 5
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="http://host:port")
    parser.add_argument("--paths-file", type=Path, required=True, help="one path a line")
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body-file", type=Path)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds counted")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds not counted")
    parser.add_argument("--max-requests", type=int, default=50_000)
    parser.add_argument("--expect", type=int, default=200, help="the status that is a success")
    parser.add_argument("--rate", type=float, help="open loop: requests per second, scheduled")
    parser.add_argument("--header", action="append", default=[],
                        help="'Name: value' sent with every request (repeatable)")
    args = parser.parse_args(argv)

    parts = urlsplit(args.base)
    paths = [p for p in args.paths_file.read_text().splitlines() if p.strip()]
    body = args.body_file.read_bytes() if args.body_file else None
    headers = {"Content-Type": "application/json"} if body is not None else {}
    for line in args.header:
        name, _, value = line.partition(":")
        headers[name.strip()] = value.strip()
    counted = itertools.count()
    due = itertools.count()
    sent = [0] * args.connections
    start = time.perf_counter()
    measure_from = start + args.warmup
    stop_at = measure_from + args.duration
    latencies: list[list[float]] = [[] for _ in range(args.connections)]
    finished: list[float] = [measure_from] * args.connections
    statuses: list[Counter] = [Counter() for _ in range(args.connections)]
    errors: list[str] = []

    def worker(index: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        mine, seen = latencies[index], statuses[index]
        for number in itertools.count(index):
            began = time.perf_counter()
            if args.rate:
                number = next(due)
                scheduled = start + number / args.rate
                if scheduled >= stop_at:
                    break
                if scheduled > began:
                    time.sleep(scheduled - began)
                began = scheduled
            if began >= stop_at:
                break
            counts = began >= measure_from
            if counts and next(counted) >= args.max_requests:
                break
            try:
                conn.request(args.method, paths[number % len(paths)], body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                status = str(response.status)
                if response.status != args.expect and not errors:
                    errors.append(f"{status}: {data[:300]!r}")
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                status = type(exc).__name__
                if not errors:
                    errors.append(repr(exc))
            ended = time.perf_counter()
            sent[index] += 1
            if counts:
                mine.append(ended - began)
                seen[status] += 1
                finished[index] = ended
        conn.close()

    threads = [
        threading.Thread(target=worker, args=(i,), daemon=True) for i in range(args.connections)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(args.warmup + args.duration + 90)

    all_latencies = sorted(x for chunk in latencies for x in chunk)
    status_counts: Counter = Counter()
    for chunk in statuses:
        status_counts.update(chunk)
    n = len(all_latencies)
    seconds = max(finished) - measure_from if n else 0.0

    def pct(q: float) -> float:
        return all_latencies[min(n - 1, int(q * n))] * 1000 if n else float("nan")

    json.dump(
        {
            "requests": n,
            "seconds": round(seconds, 4),
            "rps": n / seconds if seconds > 0 else 0.0,
            "errors": n - status_counts.get(str(args.expect), 0),
            "statuses": dict(status_counts),
            "p50_ms": pct(0.50),
            "p90_ms": pct(0.90),
            "p99_ms": pct(0.99),
            "first_error": errors[0] if errors else None,
            "all_requests": sum(sent),
            "client_cpu_s": round(time.process_time(), 3),
        },
        sys.stdout,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
