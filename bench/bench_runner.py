"""The node-side runner: ``tes-runner run TASK_DIR`` of a task running ``true``, against a
bare ``docker run``.

What a batch job pays on a node on top of the container itself: starting Python, reading
``task.json``, the workspace, ``status.json`` written at every step, the container's
start, wait and removal. Target: the median wall time of ``tes-runner run`` (a fresh
task folder each time, runtime docker) is at most 1.3x that of ``docker run --rm
--network none alpine true`` run directly; measured alternately (2 warm-up runs each,
then ``--repeat`` each). Python's own start-up (``python -c pass``) is printed too, and
the median of each step of the run (from the times in its ``status.json``).

Needs a Docker engine with the ``alpine`` image: ``bash scripts/test-services.sh``
starts one; its ``env.sh`` is read when ``DOCKER_HOST`` is not set.

    python -m bench.bench_runner [--repeat 15]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

from bench._common import (
    Outcome,
    Scratch,
    at_most,
    bench_arguments,
    bench_main,
    interleave,
    median,
    print_steps,
)
from bench.bench_run import IMAGE, TIMEOUT, bare_run, check_docker, docker_environment, epoch

TARGET = 1.3
RUNNER = [sys.executable, "-m", "tes_runner", "run"]


def arguments() -> argparse.ArgumentParser:
    parser = bench_arguments(__doc__)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    return parser


STEPS = (
    ("process start -> INITIALIZING (Python, imports, runtime probe)", "started",
     "initializing"),
    ("INITIALIZING -> executor start (workspace, image inspect)", "initializing",
     "executor start"),
    ("executor (docker run)", "executor start", "executor end"),
    ("executor end -> COMPLETE recorded (status.json)", "executor end", "complete"),
    ("COMPLETE recorded -> exit (docker rm, workspace removal)", "complete", "exited"),
)


def runner_run(root: Path, marks: list[dict[str, float]]) -> float:
    """Seconds for ``tes-runner run`` of a fresh task folder (task ``true`` on docker); the
    moments of its steps (from ``status.json``) go to ``marks``."""
    folder = root / f"t{uuid.uuid4().hex[:12]}"
    folder.mkdir()
    (folder / "task.json").write_text(json.dumps({
        "task": {"id": folder.name, "executors": [{"image": IMAGE, "command": ["true"]}]},
        "attempt": 1, "runtime": "docker", "policy": {"local_dirs": [], "hosts": []},
    }))
    wall = time.time()
    started = time.perf_counter()
    done = subprocess.run([*RUNNER, str(folder)], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=TIMEOUT)
    seconds = time.perf_counter() - started
    status = json.loads((folder / "status.json").read_text()) if done.returncode == 0 else {}
    if status.get("state") != "COMPLETE":
        raise SystemExit(f"bench_runner: tes-runner ended {status.get('state')} "
                         f"({done.returncode}): {done.stderr[-800:]}")
    log = status["log"]
    marks.append({
        "started": wall, "initializing": epoch(log["start_time"]),
        "executor start": epoch(log["logs"][0]["start_time"]),
        "executor end": epoch(log["logs"][0]["end_time"]),
        "complete": epoch(log["end_time"]), "exited": wall + seconds,
    })
    return seconds


def python_start() -> float:
    """Seconds for ``python -c pass`` (the interpreter's own start-up)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - started


def run(args: argparse.Namespace) -> list[Outcome]:
    docker_environment()
    docker = check_docker(shutil.which("docker"))
    scratch = Scratch(keep=args.keep)
    try:
        print(f"bench_runner: tes-runner run (task 'true' on {IMAGE}, docker) vs bare docker "
              f"run; {args.warmup} warm-up + {args.repeat} runs each, interleaved")
        marks: list[dict[str, float]] = []
        interleave(args.warmup, lambda: bare_run(docker), lambda: runner_run(scratch.dir, []))
        bare, via, python = interleave(
            args.repeat, lambda: bare_run(docker), lambda: runner_run(scratch.dir, marks),
            python_start,
        )
    finally:
        scratch.close()
    for label, values in (("bare docker run", bare), ("tes-runner run", via),
                          ("python -c pass", python)):
        print(f"  {label:<16} ms: " + " ".join(f"{v * 1000:.0f}" for v in values))
    print_steps("tes-runner run", STEPS, marks)
    bare_ms, runner_ms = median(bare) * 1000, median(via) * 1000
    ratio = runner_ms / bare_ms
    target, passed = at_most(ratio, TARGET)
    print(f"  bare {bare_ms:.0f} ms, tes-runner {runner_ms:.0f} ms, python start "
          f"{median(python) * 1000:.0f} ms (medians), ratio {ratio:.2f}, target {target}: "
          f"{'PASS' if passed else 'FAIL'}")
    return [Outcome("runner", "tes-runner run of task `true` (docker)", bare_ms, runner_ms,
                    "ms", ratio, target, passed)]


def main(argv: list[str] | None = None) -> int:
    return bench_main(arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
