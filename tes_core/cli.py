"""``tes-server``: run the server, a worker, migrations, or list plugins."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from dataclasses import asdict
from pathlib import Path

from .config import Settings, option_help
from .shutdown import Deadline, GracefulStop, bounded, exit_now
from .startup import explain
from .telemetry.logs import configure_logging

log = logging.getLogger("tes_core")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tes-server`` command."""
    parser = _parser()
    args = parser.parse_args(argv)
    configure_logging(getattr(logging, args.log_level.upper()))
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except Exception as exc:
        explained = explain(exc)
        if explained is None:
            raise  # a bug: its traceback is what its report needs
        log.debug("start-up stopped", exc_info=True)  # --log-level debug: where it was raised
        status, line = explained
        print(f"tes-server: {line}", file=sys.stderr, flush=True)
        return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tes-server", description="GA4GH TES 1.1 server (tes-core)."
    )
    parser.add_argument(
        "--log-level", default="info",
        help="debug, info, warning or error (default: info); debug also shows where a "
        "start-up error was raised",
    )
    commands = parser.add_subparsers(dest="command")
    data_dir = option_help("data_dir", "folder of everything the server keeps")

    serve = commands.add_parser(
        "serve", help="run the API with in-process workers (embedded mode by default)",
        description="Run the TES API and, without TES_BROKER_URL, its workers in this process. "
        "Every option can also be set by its environment variable; other settings are "
        "TES_* variables (see the README's settings table).",
    )
    serve.add_argument("--host", help=option_help("host", "address to listen on"))
    serve.add_argument(
        "--port", type=int, help=option_help("port", "port to listen on, 0 picks a free one")
    )
    serve.add_argument("--data-dir", type=Path, help=data_dir)
    serve.add_argument(
        "--threads", type=int, help=option_help("http_threads", "threads answering HTTP")
    )
    serve.set_defaults(func=_serve)

    worker = commands.add_parser(
        "worker", help="run a worker process (production mode)",
        description="Run a worker that takes tasks from TES_BROKER_URL (required) and runs "
        "them on TES_BACKEND; the database must have been upgraded (tes-server db upgrade). "
        "Other settings are TES_* variables (see the README's settings table).",
    )
    worker.add_argument("--data-dir", type=Path, help=data_dir)
    worker.set_defaults(func=_worker)

    db = commands.add_parser("db", help="database migrations")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    database = option_help("database_url", "the database (empty: SQLite in the data folder)")
    upgrade = db_commands.add_parser(
        "upgrade", help="migrate the database to the newest schema",
        description=f"Migrate {database} to the newest schema.",
    )
    upgrade.add_argument("revision", nargs="?", default="head",
                         help="Alembic revision to go to (default: head)")
    upgrade.set_defaults(func=_db_upgrade)
    downgrade = db_commands.add_parser(
        "downgrade", help="migrate the database back",
        description=f"Migrate {database} back.",
    )
    downgrade.add_argument("revision", nargs="?", default="-1",
                           help="Alembic revision to go back to (default: -1, the one before)")
    downgrade.set_defaults(func=_db_downgrade)
    for sub in (upgrade, downgrade):
        sub.add_argument("--data-dir", type=Path, help=data_dir)

    plugins = commands.add_parser("plugins", help="list installed plugins as JSON")
    plugins.set_defaults(func=_plugins)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    """The environment's settings; options given on the command line win."""
    return Settings.from_env(
        data_dir=getattr(args, "data_dir", None),
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        http_threads=getattr(args, "threads", None),
    )


def _migrate(settings: Settings, revision: str, *, down: bool = False) -> None:
    import flask_migrate
    from sqlalchemy.exc import OperationalError

    from .app import create_app
    from .startup import database_unreachable

    app = create_app(settings, start_worker=False)
    core = app.extensions["tes"]
    try:
        try:
            core.db.engine.connect().close()
        except OperationalError as exc:
            raise database_unreachable(core.db, exc) from None
        with app.app_context():
            if down:
                flask_migrate.downgrade(revision=revision)
            else:
                flask_migrate.upgrade(revision=revision)
    finally:
        core.close()


def _db_upgrade(args: argparse.Namespace) -> int:
    _migrate(_settings(args), args.revision)
    return 0


def _db_downgrade(args: argparse.Namespace) -> int:
    _migrate(_settings(args), args.revision, down=True)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from waitress import create_server

    from .api.waitress_errors import serve_json_errors
    from .app import create_app
    from .startup import listen_socket

    settings = _settings(args)
    graceful = GracefulStop(settings.shutdown_grace, lambda: None)  # a bad value stops us here
    sock = listen_socket(settings.host, settings.port)  # a port in use stops us first
    _migrate(settings, "head")
    # Embedded: the workers are this process's threads, so every state change
    # happens here. With a shared broker, other processes change states too.
    app = create_app(settings, sole_writer=not settings.broker_url)
    server = create_server(
        app, sockets=[sock], threads=settings.http_threads, ident="tes-core",
        # waitress refuses bodies of this size or more with a plain-text 413 before the
        # app sees them; leave room so that the app answers "too large" in the JSON
        # error shape, and keep waitress's cap only against absurd bodies.
        max_request_body_size=2 * settings.max_body_bytes + 1,
        # Keep reading a connection while its request runs, so an event stream learns
        # within a second that its client left (``waitress.client_disconnected``).
        channel_request_lookahead=1,
        # Event streams hold their connections open: accept as many connections as there
        # are threads, and keep-alive ones besides (waitress's default cap is 100), and
        # wait on them with poll(), which select()'s 1,024 descriptors do not limit.
        connection_limit=max(100, settings.http_threads + 100),
        asyncore_use_poll=True,
    )
    serve_json_errors(server, settings.max_body_bytes)  # and those refusals are JSON too
    url = f"http://{settings.host}:{server.effective_port}/ga4gh/tes/v1"
    core = app.extensions["tes"]

    def stop() -> None:
        # server.close() alone leaves waitress's loop polling its other channels
        # (the trigger, open connections) forever. SystemExit raised in the main
        # thread is what waitress's run() catches to stop its loop and threads.
        raise SystemExit(0)

    graceful.begin = stop
    graceful.install()  # before the ready line: a SIGTERM right after it hands over too
    try:
        print(f"TES server ready at {url}", flush=True)
        print(f"  backend: {core.backend.name}; data: {settings.data_dir}; "
              f"database: {core.db.url.render_as_string(hide_password=True)}", flush=True)
        if core.worker.running and core.backend.describe():
            print(f"  {core.backend.describe()}", flush=True)
        print(f"  try: curl {url}/service-info", flush=True)
        server.run()
    except (OSError, ValueError, SystemExit):
        pass  # closed by a signal
    finally:
        deadline = graceful.deadline or Deadline(settings.shutdown_grace)
        # waitress waits up to 5 s for its request threads (an event stream holds one).
        bounded(server.close, deadline.share(0.25), "closing the HTTP server")
        handed = core.close(deadline)  # the worker threads hand their tasks over
    if graceful.signalled.is_set():
        exit_now(0 if handed else 1)  # threads waiting on running containers are left
    return 0


def _worker(args: argparse.Namespace) -> int:
    from .startup import require_broker, require_schema

    settings = _settings(args)
    graceful = GracefulStop(settings.shutdown_grace, lambda: None)  # a bad value stops us here
    require_broker(settings)

    from .app import migrations_dir
    from .core import build_core
    from .plugins import load_plugins
    from .telemetry.exporters import start_exporters

    hooks = load_plugins(settings)
    start_exporters(hooks, settings)
    core = build_core(settings, hooks=hooks)
    try:
        require_schema(core.db, migrations_dir())
        core.start_worker()
    except Exception:
        core.close()
        raise
    stop = threading.Event()
    graceful.begin = stop.set
    graceful.install()
    if settings.worker_metrics_port:
        from .worker.probes import serve_probes

        serve_probes(settings.worker_metrics_port, core)
    print(f"TES worker {core.registry.worker_id} running (backend {core.backend.name})",
          flush=True)
    if core.backend.describe():
        print(f"  {core.backend.describe()}", flush=True)
    # Python runs signal handlers in the main thread only: waking it every second runs
    # one whose signal the kernel gave another thread (a bare wait would never return).
    while not stop.wait(1.0):
        pass
    handed = core.close(graceful.deadline)  # hands the tasks over (see tes_core.shutdown)
    exit_now(0 if handed else 1)  # threads waiting on running containers are left
    return 0


def _plugins(args: argparse.Namespace) -> int:
    from .plugins import PluginError, load_plugins

    hooks = load_plugins(_settings(args), require_backend=False)
    try:
        hooks.backend_classes()  # also finds plugins whose registration fails
    except PluginError as exc:
        print(f"tes-server: {exc}", file=sys.stderr)
    print(json.dumps([asdict(info) for info in hooks.plugins()], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
