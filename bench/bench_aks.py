"""The aks backend's reconcile pass: API calls per pass for 100 and 1,000 active tasks.

Each active task has what a running attempt has on a cluster: its coordinator Job and
pod, an executor pod, and its status ConfigMap (RUNNING, one executor log), served by
the plugin's fake Kubernetes API (``plugins/tes_aks/tests/fakekube.py``) over HTTP on
loopback to the official client. One ``AksBackend.poll`` over all of them is counted
per verb and kind. Target: at most 2 list calls per resource kind, whatever the count
(1,000 tasks make no more calls than 100), and no call per task.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._common import AllRunning, Outcome, at_most, bench_main, passes_arguments
from tes_core.backends.base import BackendContext, TaskRecord
from tes_core.config import Settings

REPO = Path(__file__).resolve().parents[1]
FAKE = REPO / "plugins" / "tes_aks" / "tests"

COUNTS = (100, 1000)
KINDS = ("Job", "Pod", "ConfigMap")


def arguments() -> argparse.ArgumentParser:
    """The command line."""
    return passes_arguments(__doc__)


def _populate(fake: Any, backend: Any, count: int) -> list[TaskRecord]:
    from tes_aks import manifests
    from tes_aks.plan import build_plan

    tasks = []
    status = {"state": "RUNNING", "final": False, "attempt": 1, "waiting": None,
              "log": {"start_time": "2026-12-03T06:00:00.000Z", "end_time": None,
                      "logs": [{"start_time": "2026-12-03T06:00:01.000Z", "end_time": None,
                                "exit_code": 0, "stdout": "", "stderr": ""}],
                      "outputs": [], "system_logs": [], "metadata": {}}}
    document = {"executors": [{"image": "alpine", "command": ["sleep", "600"]}]}
    for _ in range(count):
        task_id = str(uuid.uuid4())
        plan = build_plan(task_id, document, 1, backend.conf, {"local_dirs": [], "hosts": []})
        with fake.lock:
            job = fake.put(manifests.coordinator_job(plan, "tes-aks:0.1.0", "tes-coordinator"))
            fake._job_created(job)  # the Job controller's pod
            fake._job_created(fake.put(manifests.executor_job(plan, 0)))
            fake.put(manifests.status_config_map(plan, status))
        tasks.append(TaskRecord(
            id=task_id, state="RUNNING", document=document, creation_time=datetime.now(UTC),
            logs=[{**status["log"], "metadata": {}}], backend_ref=f"default/{plan['base']}"))
    return tasks


def _pass(fake: Any, backend: Any, tasks: list[TaskRecord]) -> tuple[dict, float]:
    before = len(fake.requests)
    started = time.perf_counter()
    observations = list(backend.poll(tasks))
    took = time.perf_counter() - started
    calls: dict[str, int] = {}
    for request in fake.requests[before:]:
        key = f"{request.method} {request.kind}"
        calls[key] = calls.get(key, 0) + 1
    assert not observations, "nothing changed: a pass reports nothing"
    return calls, took


def run(args: argparse.Namespace) -> list[Outcome]:
    """Count the calls of passes over 100 and 1,000 tasks; judge 1,000 against 100."""
    sys.path.insert(0, str(FAKE))
    from fakekube import FakeKube  # the plugin's fake API (its tests' own)
    from tes_aks.backend import AksBackend
    from tes_aks.kube import Kube, api_client

    figures: dict[int, tuple[dict, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-aks-") as scratch:
        for count in COUNTS:
            fake = FakeKube()
            server, url = fake.start()
            try:
                kubeconfig = fake.kubeconfig(url, Path(scratch))
                settings = Settings.from_env({"TES_BACKEND": "aks",
                                              "TES_DATA_DIR": str(Path(scratch) / "data")})
                backend = AksBackend(BackendContext(settings, AllRunning(), "bench"),
                                     kube=Kube(api_client(str(kubeconfig))))
                tasks = _populate(fake, backend, count)
                rounds = [_pass(fake, backend, tasks) for _ in range(args.rounds)]
            finally:
                server.shutdown()
            calls = rounds[-1][0]
            if any(r[0] != calls for r in rounds):
                calls = {"varied": 999}
            figures[count] = (calls, sorted(r[1] for r in rounds)[len(rounds) // 2])
            print(f"  {count:>5} active tasks: calls per pass {json.dumps(calls, sort_keys=True)}"
                  f", median pass {figures[count][1] * 1000:.0f} ms", flush=True)
    small, large = figures[COUNTS[0]][0], figures[COUNTS[1]][0]
    outcomes = []
    for kind in KINDS:
        key = f"LIST {kind}"
        base, ours = small.get(key, 0), large.get(key, 0)
        target, ok = at_most(ours / max(base, 1), 1.0)
        outcomes.append(Outcome("aks", f"list calls of {kind}s per pass, 1,000 vs 100 tasks",
                                base, ours, "calls", ours / max(base, 1), target,
                                ok and 1 <= ours <= 2, "at most 2 per kind, whatever the count"))
    others = sum(v for k, v in large.items() if not k.startswith("LIST "))
    total_base = sum(small.values())
    total = sum(large.values())
    target, ok = at_most(total / max(total_base, 1), 1.0)
    outcomes.append(Outcome("aks", "API calls per pass in all, 1,000 vs 100 tasks", total_base,
                            total, "calls", total / max(total_base, 1), target,
                            ok and others == 0, f"{others} calls other than lists"))
    return outcomes


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 if every figure meets its target."""
    return bench_main(arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
