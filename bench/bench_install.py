"""What a new user pays before the first task: the plain install and ``scripts/serve``.

Two revisions of this repository are each cloned afresh into a scratch folder and
measured in the same run, interleaved (ABBA when ``--rounds`` > 1):

* **install**: ``pip install ./filetransfer .`` (``./filetransfer ./runner .`` where tes-core
  needs tes-runner) into a new virtualenv with an empty pip
  cache: how many distributions it adds to a bare venv, how many MB the venv grows by, and
  how long pip took.
* **serve**: ``scripts/serve`` in the fresh clone with ``TES_VENV`` pointing at a folder
  that does not exist yet (and empty pip/uv caches), from the start of the script until a
  task running ``echo`` on ``busybox``, created as soon as the server says it is ready,
  is COMPLETE.

The baseline is the last revision before storage SDKs moved behind extras (issue 18);
ours is ``HEAD``. Run from the repository root, with the test services' environment so
that the server finds a container engine::

    source /tmp/tes-test-services/env.sh
    python -m bench.bench_install                  # ~4 min on 2 CPUs
    python -m bench.bench_install --baseline HEAD  # the same revision twice (noise check)
    python -m bench.bench_install --skip-serve     # the install figures only
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.servers import TERMINAL, ChildServer, wait_for_state

from ._common import REPO, Outcome, at_most, interleave, measured, median, report

BEFORE_ISSUE_18 = "2a54498caecf13e1f9909f81784c01ec8d0dca0c"
"""The last revision of main before the storage SDKs became extras of tes-filetransfer."""

TASK = {"name": "bench-install", "executors": [{"image": "busybox", "command": ["echo", "hi"]}]}
MB = 1_000_000


@dataclass
class Install:
    """One plain install: distributions added to a bare venv, MB added, seconds pip took."""

    packages: int
    megabytes: float
    seconds: float


@dataclass
class Serve:
    """One ``scripts/serve`` run: seconds to "ready" and to the first COMPLETE task."""

    ready: float
    complete: float
    state: str


def clone(revision: str, into: Path) -> Path:
    """A fresh clone of this repository at ``revision``."""
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(REPO), str(into)], check=True)
    sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", revision], check=True,
                         capture_output=True, text=True).stdout.strip()
    subprocess.run(["git", "-C", str(into), "checkout", "-q", sha], check=True)
    return into


def folder_bytes(path: Path) -> int:
    """Bytes of the regular files under ``path`` (symlinks not followed)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            if not os.path.islink(full):
                total += os.path.getsize(full)
    return total


def distributions(venv: Path) -> set[str]:
    """Names of the distributions installed in ``venv``."""
    out = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
                         check=True, capture_output=True, text=True).stdout
    return {item["name"].lower() for item in json.loads(out)}


def fresh_caches(scratch: Path) -> dict[str, str]:
    """Environment with empty pip and uv caches, as on a new user's machine."""
    cache = Path(tempfile.mkdtemp(prefix="cache-", dir=scratch))
    env = dict(os.environ)
    env.update(PIP_CACHE_DIR=str(cache / "pip"), UV_CACHE_DIR=str(cache / "uv"),
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def measure_install(checkout: Path, scratch: Path) -> Install:
    """``pip install ./filetransfer .`` into a new venv with an empty cache."""
    venv = Path(tempfile.mkdtemp(prefix="venv-", dir=scratch))
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    bare_names, bare_bytes = distributions(venv), folder_bytes(venv)
    started = time.perf_counter()
    local = ["./filetransfer", "./runner", "."] if (checkout / "runner").is_dir() else [
        "./filetransfer", "."]  # tes-core needs tes-runner since it has one
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *local],
                   cwd=checkout, env=fresh_caches(scratch), check=True)
    seconds = time.perf_counter() - started
    result = Install(len(distributions(venv) - bare_names),
                     (folder_bytes(venv) - bare_bytes) / MB, seconds)
    shutil.rmtree(venv, ignore_errors=True)
    return result


def measure_serve(checkout: Path, scratch: Path, timeout: float) -> Serve:
    """``scripts/serve`` with a venv that does not exist yet, until one task is COMPLETE."""
    run_dir = Path(tempfile.mkdtemp(prefix="serve-", dir=scratch))
    env = fresh_caches(scratch)
    env["TES_VENV"] = str(run_dir / "venv")
    server = ChildServer("scripts/serve", ["bash", str(checkout / "scripts" / "serve"),
                         "--port", "0", "--data-dir", str(run_dir / "data")], env, cwd=run_dir)
    started = time.perf_counter()
    try:
        server.start(timeout)
        ready = time.perf_counter() - started
        task_id = requests.post(f"{server.url}/tasks", json=TASK, timeout=30).json()["id"]
        state = wait_for_state(server.url, task_id, TERMINAL, timeout)["state"]
        return Serve(ready, time.perf_counter() - started, state)
    finally:
        server.stop()
        for line in server.output:
            if line.startswith("[serve]"):
                print(f"    | {line}", flush=True)
        shutil.rmtree(run_dir, ignore_errors=True)


def run(args: argparse.Namespace) -> list[Outcome]:
    scratch = Path(tempfile.mkdtemp(prefix="bench-install-"))
    try:
        sides = {"baseline": clone(args.baseline, scratch / "baseline"),
                 "ours": clone(args.candidate, scratch / "ours")}
        print(f"  baseline {args.baseline}, ours {args.candidate}; scratch {scratch}")
        installs = interleave(args.rounds, *(
            lambda c=checkout, s=side: announce(s, "install", measure_install(c, scratch))
            for side, checkout in sides.items()))
        outcomes = install_outcomes(*installs)
        if not args.skip_serve:
            serves = interleave(args.rounds, *(
                lambda c=checkout, s=side: announce(
                    s, "serve", measure_serve(c, scratch, args.timeout))
                for side, checkout in sides.items()))
            outcomes.append(serve_outcome(*serves))
        return outcomes
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)


def announce(side: str, what: str, result: Install | Serve) -> Install | Serve:
    print(f"  {what:<7} {side:<8} {result}", flush=True)
    return result


def install_outcomes(baseline: list[Install], ours: list[Install]) -> list[Outcome]:
    """Packages and MB of the plain install: ours at most half of the baseline's."""
    outcomes = []
    for measure, unit, pick in (
        ("pip install ./filetransfer . : distributions", "pkgs", lambda x: x.packages),
        ("pip install ./filetransfer . : venv growth", "MB", lambda x: x.megabytes),
    ):
        base = median([pick(x) for x in baseline])
        mine = median([pick(x) for x in ours])
        ratio = mine / base if base else float("nan")
        label, passed = at_most(ratio, 0.5)
        note = (f"pip took {median([x.seconds for x in baseline]):.0f} s baseline, "
                f"{median([x.seconds for x in ours]):.0f} s ours") if unit == "MB" else ""
        outcomes.append(Outcome("install", measure, base, mine, unit, ratio, label, passed, note))
    return outcomes


def serve_outcome(baseline: list[Serve], ours: list[Serve]) -> Outcome:
    """Seconds to the first COMPLETE task: ours at most half of the baseline's and < 60 s."""
    base = median([x.complete for x in baseline])
    mine = median([x.complete for x in ours])
    ratio = mine / base if base else float("nan")
    label, passed = at_most(ratio, 0.5)
    failed = [x.state for x in baseline + ours if x.state != "COMPLETE"]
    passed = passed and mine < 60 and not failed
    note = (f"server ready after {median([x.ready for x in baseline]):.0f} s baseline, "
            f"{median([x.ready for x in ours]):.0f} s ours; target also < 60 s")
    if failed:
        note += f"; tasks not COMPLETE: {failed}"
    return Outcome("serve", "scripts/serve, fresh clone, to first COMPLETE task", base, mine,
                   "s", ratio, label + ", <60s", passed, note)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default=BEFORE_ISSUE_18, help="revision to compare with")
    parser.add_argument("--candidate", default="HEAD", help="revision measured as ours")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--skip-serve", action="store_true", help="only the install figures")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per serve run")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--json", metavar="FILE", help="also write the outcomes as JSON here")
    args = parser.parse_args()
    return report(measured(run, args), args.json)


if __name__ == "__main__":
    sys.exit(main())
