"""Burst throughput: a workflow's scatter of tasks running ``true``, against bare runs.

Target: ``--tasks`` (200) tasks running ``true`` on ``alpine``, all created at once
(concurrently, over HTTP, as a workflow engine's scatter does), through the local
backend with ``--slots`` (4) task slots (``TES_LOCAL_MAX_TASKS``): the time from the
first ``POST /tasks`` until a client polling the task list sees every one COMPLETE.
The baseline is the same number of ``docker run --rm --network none alpine true``
run directly, ``--slots`` at a time, from a shell (``xargs -P``). Our throughput
(tasks per second) must be at least 0.8x the baseline's. With ``--rounds`` above
1 the two sides alternate (ABBA) and medians are compared.

tes-server runs as ``tes-server serve`` (embedded mode: SQLite, in-process
workers) with ``TES_LOCAL_RUNTIME`` set to ``--runtime`` (``docker`` or
``podman``). Completion is watched with one ``GET /tasks?view=MINIMAL`` of the
round's tasks (by name prefix) every ``--poll`` seconds, not one request per task.

Needs the engine with the ``alpine`` image: ``bash scripts/test-services.sh``
starts both; its ``env.sh`` is read when ``DOCKER_HOST`` is not set.

    python -m bench.bench_burst [--tasks 200] [--slots 4] [--rounds 1] [--runtime docker]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from bench._common import (
    API,
    IMAGE,
    Client,
    Outcome,
    Scratch,
    at_least,
    bench_arguments,
    bench_main,
    interleave,
    median,
    running,
    tes_server,
)
from bench.bench_run import docker_environment
from tests.servers import TERMINAL

TARGET = 0.8
CREATORS = 16
"""Client connections creating the burst's tasks at once."""


def arguments() -> argparse.ArgumentParser:
    parser = bench_arguments(__doc__)
    parser.add_argument("--tasks", type=int, default=200, help="tasks per burst")
    parser.add_argument("--slots", type=int, default=4,
                        help="TES_LOCAL_MAX_TASKS, and the baseline's runs at a time")
    parser.add_argument("--rounds", type=int, default=1, help="bursts per side, interleaved")
    parser.add_argument("--runtime", choices=("docker", "podman"), default="docker")
    parser.add_argument("--poll", type=float, default=0.5,
                        help="seconds between the client's list requests")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per burst")
    return parser


def check_engine(runtime: str) -> str:
    """The engine's CLI, once it answers with the image present."""
    binary = shutil.which(runtime)
    if binary is None:
        raise SystemExit(f"bench_burst: no {runtime} CLI; run bash scripts/test-services.sh")
    probe = subprocess.run([binary, "image", "inspect", "--format", "{{.Id}}", IMAGE],
                           capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        raise SystemExit(f"bench_burst: no {runtime} engine with the {IMAGE!r} image answers "
                         f"({probe.stderr.strip()}); run bash scripts/test-services.sh")
    return binary


def children_cpu() -> float:
    """CPU seconds of this process's finished children (the bare burst's engine CLIs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def server_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds of process ``pid`` itself and of its finished children (engine CLIs)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return ((int(fields[11]) + int(fields[12])) / tick,
            (int(fields[13]) + int(fields[14])) / tick)


def bare_burst(binary: str, tasks: int, slots: int, timeout: float) -> float:
    """Seconds for ``tasks`` bare ``run --rm`` of ``true``, ``slots`` at a time, from a shell."""
    cpu = children_cpu()
    script = (f'seq {tasks} | xargs -P {slots} -I{{}} "$0" run --rm --network none '
              f"{IMAGE} true")
    started = time.perf_counter()
    done = subprocess.run(["sh", "-c", script, binary], stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=timeout)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"bench_burst: the bare burst failed: {done.stderr.decode()[-500:]}")
    if tasks > slots:
        per_task = (children_cpu() - cpu) / tasks * 1000
        print(f"    bare burst: {seconds:.2f} s; CLI CPU {per_task:.0f} ms/task", flush=True)
    return seconds


class Burst:
    """Bursts of tasks through one tes-server; keeps what each burst's tasks recorded."""

    def __init__(self, base: str, tasks: int, poll: float, timeout: float,
                 label: str = "burst", pid: int | None = None) -> None:
        self.base = base
        self.pid = pid
        self.label = label
        self.tasks = tasks
        self.poll = poll
        self.timeout = timeout
        self.number = 0
        self.prefixes: list[str] = []
        self._local = threading.local()

    def _client(self) -> Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = Client(self.base)
        return client

    def _create(self, name: str) -> str:
        task = {"name": name, "executors": [{"image": IMAGE, "command": ["true"]}]}
        status, body, _ = self._client().json("POST", f"{API}/tasks", task)
        if status != 200:
            raise SystemExit(f"bench_burst: create failed: {status} {body}")
        return body["id"]

    def run(self) -> float:
        """Seconds from the first POST until a list request shows every task finished."""
        self.number += 1
        prefix = f"{self.label}-{self.number}-"
        self.prefixes.append(prefix)
        watcher = Client(self.base)
        cpu = server_cpu(self.pid) if self.pid else (0.0, 0.0)
        started = time.perf_counter()
        with ThreadPoolExecutor(CREATORS) as creators:
            ids = list(creators.map(self._create, (f"{prefix}{i}" for i in range(self.tasks))))
        created = time.perf_counter() - started
        path = f"{API}/tasks?view=MINIMAL&page_size=2047&name_prefix={prefix}"
        while time.perf_counter() - started < self.timeout:
            status, body, _ = watcher.json("GET", path)
            states = [task["state"] for task in body.get("tasks", [])] if status == 200 else []
            if len(states) == len(ids) and all(state in TERMINAL for state in states):
                seconds = time.perf_counter() - started
                watcher.close()
                bad = [state for state in states if state != "COMPLETE"]
                if bad:
                    raise SystemExit(f"bench_burst: {len(bad)} tasks did not COMPLETE "
                                     f"({sorted(set(bad))}); see {self.base}{path}")
                used = [(after - before) / self.tasks * 1000 for before, after
                        in zip(cpu, server_cpu(self.pid) if self.pid else cpu, strict=True)]
                print(f"    {self.label} {self.number}: {self.tasks} created in {created:.2f} s, "
                      f"all COMPLETE after {seconds:.2f} s; server CPU {used[0]:.0f} ms/task, "
                      f"its CLIs' {used[1]:.0f} ms/task", flush=True)
                return seconds
            time.sleep(self.poll)
        raise SystemExit(f"bench_burst: burst {self.number} not finished after "
                         f"{self.timeout:g} s")

    def phases(self) -> dict[str, float]:
        """Median milliseconds of each step of a task, over every burst's tasks."""
        client = Client(self.base)
        steps: dict[str, list[float]] = {}
        for prefix in self.prefixes:
            _, body, _ = client.json(
                "GET", f"{API}/tasks?view=BASIC&page_size=2047&name_prefix={prefix}"
            )
            for task in body["tasks"]:
                attempt = task["logs"][-1]
                executor = attempt["logs"][0]
                marks = [
                    ("created -> INITIALIZING (waits for a slot)", task["creation_time"],
                     attempt["start_time"]),
                    ("INITIALIZING -> executor start", attempt["start_time"],
                     executor["start_time"]),
                    ("executor (engine run)", executor["start_time"], executor["end_time"]),
                    ("executor end -> COMPLETE", executor["end_time"], attempt["end_time"]),
                ]
                for label, begin, end in marks:
                    steps.setdefault(label, []).append((_time(end) - _time(begin)) * 1000)
        client.close()
        return {label: median(values) for label, values in steps.items()}


def _time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def run(args: argparse.Namespace) -> list[Outcome]:
    docker_environment()
    binary = check_engine(args.runtime)
    scratch = Scratch(args.database, keep=args.keep)
    try:
        tes = tes_server(scratch.dir / "tes", scratch.database("burst_tes"),
                         TES_LOCAL_RUNTIME=args.runtime,
                         TES_LOCAL_MAX_TASKS=str(args.slots))
        with running(tes):
            burst = Burst(tes.base, args.tasks, args.poll, args.timeout, pid=tes.pid)
            print(f"bench_burst: {args.tasks} tasks 'true' on {IMAGE}, {args.slots} slots, "
                  f"{args.runtime}: tes-server vs bare '{args.runtime} run --rm' "
                  f"(xargs -P {args.slots}); {args.rounds} round(s) each, interleaved",
                  flush=True)
            # Warm-up: the image is known to the server, the engine's caches are warm.
            Burst(tes.base, args.slots, args.poll, args.timeout, label="warm-up").run()
            bare_burst(binary, args.slots, args.slots, args.timeout)
            bare, via = interleave(
                args.rounds,
                lambda: bare_burst(binary, args.tasks, args.slots, args.timeout),
                burst.run,
            )
            steps = burst.phases()
    finally:
        scratch.close()
    for label, values in ((f"bare {args.runtime} run", bare), ("tes-server", via)):
        print(f"  {label:<16} tasks/s: "
              + " ".join(f"{args.tasks / v:.2f} ({v:.1f} s)" for v in values))
    print("  tes-server, median ms per step of a task:")
    for label, value in steps.items():
        print(f"    {label:<44} {value:8.1f}")
    bare_rate, tes_rate = args.tasks / median(bare), args.tasks / median(via)
    ratio = tes_rate / bare_rate
    target, passed = at_least(ratio, TARGET)
    print(f"  bare {bare_rate:.2f} tasks/s, tes-server {tes_rate:.2f} tasks/s (medians), "
          f"ratio {ratio:.2f}, target {target}: {'PASS' if passed else 'FAIL'}")
    return [Outcome("burst", f"{args.tasks} tasks `true`, {args.slots} slots, {args.runtime}",
                    bare_rate, tes_rate, "task/s", ratio, target, passed)]


def main(argv: list[str] | None = None) -> int:
    return bench_main(arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
