"""Database access: one engine per process, short read and write transactions.

SQLite (the embedded default) is tuned for many threads: WAL, a busy timeout,
and ``BEGIN IMMEDIATE`` for writes so that two writers queue instead of failing
with "database is locked". Reads run without a transaction.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, event
from sqlalchemy.engine import Dialect, make_url

from .errors import ServiceUnavailable
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


class DriverTransaction:
    """Statements in a :meth:`Database.driver_write` transaction, written with ``?``."""

    def __init__(self, cursor: Any, dialect: Dialect) -> None:
        self.cursor = cursor
        self.dialect = dialect

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement; return the cursor (for ``fetchone``)."""
        self.cursor.execute(driver_sql(self.dialect, sql), params)
        return self.cursor

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each row."""
        self.cursor.executemany(driver_sql(self.dialect, sql), rows)


def driver_sql(dialect: Dialect, sql: str) -> str:
    """``sql`` written with ``?`` placeholders, in the driver's own placeholder style."""
    return sql if dialect.paramstyle == "qmark" else sql.replace("?", "%s")


class Database:
    """The engine plus the two ways of using it: ``read()`` and ``write()``.

    Also what Flask-Migrate needs (``metadata`` and ``engine``).
    """

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = make_url(url)
        self.metadata = Base.metadata
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self._local = threading.local()
        self._write_lock: contextlib.AbstractContextManager = (
            threading.RLock() if self.is_sqlite else contextlib.nullcontext()
        )
        if self.is_sqlite:
            if self.url.database and self.url.database != ":memory:":
                Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(
                self.url,
                echo=echo,
                connect_args={"check_same_thread": False, "timeout": 30},
                pool_size=32,
                max_overflow=32,
            )
            event.listen(self.engine, "connect", _sqlite_on_connect)
            event.listen(self.engine, "begin", _sqlite_on_begin)
        else:
            self.engine = create_engine(
                self.url, echo=echo, pool_size=24, max_overflow=16, pool_pre_ping=True
            )

    # -- straight through the driver, for the hot paths ----------------------------------
    #
    # Each thread keeps one connection from the pool for these (autocommit; writes
    # say BEGIN themselves), which skips pool checkout, statement compilation and
    # result wrapping: on GET /tasks/{id} and POST /tasks that is most of the time.

    def point_read(self, sql: str, params: Sequence[Any]) -> tuple | None:
        """One row by key (``GET /tasks/{id}``); ``sql`` uses ``?`` placeholders."""
        with self._driver_errors():
            cursor = self._thread_connection().cursor()
            try:
                cursor.execute(driver_sql(self.engine.dialect, sql), params)
                return cursor.fetchone()
            finally:
                cursor.close()

    @contextlib.contextmanager
    def driver_write(self) -> Iterator[DriverTransaction]:
        """A write transaction on the driver (``POST /tasks``), committed on success."""
        with self._write_lock, self._driver_errors():
            cursor = self._thread_connection().cursor()
            try:
                cursor.execute("BEGIN IMMEDIATE" if self.is_sqlite else "BEGIN")
                try:
                    yield DriverTransaction(cursor, self.engine.dialect)
                except BaseException:
                    cursor.execute("ROLLBACK")
                    raise
                cursor.execute("COMMIT")
            finally:
                cursor.close()

    def _thread_connection(self) -> Any:
        raw = getattr(self._local, "raw", None)
        if raw is None:
            raw = self._local.raw = self.engine.raw_connection()
            if not self.is_sqlite:
                raw.driver_connection.autocommit = True  # type: ignore[union-attr]
        return raw

    @contextlib.contextmanager
    def _driver_errors(self) -> Iterator[None]:
        """A broken connection is dropped (the next call opens another) and answers 503."""
        try:
            yield
        except self.engine.dialect.loaded_dbapi.OperationalError as exc:
            raw, self._local.raw = getattr(self._local, "raw", None), None
            if raw is not None:
                raw.invalidate()
            raise ServiceUnavailable(
                "the database is not available right now; retry in a moment"
            ) from exc

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads; each statement sees the latest committed data."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(**{_READ_ONLY: True})
            yield conn
            conn.rollback()

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction, committed on success and rolled back on error.

        On SQLite, writers of this process queue on a lock first: SQLite lets one
        writer in at a time anyway, and its own busy handler waits by sleeping,
        which wastes most of the time under contention.
        """
        with self._write_lock, self.engine.begin() as conn:
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
