"""The baselines: the least a Flask endpoint can do, on the same stack as tes-server.

Same Flask, same waitress with the same number of threads and body limit as
``tes-server serve``, and (``insert`` mode) the same database settings, because
the engine comes from :class:`tes_core.db.Database` (SQLite: WAL,
``synchronous=NORMAL``, busy timeout, ``BEGIN IMMEDIATE`` writes; the same pool).

``--mode insert``: ``POST /ga4gh/tes/v1/tasks`` stores the raw body with
``INSERT INTO bench_raw(doc) VALUES (?)`` and answers ``{"id": ...}``.
``--mode const``: ``GET /ga4gh/tes/v1/tasks/<id>`` answers a constant small JSON.

    python -m bench.baseline_app --mode insert --database sqlite:////tmp/b.sqlite3

Under gunicorn (``bench_create --gunicorn``, ``bench_poll``) the same apps are served with
the production configuration: ``gunicorn -c python:tes_core.gunicorn_conf
"bench.baseline_app:create_app('insert', 'postgresql+psycopg://...')"``.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys

from flask import Flask, request
from sqlalchemy import text

from tes_core import API_PREFIX
from tes_core.config import Settings
from tes_core.db import Database

CONSTANT = {"id": "3f2c7e4a-9b1d-4c58-8e6f-2a7b9c0d1e3f", "state": "QUEUED"}


def create_app(mode: str, database_url: str | None = None) -> Flask:
    """The baseline app for ``mode``."""
    app = Flask("bench_baseline")
    app.config["MAX_CONTENT_LENGTH"] = Settings().max_body_bytes
    if mode == "insert":
        if not database_url:
            raise SystemExit("--mode insert needs --database")
        db = Database(database_url)
        key = "id INTEGER PRIMARY KEY" if db.is_sqlite else "id BIGSERIAL PRIMARY KEY"
        with db.write() as conn:
            conn.execute(text(f"CREATE TABLE IF NOT EXISTS bench_raw ({key}, doc TEXT NOT NULL)"))
        insert = text("INSERT INTO bench_raw(doc) VALUES (:doc) RETURNING id")

        @app.post(f"{API_PREFIX}/tasks")
        def create():  # type: ignore[no-untyped-def]
            doc = request.get_data(as_text=True)
            with db.write() as conn:
                new_id = conn.execute(insert, {"doc": doc}).scalar_one()
            return {"id": str(new_id)}

    elif mode == "const":

        @app.get(f"{API_PREFIX}/tasks/<task_id>")
        def get(task_id: str):  # type: ignore[no-untyped-def]
            return CONSTANT

    else:
        raise SystemExit(f"unknown mode {mode!r}")
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="baseline Flask app for the benchmarks")
    parser.add_argument("--mode", choices=("insert", "const"), required=True)
    parser.add_argument("--database", help="SQLAlchemy URL (insert mode)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args(argv)

    from waitress import create_server

    app = create_app(args.mode, args.database)
    server = create_server(
        app, host=args.host, port=args.port, threads=args.threads, ident="bench-baseline",
        max_request_body_size=Settings().max_body_bytes + 1,
    )
    signal.signal(signal.SIGTERM, lambda *_: server.close())
    signal.signal(signal.SIGINT, lambda *_: server.close())
    print(f"baseline ready at http://{args.host}:{server.effective_port}{API_PREFIX}", flush=True)
    with contextlib.suppress(OSError, ValueError):  # closed by a signal
        server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
