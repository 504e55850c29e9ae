"""Time from SIGTERM to exit of a busy ``tes-server serve``, against the grace period.

Each round starts the server twice on Docker: once idle (the baseline: what stopping
costs anyway), once with 4 tasks running ``sleep`` and 4 staging an input from a store
that accepts connections and never answers (``HangingStore``). Both get SIGTERM; the
time until the process is gone is printed, with the busy/idle ratio and the busy time as
a fraction of ``TES_SHUTDOWN_GRACE``. The goal: under the grace period, every time, with
exit status 0 (handed over, not ended by the watchdog): the judged figure is the worst busy
stop against the grace (baseline column). Needs Docker (``bash scripts/test-services.sh``).

    python -m bench.bench_shutdown [--rounds 3] [--grace 10] [--database URL]
    python -m bench.run_all --only shutdown
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import subprocess
import sys
import time

import requests

from bench._common import Outcome, Scratch, at_most, bench_arguments, bench_main
from bench.bench_run import docker_environment

RUNNING = 4
STAGING = 4


def _stop(server: object) -> tuple[float, int | None]:
    """SIGTERM the server; seconds until it is gone, and its exit status."""
    proc = server.proc  # type: ignore[attr-defined]
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        status = proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return time.monotonic() - started, None
    return time.monotonic() - started, status


def _busy(server: object, store_url: str, accepted: object) -> list[str]:
    """Submit the running and staging tasks; return once they are all busy."""
    url = server.url  # type: ignore[attr-defined]
    sleeper = {"executors": [{"image": "alpine", "command": ["sleep", "60"]}]}
    ids = [requests.post(f"{url}/tasks", json=sleeper, timeout=30).json()["id"]
           for _ in range(RUNNING)]
    for n in range(STAGING):
        staging = {"inputs": [{"url": f"{store_url}/in-{n}.txt", "path": "/data/in.txt"}],
                   "executors": [{"image": "alpine", "command": ["true"]}]}
        ids.append(requests.post(f"{url}/tasks", json=staging, timeout=30).json()["id"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        states = [requests.get(f"{url}/tasks/{i}", params={"view": "MINIMAL"}, timeout=30)
                  .json()["state"] for i in ids]
        if states.count("RUNNING") == RUNNING and accepted() >= STAGING:  # type: ignore[operator]
            return ids
        time.sleep(0.2)
    raise SystemExit(f"bench_shutdown: the tasks never got busy: {states}")


def _remove_containers(ids: list[str]) -> None:
    for task_id in ids:
        found = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label=org.ga4gh.tes.task={task_id}"],
            capture_output=True, text=True, check=False,
        ).stdout.split()
        if found:
            subprocess.run(["docker", "rm", "-f", *found], capture_output=True, check=False)


def arguments() -> argparse.ArgumentParser:
    """The options of this benchmark (``--database``: each server gets a fresh database)."""
    parser = bench_arguments(__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--grace", type=float, default=10.0, help="TES_SHUTDOWN_GRACE")
    return parser


def run(args: argparse.Namespace) -> list[Outcome]:
    """Stop an idle and a busy server ``args.rounds`` times; judge the worst busy stop
    against the grace (exit status 0 every time)."""
    docker_environment()
    if shutil.which("docker") is None:
        raise SystemExit("bench_shutdown: no docker CLI; run bash scripts/test-services.sh")
    from tes_filetransfer.testing import HangingStore

    from tests.servers import ServerProcess, server_env

    idle: list[float] = []
    busy: list[float] = []
    problems: list[str] = []
    scratch = Scratch(args.database, keep=args.keep)
    try:
        for round_ in range(1, args.rounds + 1):
            folder = scratch.dir / f"round-{round_}"
            settings = {"TES_LOCAL_RUNTIME": "docker",
                        "TES_LOCAL_MAX_TASKS": str(RUNNING + STAGING),
                        "TES_SHUTDOWN_GRACE": f"{args.grace:g}"}
            ids: list[str] = []
            try:
                env = server_env(folder / "idle", scratch.database(f"idle{round_}"), **settings)
                took, status = _stop(ServerProcess(folder / "idle", env).start())
                idle.append(took)
                if status != 0:
                    problems.append(f"round {round_}: the idle server exited with status "
                                    f"{status}")
                env = server_env(folder / "busy", scratch.database(f"busy{round_}"), **settings)
                with HangingStore() as store:
                    server = ServerProcess(folder / "busy", env).start()
                    ids = _busy(server, store.url, lambda s=store: s.accepted)
                    took, status = _stop(server)
                busy.append(took)
                if status != 0 or took >= args.grace:
                    problems.append(f"round {round_}: {took:.2f} s, exit status {status}")
                print(f"  round {round_}: idle {idle[-1]:.2f} s, busy {took:.2f} s "
                      f"(status {status})", flush=True)
            finally:
                _remove_containers(ids)
    finally:
        scratch.close()
    base, worst = statistics.median(idle), max(busy)
    print(f"bench_shutdown: SIGTERM to exit with {RUNNING} running + {STAGING} staging from a "
          f"hanging store: median {statistics.median(busy):.2f} s, worst {worst:.2f} s; "
          f"idle baseline {base:.2f} s (ratio {statistics.median(busy) / base:.2f}); "
          f"worst / grace {args.grace:g} s = {worst / args.grace:.2f}")
    for line in problems:
        print(f"  PROBLEM: {line}")
    target, under = at_most(worst / args.grace, 1.0)
    return [Outcome("stop", f"SIGTERM to exit, {RUNNING} running + {STAGING} staging, worst",
                    args.grace, worst, "s", worst / args.grace, target,
                    under and not problems,
                    f"idle median {base:.2f} s; " + ("; ".join(problems) or "every exit status 0"))]


def main(argv: list[str] | None = None) -> int:
    return bench_main(arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
