"""Run latency: a task running ``true`` through the API, against a bare ``docker run``.

Target: the wall time from ``POST /tasks`` until a client polling
``GET /tasks/{id}?view=MINIMAL`` every 10 ms sees COMPLETE is at most 1.3x the
wall time of ``docker run --rm --network none alpine true`` run directly. The two
are measured alternately (2 warm-up runs each, then ``--repeat`` each) and their
medians compared. tes-server runs as ``tes-server serve`` (embedded mode, its
default workers) with ``TES_LOCAL_RUNTIME=docker``.

Needs a Docker engine with the ``alpine`` image: ``bash scripts/test-services.sh``
starts one; its ``env.sh`` is read when ``DOCKER_HOST`` is not set.

    python -m bench.bench_run [--repeat 15] [--database URL]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from bench._common import (
    API,
    IMAGE,
    Client,
    Outcome,
    Scratch,
    at_most,
    bench_arguments,
    bench_main,
    interleave,
    median,
    running,
    tes_server,
)
from tests.servers import TERMINAL

TARGET = 1.3
POLL = 0.010
TIMEOUT = 60.0
TASK = {
    "name": "bench-run",
    "executors": [{"image": IMAGE, "command": ["true"]}],
}


def arguments() -> argparse.ArgumentParser:
    parser = bench_arguments(__doc__)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    return parser


def docker_environment() -> None:
    """Take ``DOCKER_HOST`` etc. from the test services' ``env.sh`` if it is not set."""
    if os.environ.get("DOCKER_HOST"):
        return
    env_sh = Path(os.environ.get("TES_SERVICES_DIR", "/tmp/tes-test-services")) / "env.sh"
    if not env_sh.exists():
        return
    for line in env_sh.read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export "):].partition("=")
            os.environ.setdefault(key.strip(), value.strip().strip("'\""))


def check_docker(docker: str | None) -> str:
    if docker is None:
        raise SystemExit("bench_run: no docker CLI; run bash scripts/test-services.sh")
    probe = subprocess.run([docker, "image", "inspect", "--format", "{{.Id}}", IMAGE],
                           capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        raise SystemExit(f"bench_run: no Docker engine with the {IMAGE!r} image answers "
                         f"({probe.stderr.strip()}); run bash scripts/test-services.sh")
    return docker


def bare_run(docker: str) -> float:
    """Seconds for ``docker run --rm --network none alpine true``."""
    started = time.perf_counter()
    done = subprocess.run([docker, "run", "--rm", "--network", "none", IMAGE, "true"],
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=TIMEOUT)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"bench_run: docker run failed: {done.stderr.decode()[-500:]}")
    return seconds


def tes_run(client: Client, finished: list[tuple[str, float]]) -> float:
    """Seconds from POST until a MINIMAL poll sees COMPLETE."""
    started = time.perf_counter()
    status, body, _ = client.json("POST", f"{API}/tasks", TASK)
    if status != 200:
        raise SystemExit(f"bench_run: create failed: {status} {body}")
    task_id = body["id"]
    while time.perf_counter() - started < TIMEOUT:
        status, body, _ = client.json("GET", f"{API}/tasks/{task_id}?view=MINIMAL")
        state = body.get("state") if status == 200 else None
        if state in TERMINAL:
            seconds = time.perf_counter() - started
            if state != "COMPLETE":
                _, full, _ = client.json("GET", f"{API}/tasks/{task_id}?view=FULL")
                raise SystemExit(f"bench_run: task ended {state}: {full}")
            finished.append((task_id, time.time()))
            return seconds
        time.sleep(POLL)
    raise SystemExit(f"bench_run: task {task_id} not finished after {TIMEOUT:g} s")


def phases(client: Client, finished: list[tuple[str, float]]) -> dict[str, float]:
    """Median milliseconds of each step, from the tasks' FULL views."""
    steps: dict[str, list[float]] = {}
    for task_id, seen in finished:
        _, task, _ = client.json("GET", f"{API}/tasks/{task_id}?view=FULL")
        attempt = task["logs"][-1]
        executor = attempt["logs"][0]
        marks = [
            ("created -> INITIALIZING", task["creation_time"], attempt["start_time"]),
            ("INITIALIZING -> executor start", attempt["start_time"], executor["start_time"]),
            ("executor (docker run)", executor["start_time"], executor["end_time"]),
            ("executor end -> COMPLETE", executor["end_time"], attempt["end_time"]),
        ]
        for label, begin, end in marks:
            steps.setdefault(label, []).append((epoch(end) - epoch(begin)) * 1000)
        steps.setdefault("COMPLETE -> seen by client", []).append(
            (seen - epoch(attempt["end_time"])) * 1000
        )
    return {label: median(values) for label, values in steps.items()}


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def run(args: argparse.Namespace) -> list[Outcome]:
    docker_environment()
    docker = check_docker(shutil.which("docker"))
    scratch = Scratch(args.database, keep=args.keep)
    try:
        tes = tes_server(scratch.dir / "tes", scratch.database("run_tes"),
                         TES_LOCAL_RUNTIME="docker")
        with running(tes):
            client = Client(tes.base)
            finished: list[tuple[str, float]] = []
            print(f"bench_run: task 'true' on {IMAGE} via tes-server vs bare docker run; "
                  f"{args.warmup} warm-up + {args.repeat} runs each, interleaved")
            interleave(args.warmup, lambda: bare_run(docker), lambda: tes_run(client, []))
            bare, via = interleave(
                args.repeat, lambda: bare_run(docker), lambda: tes_run(client, finished)
            )
            steps = phases(client, finished)
            client.close()
    finally:
        scratch.close()
    for label, values in (("bare docker run", bare), ("tes-server", via)):
        print(f"  {label:<16} ms: " + " ".join(f"{v * 1000:.0f}" for v in values))
    print("  tes-server, median ms per step:")
    for label, value in steps.items():
        print(f"    {label:<32} {value:7.1f}")
    bare_ms, tes_ms = median(bare) * 1000, median(via) * 1000
    ratio = tes_ms / bare_ms
    target, passed = at_most(ratio, TARGET)
    print(f"  bare {bare_ms:.0f} ms, tes-server {tes_ms:.0f} ms (medians), ratio {ratio:.2f}, "
          f"target {target}: {'PASS' if passed else 'FAIL'}")
    return [Outcome("run", "task `true`: POST to COMPLETE seen", bare_ms, tes_ms, "ms",
                    ratio, target, passed)]


def main(argv: list[str] | None = None) -> int:
    return bench_main(arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
