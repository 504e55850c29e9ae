"""Submitter plugins' cost: creates through the task service with and without them.

Target: a create with every submitter plugin installed takes at most 1.5 times as long as
the same create with none, for each engine's fixtures. Every installed plugin that
implements a submitter hook (``tes_detect_submitter``, ``tes_url_rewriter``,
``tes_rewrite_url``, ``tes_inject_inputs``) counts, whatever engine it is for: the plugins
of other engines still look at each task. For each engine group, 10,000 creates
(``TaskService.create``: validation, the submitter hooks, the SQLite insert of the task and
its tags, the submit message) run in-process over the group's fixtures on two task services
built the way the server builds them: one with every installed plugin, one with the
submitter plugins disabled. Rounds alternate (ABBA); the ratio judged is the median of the
rounds' own ratios (each round's two sides run back to back; the ratio of the median times is
printed too). Storage listing (Cromwell's write_tsv workaround, a network call) is
switched off. The Cromwell and Nextflow plugins sign late: a create only checks their URLs,
and SAS tokens are signed when a backend gets the task; that signing is timed apart
(``TaskService.for_backend`` on stored tasks) and printed, not judged. Tokens are signed
locally with an account key, so no storage service is needed.

The groups come from the fixture files: ``<engine>-[<version>-]<n>.json`` in the shared fixtures
(``tests/fixtures/submitters``) and anywhere under a plugin's ``tests/`` folder (e.g.
``snakemake-8-1.json``, ``cwl-tes-0.3-1.json``), one group per engine, so a new engine's
fixtures are measured without editing this file. Every fixture of a group must be
claimed by the same plugin; a group no installed plugin claims is skipped, saying so. The
server's storage account is the one the group's URLs name most
(``https://<account>.blob.core.windows.net/...``, ``az://<account>/...``).

    python -m bench.bench_submitters [--creates 10000] [--rounds 20] [--only cromwell,nextflow]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._common import (
    REPO,
    Outcome,
    Scratch,
    at_most,
    bench_arguments,
    bench_main,
    interleave,
    median,
    submitter_plugins,
)
from tests.submitters import SHARED_FIXTURES

TARGET_RATIO = 1.5
ACCOUNT_KEY = "YmVuY2gtYWNjb3VudC1rZXktbm90LWEtc2VjcmV0"
DEFAULT_ACCOUNT = "benchaccount"
COMMON_SETTINGS = {"TES_CROMWELL_LIST_EXECUTION_FOLDER": "false"}
"""For every group: no network calls (Cromwell's execution-folder listing is off)."""

FIXTURE_NAME = re.compile(r"(?P<engine>[a-z][a-z0-9]*(?:[-_][a-z][a-z0-9]*)*)(?:-\d[0-9.]*)+")
"""``<engine>-<n>`` or ``<engine>-<version>-<n>``: ``cromwell-1``, ``cwl-tes-0.3-1``,
``snakemake-8-2``; near misses (``near-miss-...``) do not match."""
_ACCOUNT_URLS = (
    re.compile(r"https?://([a-z0-9]+)\.blob\.core\.windows\.net/"),
    re.compile(r"az://([a-z0-9]+)/"),
)


def _account(name: str) -> str:
    return f"DefaultEndpointsProtocol=https;AccountName={name};AccountKey={ACCOUNT_KEY}"


@dataclass(frozen=True)
class Group:
    """An engine's fixtures and the settings its plugin needs to adapt them all."""

    engine: str
    paths: tuple[Path, ...]
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def documents(self) -> tuple[str, ...]:
        """The fixtures' stems (``cromwell-1``)."""
        return tuple(path.stem for path in self.paths)


def fixture_files(shared: Path = SHARED_FIXTURES) -> list[Path]:
    """Every ``<engine>-<n>.json``: the shared fixtures first, then the plugins' own (a stem
    already found is not taken twice)."""
    found: dict[str, Path] = {}
    for path in [*sorted(shared.glob("*.json")), *sorted(REPO.glob("plugins/*/tests/**/*.json"))]:
        if FIXTURE_NAME.fullmatch(path.stem) and path.stem not in found:
            found[path.stem] = path
    return list(found.values())


def groups(shared: Path = SHARED_FIXTURES) -> dict[str, Group]:
    """One group per engine named by the fixture files, with its storage account."""
    by_engine: dict[str, list[Path]] = {}
    for path in fixture_files(shared):
        match = FIXTURE_NAME.fullmatch(path.stem)
        assert match is not None
        by_engine.setdefault(match["engine"], []).append(path)
    return {
        engine: Group(engine, tuple(paths), {
            **COMMON_SETTINGS,
            "TES_STORAGE_CONNECTION_STRING": _account(_named_account(paths)),
        })
        for engine, paths in sorted(by_engine.items())
    }


def _named_account(paths: list[Path]) -> str:
    """The storage account the documents' URLs name most (Azure URL forms only)."""
    counts: Counter[str] = Counter()
    for path in paths:
        text = path.read_text()
        for pattern in _ACCOUNT_URLS:
            counts.update(pattern.findall(text))
    return counts.most_common(1)[0][0] if counts else DEFAULT_ACCOUNT


def arguments() -> argparse.ArgumentParser:
    parser = bench_arguments(__doc__)
    parser.add_argument("--creates", type=int, default=10_000, help="creates per side and group")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--only", default="", help="comma-separated groups (default: all found)")
    parser.add_argument(
        "--fixtures", type=Path, default=SHARED_FIXTURES, help="shared fixtures folder"
    )
    parser.add_argument("--set", action="append", default=[], metavar="TES_X=VALUE",
                        help="a setting for every group (e.g. another storage account)")
    return parser


def run(args: argparse.Namespace) -> list[Outcome]:
    found = groups(args.fixtures)
    wanted = [n.strip() for n in args.only.split(",") if n.strip()] or list(found)
    unknown = [name for name in wanted if name not in found]
    if unknown:
        raise SystemExit(f"bench_submitters: no fixtures for {', '.join(unknown)} "
                         f"(found: {', '.join(found) or 'none'})")
    disabled = submitter_plugins()
    if not disabled:
        raise SystemExit("bench_submitters: no submitter plugin installed")
    print(f"bench_submitters: submitter plugins {', '.join(disabled)}; groups {', '.join(wanted)}")
    extra = dict(item.split("=", 1) for item in args.set)
    outcomes = []
    for name in wanted:
        outcome = _run_group(name, found[name], args, ",".join(disabled), extra)
        if outcome is not None:
            outcomes.append(outcome)
    if not outcomes:
        raise SystemExit("bench_submitters: no group is claimed by an installed plugin")
    return outcomes


def _run_group(
    name: str, group: Group, args: argparse.Namespace, disabled: str, extra: dict[str, str]
) -> Outcome | None:
    bodies = [path.read_bytes() for path in group.paths]
    settings = {**group.settings, **extra}
    scratch = Scratch(args.database, keep=args.keep)
    try:
        with_plugins = _service(scratch, f"{name}_with", settings, disabled="")
        claimed = _check(with_plugins.service, group)
        if claimed is None:
            with_plugins.close()
            print(f"bench_submitters: {name}: no installed plugin claims "
                  f"{', '.join(group.documents)}; skipped")
            return None
        without = _service(scratch, f"{name}_without", settings, disabled=disabled)
        per_round = max(1, args.creates // args.rounds)
        print(f"bench_submitters: {name}: {', '.join(group.documents)} (claimed by {claimed}); "
              f"{args.rounds} rounds x {per_round} creates per side (in-process, SQLite)")

        def creates(core: Any) -> tuple[float, float]:
            return _time_creates(core.service, bodies, per_round)

        base_times, plugin_times = interleave(
            args.rounds, lambda: creates(without), lambda: creates(with_plugins)
        )
        adapt_us = _time_adapt(with_plugins.service, bodies, 2_000)
        dispatch_us = _time_dispatch(with_plugins.service, 2_000)
        pages = {side: _wal_pages(core.service, bodies, WAL_CREATES)
                 for side, core in (("none", without), ("plugins", with_plugins))}
        for core in (with_plugins, without):
            core.close()
    finally:
        scratch.close()
    base_runs, plugin_runs = [t[0] for t in base_times], [t[0] for t in plugin_times]
    for number, (base, ours) in enumerate(zip(base_runs, plugin_runs, strict=True), 1):
        print(f"  round {number}: no plugin {base:.3f} ms/task, with plugins {ours:.3f} ms/task, "
              f"ratio {ours / base:.2f}")
    base_ms, ours_ms = median(base_runs), median(plugin_runs)
    base_cpu, ours_cpu = median([t[1] for t in base_times]), median([t[1] for t in plugin_times])
    # Judged on the median of each round's own ratio: the two sides of a round run back to
    # back, so a change in the machine's load between rounds cancels out of it.
    ratio = median([ours / base for base, ours in zip(base_runs, plugin_runs, strict=True)])
    target, passed = at_most(ratio, TARGET_RATIO)
    print(f"  {name}: {base_ms:.3f} ms/task with no plugin, {ours_ms:.3f} with plugins (median "
          f"rounds, ratio {ours_ms / base_ms:.2f}); median of the rounds' ratios "
          f"{ratio:.2f} (target {target}: {'PASS' if passed else 'FAIL'}); overhead "
          f"{ours_ms - base_ms:.3f} ms, the hooks alone (_adapt) {adapt_us:.0f} us/task")
    print(f"  {name}: signing when a backend gets the task (not in the create): "
          f"{dispatch_us:.0f} us/task")
    print(f"  {name}: WAL pages per create {_pages(pages['none'])} with no plugin, "
          f"{_pages(pages['plugins'])} with plugins (SQLite); CPU {base_cpu:.3f} vs "
          f"{ours_cpu:.3f} ms/task, ratio {ours_cpu / base_cpu:.2f} (not judged: what a create "
          "costs without the time it waited for a CPU on a busy machine)")
    return Outcome(
        "submit", f"{name}: ms/task of create, with plugins vs none",
        base_ms, ours_ms, "ms", ratio, target, passed,
        f"overhead {ours_ms - base_ms:.3f} ms/task; hooks alone {adapt_us:.0f} us/task; "
        f"WAL pages/create {_pages(pages['none'])} vs {_pages(pages['plugins'])}; "
        f"CPU ratio {ours_cpu / base_cpu:.2f}",
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


def _check(service: Any, group: Group) -> str | None:
    """The submitter claiming every fixture of ``group`` (``None`` if none claims any);
    stops the benchmark when a fixture is refused or the claims differ (the figure would
    mean nothing)."""
    from tes_core.errors import ApiError

    claims = {}
    for path in group.paths:
        try:
            task_id = service.create(json.loads(path.read_bytes()))
        except ApiError as exc:
            raise SystemExit(f"bench_submitters: the server refused {path}: {exc.message} "
                             "(give the settings it needs with --set)") from None
        stored = service.get(task_id, "BASIC")
        claims[path.name] = (stored.get("tags") or {}).get("ms-submitter-name")
    names = set(claims.values())
    if names == {None}:
        return None
    if len(names) > 1:
        raise SystemExit(f"bench_submitters: {group.engine}'s fixtures are claimed "
                         f"differently: {claims}")
    return names.pop()


def _time_creates(service: Any, bodies: list[bytes], count: int) -> tuple[float, float]:
    """Milliseconds per create, elapsed and of CPU (this process's), over ``count`` creates
    cycling through ``bodies``."""
    started, cpu = time.perf_counter(), time.process_time()
    for index in range(count):
        service.create(json.loads(bodies[index % len(bodies)]))
    return ((time.perf_counter() - started) * 1000 / count,
            (time.process_time() - cpu) * 1000 / count)


WAL_CREATES = 20
"""Creates whose WAL pages are counted: few enough that no automatic checkpoint (at 1,000
pages) empties the WAL meanwhile."""


def _wal_pages(service: Any, bodies: list[bytes], count: int) -> float | None:
    """Pages written to SQLite's WAL per create, over ``count`` creates from an emptied WAL
    (``None`` on PostgreSQL). The pages a commit writes are what a tag row or a bigger
    document costs beyond the CPU."""
    db = service.db
    if not db.is_sqlite:
        return None
    db.point_read("PRAGMA wal_checkpoint(TRUNCATE)", ())
    for index in range(count):
        service.create(json.loads(bodies[index % len(bodies)]))
    row = db.point_read("PRAGMA wal_checkpoint(PASSIVE)", ())
    return row[1] / count if row else None


def _pages(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


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


def _time_dispatch(service: Any, count: int) -> float:
    """Microseconds per task of :meth:`TaskService.for_backend` (finding the submitter
    again and signing what its plugins sign late) over the newest stored tasks."""
    from tes_core.store import load_record

    with service.db.read() as conn:
        ids = [row[0] for row in conn.exec_driver_sql(
            "SELECT id FROM tasks ORDER BY seq DESC LIMIT 20").fetchall()]
        records = [load_record(conn, task_id) for task_id in ids]
    started = time.perf_counter()
    for index in range(count):
        service.for_backend(records[index % len(records)])
    return (time.perf_counter() - started) * 1e6 / count


def main(argv: list[str] | None = None) -> int:
    return bench_main(arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
