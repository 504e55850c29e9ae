"""Database access: one engine per process, short read and write transactions.

SQLite (the embedded default) is tuned for many threads: WAL, a busy timeout,
and ``BEGIN IMMEDIATE`` for writes so that two writers queue instead of failing
with "database is locked". Reads run without a transaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, create_engine, event
from sqlalchemy.engine import make_url

from .models import Base

_READ_ONLY = "tes_read_only"


def utcnow() -> datetime:
    """Now in UTC, naive, as stored in the database."""
    return datetime.now(UTC).replace(tzinfo=None)


def rfc3339(value: datetime | None) -> str | None:
    """Format a stored (naive UTC) timestamp as RFC 3339 with a time zone."""
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Database:
    """The engine plus the two ways of using it: ``read()`` and ``write()``.

    Also what Flask-Migrate needs (``metadata`` and ``engine``).
    """

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = make_url(url)
        self.metadata = Base.metadata
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite:
            if self.url.database and self.url.database != ":memory:":
                Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(
                self.url,
                echo=echo,
                connect_args={"check_same_thread": False, "timeout": 30},
                pool_size=16,
                max_overflow=16,
            )
            event.listen(self.engine, "connect", _sqlite_on_connect)
            event.listen(self.engine, "begin", _sqlite_on_begin)
        else:
            self.engine = create_engine(
                self.url, echo=echo, pool_size=16, max_overflow=16, pool_pre_ping=True
            )

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads; each statement sees the latest committed data."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(**{_READ_ONLY: True})
            yield conn
            conn.rollback()

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction, committed on success and rolled back on error."""
        with self.engine.begin() as conn:
            yield conn

    def create_all(self) -> None:
        """Create the tables directly (tests and benchmarks; servers use migrations)."""
        self.metadata.create_all(self.engine)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def _sqlite_on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # Let us, not pysqlite, decide when transactions begin.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    if not conn.get_execution_options().get(_READ_ONLY):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
