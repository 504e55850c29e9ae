"""Cost of OAuth bearer tokens on the hot paths: GET /tasks/{id} and POST /tasks.

Three servers measured in the same run, interleaved (ABBA order, medians): the
minimal Flask baseline (constant JSON for GET, an INSERT for create), tes-server
with authentication off (the default; judged, target >= 0.7 x baseline), and
tes-server with ``TES_AUTH_ENABLED`` checking an RS256 token against a JWKS served
on localhost (``tests/oidc.py``), each request carrying the same token as a
polling workflow engine does. With auth on, ratios are printed against the
baseline and against auth off.

    python -m bench.bench_auth [--seconds 6] [--rounds 3] [--database URL]
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request

from bench._common import (
    API,
    Load,
    Outcome,
    Scratch,
    Server,
    baseline_server,
    bench_arguments,
    bench_main,
    interleave,
    median,
    run_load,
    running,
    tes_server,
    throughput_arguments,
    throughput_outcome,
    without_submitter_plugins,
)
from tests.oidc import IdentityProvider

TARGET = 0.7
TASK = b'{"name": "bench-auth", "executors": [{"image": "alpine", "command": ["true"]}]}'


def arguments() -> argparse.ArgumentParser:
    parser = throughput_arguments(bench_arguments(__doc__))
    parser.add_argument("--tasks", type=int, default=64, help="distinct task ids to GET")
    return parser


def run(args: argparse.Namespace) -> list[Outcome]:
    idp = IdentityProvider()
    scratch = Scratch(args.database, keep=args.keep)
    token = idp.token("bench-user", lifetime=3600)
    auth = [f"Authorization: Bearer {token}"]
    quiet = {"TES_WORKER_THREADS": "0", "TES_DISABLED_PLUGINS": without_submitter_plugins()}
    body = scratch.dir / "task.json"
    body.write_bytes(TASK)
    try:
        off = tes_server(scratch.dir / "off", scratch.database("auth_off"), **quiet)
        on = tes_server(scratch.dir / "on", scratch.database("auth_on"), **quiet,
                        **idp.settings())
        const = baseline_server("const")
        insert = baseline_server("insert", scratch.database("auth_baseline"))
        with running(off, on, const, insert):
            paths = {id(off): _create_tasks(off, args.tasks, []),
                     id(on): _create_tasks(on, args.tasks, auth)}
            print(f"bench_auth: {args.connections} connections, {args.rounds} rounds x "
                  f"{args.seconds:g} s; auth on checks an RS256 token (JWKS on localhost)")

            def get(server: Server, headers: list[str] = ()) -> Load:  # type: ignore[assignment]
                return run_load(server.base, paths.get(id(server)) or paths[id(off)],
                                connections=args.connections, duration=args.seconds,
                                server_pid=server.pid, headers=headers)

            def create(server: Server, headers: list[str] = ()) -> Load:  # type: ignore[assignment]
                return run_load(server.base, [f"{API}/tasks"], method="POST", body_file=body,
                                connections=args.connections, duration=args.seconds,
                                server_pid=server.pid, headers=headers)

            print("GET /tasks/{id}?view=MINIMAL")
            base_get, off_get, on_get = interleave(
                args.rounds, lambda: get(const), lambda: get(off), lambda: get(on, auth)
            )
            print("POST /tasks")
            base_post, off_post, on_post = interleave(
                args.rounds, lambda: create(insert), lambda: create(off),
                lambda: create(on, auth),
            )
    finally:
        scratch.close()
        idp.close()
    outcomes = [
        throughput_outcome("auth", "GET /tasks/{id} MINIMAL, auth off", base_get, off_get,
                           TARGET),
        throughput_outcome("auth", "GET /tasks/{id} MINIMAL, auth on", base_get, on_get, TARGET),
        _versus("GET auth on / auth off", off_get, on_get),
        throughput_outcome("auth", "POST /tasks, auth off", base_post, off_post, TARGET),
        throughput_outcome("auth", "POST /tasks, auth on", base_post, on_post, TARGET),
        _versus("POST auth on / auth off", off_post, on_post),
    ]
    return outcomes


def _create_tasks(server: Server, count: int, headers: list[str]) -> list[str]:
    """Store ``count`` tasks (as the token's owner when ``headers`` carry one); their paths."""
    extra = {"Content-Type": "application/json", **dict(h.split(": ", 1) for h in headers)}
    paths = []
    for _ in range(count):
        request = urllib.request.Request(f"{server.base}{API}/tasks", TASK, extra)
        with urllib.request.urlopen(request, timeout=60) as response:
            paths.append(f"{API}/tasks/{json.loads(response.read())['id']}?view=MINIMAL")
    return paths


def _versus(measure: str, off: list[Load], on: list[Load]) -> Outcome:
    """Auth on against auth off (reported, not judged: no target is set for it)."""
    off_rps, on_rps = median([x.rps for x in off]), median([x.rps for x in on])
    ratio = on_rps / off_rps if off_rps else 0.0
    return Outcome("auth", measure, off_rps, on_rps, "req/s", ratio, "report", True,
                   "baseline column: auth off")


def main(argv: list[str] | None = None) -> int:
    return bench_main(arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
