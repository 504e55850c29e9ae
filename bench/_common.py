"""What the benchmarks share: fresh databases, server processes, the load generator,
a small HTTP client, and printing results.

Every figure a benchmark judges is a ratio against a baseline measured in the same
run, on the same machine, interleaved with it, so a slow or noisy machine moves
both sides alike.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.servers import ChildServer

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
DATA = REPO / "tests" / "fixtures" / "submitters"
RESULTS = REPO / ".bench-results"
API = "/ga4gh/tes/v1"
TES_READY = re.compile(r"TES server ready at (\S+)")
BASELINE_READY = re.compile(r"baseline ready at (\S+)")
IMAGE = "alpine"
"""The image the benchmarks' tasks run (scripts/test-services.sh pulls it)."""
SUBMITTER_HOOKS = frozenset({"tes_detect_submitter", "tes_rewrite_url", "tes_url_rewriter",
                             "tes_inject_inputs"})
"""The hooks that make a plugin a submitter plugin."""


def submitter_plugins() -> list[str]:
    """The installed plugins (entry-point names in group ``tes``) implementing a submitter
    hook, sorted: what ``TES_DISABLED_PLUGINS`` lists for the core alone."""
    from tes_core.config import Settings
    from tes_core.plugins import load_plugins

    hooks = load_plugins(Settings.from_env({}), require_backend=False)
    return sorted(info.name for info in hooks.plugins()
                  if not info.builtin and SUBMITTER_HOOKS.intersection(info.hooks))


def without_submitter_plugins() -> str:
    """``TES_DISABLED_PLUGINS`` for the core alone: every installed submitter plugin."""
    return ",".join(submitter_plugins())


def serve_threads() -> int:
    """The HTTP threads ``tes-server serve`` uses by default, so the baselines match it."""
    from tes_core.config import Settings

    return Settings().http_threads


# ----------------------------------------------------------------------------- arguments


def common_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Options every benchmark takes."""
    parser.add_argument(
        "--database",
        metavar="URL",
        help="a PostgreSQL server to use instead of SQLite, e.g. "
        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres; each server gets a fresh "
        "database created there and dropped afterwards",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--json", metavar="FILE", help="also write the outcomes as JSON here")
    return parser


def bench_arguments(doc: str | None) -> argparse.ArgumentParser:
    """A benchmark's parser, described by the first line of its module docstring ``doc``,
    with the options every benchmark takes."""
    return common_arguments(argparse.ArgumentParser(description=(doc or "").splitlines()[0]))


def passes_arguments(doc: str | None) -> argparse.ArgumentParser:
    """The parser of a benchmark of a backend's reconcile passes: ``--rounds`` passes per
    task count."""
    parser = bench_arguments(doc)
    parser.add_argument("--rounds", type=int, default=3, help="passes per task count")
    return parser


class AllRunning:
    """The core's side as a backend benchmarked in-process sees it: every task is RUNNING
    and every report is taken."""

    def report(self, observation: Any) -> bool:
        """Taken."""
        return True

    def current_state(self, task_id: str) -> str | None:
        """RUNNING."""
        return "RUNNING"

    def states_of(self, task_ids: Any) -> dict[str, str]:
        """RUNNING, each."""
        return dict.fromkeys(task_ids, "RUNNING")


def bench_main(
    arguments: Callable[[], argparse.ArgumentParser],
    run: Callable[[argparse.Namespace], list[Outcome]],
    argv: list[str] | None = None,
) -> int:
    """A benchmark's ``main``: parse ``argv``, run between two machine-load lines, print
    (and with ``--json`` write) the outcomes; 0 if every figure meets its target."""
    args = arguments().parse_args(argv)
    return report(measured(run, args), args.json)


def throughput_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Options of the benchmarks that load a server over HTTP for a number of rounds."""
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=6.0, help="counted seconds per round")
    parser.add_argument("--rounds", type=int, default=3)
    return parser


# ----------------------------------------------------------------------------- databases


class Scratch:
    """A temporary folder and fresh databases, removed on :meth:`close`."""

    def __init__(self, database: str | None = None, keep: bool = False) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tes-bench-"))
        self.keep = keep
        self.postgres = database
        self._created: list[str] = []

    def database(self, name: str) -> str:
        """The URL of a new, empty database called after ``name``."""
        if not self.postgres:
            return f"sqlite:///{self.dir / name}.sqlite3"
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        admin = make_url(self.postgres)
        db_name = f"tes_bench_{name}_{uuid.uuid4().hex[:8]}"
        engine = create_engine(admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{db_name}"'))
        engine.dispose()
        url = admin.set(database=db_name).render_as_string(hide_password=False)
        self._created.append(url)
        return url

    def close(self) -> None:
        """Drop the databases made here and remove the folder (unless ``keep``)."""
        if self.keep:
            for url in self._created:
                print(f"  (database kept: {url})")
        elif self._created:
            from sqlalchemy import create_engine, text
            from sqlalchemy.engine import make_url

            engine = create_engine(make_url(self.postgres), isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                for url in self._created:
                    name = make_url(url).database
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            engine.dispose()
        if self.keep:
            print(f"  (scratch kept in {self.dir})")
        else:
            import shutil

            shutil.rmtree(self.dir, ignore_errors=True)


# ----------------------------------------------------------------------------- processes


class Server(ChildServer):
    """A benchmarked server process (ours or a baseline), run from the repository root."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], ready: re.Pattern[str]):
        super().__init__(name=name, argv=argv, env=env, ready=ready, cwd=REPO)

    @property
    def base(self) -> str:
        """``http://host:port`` without the API prefix."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"


def child_env(**extra: str) -> dict[str, str]:
    """This environment without any ``TES_*`` setting, the repository importable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TES_")}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
    )
    env.update(extra)
    return env


def tes_server(data_dir: Path, database_url: str, **settings: str) -> Server:
    """A real ``tes-server serve`` (embedded mode, default HTTP settings) on a free port."""
    env = child_env(TES_DATABASE_URL=database_url, **settings)
    argv = [sys.executable, "-m", "tes_core.cli", "serve", "--port", "0",
            "--data-dir", str(data_dir)]
    return Server("tes-server", argv, env, TES_READY)


def baseline_server(mode: str, database_url: str | None = None) -> Server:
    """``bench/baseline_app.py`` in ``mode`` (``insert`` or ``const``), same waitress threads."""
    argv = [sys.executable, "-m", "bench.baseline_app", "--mode", mode, "--port", "0",
            "--threads", str(serve_threads())]
    if database_url:
        argv += ["--database", database_url]
    return Server(f"baseline ({mode})", argv, child_env(), BASELINE_READY)


GUNICORN_READY = re.compile(r"Listening at: (http://\S+)")


class GunicornServer(Server):
    """A WSGI app under gunicorn with the production configuration
    (``tes_core.gunicorn_conf``), ready once one of its processes answers."""

    def __init__(self, name: str, app: str, env: dict[str, str], **options: str) -> None:
        from tests.private_services import free_port

        argv = [sys.executable, "-m", "gunicorn", "-c", "python:tes_core.gunicorn_conf",
                "--bind", f"127.0.0.1:{free_port()}"]
        for option, value in options.items():
            argv += [f"--{option.replace('_', '-')}", value]
        super().__init__(name, [*argv, app], env, GUNICORN_READY)

    def start(self, timeout: float = 60.0) -> Server:
        """Start gunicorn, then wait until its app (loaded after the fork) answers."""
        super().start(timeout)
        self.url = self.url.rstrip("/") + API
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                Client(self.base, timeout=5).request("GET", f"{API}/service-info")
                return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer:\n" + self.log())


def tes_gunicorn(data_dir: Path, database_url: str, broker_url: str, **settings: str) -> Server:
    """``tes_core.app:create_app()`` under gunicorn (production: PostgreSQL, Redis), on a
    database migrated first with ``tes-server db upgrade``."""
    env = child_env(TES_DATABASE_URL=database_url, TES_BROKER_URL=broker_url,
                    TES_DATA_DIR=str(data_dir), **settings)
    # As in production: migrations run once, before the API starts (gunicorn does not).
    subprocess.run([sys.executable, "-m", "tes_core.cli", "db", "upgrade"], env=env, cwd=REPO,
                   check=True, capture_output=True, timeout=120)
    return GunicornServer("tes (gunicorn)", "tes_core.app:create_app()", env)


def baseline_gunicorn(mode: str, database_url: str | None = None) -> Server:
    """``bench/baseline_app.py`` in ``mode`` under the same gunicorn configuration."""
    app = f"bench.baseline_app:create_app({mode!r}, {database_url!r})"
    return GunicornServer(f"baseline ({mode}, gunicorn)", app, child_env())


@contextlib.contextmanager
def running(*servers: Server) -> Iterator[tuple[Server, ...]]:
    """Start ``servers`` (in order) and stop them all at the end."""
    started: list[Server] = []
    try:
        for server in servers:
            started.append(server.start())
        yield servers
    finally:
        for server in reversed(started):
            server.stop()


# ----------------------------------------------------------------------------- load


@dataclass
class Load:
    """What one run of the load generator measured."""

    requests: int
    seconds: float
    rps: float
    errors: int
    statuses: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    first_error: str | None = None
    all_requests: int = 0
    """Requests sent, the warm-up's included."""
    client_cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    """CPU seconds the server process used during the whole run, warm-up included."""

    @property
    def server_us_per_request(self) -> float:
        """Server CPU microseconds per request."""
        return self.server_cpu_s / self.all_requests * 1e6 if self.all_requests else float("nan")


def run_load(
    base: str,
    paths: list[str],
    *,
    method: str = "GET",
    body_file: Path | None = None,
    connections: int = 8,
    duration: float = 5.0,
    warmup: float = 1.0,
    max_requests: int = 50_000,
    expect: int = 200,
    server_pid: int | None = None,
    headers: Sequence[str] = (),
    rate: float | None = None,
) -> Load:
    """Run ``bench/loadgen.py`` in its own process against ``base`` and return its figures;
    ``headers`` are ``"Name: value"`` lines sent with every request; with ``rate``, open
    loop at that many requests per second (else closed loop)."""
    argv = [sys.executable, "-m", "bench.loadgen", "--base", base, "--method", method,
            "--connections", str(connections), "--duration", str(duration),
            "--warmup", str(warmup), "--max-requests", str(max_requests),
            "--expect", str(expect)]
    if body_file is not None:
        argv += ["--body-file", str(body_file)]
    if rate:
        argv += ["--rate", str(rate)]
    for header in headers:
        argv += ["--header", header]
    with tempfile.NamedTemporaryFile("w", suffix=".paths", delete=False) as handle:
        handle.write("\n".join(paths))
    argv += ["--paths-file", handle.name]
    cpu_before = process_cpu(server_pid)
    try:
        done = subprocess.run(
            argv, cwd=REPO, env=child_env(), capture_output=True, text=True,
            timeout=duration + warmup + 120,
        )
    finally:
        os.unlink(handle.name)
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed ({done.returncode}):\n{done.stderr}")
    load = Load(**json.loads(done.stdout))
    load.server_cpu_s = process_cpu(server_pid) - cpu_before
    return load


def process_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) process ``pid`` and its live children (gunicorn's
    workers) have used; 0 when unknown."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children: list[str] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            children += task.read_text().split()
    return own + sum(process_cpu(int(child)) for child in children)


class Client:
    """One keep-alive HTTP/1.1 connection for sequential, timed requests."""

    def __init__(self, base: str, timeout: float = 60.0) -> None:
        parts = urlsplit(base)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)

    def request(
        self, method: str, path: str, body: bytes | None = None
    ) -> tuple[int, bytes, float]:
        """``(status, body, seconds)``; reconnects once if the connection had been closed."""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        for attempt in (1, 2):
            started = time.perf_counter()
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
                if attempt == 2:
                    raise
                continue
            return response.status, data, time.perf_counter() - started
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, body: Any = None) -> tuple[int, Any, float]:
        """Like :meth:`request` with JSON in and out."""
        raw = None if body is None else json.dumps(body).encode()
        status, data, seconds = self.request(method, path, raw)
        return status, json.loads(data) if data else None, seconds

    def close(self) -> None:
        self.conn.close()


def create_tasks(base: str, body: bytes, count: int, who: str) -> list[str]:
    """POST ``body`` ``count`` times over one connection; the new task ids. A failed
    create stops the benchmark ``who`` with the server's answer."""
    client = Client(base)
    ids = []
    try:
        for _ in range(count):
            status, data, _seconds = client.request("POST", f"{API}/tasks", body)
            if status != 200:
                raise SystemExit(f"{who}: create failed: {status} {data[:300]!r}")
            ids.append(json.loads(data)["id"])
    finally:
        client.close()
    return ids


def interleave(rounds: int, *measures: Callable[[], Any]) -> list[list[Any]]:
    """Run each measure ``rounds`` times, alternating the order each round (ABBA)."""
    results: list[list[Any]] = [[] for _ in measures]
    order = list(range(len(measures)))
    for number in range(rounds):
        for index in order if number % 2 == 0 else reversed(order):
            results[index].append(measures[index]())
    return results


def machine_load(label: str) -> str:
    """A line on how busy the machine is: figures taken on a busy machine are noisier."""
    load = os.getloadavg()[0]
    cpus = os.cpu_count() or 1
    busy = "  (busy: other work competes with the benchmark)" if load > cpus else ""
    line = f"  {label}: load average {load:.1f} on {cpus} CPUs{busy}"
    print(line, flush=True)
    return line


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def print_steps(label: str, steps: tuple[tuple[str, str, str], ...],
                marks: list[dict[str, float]]) -> None:
    """The median milliseconds of each step."""
    print(f"  {label}, median ms per step:")
    for name, begin, end in steps:
        value = median([(m[end] - m[begin]) * 1000 for m in marks])
        print(f"    {name:<66} {value:7.0f}")


# ----------------------------------------------------------------------------- outcomes


@dataclass
class Outcome:
    """One judged figure: ours against the baseline, the ratio, the target."""

    bench: str
    measure: str
    baseline: float
    ours: float
    unit: str
    ratio: float
    target: str
    passed: bool
    note: str = ""

    def line(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return (f"{self.bench:<7} {self.measure:<52} {self.baseline:>10.2f} {self.ours:>10.2f} "
                f"{self.unit:<6} {self.ratio:>6.2f}  {self.target:<8} {verdict}")


HEADER = (f"{'bench':<7} {'measure':<52} {'baseline':>10} {'ours':>10} {'unit':<6} "
          f"{'ratio':>6}  {'target':<8} verdict")


def at_least(ratio: float, target: float) -> tuple[str, bool]:
    return f">= {target:g}", ratio >= target


def at_most(ratio: float, target: float) -> tuple[str, bool]:
    return f"<= {target:g}", ratio <= target


def measured(run: Callable[[argparse.Namespace], list[Outcome]],
             args: argparse.Namespace) -> list[Outcome]:
    """``run(args)`` between two lines saying how busy the machine was."""
    machine_load("before")
    try:
        return run(args)
    finally:
        machine_load("after")


def report(outcomes: list[Outcome], json_path: str | None = None) -> int:
    """Print the table of outcomes; write them as JSON if asked; 0 if every one passed."""
    print()
    print(HEADER)
    for outcome in outcomes:
        print(outcome.line())
        if outcome.note:
            print(f"{'':8}note: {outcome.note}")
    if json_path:
        Path(json_path).write_text(json.dumps([asdict(o) for o in outcomes], indent=2))
    return 0 if outcomes and all(o.passed for o in outcomes) else 1


def throughput_outcome(
    bench: str, measure: str, baseline_runs: list[Load], tes_runs: list[Load], target: float,
    note: str = "",
) -> Outcome:
    """Print each round, then judge the median rates."""
    for label, runs in (("baseline", baseline_runs), ("tes-server", tes_runs)):
        for number, load in enumerate(runs, 1):
            print(f"  round {number} {label:<10} {load.rps:8.1f} req/s  {load.requests:6d} req  "
                  f"p50 {load.p50_ms:5.1f} ms  p99 {load.p99_ms:6.1f} ms  "
                  f"server CPU {load.server_us_per_request:5.0f} us/req  errors {load.errors}"
                  + (f"  first error: {load.first_error}" if load.first_error else ""))
    base_rps = median([x.rps for x in baseline_runs])
    tes_rps = median([x.rps for x in tes_runs])
    ratio = tes_rps / base_rps if base_rps else 0.0
    errors = sum(x.errors for x in baseline_runs + tes_runs)
    label, passed = at_least(ratio, target)
    passed = passed and not errors
    print(f"  baseline {base_rps:.1f} req/s, tes-server {tes_rps:.1f} req/s, ratio {ratio:.2f}, "
          f"target {label}: {'PASS' if passed else 'FAIL'}")
    if errors:
        note = (note + "; " if note else "") + f"{errors} failed requests"
    return Outcome(bench, measure, base_rps, tes_rps, "req/s", ratio, label, passed, note)
