"""Database access: one engine per process, short read and write transactions.

SQLite (the embedded default) is tuned for many threads: WAL, a busy timeout,
and ``BEGIN IMMEDIATE`` for writes so that two writers queue instead of failing
with "database is locked". Reads run without a transaction.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, create_engine, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from .errors import ServiceUnavailable
from .models import Base

_READ_ONLY = "tes_read_only"
SQLITE_POOL = (32, 32)
"""SQLite's connection pool: size, overflow."""
SERVER_POOL = (24, 16)
"""PostgreSQL's (and any server database's) connection pool: size, overflow."""
UNAVAILABLE = "the database is not available right now; retry in a moment"
log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class _Attempt:
    retry: bool = False


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database could not be reached (worth trying again later)."""
    if isinstance(exc, ServiceUnavailable | OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def patiently(call: Callable[[], T], *, timeout: float, what: str = "database call") -> T:
    """``call()``, tried again while the database is unreachable, for up to ``timeout`` s.

    Workers wrap what a running task reports in this, so that a database restart
    delays a report instead of losing it. Other errors are raised at once.
    """
    deadline = time.monotonic() + timeout
    pause = 0.2
    while True:
        try:
            return call()
        except Exception as exc:
            if not is_unavailable(exc) or time.monotonic() + pause > deadline:
                raise
            log.warning("%s: the database is unreachable; trying again in %.1f s", what, pause)
        time.sleep(pause)
        pause = min(pause * 2, 5.0)


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
        self._holders: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
        self._holders_lock = threading.Lock()
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
                pool_size=SQLITE_POOL[0],
                max_overflow=SQLITE_POOL[1],
            )
            event.listen(self.engine, "connect", _sqlite_on_connect)
            event.listen(self.engine, "begin", _sqlite_on_begin)
        else:
            self.engine = create_engine(
                self.url, echo=echo, pool_size=SERVER_POOL[0], max_overflow=SERVER_POOL[1],
                pool_pre_ping=True,
            )
        self._max_holders = self.engine.pool.size()  # type: ignore[attr-defined]
        dbapi = self.engine.dialect.loaded_dbapi
        self._dbapi_errors = (dbapi.OperationalError, dbapi.InterfaceError)

    # -- straight through the driver, for the hot paths ----------------------------------
    #
    # Each thread keeps one connection from the pool for these (autocommit; writes
    # say BEGIN themselves), which skips pool checkout, statement compilation and
    # result wrapping: on GET /tasks/{id} and POST /tasks that is most of the time.
    # At most the pool's size of threads keep one: a process with more HTTP threads
    # (event streams hold threads; 1,000 listeners need 1,000) would otherwise take every
    # connection for ever, one per thread that ever served a request, and leave
    # ``read()``/``write()`` waiting for the pool's timeout. Threads beyond that borrow a
    # connection per call and give it back at once.

    def point_read(self, sql: str, params: Sequence[Any]) -> tuple | None:
        """One row by key (``GET /tasks/{id}``); ``sql`` uses ``?`` placeholders.

        A per-thread connection found broken (the database restarted since its last
        use) is replaced and the read tried once more, so a recovered database
        answers the first request after it is back.
        """
        return self._autocommit(sql, params, fetch=True)

    def driver_statement(self, sql: str, params: Sequence[Any]) -> None:
        """One write statement on its own (atomic by itself; no BEGIN/COMMIT round trips).

        Tried once more on a fresh connection after a broken one, like :meth:`point_read`,
        so the statement must be idempotent (``INSERT ... ON CONFLICT DO NOTHING``).
        """
        self._autocommit(sql, params, fetch=False)

    def _autocommit(self, sql: str, params: Sequence[Any], *, fetch: bool) -> tuple | None:
        statement = driver_sql(self.engine.dialect, sql)
        for retry in (True, False):
            with self._driver_errors(retry=retry) as attempt:
                cursor = self._thread_connection().cursor()
                try:
                    cursor.execute(statement, params)
                    return cursor.fetchone() if fetch else None
                finally:
                    cursor.close()
                    self._give_back_borrowed()
            if not attempt.retry:
                break
        raise AssertionError("unreachable")  # pragma: no cover

    @contextlib.contextmanager
    def driver_write(self) -> Iterator[DriverTransaction]:
        """A write transaction on the driver (``POST /tasks``), committed on success.

        Only ``BEGIN`` is retried on a fresh connection (nothing was written yet);
        a failure later answers 503 and the transaction is rolled back.
        """
        with self._write_lock:
            cursor = self._begin()
            with self._driver_errors(retry=False):
                try:
                    try:
                        yield DriverTransaction(cursor, self.engine.dialect)
                    except BaseException:
                        cursor.execute("ROLLBACK")
                        raise
                    cursor.execute("COMMIT")
                finally:
                    cursor.close()
                    self._give_back_borrowed()

    def _begin(self) -> Any:
        """A cursor of this thread's connection inside a new transaction."""
        begin = "BEGIN IMMEDIATE" if self.is_sqlite else "BEGIN"
        for retry in (True, False):
            with self._driver_errors(retry=retry) as attempt:
                cursor = self._thread_connection().cursor()
                try:
                    cursor.execute(begin)
                except BaseException:
                    cursor.close()
                    self._give_back_borrowed()
                    raise
                return cursor
            if not attempt.retry:
                break
        raise AssertionError("unreachable")  # pragma: no cover

    def _thread_connection(self) -> Any:
        """This thread's driver connection: kept for its next calls while fewer threads
        than the pool's size keep one, else borrowed for this call only."""
        raw = getattr(self._local, "raw", None)
        if raw is None:
            thread = threading.current_thread()
            with self._holders_lock:
                keep = thread in self._holders or len(self._holders) < self._max_holders
                if keep:
                    self._holders.add(thread)
            raw = self._local.raw = self.engine.raw_connection()
            self._local.borrowed = not keep
            if not self.is_sqlite:
                raw.driver_connection.autocommit = True  # type: ignore[union-attr]
        return raw

    def _give_back_borrowed(self) -> None:
        """Return a connection borrowed for one call to the pool, as other users expect
        it (out of autocommit)."""
        raw = getattr(self._local, "raw", None)
        if raw is None or not getattr(self._local, "borrowed", False):
            return
        self._local.raw = None
        try:
            if not self.is_sqlite:
                raw.driver_connection.autocommit = False  # type: ignore[union-attr]
            raw.close()
        except Exception:
            with contextlib.suppress(Exception):
                raw.invalidate()

    @property
    def kept_connections(self) -> int:
        """How many threads keep a driver connection between calls (at most the pool's
        size)."""
        with self._holders_lock:
            return len(self._holders)

    @contextlib.contextmanager
    def _driver_errors(self, *, retry: bool) -> Iterator[_Attempt]:
        """A broken connection is dropped (the next call opens another) and answers 503.

        With ``retry``, an error on a connection that had served earlier calls is
        swallowed and ``attempt.retry`` set: the caller tries again on a new one.
        """
        attempt = _Attempt()
        reused = getattr(self._local, "raw", None) is not None
        try:
            yield attempt
        except self._dbapi_errors as exc:
            raw, self._local.raw = getattr(self._local, "raw", None), None
            if raw is not None:
                with contextlib.suppress(Exception):
                    raw.invalidate()
            if retry and reused:
                log.info("database connection of this thread was broken; reconnecting")
                attempt.retry = True
                return
            raise ServiceUnavailable(UNAVAILABLE) from exc
        except DBAPIError as exc:  # opening a new connection failed
            raise ServiceUnavailable(UNAVAILABLE) from exc

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
