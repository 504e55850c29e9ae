"""Profile tes-server under the create or get load with py-spy (``pip install py-spy``).

Starts ``tes-server serve`` as the benchmarks do, runs the load generator at it,
samples the server with ``py-spy record --gil`` (only the thread holding the
GIL, i.e. where CPU goes) and prints the functions and packages with the largest
inclusive share of the samples taken in request threads. The raw samples are
kept for a flame graph (``--flame out.svg`` writes one instead).

    python -m bench.profile_server create [--seconds 8] [--top 40] [--listeners 100]
    python -m bench.profile_server get

With ``--listeners N``, N ``GET /events`` streams are held open during the load (read by
one thread of this process, as bench_events does) and the GIL samples are also split by
what the thread was doing: serving a create or a get, serving an events stream, the
events hub's reader, or anything else: where the listeners' cost goes.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench._common import API, Client, Scratch, run_load, running, tes_server
from bench.bench_create import FIXTURE
from bench.bench_get import TASK

FRAME = re.compile(r"(?P<name>.*) \((?P<file>.*?):\d+\)$")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("load", choices=("create", "get"))
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--flame", type=Path, help="write a flame graph SVG here instead")
    parser.add_argument("--listeners", type=int, default=0,
                        help="GET /events streams held open during the load")
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        raise SystemExit("py-spy is not installed: pip install py-spy")

    scratch = Scratch()
    try:
        threads = {"TES_HTTP_THREADS": str(args.listeners + 16),
                   "TES_EVENTS_MAX_CLIENTS": str(args.listeners)} if args.listeners else {}
        tes = tes_server(scratch.dir / "tes", scratch.database("profile"),
                         TES_WORKER_THREADS="0", **threads)
        with running(tes):
            crowd = None
            if args.listeners:
                from bench.bench_events import Crowd

                crowd = Crowd(tes.base, args.listeners)
            if args.load == "create":
                load = {"paths": [f"{API}/tasks"], "method": "POST", "body_file": FIXTURE}
            else:
                client = Client(tes.base)
                ids = [client.json("POST", f"{API}/tasks", TASK)[1]["id"] for _ in range(64)]
                client.close()
                load = {"paths": [f"{API}/tasks/{i}?view=MINIMAL" for i in ids]}
            done: dict = {}
            worker = threading.Thread(target=lambda: done.update(result=run_load(
                tes.base, duration=args.seconds + 2, warmup=0.5, server_pid=tes.pid, **load)))
            worker.start()
            time.sleep(1.0)
            out = args.flame or Path(tempfile.mkstemp(suffix=".txt", dir=scratch.dir)[1])
            subprocess.run(
                [py_spy, "record", "-p", str(tes.pid), "-d", str(int(args.seconds)), "-r", "200",
                 "--gil", "--full-filenames", "-f", "flamegraph" if args.flame else "raw",
                 "-o", str(out)],
                capture_output=True, check=True,
            )
            worker.join()
            if crowd is not None:
                crowd.close(tes.base)
            result = done["result"]
            print(f"{args.load}: {result.rps:.0f} req/s while sampled, "
                  f"{result.server_us_per_request:.0f} us server CPU per request")
            if args.flame:
                print(f"flame graph: {out}")
            else:
                summarize(out, args.top)
                if args.listeners:
                    by_thread(out)
    finally:
        scratch.close()
    return 0


def summarize(raw: Path, top: int) -> None:
    """Inclusive shares by function and by package of the samples in request threads."""
    functions: collections.Counter = collections.Counter()
    packages: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [m for m in (FRAME.match(f) for f in stack.split(";")) if m]
        if not any(m["name"] == "WSGITask.execute" for m in frames):
            continue  # not serving a request: waitress's I/O loop, workers, heartbeats
        n = int(count)
        total += n
        names = {f"{m['name']} ({_short(m['file'])})" for m in frames}
        for name in names:
            functions[name] += n
        for package in {_short(m["file"]).split("/")[0] for m in frames}:
            packages[package] += n
    print(f"{total} samples in request threads; inclusive share:")
    for name, n in functions.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {name}")
    print("by package (inclusive):")
    for name, n in packages.most_common(15):
        print(f"  {100 * n / total:5.1f}%  {name}")


THREAD_KINDS = (
    ("events stream", "events.py", "_stream"),
    ("events hub", "hub.py", "_run"),
    ("request", "", "WSGITask.execute"),
)
"""(kind, file suffix, function): the first frame found in a sample names its thread's kind."""


def by_thread(raw: Path) -> None:
    """The share of all GIL samples by what their thread did (see ``THREAD_KINDS``)."""
    kinds: collections.Counter = collections.Counter()
    others: collections.Counter = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [m for m in (FRAME.match(f) for f in stack.split(";")) if m]
        kind = next((name for name, suffix, function in THREAD_KINDS if any(
            m["name"].endswith(function) and m["file"].endswith(suffix) for m in frames)),
            "other")
        kinds[kind] += int(count)
        if kind == "other":
            others[" < ".join(f"{m['name']} ({_short(m['file'])})" for m in frames[-1:-4:-1])
                   or stack[:120]] += int(count)
    total = sum(kinds.values()) or 1
    print("GIL samples by thread:")
    for kind, n in kinds.most_common():
        print(f"  {100 * n / total:5.1f}%  {kind}")
    print("other threads, innermost frames:")
    for stack, n in others.most_common(8):
        print(f"  {100 * n / total:5.1f}%  {stack}")


def _short(path: str) -> str:
    """``package/module.py`` for installed and project code, ``stdlib/module.py`` else."""
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    if "/tes_core/" in path:
        return "tes_core/" + path.split("/tes_core/", 1)[1]
    return "stdlib/" + path.rsplit("/", 1)[-1]


if __name__ == "__main__":
    sys.exit(main())
