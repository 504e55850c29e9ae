"""The Slurm backend on the real single-node Slurm of scripts/slurm-services.sh.

1. One reconcile poll over 50 and over 500 active jobs (real jobs, held pending in the
   test cluster's ``closed`` partition, plus one in ten following a job Slurm forgot, so
   ``sacct`` is asked too): the Slurm commands it runs (target: at most 2, both sizes) and
   its time (median of 3 passes), against the same ``squeue`` and ``sacct`` command lines
   run by hand over the 500 jobs (printed; judged: ratio at most 2).
2. A task running ``true`` through ``tes-server`` with ``TES_BACKEND=slurm`` (POST until a
   client polling ``GET ?view=MINIMAL`` every 10 ms sees COMPLETE, as in bench_run) against
   ``sbatch --wrap 'docker run --rm --network none alpine true'`` submitted by hand (until
   ``squeue`` polled every 50 ms shows it COMPLETED); interleaved, medians; target 1.3x.
   The median of each step is printed for both sides: when the job script is written
   (its mtime), when the job starts on the node (a ``date`` in the job's prologue; the
   hand-made job's output file), the runner's INITIALIZING, executor and COMPLETE times.

Needs the test services (``bash scripts/test-services.sh``; its env.sh is read when
``DOCKER_HOST`` is not set) and ``tes-runner`` in this environment.

    python -m bench.bench_slurm [--repeat 7] [--jobs 50,500]   # --jobs 0: only the task
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from bench._common import (
    API,
    Client,
    Outcome,
    Scratch,
    at_most,
    bench_arguments,
    bench_main,
    interleave,
    median,
    print_steps,
    running,
    tes_server,
)
from bench.bench_run import IMAGE, docker_environment, epoch, tes_run

COMMANDS_TARGET = 2
POLL_TARGET = 2.0
RUN_TARGET = 1.3
TIMEOUT = 120.0
PASSES = 3
"""Passes timed per size (their median is judged, as the median of 3 bare runs is)."""


def arguments() -> argparse.ArgumentParser:
    parser = bench_arguments(__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--jobs", default="50,500",
                        help="pass sizes, comma-separated; 0 skips the reconcile poll")
    return parser


def services_environment() -> None:
    """The test services' variables (``env.sh``, which holds SLURM_CONF) when not set."""
    docker_environment()
    if not os.environ.get("SLURM_CONF"):
        raise SystemExit("bench_slurm: no test Slurm; run bash scripts/test-services.sh and "
                         "source its env.sh")


def runner_path() -> Path:
    runner = Path(sys.executable).parent / "tes-runner"
    if not runner.exists():
        raise SystemExit("bench_slurm: tes-runner is not installed in this environment")
    return runner


def prologue(runner: Path) -> str:
    lines = [f"export PATH={runner.parent}:/usr/local/bin:/usr/bin:/bin"]
    lines += [f"export {name}={shlex.quote(os.environ[name])}"
              for name in ("DOCKER_HOST",) if os.environ.get(name)]
    return "\n".join(lines)


# -- 1. the reconcile poll --------------------------------------------------------------------


def poll_pass(scratch: Path, sizes: list[int]) -> list[Outcome]:
    from tes_slurm.backend import USER, SlurmBackend
    from tes_slurm.parse import SACCT_FIELDS, SQUEUE_FORMAT

    from tes_core.backends.base import BackendContext, TaskRecord
    from tes_core.config import Settings

    prefix = f"tesb{os.getpid()}-"
    settings = Settings.from_env({"TES_SLURM_WORKDIR": str(scratch / "poll-tasks"),
                                  "TES_SLURM_RUNNER": "/bin/true",
                                  "TES_SLURM_JOB_PREFIX": prefix}, data_dir=scratch)
    backend = SlurmBackend(BackendContext(settings, reporter=None, worker_id="bench"))  # type: ignore[arg-type]
    backend.start()
    document = {"executors": [{"image": IMAGE, "command": ["true"]}],
                "resources": {"backend_parameters": {"partition": "closed"}}}
    most = max(sizes)
    print(f"bench_slurm: submitting {most} jobs held pending (partition 'closed')", flush=True)
    started = time.perf_counter()
    records = []
    for n in range(most):
        task_id = f"b{n}-{uuid.uuid4().hex[:8]}"
        shell = TaskRecord(task_id, "QUEUED", document, datetime.now(UTC), [{}])
        ref = backend.submit(shell) if n % 10 else str(90_000_000 + n)  # 1 in 10: forgotten
        records.append(TaskRecord(task_id, "QUEUED", document, datetime.now(UTC), [{}],
                                  backend_ref=ref))
    print(f"  submitted in {time.perf_counter() - started:.1f} s", flush=True)
    outcomes = []
    try:
        times: dict[int, float] = {}
        for size in sizes:
            passes = []
            for _ in range(PASSES):
                backend.snapshots._current = None  # a new pass
                backend.snapshots._seen.clear()  # a fresh worker: follows only these jobs
                before = backend.shell.calls
                t0 = time.perf_counter()
                observations = list(backend.poll(records[:size]))
                passes.append(time.perf_counter() - t0)
                commands = backend.shell.calls - before
            times[size] = median(passes)
            print(f"  poll over {size} jobs: {commands} Slurm commands, "
                  f"{times[size] * 1000:.0f} ms (median of {PASSES} passes), "
                  f"{len(observations)} observations", flush=True)
            target, passed = at_most(commands, COMMANDS_TARGET)
            outcomes.append(Outcome("slurm", f"reconcile poll over {size} jobs: commands",
                                    COMMANDS_TARGET, commands, "cmds",
                                    commands / COMMANDS_TARGET, target, passed))
        ids = ",".join(r.backend_ref for r in records[:most] if r.backend_ref)
        missing = ",".join(r.backend_ref for r in records[:most:10])
        bare = []
        for _ in range(3):
            t0 = time.perf_counter()
            subprocess.run(["sh", "-c", f"squeue -h -u {USER} -t all -o '{SQUEUE_FORMAT}'"],
                           check=True, capture_output=True)
            subprocess.run(["sh", "-c", f"sacct -X -n -P -j {missing} -o {SACCT_FIELDS}"],
                           check=True, capture_output=True)
            bare.append(time.perf_counter() - t0)
        assert ids
        bare_ms, ours_ms = median(bare) * 1000, times[most] * 1000
        target, passed = at_most(ours_ms / bare_ms, POLL_TARGET)
        print(f"  the same squeue + sacct by hand: {bare_ms:.0f} ms (median of 3); "
              f"poll over {most}: {ours_ms:.0f} ms, ratio {ours_ms / bare_ms:.2f}")
        outcomes.append(Outcome("slurm", f"reconcile poll over {most} jobs: time", bare_ms,
                                ours_ms, "ms", ours_ms / bare_ms, target, passed))
    finally:
        real = [r.backend_ref for r in records if r.backend_ref and int(r.backend_ref) < 90e6]
        for start in range(0, len(real), 200):
            subprocess.run(["scancel", *real[start:start + 200]], capture_output=True)
    return outcomes


# -- 2. a task running `true` --------------------------------------------------------------------


def bare_run(marks: list[dict[str, float]], out_dir: Path) -> float:
    """Seconds from sbatch of the container run until squeue shows it COMPLETED; the
    moments of each step go to ``marks``."""
    docker = f"docker run --rm --network none {IMAGE} true"
    if os.environ.get("DOCKER_HOST"):
        docker = f"DOCKER_HOST={shlex.quote(os.environ['DOCKER_HOST'])} {docker}"
    output = out_dir / f"bare-{uuid.uuid4().hex[:8]}.out"  # created when the job starts
    submitted = time.time()
    started = time.perf_counter()
    job = subprocess.run(["sbatch", "--parsable", "-o", str(output), "--wrap", docker],
                         check=True, capture_output=True, text=True).stdout.strip()
    while time.perf_counter() - started < TIMEOUT:
        state = subprocess.run(["squeue", "-h", "-t", "all", "-j", job, "-o", "%T"],
                               capture_output=True, text=True).stdout.strip()
        if state in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL"):
            if state != "COMPLETED":
                raise SystemExit(f"bench_slurm: the hand-made job {job} ended {state}")
            seconds = time.perf_counter() - started
            marks.append({"submitted": submitted, "job started": output.stat().st_mtime,
                          "seen": submitted + seconds})
            return seconds
        time.sleep(0.05)
    raise SystemExit(f"bench_slurm: job {job} not done after {TIMEOUT:g} s")


BARE_STEPS = (
    ("sbatch -> job starts on the node", "submitted", "job started"),
    ("job start -> COMPLETED seen (docker run, job end, squeue poll)", "job started", "seen"),
)
TES_STEPS = (
    ("POST -> job script written (API, queue, worker)", "posted", "script written"),
    ("script written -> job starts on the node (sbatch, Slurm)", "script written",
     "job started"),
    ("job start -> runner INITIALIZING (Python, imports, runtime probe)", "job started",
     "initializing"),
    ("INITIALIZING -> executor start (workspace, image inspect)", "initializing",
     "executor start"),
    ("executor (docker run)", "executor start", "executor end"),
    ("executor end -> COMPLETE recorded (status.json)", "executor end", "complete"),
    ("COMPLETE recorded -> seen by the client (GET)", "complete", "seen"),
)
JOB_START_STAMP = ".bench-job-start"
"""Written by the job script's prologue (``date``) when the job starts on the node."""


def tes_marks(client: Client, finished: list[tuple[str, float, float]],
              workdir: Path) -> list[dict[str, float]]:
    """The moments of each step of the tasks run through tes-server: from their FULL views,
    the job script's mtime and the prologue's stamp in their task folders."""
    marks = []
    for task_id, seconds, seen in finished:
        _, task, _ = client.json("GET", f"{API}/tasks/{task_id}?view=FULL")
        attempt = task["logs"][-1]
        executor = attempt["logs"][0]
        folder = workdir / task_id
        marks.append({
            "posted": seen - seconds,
            "script written": (folder / "job-1.sh").stat().st_mtime,
            "job started": float((folder / JOB_START_STAMP).read_text().strip()),
            "initializing": epoch(attempt["start_time"]),
            "executor start": epoch(executor["start_time"]),
            "executor end": epoch(executor["end_time"]),
            "complete": epoch(attempt["end_time"]),
            "seen": seen,
        })
    return marks


def tes_run_timed(client: Client, finished: list[tuple[str, float, float]]) -> float:
    """:func:`bench.bench_run.tes_run`, keeping the task id, its seconds and when it was seen."""
    done: list[tuple[str, float]] = []
    seconds = tes_run(client, done)
    finished.append((done[0][0], seconds, done[0][1]))
    return seconds


def true_task(scratch: Scratch, args: argparse.Namespace) -> Outcome:
    runner = runner_path()
    workdir = scratch.dir / "run-tasks"
    stamp = f"date +%s.%N > {JOB_START_STAMP}"
    tes = tes_server(
        scratch.dir / "tes", scratch.database("slurm_tes"),
        TES_BACKEND="slurm", TES_RECONCILE_INTERVAL="1",
        TES_SLURM_WORKDIR=str(workdir), TES_SLURM_RUNNER=str(runner),
        TES_SLURM_PROLOGUE=f"{stamp}\n{prologue(runner)}", TES_SLURM_RUNTIME="docker",
    )
    outputs = scratch.dir / "bare-out"
    outputs.mkdir()
    bare_marks: list[dict[str, float]] = []
    finished: list[tuple[str, float, float]] = []
    with running(tes):
        client = Client(tes.base)
        print(f"bench_slurm: task 'true' on {IMAGE} via tes-server vs sbatch --wrap by hand; "
              f"{args.warmup} warm-up + {args.repeat} runs each, interleaved", flush=True)
        interleave(args.warmup, lambda: bare_run([], outputs), lambda: tes_run(client, []))
        bare, via = interleave(args.repeat, lambda: bare_run(bare_marks, outputs),
                               lambda: tes_run_timed(client, finished))
        marks = tes_marks(client, finished, workdir)
        client.close()
    for label, values in (("sbatch by hand", bare), ("tes-server", via)):
        print(f"  {label:<15} ms: " + " ".join(f"{v * 1000:.0f}" for v in values))
    print_steps("sbatch by hand", BARE_STEPS, bare_marks)
    print_steps("tes-server", TES_STEPS, marks)
    bare_ms, tes_ms = median(bare) * 1000, median(via) * 1000
    target, passed = at_most(tes_ms / bare_ms, RUN_TARGET)
    print(f"  by hand {bare_ms:.0f} ms, tes-server {tes_ms:.0f} ms (medians), "
          f"ratio {tes_ms / bare_ms:.2f}, target {target}: {'PASS' if passed else 'FAIL'}")
    return Outcome("slurm", "task `true` through Slurm: POST to COMPLETE", bare_ms, tes_ms,
                   "ms", tes_ms / bare_ms, target, passed)


def run(args: argparse.Namespace) -> list[Outcome]:
    services_environment()
    sizes = sorted(int(size) for size in args.jobs.split(",") if int(size) > 0)
    scratch = Scratch(args.database, keep=args.keep)
    try:
        outcomes = poll_pass(scratch.dir, sizes) if sizes else []
        outcomes.append(true_task(scratch, args))
    finally:
        scratch.close()
    return outcomes


def main(argv: list[str] | None = None) -> int:
    return bench_main(arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
