"""One look at Slurm per reconcile pass: ``squeue`` for the queue, ``sacct`` for the rest.

The core polls a pass's active tasks in batches (one per state, at most
``TES_RECONCILE_BATCH_SIZE`` tasks each). The first batch of a pass takes a snapshot: one
``squeue`` of all the login user's jobs (pending ones with their reasons, and jobs that
ended in the last ``MinJobAge`` seconds), then one ``sacct`` for the jobs the backend
follows that ``squeue`` no longer shows. Later batches within ``ttl`` seconds reuse it,
so a pass costs at most two commands however many tasks are active. A job the snapshot
does not cover (first seen in a later batch, and already out of ``squeue``) is left for
the next pass, which asks ``sacct`` about it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from .parse import SACCT_FIELDS, SQUEUE_FORMAT, JobInfo, parse_sacct, parse_squeue
from .shell import SlurmCommandError, SlurmShell

log = logging.getLogger(__name__)

FORGET_AFTER = 1800.0
"""Seconds after which a job no poll asked about is no longer followed."""


@dataclass(frozen=True)
class Lookup:
    """What a snapshot knows of one job."""

    job: JobInfo | None
    """The job as ``squeue`` or ``sacct`` showed it; ``None`` when neither did."""
    gone: bool = False
    """``sacct`` was asked and knows no such job: Slurm forgot it (or never had it)."""


@dataclass
class Snapshot:
    """Slurm's jobs at one moment."""

    taken: float
    queue: dict[str, JobInfo] = field(default_factory=dict)
    ended: dict[str, JobInfo] = field(default_factory=dict)
    asked: frozenset[str] = frozenset()
    """Job ids ``sacct`` was asked about and answered for."""

    def lookup(self, job_id: str) -> Lookup:
        """What this snapshot says of ``job_id``."""
        job = self.queue.get(job_id) or self.ended.get(job_id)
        return Lookup(job, gone=job is None and job_id in self.asked)


class Snapshots:
    """Takes a snapshot at most once per ``ttl`` seconds and follows the polled jobs."""

    def __init__(self, shell: SlurmShell, *, user: str, ttl: float) -> None:
        self.shell = shell
        self.user = user
        self.ttl = ttl
        self._current: Snapshot | None = None
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def get(self, job_ids: set[str]) -> Snapshot:
        """A snapshot no older than ``ttl`` (taken now if needed) for these jobs."""
        with self._lock:
            now = time.monotonic()
            for job_id in job_ids:
                self._seen[job_id] = now
            if self._current is not None and now - self._current.taken < self.ttl:
                return self._current
            for job_id in [j for j, seen in self._seen.items() if now - seen > FORGET_AFTER]:
                del self._seen[job_id]
            self._current = self._take(now, set(self._seen))
            return self._current

    def forget(self, job_id: str) -> None:
        """Stop following a job whose task ended."""
        with self._lock:
            self._seen.pop(job_id, None)

    def _take(self, now: float, followed: set[str]) -> Snapshot:
        queue = parse_squeue(self.shell.run(
            f"squeue -h -u {self.user} -t all -o '{SQUEUE_FORMAT}'"
        ).stdout)
        missing = sorted(followed - queue.keys(), key=lambda j: (len(j), j))
        if not missing:
            return Snapshot(now, queue)
        try:
            output = self.shell.run(
                f"sacct -X -n -P -j {','.join(missing)} -o {SACCT_FIELDS}"
            ).stdout
        except SlurmCommandError as exc:  # no accounting: decide nothing about these
            log.warning("sacct failed; the %d jobs squeue no longer shows wait: %s",
                        len(missing), exc)
            return Snapshot(now, queue)
        return Snapshot(now, queue, parse_sacct(output), frozenset(missing))
