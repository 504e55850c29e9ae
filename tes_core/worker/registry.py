"""Which workers are alive, and named leases so only one of them does a thing at a time.

Each worker process has a row in ``workers`` whose heartbeat it refreshes. A
worker is dead when its heartbeat is stale, or at once when it ran on this host
and its process is gone (a server killed with -9 and started again).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..db import Database, utcnow
from ..models import leases, workers

log = logging.getLogger(__name__)

HOSTNAME = socket.gethostname()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class WorkerRegistry:
    """This process's worker identity, its heartbeat, and liveness of the others."""

    def __init__(self, db: Database, heartbeat_interval: float = 5.0) -> None:
        self.db = db
        self.interval = heartbeat_interval
        self.worker_id = f"{HOSTNAME}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._beating_since: float | None = None
        """When this worker's heartbeats last started succeeding (``None``: failing)."""

    def register(self) -> None:
        """Record this worker and start its heartbeat thread."""
        now = utcnow()
        with self.db.write() as conn:
            conn.execute(
                insert(workers).values(
                    id=self.worker_id, hostname=HOSTNAME, pid=os.getpid(),
                    started_at=now, heartbeat_at=now,
                )
            )
        self._beating_since = time.monotonic()
        self._thread = threading.Thread(target=self._beat, name="tes-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                with self.db.write() as conn:
                    conn.execute(
                        update(workers)
                        .where(workers.c.id == self.worker_id)
                        .values(heartbeat_at=utcnow())
                    )
                if self._beating_since is None:
                    self._beating_since = time.monotonic()
            except Exception:
                self._beating_since = None
                log.warning("worker heartbeat failed", exc_info=True)

    @property
    def thread(self) -> threading.Thread | None:
        """The heartbeat thread (``None`` before :meth:`register`)."""
        return self._thread

    def unregister(self) -> None:
        """Stop the heartbeat and remove this worker's row (a heartbeat being written is
        given a second: one written after the removal changes nothing)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)
        try:
            with self.db.write() as conn:
                conn.execute(delete(workers).where(workers.c.id == self.worker_id))
        except Exception:
            log.warning("could not remove worker row %s", self.worker_id, exc_info=True)

    def is_alive(self, worker_id: str | None) -> bool:
        """Whether the worker ``worker_id`` still runs."""
        return bool(worker_id) and worker_id in self.alive([worker_id])  # type: ignore[list-item]

    def alive(self, worker_ids: Iterable[str]) -> set[str]:
        """Which of ``worker_ids`` still run, in one query."""
        wanted = {w for w in worker_ids if w}
        found = {self.worker_id} & wanted
        others = sorted(wanted - found)
        if not others:
            return found
        with self.db.read() as conn:
            rows = conn.execute(select(workers).where(workers.c.id.in_(others))).all()
        fresh = utcnow() - timedelta(seconds=3 * self.interval)
        # After a database outage every heartbeat is old, the live ones included: judge
        # by age only once our own heartbeats have gone through for 3 intervals, by
        # which time every live worker has written one again.
        judging = self._beating_since is not None and (
            time.monotonic() - self._beating_since >= 3 * self.interval
        )
        for row in rows:
            if row.hostname == HOSTNAME and not _pid_alive(row.pid):
                continue
            if row.heartbeat_at > fresh or not judging:
                found.add(row.id)
        return found

    def prune(self, older_than: timedelta = timedelta(days=1)) -> None:
        """Forget workers whose heartbeat stopped long ago."""
        with self.db.write() as conn:
            conn.execute(delete(workers).where(workers.c.heartbeat_at < utcnow() - older_than))


def acquire_lease(db: Database, name: str, holder: str, ttl: float) -> bool:
    """Take or renew the lease ``name`` for ``ttl`` seconds; ``False`` if another holds it."""
    now = utcnow()
    expires = now + timedelta(seconds=ttl)
    try:
        with db.write() as conn:
            stmt = select(leases).where(leases.c.name == name)
            if conn.dialect.name != "sqlite":
                stmt = stmt.with_for_update()
            row = conn.execute(stmt).first()
            if row is None:
                conn.execute(insert(leases).values(name=name, holder=holder, expires_at=expires))
                return True
            if row.holder != holder and row.expires_at > now:
                return False
            conn.execute(
                update(leases)
                .where(leases.c.name == name)
                .values(holder=holder, expires_at=expires)
            )
            return True
    except IntegrityError:
        return False


def lease_holder(db: Database, name: str) -> str | None:
    """Who holds the lease ``name`` (expired or not), or ``None`` when nobody does."""
    with db.read() as conn:
        return conn.execute(select(leases.c.holder).where(leases.c.name == name)).scalar()


def release_lease(db: Database, name: str, holder: str) -> None:
    """Give up the lease ``name`` if ``holder`` has it."""
    with db.write() as conn:
        conn.execute(delete(leases).where(leases.c.name == name, leases.c.holder == holder))
