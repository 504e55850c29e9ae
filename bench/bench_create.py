"""Create rate: ``POST /tasks`` with a Cromwell-sized task, against a Flask INSERT baseline.

Target: tes-server creates at >= 0.7x the rate of a minimal Flask endpoint that
only INSERTs the same JSON into the same kind of database (``baseline_app``
``--mode insert``), both served by waitress with ``tes-server serve``'s threads.

tes-server runs as ``tes-server serve`` in the embedded mode with
``TES_WORKER_THREADS=0``: the API stores the task and sends the submit message
to the in-process broker exactly as usual, but no worker thread takes messages,
so the tasks stay QUEUED and nothing else writes to the database meanwhile. The
measurement is the create path alone.

    python -m bench.bench_create [--seconds 6] [--rounds 3] [--database URL]
    python -m bench.bench_create --gunicorn --database postgresql+psycopg://postgres@127.0.0.1/postgres

With ``--gunicorn`` both apps run under gunicorn with ``tes_core.gunicorn_conf`` (the
same workers and threads), and tes-core has Redis as its broker with no worker
running, so every create also sends its submit message, as in production.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench._common import (
    API,
    DATA,
    Client,
    Load,
    Outcome,
    Scratch,
    Server,
    baseline_gunicorn,
    baseline_server,
    bench_arguments,
    bench_main,
    interleave,
    run_load,
    running,
    tes_gunicorn,
    tes_server,
    throughput_arguments,
    throughput_outcome,
    without_submitter_plugins,
)

TARGET = 0.7
FIXTURE = DATA / "cromwell-2.json"


def arguments() -> argparse.ArgumentParser:
    parser = throughput_arguments(bench_arguments(__doc__))
    parser.add_argument("--document", type=Path, help="task JSON to post (default: Cromwell)")
    parser.add_argument(
        "--gunicorn", action="store_true",
        help="production shape: both apps under gunicorn with tes_core.gunicorn_conf; "
        "tes-core with Redis as its broker (a private redis-server) and no worker, so each "
        "create also sends its submit message; use with --database (PostgreSQL)",
    )
    return parser


def run(args: argparse.Namespace) -> list[Outcome]:
    source = args.document or FIXTURE
    scratch = Scratch(args.database, keep=args.keep)
    redis = None
    try:
        # The core's create path alone: the submitter plugins (their cost is
        # bench_submitters') would refuse this Terra task with no storage configured.
        plugins_off = without_submitter_plugins()
        if args.gunicorn:
            from tests.private_services import PrivateRedis

            redis = PrivateRedis(scratch.dir / "redis").start()
            tes = tes_gunicorn(scratch.dir / "tes", scratch.database("create_tes"), redis.url,
                               TES_DISABLED_PLUGINS=plugins_off)
            base = baseline_gunicorn("insert", scratch.database("create_baseline"))
        else:
            tes = tes_server(scratch.dir / "tes", scratch.database("create_tes"),
                             TES_WORKER_THREADS="0", TES_DISABLED_PLUGINS=plugins_off)
            base = baseline_server("insert", scratch.database("create_baseline"))
        with running(tes, base):
            body, note = _document_for(tes.base, source, scratch.dir)
            shape = "gunicorn + Redis broker" if args.gunicorn else "tes-server serve"
            print(f"bench_create: POST {API}/tasks, {source.name} ({body.stat().st_size} bytes), "
                  f"{args.connections} connections, {args.rounds} rounds x {args.seconds:g} s, "
                  f"{shape}")
            if note:
                print(f"  NOTE: {note}")

            def load(server: Server) -> Load:
                return run_load(server.base, [f"{API}/tasks"], method="POST", body_file=body,
                                connections=args.connections, duration=args.seconds,
                                server_pid=server.pid)

            baseline_runs, tes_runs = interleave(
                args.rounds, lambda: load(base), lambda: load(tes)
            )
            measure = "POST /tasks (create, gunicorn)" if args.gunicorn else "POST /tasks (create)"
            return [throughput_outcome("create", measure, baseline_runs, tes_runs, TARGET, note)]
    finally:
        if redis is not None:
            redis.stop()
        scratch.close()


def _document_for(tes_base: str, source: Path, folder: Path) -> tuple[Path, str]:
    """The body to post: ``source``, unless tes-server refuses it only for null tag values.

    Cromwell 87+ sends ``"parent_workflow_id": null`` for a root workflow. If the
    server answers 400 to that, the benchmark posts (to both servers) the same
    document without its null-valued tags and says so.
    """
    client = Client(tes_base)
    try:
        raw = source.read_bytes()
        status, data, _ = client.request("POST", f"{API}/tasks", raw)
        if status == 200:
            return source, ""
        refusal = data
        document = json.loads(raw)
        nulls = sorted(k for k, v in (document.get("tags") or {}).items() if v is None)
        if status != 400 or not nulls:
            raise SystemExit(f"tes-server refused {source}: {status} {data[:500]!r}")
        document["tags"] = {k: v for k, v in document["tags"].items() if v is not None}
        cleaned = folder / f"{source.stem}.no-null-tags.json"
        cleaned.write_text(json.dumps(document, indent=2))
        status, data, _ = client.request("POST", f"{API}/tasks", cleaned.read_bytes())
        if status != 200:
            raise SystemExit(f"tes-server refused {cleaned}: {status} {data[:500]!r}")
        message = json.loads(refusal).get("msg", "")
        return cleaned, (
            f"tes-server answers 400 to the fixture as Cromwell sends it ({message}); "
            f"both servers were sent it without the null tag(s) {', '.join(nulls)}"
        )
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    return bench_main(arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
