"""Checks that stop ``tes-server`` at start-up with one line saying what to do.

Each raises :class:`StartupError`; ``tes-server`` prints its message on one line of
stderr and exits non-zero, instead of a stack trace or a server that says it is ready
while every task would fail.
"""

from __future__ import annotations

import errno
import logging
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from .config import Settings
    from .db import Database

log = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """Start-up cannot go on; the message says what is wrong and what to do, on one line."""


class DatabaseUnreachable(StartupError):
    """The database refused the connection."""


def listen_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (not yet listening), for the HTTP server.

    Bound before anything else starts, so that a port in use stops start-up at once.
    """
    try:
        addresses = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        # IPv4 first: "localhost" is 127.0.0.1 to most clients.
        family, kind, proto, _, address = min(
            addresses, key=lambda info: info[0] != socket.AF_INET
        )
    except socket.gaierror as exc:
        raise StartupError(
            f"cannot listen on host {host!r}: {exc.strerror}; give an address or name of this "
            "machine with --host or TES_HOST (127.0.0.1: this machine only, 0.0.0.0: all)"
        ) from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(
                f"port {port} on {host} is already in use (another tes-server?); choose "
                "another with --port or TES_PORT (0 picks a free port), or stop what uses it"
            ) from None
        raise StartupError(
            f"cannot listen on {host}:{port}: {exc.strerror}; choose another --host/--port "
            "(TES_HOST/TES_PORT); ports below 1024 need privileges"
        ) from None
    return sock


def require_broker(settings: Settings) -> None:
    """A separate worker needs the shared broker: alone it could never receive a task."""
    if not settings.broker_url:
        raise StartupError(
            "tes-server worker needs TES_BROKER_URL (e.g. redis://127.0.0.1:6379/0), the same "
            "as the API's: with the in-process broker no task could ever reach this worker. "
            "For a single machine run `tes-server serve`, which has its own workers"
        )


def require_schema(db: Database, migrations: Path) -> None:
    """The database must be reachable and upgraded to the newest revision in ``migrations``
    (what ``tes-server db upgrade`` does).

    A revision this version does not know (a newer tes-core migrated it) is accepted:
    during a rolling upgrade old workers meet the new schema.
    """
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy.exc import OperationalError

    scripts = ScriptDirectory(str(migrations))
    head = scripts.get_current_head()

    where = db.url.render_as_string(hide_password=True)
    try:
        with db.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_heads()
    except OperationalError as exc:
        raise database_unreachable(db, exc) from None
    if not current:
        raise StartupError(
            f"the database {where} has no tables yet; run `tes-server db upgrade` once with the "
            "same TES_DATABASE_URL, then start this again"
        )
    known = {script.revision for script in scripts.walk_revisions()}
    if head not in current and set(current) <= known:
        raise StartupError(
            f"the database {where} is at revision {', '.join(current)}, older than this "
            f"tes-core's {head}; run `tes-server db upgrade` with the same TES_DATABASE_URL"
        )



def database_unreachable(db: Database, exc: Exception) -> DatabaseUnreachable:
    """The error for a database that refused the connection (``exc``: SQLAlchemy's)."""
    where = db.url.render_as_string(hide_password=True)
    cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return DatabaseUnreachable(
        f"cannot reach the database {where}: {cause[0] if cause else type(exc).__name__}; "
        "check TES_DATABASE_URL and that the database server runs"
    )


def explain(exc: BaseException) -> tuple[int, str] | None:
    """``(exit status, one line)`` for an error the operator can fix: 2 for a setting, 1 for
    the machine, a plugin or the database; ``None`` for anything else (a bug)."""
    from tes_runner.runtimes import RuntimeUnavailable

    from .config import ConfigError
    from .plugins import PluginError

    if isinstance(exc, ConfigError):
        status, prefix = 2, "configuration error: "
    elif isinstance(exc, StartupError | PluginError | RuntimeUnavailable):
        status, prefix = 1, ""
    else:
        return None
    lines = (line.strip() for line in str(exc).splitlines())
    return status, prefix + " ".join(line for line in lines if line)


def check_api_process(settings: Settings) -> None:
    """What an API process (gunicorn's) needs before it may serve: valid settings and
    plugins, and a database upgraded by ``tes-server db upgrade``. Opens nothing it keeps.

    A database that does not answer yet is no reason to stop: the API starts and its
    ``/readyz`` says not ready until the database is back.
    """
    from .app import migrations_dir
    from .core import build_core

    core = build_core(settings)
    try:
        require_schema(core.db, migrations_dir())
    except DatabaseUnreachable as exc:
        log.warning("%s; starting anyway, /readyz answers 503 until it is back", exc)
    finally:
        core.close()
