"""Submitter plugins' cost: creates through the task service with and without them.

Target: detection, tagging and URL rewriting (SAS signing included) add at most 1 ms per
task. For each engine group below, 10,000 creates (``TaskService.create``: validation,
the submitter hooks, the SQLite insert, the submit message) run in-process over the
group's fixtures on two task services built the way the server builds them: one with
every installed plugin, one with the submitter plugins disabled. Rounds alternate
(ABBA); the overhead is the difference of the median per-task times. Storage listing
(Cromwell's write_tsv workaround, a network call) is switched off: it is not part of
the target. SAS tokens are signed locally with an account key, so no storage service
is needed.

Add an engine by adding a :class:`Group` to :data:`GROUPS`.

    python -m bench.bench_submitters [--creates 10000] [--rounds 4] [--only cromwell]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._common import (
    SUBMITTER_PLUGINS,
    Outcome,
    Scratch,
    common_arguments,
    interleave,
    measured,
    median,
    report,
)
from tests.submitters import SHARED_FIXTURES

TARGET_MS = 1.0
ACCOUNT_KEY = "YmVuY2gtYWNjb3VudC1rZXktbm90LWEtc2VjcmV0"


def _account(name: str) -> str:
    return f"DefaultEndpointsProtocol=https;AccountName={name};AccountKey={ACCOUNT_KEY}"


@dataclass(frozen=True)
class Group:
    """An engine's fixtures and the settings its plugin needs to adapt them all."""

    plugin: str
    documents: tuple[str, ...]
    """Stems of the shared fixtures (``cromwell-1``)."""
    settings: dict[str, str] = field(default_factory=dict)


GROUPS = {
    "cromwell": Group(
        "cromwell",
        ("cromwell-1", "cromwell-2", "cromwell-3"),
        {
            # cromwell-2 writes to this account (Terra); the others use local roots.
            "TES_STORAGE_CONNECTION_STRING": _account("lz9f2c4a7b1e3d5c6a8b0e2f4"),
            "TES_CROMWELL_LIST_EXECUTION_FOLDER": "false",
        },
    ),
    "nextflow": Group(
        "nextflow",
        ("nextflow-1", "nextflow-2"),
        {"TES_STORAGE_CONNECTION_STRING": _account("nfteststorage")},
    ),
    # Tagging only (no URL rewriting): no storage needed.
    "snakemake": Group("snakemake", ("snakemake-7-1", "snakemake-7-2", "snakemake-8-1",
                                     "snakemake-8-2")),
    "cwl-tes": Group("cwl-tes", ("cwl-tes-0.2-1", "cwl-tes-0.3-1")),
    "toil": Group("toil", ("toil-5.6-1", "toil-7.0-1")),
}


def arguments() -> argparse.ArgumentParser:
    parser = common_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--creates", type=int, default=10_000, help="creates per side and group")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--only", default=",".join(GROUPS), help="comma-separated groups")
    parser.add_argument(
        "--fixtures", type=Path, default=SHARED_FIXTURES, help="shared fixtures folder"
    )
    return parser


def run(args: argparse.Namespace) -> list[Outcome]:
    from importlib.metadata import entry_points

    installed = {ep.name for ep in entry_points(group="tes")}
    outcomes = []
    for name in [n.strip() for n in args.only.split(",") if n.strip()]:
        group = GROUPS[name]
        if group.plugin not in installed:
            print(f"bench_submitters: {name}: plugin {group.plugin!r} is not installed; skipped")
            continue
        outcomes.append(_run_group(name, group, args))
    if not outcomes:
        raise SystemExit("bench_submitters: no submitter plugin installed")
    return outcomes


def _run_group(name: str, group: Group, args: argparse.Namespace) -> Outcome:
    bodies = [(args.fixtures / f"{stem}.json").read_bytes() for stem in group.documents]
    scratch = Scratch(args.database, keep=args.keep)
    try:
        with_plugins = _service(scratch, f"{name}_with", group.settings, disabled="")
        without = _service(scratch, f"{name}_without", group.settings, disabled=SUBMITTER_PLUGINS)
        _check(with_plugins.service, bodies, group)
        per_round = max(1, args.creates // args.rounds)
        print(f"bench_submitters: {name}: {', '.join(group.documents)}; "
              f"{args.rounds} rounds x {per_round} creates per side (in-process, SQLite)")

        def creates(core: Any) -> float:
            return _time_creates(core.service, bodies, per_round)

        base_runs, plugin_runs = interleave(
            args.rounds, lambda: creates(without), lambda: creates(with_plugins)
        )
        adapt_us = _time_adapt(with_plugins.service, bodies, 2_000)
        for core in (with_plugins, without):
            core.close()
    finally:
        scratch.close()
    for number, (base, ours) in enumerate(zip(base_runs, plugin_runs, strict=True), 1):
        print(f"  round {number}: no plugin {base:.3f} ms/task, with plugins {ours:.3f} ms/task, "
              f"difference {ours - base:+.3f} ms")
    base_ms, ours_ms = median(base_runs), median(plugin_runs)
    overhead = ours_ms - base_ms
    passed = overhead <= TARGET_MS
    print(f"  {name}: per-task overhead {overhead:.3f} ms (target <= {TARGET_MS:g} ms: "
          f"{'PASS' if passed else 'FAIL'}); the hooks alone (_adapt) {adapt_us:.0f} us/task")
    return Outcome(
        "submit", f"{name}: ms/task of create, with plugins vs none",
        base_ms, ours_ms, "ms", ours_ms / base_ms if base_ms else 0.0,
        f"+<={TARGET_MS:g}ms", passed,
        f"overhead {overhead:.3f} ms/task; hooks alone {adapt_us:.0f} us/task",
    )


def _service(scratch: Scratch, label: str, settings: dict[str, str], disabled: str) -> Any:
    from tes_core.cli import _migrate
    from tes_core.config import Settings
    from tes_core.core import build_core

    env = {**settings, "TES_DATABASE_URL": scratch.database(label),
           "TES_DISABLED_PLUGINS": disabled, "TES_WORKER_THREADS": "0"}
    resolved = Settings.from_env(env, data_dir=scratch.dir / label)
    _migrate(resolved, "head")
    return build_core(resolved)


def _check(service: Any, bodies: list[bytes], group: Group) -> None:
    """Every fixture is accepted and claimed by its plugin (else the figure means nothing)."""
    from tes_core.errors import ApiError

    for body in bodies:
        try:
            task_id = service.create(json.loads(body))
        except ApiError as exc:
            raise SystemExit(
                f"bench_submitters: the server refused a fixture: {exc.message}"
            ) from None
        stored = service.get(task_id, "BASIC")
        name = (stored.get("tags") or {}).get("ms-submitter-name")
        if name != group.plugin:
            raise SystemExit(f"bench_submitters: a fixture was not claimed by {group.plugin}")


def _time_creates(service: Any, bodies: list[bytes], count: int) -> float:
    """Milliseconds per create, over ``count`` creates cycling through ``bodies``."""
    started = time.perf_counter()
    for index in range(count):
        service.create(json.loads(bodies[index % len(bodies)]))
    return (time.perf_counter() - started) * 1000 / count


def _time_adapt(service: Any, bodies: list[bytes], count: int) -> float:
    """Microseconds per task of the submitter hooks alone, on validated documents."""
    from tes_core.schemas import load_task

    tasks = [load_task(json.loads(body)) for body in bodies]
    copies = [json.dumps(task) for task in tasks]
    started = time.perf_counter()
    for index in range(count):
        service._adapt(json.loads(copies[index % len(copies)]))
    parse = time.perf_counter()
    for index in range(count):
        json.loads(copies[index % len(copies)])
    done = time.perf_counter()
    return ((parse - started) - (done - parse)) * 1e6 / count


def main(argv: list[str] | None = None) -> int:
    args = arguments().parse_args(argv)
    return report(measured(run, args), args.json)


if __name__ == "__main__":
    sys.exit(main())
